// Package steps is deploybot's domain: runs of a runbook, their steps, approvals
// and the audit log, and the engine that moves a run from step to step.
//
// It knows the outside world only through interfaces (Store, Notifier, Policy
// and the small interfaces automated steps ask for), so the same engine drives
// Slack, the console and the tests.
package steps

import (
	"errors"
	"fmt"
	"time"
)

// RunKind says what a run is for; it decides whether the run takes its
// service's lock.
type RunKind string

const (
	KindDeploy   RunKind = "deploy"
	KindRollback RunKind = "rollback"
	KindIncident RunKind = "incident"
)

// Locks reports whether runs of this kind hold their service's lock: two
// deploys (or a deploy and a rollback) of one service must never overlap, but
// declaring an incident must always be possible.
func (k RunKind) Locks() bool { return k == KindDeploy || k == KindRollback }

// RunState is where a run is as a whole.
type RunState string

const (
	// RunActive: steps are being worked through (or wait for someone).
	RunActive RunState = "active"
	// RunEnding: the outcome is decided and compensations are running. The
	// run still holds its lock, so nothing can start until the invariants are
	// restored.
	RunEnding    RunState = "ending"
	RunSucceeded RunState = "succeeded"
	RunFailed    RunState = "failed"
	RunCancelled RunState = "cancelled"
)

// Open reports whether the run has not ended yet.
func (s RunState) Open() bool { return s == RunActive || s == RunEnding }

// StepStatus is the state of one step, as the checklist shows it.
type StepStatus string

const (
	StepPending     StepStatus = "pending"
	StepRunning     StepStatus = "running"
	StepWaiting     StepStatus = "waiting"
	StepDone        StepStatus = "done"
	StepFailed      StepStatus = "failed"
	StepSkipped     StepStatus = "skipped"
	StepInterrupted StepStatus = "interrupted"
)

// Finished reports whether the run may move past a step in this status.
func (s StepStatus) Finished() bool { return s == StepDone || s == StepSkipped }

// CompState tracks a step's compensation, so that a crash in the middle of
// ending a run still restores what the step changed.
type CompState string

const (
	CompNone   CompState = ""
	CompNeeded CompState = "needed"
	CompDone   CompState = "done"
	CompFailed CompState = "failed"
)

// Run is one execution of a service's runbook (or a rollback or incident).
type Run struct {
	ID        string // assigned by the store: "run-12"
	Kind      RunKind
	Service   string
	Version   string // the image tag being deployed or rolled back to, when known
	Requester string // Slack user id
	Channel   string
	MessageTS string // the parent message, once posted
	Summary   string // free text: the incident summary, a rollback reason
	State     RunState
	Outcome   string // why it ended, in words: "cancelled by <@U1>", the failing step's error
	CreatedAt time.Time
	UpdatedAt time.Time
	EndedAt   time.Time
	Steps     []StepState
	// Data holds run-wide values that steps hand to later steps (the previous
	// version, plan hashes, the infra commit). Persisted with the run.
	Data map[string]string
	// Rev is the run's revision in the store: SaveRun writes only over the
	// revision it was loaded at and then increments it, so a writer holding
	// an older copy (another replica) is refused instead of overwriting.
	Rev int64
}

// Lock is the key of the lock this run holds ("" for none).
func (r *Run) Lock() string {
	if r.Kind.Locks() {
		return r.Service
	}
	return ""
}

// Current returns the first step that is not finished, or nil when every
// step is done or skipped.
func (r *Run) Current() *StepState {
	for i := range r.Steps {
		if !r.Steps[i].Status.Finished() {
			return &r.Steps[i]
		}
	}
	return nil
}

// Step returns the step with that index, or nil.
func (r *Run) Step(i int) *StepState {
	if i < 0 || i >= len(r.Steps) {
		return nil
	}
	return &r.Steps[i]
}

// StepByID returns the step with that id, or nil.
func (r *Run) StepByID(id string) *StepState {
	for i := range r.Steps {
		if r.Steps[i].ID == id {
			return &r.Steps[i]
		}
	}
	return nil
}

// Clone returns a deep copy, so renderers and the engine never share maps.
func (r *Run) Clone() *Run {
	c := *r
	c.Data = cloneMap(r.Data)
	c.Steps = make([]StepState, len(r.Steps))
	for i, s := range r.Steps {
		s.Buttons = append([]Button(nil), s.Buttons...)
		s.Data = cloneMap(s.Data)
		c.Steps[i] = s
	}
	return &c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Title is the run's headline.
func (r *Run) Title() string {
	switch r.Kind {
	case KindRollback:
		return fmt.Sprintf("Rollback of %s to %s", r.Service, r.Version)
	case KindIncident:
		return fmt.Sprintf("Incident: %s", r.Service)
	}
	if r.Version != "" {
		return fmt.Sprintf("Deploy %s %s", r.Service, r.Version)
	}
	return fmt.Sprintf("Deploy %s", r.Service)
}

// StepState is one step of a run as persisted.
type StepState struct {
	Index int
	ID    string
	Title string
	// Status of the step; Seq grows on every transition and is carried by
	// buttons, so a click on a button of an earlier state (a double click, a
	// stale message) is recognised and ignored.
	Status StepStatus
	Seq    int
	// Attempt counts how often the step has started.
	Attempt int
	// Note is the one-line result shown in the checklist.
	Note string
	// Prompt and Buttons are what a waiting step asks of people; WaitingOn
	// says who may answer ("approvers", "the requester or an approver").
	Prompt    string
	Buttons   []Button
	WaitingOn string
	Actor     string // who finished it, when a person did
	StartedAt time.Time
	EndedAt   time.Time
	Comp      CompState
	Data      map[string]string
}

// Button is a choice offered to people on a waiting step.
type Button struct {
	Verb  string // one of the Verb constants
	Label string
	Style string // "", "primary" or "danger"
}

// Button verbs: the vocabulary that action ids start with (FACTS.md).
const (
	VerbApprove  = "approve"
	VerbReject   = "reject"
	VerbDone     = "done"
	VerbPublish  = "publish"
	VerbSkip     = "skip"
	VerbRecheck  = "recheck"
	VerbConfirm  = "confirm"
	VerbCancel   = "cancel"
	VerbRetry    = "retry"
	VerbIncident = "incident"
	VerbRollback = "rollback"
)

// RunLevel is the step index of buttons that act on the run as a whole
// (Roll back, Declare incident on a Sentry issue), whatever step it is at.
const RunLevel = -1

// Verbs lists every known verb.
var Verbs = []string{VerbApprove, VerbReject, VerbDone, VerbPublish, VerbSkip, VerbRecheck, VerbConfirm, VerbCancel, VerbRetry, VerbIncident, VerbRollback}

// Approval records a decision on a gated step. For plan approvals it pins
// exactly what was approved: the plan file's hash and the infra commit.
type Approval struct {
	RunID      string
	StepIndex  int
	StepID     string
	Approver   string
	Decision   string // "approve" or "reject" (or another verb that gates)
	At         time.Time
	PlanSHA256 string
	Commit     string
}

// AuditEvent is one line of the append-only audit log. Refusals are recorded
// too, so the log answers "who tried what" as well as "what happened".
type AuditEvent struct {
	Seq    int64 // assigned by the store
	RunID  string
	At     time.Time
	Actor  string // Slack user id, or "deploybot"
	Action string // "run.started", "step.done", "click.refused", …
	StepID string
	Detail string
}

// Actor for events the bot causes itself.
const BotActor = "deploybot"

// ErrNotFound is returned by stores for an unknown run.
var ErrNotFound = errors.New("not found")

// ErrStale is returned by SaveRun when the run changed in the store since
// the copy being saved was loaded: nothing was written, and the writer must
// reload the run and decide again.
var ErrStale = errors.New("the run changed since it was loaded")

// LockedError says that a service is held by an open run.
type LockedError struct {
	Service   string
	RunID     string
	Requester string
	Since     time.Time
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s is locked by %s (started by %s at %s)", e.Service, e.RunID, e.Requester, e.Since.UTC().Format(time.RFC3339))
}
