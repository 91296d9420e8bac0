package steps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// Step is the behaviour behind one runbook step. Manual steps ask a person;
// automated steps (Terraform, GitHub, …) do the work and may also wait for a
// person, for instance to approve a plan.
type Step interface {
	Spec() Spec
	// Start does the step's work when it becomes current or is retried. It
	// runs without the run's lock held and must honour ctx: cancelling the
	// run cancels it.
	Start(ctx context.Context, x *Exec) Result
	// Act answers a click on one of the buttons the step offered while it
	// waits. The engine has already checked who may click and that the
	// button is current.
	Act(ctx context.Context, x *Exec, a Action) Result
}

// Compensator is implemented by steps whose effect must be undone whenever
// the run ends without success after the step started: the
// data_refresh_cleared flag, for one. The engine records that compensation is
// needed before running it, so a crash cannot skip it.
type Compensator interface {
	Compensate(ctx context.Context, x *Exec) error
}

// Interrupter is implemented by non-idempotent steps that know better than
// "Retry or Cancel" what people must decide when deploybot stopped while
// they ran (an apply: Re-plan, or Force unlock first). Resume calls it
// before committing the step as interrupted; the Result's Note, Prompt,
// Buttons and WaitingOn replace the generic ones (Cancel is added), and its
// data is committed with them.
type Interrupter interface {
	Interrupted(ctx context.Context, x *Exec) Result
}

// Gate says who may answer a waiting step.
type Gate int

const (
	// GateRequesterOrApprover: the person who started the run, or any approver.
	GateRequesterOrApprover Gate = iota
	// GateApprover: approvers only (approve, publish, confirm).
	GateApprover
)

func (g Gate) String() string {
	if g == GateApprover {
		return "an approver"
	}
	return "the requester or an approver"
}

// Spec describes a step: what the checklist shows, what the runbook says, and
// the rules the engine enforces around it.
type Spec struct {
	ID          string
	Title       string
	Instruction string // the runbook's own words, shown when a person must act
	Gate        Gate
	// Environment names the deploy environment the step acts on, if any.
	Environment string
	// FourEyes: the requester may not give the affirmative answer (approve,
	// publish, confirm, done) themselves.
	FourEyes bool
	// Idempotent steps are simply started again when the process died while
	// they ran; others are marked interrupted for a person to decide.
	Idempotent bool
	// Overridable: an approver may push the step through with a reason
	// (`/deploy override <run> <reason>`), e.g. an Airflow block.
	Overridable bool
}

// Action is a click on a step's button.
type Action struct {
	Verb   string
	User   string
	Reason string
	At     time.Time
}

// Exec is what a step sees while it runs: a snapshot of the run and ways to
// record data and talk in the thread. Changes are committed with the step's
// result.
type Exec struct {
	Run     *Run       // snapshot; do not modify
	Step    *StepState // snapshot; do not modify
	data    map[string]string
	runData map[string]string
	version string
	n       Notifier
	dir     Directory
	// checkpoint commits the step's data and messages at once; nil
	// outside Start.
	checkpoint func(data map[string]string, out []OutboxEntry) error
	eng        *Engine
	// hold keeps messages until the transition that ends the click (or
	// compensation) commits them, so the thread reads in order: who
	// clicked, then what followed. Outside Start messages are always held.
	hold bool
	held []OutboxEntry
}

// LookupRun returns another run (an incident's originating deploy).
func (x *Exec) LookupRun(ctx context.Context, id string) (*Run, error) {
	if x.eng == nil {
		return nil, ErrNotFound
	}
	return x.eng.Run(ctx, id)
}

// LastGoodVersion is the version the service ran before r.
func (x *Exec) LastGoodVersion(ctx context.Context, r *Run) string {
	if x.eng == nil {
		return ""
	}
	v, _ := x.eng.LastGoodVersion(ctx, r)
	return v
}

// Save records a value with the step at once (not only with its result),
// for effects that must not repeat after a restart. Outside Start it is the
// same as Set.
func (x *Exec) Save(key, value string) error {
	x.data[key] = value
	if x.checkpoint == nil || x.hold {
		return nil
	}
	if err := x.checkpoint(x.data, nil); err != nil {
		x.holdFromNow()
		return err
	}
	return nil
}

// Offer posts text in the thread with run-level buttons (Roll back,
// Declare incident).
func (x *Exec) Offer(text string, buttons ...Button) {
	x.emit(OutboxEntry{Kind: OutboxSay, Text: text, Buttons: buttons})
}

// Announce posts text in another channel (the incident announcement in
// the alerts channel); once it is there, its link is said in the thread.
// During Start it is committed at once with the step's data, so a step
// that records "announced" with Set before it cannot announce twice.
func (x *Exec) Announce(channel, text string) {
	x.emit(OutboxEntry{Kind: OutboxAnnounce, Channel: channel, Text: text})
}

// emit records a message. During Start it is committed at once together
// with everything the step has Set so far, so "posted" and the post stand
// or fall together (the Sentry watch relies on this); elsewhere it waits
// for the transition's commit.
func (x *Exec) emit(e OutboxEntry) {
	if x.hold || x.checkpoint == nil {
		x.held = append(x.held, e)
		return
	}
	if e.Kind == OutboxSay {
		// A step started again after a crash says what it said before
		// (a release preview, a PR link): the thread already has those
		// lines, so the resumed attempt does not repeat them. A person's
		// Retry is a new attempt and says everything again.
		key := "said:" + saidKey(e.Text)
		if x.Step.Data[key] != "" && x.Step.Data[resumedKey] == strconv.Itoa(x.Step.Attempt) {
			return
		}
		x.data[key] = strconv.Itoa(x.Step.Attempt)
	}
	if err := x.checkpoint(x.data, []OutboxEntry{e}); err != nil {
		x.holdFromNow(e)
	}
}

// holdFromNow is what a failed checkpoint leaves: the step's data (which
// may now say "posted" or "announced") and its messages must still commit
// together, so from here on everything waits for the step's result, the
// message that failed first.
func (x *Exec) holdFromNow(pending ...OutboxEntry) {
	x.hold = true
	x.held = append(x.held, pending...)
}

// saidKey is a short, stable name for a line's text.
func saidKey(text string) string {
	h := sha256.Sum256([]byte(text))
	return hex.EncodeToString(h[:8])
}

// UserName returns a person's name for outside systems, or the id when
// names cannot be looked up.
func (x *Exec) UserName(ctx context.Context, id string) string {
	if x.dir != nil {
		if n, err := x.dir.UserName(ctx, id); err == nil && n != "" {
			return n
		}
	}
	return id
}

func (e *Engine) newExec(r *Run, s *StepState) *Exec {
	return &Exec{Run: r, Step: s, data: map[string]string{}, runData: map[string]string{}, n: e.notify, dir: e.dir, eng: e}
}

// Attach uploads a file into the run's thread (a plan too large for a
// message, for one).
func (x *Exec) Attach(name, title string, content []byte) {
	x.emit(OutboxEntry{Kind: OutboxFile, Name: name, Title: title, Content: content})
}

// Live shows text in one thread message that is edited as the text grows
// (apply progress). Callers throttle; the key names the message.
func (x *Exec) Live(key, text string) {
	if x.n != nil {
		x.n.Live(x.Run, key, text)
	}
}

// Say posts a line in the run's thread (progress, output): during Start
// it is committed at once, elsewhere with the transition.
func (x *Exec) Say(format string, args ...any) {
	x.emit(OutboxEntry{Kind: OutboxSay, Text: fmt.Sprintf(format, args...)})
}

// Get returns a value the step saved earlier (it survives restarts).
func (x *Exec) Get(key string) string {
	if v, ok := x.data[key]; ok {
		return v
	}
	return x.Step.Data[key]
}

// Set saves a value with the step's state.
func (x *Exec) Set(key, value string) { x.data[key] = value }

// RunValue returns a run-wide value set by an earlier step.
func (x *Exec) RunValue(key string) string {
	if v, ok := x.runData[key]; ok {
		return v
	}
	return x.Run.Data[key]
}

// SetRunValue saves a run-wide value for later steps.
func (x *Exec) SetRunValue(key, value string) { x.runData[key] = value }

// SetVersion records the version the run deploys, once a step learns it.
func (x *Exec) SetVersion(v string) { x.version = v }

// Result is what a step's Start or Act produced.
type Result struct {
	Status    StepStatus // StepDone, StepSkipped, StepWaiting or StepFailed
	Note      string     // one line for the checklist
	Say       string     // posted in the thread
	Prompt    string     // for StepWaiting
	Buttons   []Button   // for StepWaiting (Cancel is added by the engine)
	WaitingOn string     // for StepWaiting; defaults to the step's gate
	// Approval, when set, is recorded with the transition.
	Approval *Approval
	// EndRun ends the run unsuccessfully after this transition (a rejected
	// plan): compensations run and the lock is released.
	EndRun string
	// Rewind sends the run back to the step with this id: it and every step
	// after it up to this one become pending again (an apply refused because
	// its plan went stale re-plans for a new approval).
	Rewind string
}

// RewindTo goes back to an earlier step, saying why.
func RewindTo(stepID, why string) Result {
	return Result{Status: StepPending, Rewind: stepID, Note: why, Say: ":leftwards_arrow_with_hook: " + why}
}

// Done finishes a step.
func Done(note string) Result { return Result{Status: StepDone, Note: note} }

// Skipped finishes a step without doing it.
func Skipped(note string) Result { return Result{Status: StepSkipped, Note: note} }

// Wait asks people to act.
func Wait(prompt string, buttons ...Button) Result {
	return Result{Status: StepWaiting, Prompt: prompt, Buttons: buttons}
}

// Failed fails a step; the run waits for Retry, Cancel or Incident. The
// error's text is escaped: errors carry outside text (Terraform's stderr,
// GitHub's messages) that must never ping anyone.
func Failed(err error) Result {
	return Result{Status: StepFailed, Note: Escape(err.Error())}
}

// FailedText fails a step with a note that is already Slack mrkdwn (a link
// to a failed workflow run); the caller escapes outside text in it.
func FailedText(format string, args ...any) Result {
	return Result{Status: StepFailed, Note: fmt.Sprintf(format, args...)}
}

// unexpected answers a click on a button the step never offered. The
// engine only passes verbs from the step's own buttons, so this guards
// against a step offering a button it does not handle.
func unexpected(spec Spec, a Action) Result {
	return Failed(fmt.Errorf("“%s” takes no %q", spec.Title, a.Verb))
}
