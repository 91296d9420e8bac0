package steps

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Notifier is told about every committed transition. Messages themselves
// (thread lines, files, the incident announcement, the parent message and
// its edits) are not handed to it: they are outbox entries committed with
// the transition that causes them, and the bot delivers them from the store.
// Calls must not block on the network.
type Notifier interface {
	// RunChanged receives a snapshot of the run after a committed change;
	// new outbox entries of the run may be waiting.
	RunChanged(r *Run)
	// Live posts text in the thread once, then edits that message whenever
	// Live is called again with the same key. Live text is progress (apply
	// output, build status) and best effort: every outcome it leads to is
	// said durably through the outbox.
	Live(r *Run, key, text string)
}

// Policy answers who holds which role. Group membership may need a network
// call; the engine only asks after the Slack ack has been sent, and never
// while holding a run's lock.
type Policy interface {
	IsDeployer(ctx context.Context, user string) (bool, error)
	IsApprover(ctx context.Context, user string) (bool, error)
}

// Directory turns user ids into names (the rollback workflow's actor input).
type Directory interface {
	UserName(ctx context.Context, id string) (string, error)
}

// Refused is a request the engine turned down. It changes nothing; its
// message tells the user what to do instead.
type Refused struct{ Msg string }

func (r *Refused) Error() string { return r.Msg }

func refuse(format string, args ...any) *Refused { return &Refused{Msg: fmt.Sprintf(format, args...)} }

// Engine moves runs through their steps. Every transition is committed to
// the Store before the Notifier hears of it, so a restart continues from the
// truth.
type Engine struct {
	store    Store
	notify   Notifier
	policy   Policy
	runbooks *Runbooks
	log      *zap.Logger
	now      func() time.Time
	dir      Directory
	mask     func(string) string // see SetMask

	ctx    context.Context // e.gate: see shutdown.go
	gate   *gateCtx
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	runs map[string]*live

	incidentMu sync.Mutex // serialises incident starts (one per run)

	obs observing // see observe.go
	rep *replica  // nil: one process, no leases (see replica.go)
}

// live is an open run in memory. Its mutex serialises every transition of
// the run; the store is written through under it. Readers (status, metrics,
// alert linking) use the snapshot and never wait on the mutex, which a slow
// click may hold for a while.
type live struct {
	mu      sync.Mutex
	run     *Run
	steps   []Step
	cancel  context.CancelFunc // of the step that is running, if any
	running chan struct{}      // closed when that step's Start has returned
	done    chan struct{}      // closed when the run has ended
	snap    atomic.Pointer[Run]
	// storeRetries counts writes the store refused in a row, for backoff.
	storeRetries atomic.Int32
	// lease is the run's lease when replicas share the store (nil for one
	// process): while it is lost, nothing of the run is saved.
	lease *Lease
}

// NewEngine makes an engine. Call Resume once at start-up.
func NewEngine(store Store, n Notifier, p Policy, rb *Runbooks, log *zap.Logger) *Engine {
	ctx, cancel := context.WithCancel(context.Background())
	if log == nil {
		log = zap.NewNop()
	}
	gate := &gateCtx{Context: ctx}
	return &Engine{store: store, notify: n, policy: p, runbooks: rb, log: log, now: time.Now,
		ctx: gate, gate: gate, cancel: cancel, runs: map[string]*live{}}
}

// SetDirectory sets where steps look up user names.
func (e *Engine) SetDirectory(d Directory) { e.dir = d }

// Close stops running steps and waits for the engine's goroutines. Runs stay
// as committed and continue on the next Resume.
func (e *Engine) Close() {
	e.cancel()
	e.wg.Wait()
	e.releaseLeases()
}

// Store returns the engine's store, for read-only views (status, audit).
func (e *Engine) Store() Store { return e.store }

// StartRequest asks for a new run.
type StartRequest struct {
	Kind      RunKind
	Service   string
	Version   string
	Requester string
	Channel   string
	Summary   string
	Data      map[string]string
}

// Start opens a run and begins its first step. It refuses users without the
// deployer role, services that already have an open run, and a second
// incident about the same run.
func (e *Engine) Start(ctx context.Context, req StartRequest) (*Run, error) {
	if rf := e.shuttingDown(); rf != nil {
		return nil, rf
	}
	if err := e.MayStart(ctx, req.Kind, req.Service, req.Requester); err != nil {
		return nil, err
	}
	if from := req.Data["from_run"]; req.Kind == KindIncident && from != "" {
		// Held until the run is tracked: two simultaneous clicks must not
		// both find no incident.
		e.incidentMu.Lock()
		defer e.incidentMu.Unlock()
		for _, o := range e.SharedOpenRuns(ctx) {
			if o.Kind == KindIncident && o.Data["from_run"] == from {
				e.audit(ctx, AuditEvent{Actor: req.Requester, Action: "start.refused", Detail: "incident for " + from + " already open: " + o.ID})
				return nil, refuse("An incident about %s is already open: %s, declared by <@%s>. Follow it there.", from, o.ID, o.Requester)
			}
		}
	}
	if err := e.runbooks.validate(ctx, req); err != nil {
		e.audit(ctx, AuditEvent{Actor: req.Requester, Action: "start.refused", Detail: fmt.Sprintf("%s %s %s: %v", req.Kind, req.Service, req.Version, err)})
		return nil, err
	}
	now := e.now().UTC()
	r := &Run{Kind: req.Kind, Service: req.Service, Version: req.Version, Requester: req.Requester,
		Channel: req.Channel, Summary: req.Summary, State: RunActive, CreatedAt: now, UpdatedAt: now, Data: cloneMap(req.Data)}
	if r.Data == nil {
		r.Data = map[string]string{}
	}
	impl, err := e.runbooks.Steps(r)
	if err != nil {
		return nil, err
	}
	for i, s := range impl {
		sp := s.Spec()
		r.Steps = append(r.Steps, StepState{Index: i, ID: sp.ID, Title: sp.Title, Status: StepPending})
	}
	detail := fmt.Sprintf("%s %s %s", r.Kind, r.Service, r.Version)
	if r.Summary != "" {
		detail += ": " + r.Summary
	}
	created := Changes{Events: []AuditEvent{{Actor: req.Requester, Action: "run.started", Detail: detail}},
		Outbox: []OutboxEntry{{Kind: OutboxParent, At: now}}}
	e.masked(r, &created)
	if err := e.store.CreateRun(ctx, r, created); err != nil {
		var le *LockedError
		if errors.As(err, &le) {
			e.audit(ctx, AuditEvent{Actor: req.Requester, Action: "start.refused", Detail: le.Error()})
			return nil, refuse("%s is busy: <@%s> started %s at %s UTC, and it is still open. Wait for it to finish, or cancel it with `/deploy cancel %s`.",
				le.Service, le.Requester, le.RunID, le.Since.UTC().Format("2006-01-02 15:04"), le.RunID)
		}
		return nil, err
	}
	var lease *Lease
	if e.rep != nil {
		// Taken before the run is tracked: a run this replica cannot hold
		// is left to the replica that does (it is open in the store).
		if lease, err = e.holdNew(ctx, r.ID); err != nil {
			return r.Clone(), nil
		}
	}
	l := e.track(r, impl, lease)
	snap := l.snap.Load()
	e.committed(nil, snap)
	e.notify.RunChanged(snap)
	e.kick(r.ID)
	return snap.Clone(), nil
}

func (e *Engine) track(r *Run, impl []Step, lease *Lease) *live {
	l := &live{run: r, steps: impl, done: make(chan struct{}), lease: lease}
	l.snap.Store(r.Clone())
	e.mu.Lock()
	e.runs[r.ID] = l
	e.mu.Unlock()
	if lease != nil {
		e.watchLease(l)
	}
	return l
}

// Resume reloads open runs after a start: it re-announces them (so their
// messages are re-rendered), retries idempotent steps that were running when
// the process died, marks the others interrupted, and finishes runs that were
// ending.
func (e *Engine) Resume(ctx context.Context) error {
	runs, err := e.store.OpenRuns(ctx)
	if err != nil {
		return fmt.Errorf("loading open runs: %w", err)
	}
	for _, r := range runs {
		if e.rep != nil {
			// Only runs this replica can hold; the others are another
			// live replica's, or taken over once their lease expires.
			if _, err := e.takeOver(ctx, r.ID); err != nil && !errors.Is(err, ErrLeaseHeld) {
				return err
			}
			continue
		}
		if err := e.resumeRun(ctx, r, nil); err != nil {
			return err
		}
	}
	e.startReplica()
	return nil
}

// resumeRun tracks an open run loaded from the store and continues it as
// after a crash; lease is the run's, when replicas share the store.
func (e *Engine) resumeRun(ctx context.Context, r *Run, lease *Lease) error {
	if r.Data == nil {
		r.Data = map[string]string{}
	}
	// Steps are matched by id: a run opened before the configuration
	// changed keeps its steps, and can still be cancelled with its
	// compensations.
	impl, changed := e.runbooks.stepsFor(r)
	l := e.track(r, impl, lease)
	l.mu.Lock()
	if r.State == RunEnding {
		snap := r.Clone()
		l.mu.Unlock()
		e.notify.RunChanged(snap)
		e.goEnd(r.ID)
		return nil
	}
	var events []AuditEvent
	var held []OutboxEntry
	if cur := r.Current(); cur != nil && cur.Status == StepRunning {
		if impl[cur.Index].Spec().Idempotent {
			cur.Status = StepPending
			cur.Seq++
			// The next start is this restart's, not a person's retry:
			// time limits carry over.
			if cur.Data == nil {
				cur.Data = map[string]string{}
			}
			cur.Data[resumedKey] = fmt.Sprint(cur.Attempt + 1)
			events = append(events, AuditEvent{Actor: BotActor, Action: "step.resumed", StepID: cur.ID, Detail: "was running when deploybot stopped; starting it again"})
		} else {
			cur.Status = StepInterrupted
			cur.Seq++
			cur.Note = "interrupted: deploybot stopped while this step ran"
			cur.Prompt = "deploybot stopped while this step was running, so it may have half-happened. Check, then Retry or Cancel the run."
			cur.Buttons = []Button{{Verb: VerbRetry, Label: "Retry", Style: "primary"}, {Verb: VerbCancel, Label: "Cancel run", Style: "danger"}}
			cur.WaitingOn = GateRequesterOrApprover.String()
			if in, ok := impl[cur.Index].(Interrupter); ok {
				held = e.interrupted(ctx, in, r, cur)
			}
			events = append(events, AuditEvent{Actor: BotActor, Action: "step.interrupted", StepID: cur.ID})
		}
	}
	events = append(events, AuditEvent{Actor: BotActor, Action: "run.resumed"})
	var says []string
	if changed {
		says = append(says, ":warning: The runbook changed since this run started; steps it no longer has can only be skipped by cancelling the run.")
	}
	if cur := r.Current(); cur != nil {
		says = append(says, fmt.Sprintf(":arrows_counterclockwise: deploybot restarted and picked this run up again at step %d, “%s” (%s).", cur.Index+1, cur.Title, cur.Status))
	}
	// What the interrupted step said (the lock, the flag restored)
	// comes before the restart notice, in the same commit.
	err := e.save(ctx, l, Changes{Events: events, Outbox: append(held, sayAll(says...)...)})
	snap := r.Clone()
	l.mu.Unlock()
	if err != nil {
		return err
	}
	e.notify.RunChanged(snap)
	e.kick(r.ID)
	return nil
}

// resumedKey marks, in a step's data, the attempt that a restart started.
const resumedKey = "resumed_attempt"

// ActionRequest is a click on a step's button.
type ActionRequest struct {
	RunID     string
	StepIndex int
	Seq       int
	Verb      string
	User      string
	Reason    string
}

// Act handles a click. A *Refused error explains to the user why nothing
// happened; every refusal is also audited.
func (e *Engine) Act(ctx context.Context, req ActionRequest) error {
	err := e.act(ctx, req)
	if errors.Is(err, ErrStale) {
		// Another replica changed the run first; the engine has reloaded
		// it. The click was decided against a state that is gone, so it
		// is not applied to the new one behind the person's back.
		return e.refused(ctx, req, "%s changed while your click was handled (someone else acted first). Nothing of yours was changed: look at the run again.", req.RunID)
	}
	return err
}

func (e *Engine) act(ctx context.Context, req ActionRequest) error {
	if rf := e.shuttingDown(); rf != nil {
		return e.refused(ctx, req, "%s", rf.Msg)
	}
	if req.StepIndex == RunLevel {
		return e.runAction(ctx, req)
	}
	if req.Verb == VerbCancel {
		return e.Cancel(ctx, req.RunID, req.User)
	}
	l := e.liveRun(req.RunID)
	if l == nil {
		if done, err := e.elsewhere(ctx, actionAct, req); done {
			return err
		}
		l = e.liveRun(req.RunID)
	}
	if l == nil {
		r, err := e.store.Run(ctx, req.RunID)
		if err != nil {
			return e.refused(ctx, req, "run %s does not exist. `/deploy status` lists open runs.", req.RunID)
		}
		return e.refused(ctx, req, "%s has already ended (%s). Nothing was changed.", r.ID, r.State)
	}
	// Roles are looked up before the run's lock is taken: group membership
	// may need Slack.
	// A role that cannot be checked counts as none (roles fail closed): the
	// requester may still answer what needs no role.
	approver, roleErr := e.policy.IsApprover(ctx, req.User)
	l.mu.Lock()
	r := l.run
	if r.State != RunActive {
		l.mu.Unlock()
		return e.refused(ctx, req, "%s is ending (%s). Nothing was changed.", r.ID, r.State)
	}
	st := r.Step(req.StepIndex)
	if st == nil {
		l.mu.Unlock()
		return e.refused(ctx, req, "that button does not belong to a step of %s.", r.ID)
	}
	if st.Seq != req.Seq || (st.Status != StepWaiting && st.Status != StepFailed && st.Status != StepInterrupted) {
		msg := fmt.Sprintf("that button is no longer current: “%s” is now %s", st.Title, st.Status)
		if st.Actor != "" {
			msg += fmt.Sprintf(" (by <@%s>)", st.Actor)
		}
		l.mu.Unlock()
		return e.refused(ctx, req, "%s. Nothing was changed.", msg)
	}
	spec := l.steps[st.Index].Spec()
	override := req.Verb == VerbConfirm && spec.Overridable && st.Status == StepWaiting && req.Reason != ""
	if !hasVerb(st.Buttons, req.Verb) && !override {
		l.mu.Unlock()
		return e.refused(ctx, req, "“%s” does not take %q now.", st.Title, req.Verb)
	}
	if rf := authorize(r, spec, approver, req); rf != nil {
		l.mu.Unlock()
		if roleErr != nil {
			rf = roleUnknown(roleErr)
		}
		return e.refused(ctx, req, "%s", rf.Msg)
	}
	if req.Verb == VerbConfirm && spec.Overridable && req.Reason == "" {
		l.mu.Unlock()
		return e.refused(ctx, req, "an override needs a reason, for the thread and the audit log: click Override in Slack and give it, or type `/deploy override %s <reason>`.", r.ID)
	}
	clicked := AuditEvent{Actor: req.User, Action: "click." + req.Verb, StepID: st.ID, Detail: req.Reason}
	said := fmt.Sprintf("<@%s> clicked *%s* on “%s” at %s UTC", req.User, label(st.Buttons, req.Verb, override), st.Title, e.now().UTC().Format("15:04:05"))
	if req.Reason != "" && !override { // an override's step says its reason itself
		said += ". Reason: " + Escape(req.Reason)
	}

	switch req.Verb {
	case VerbRetry, VerbIncident:
		summary := fmt.Sprintf("%s of %s failed: %s", st.Title, r.ID, st.Note)
		if req.Reason != "" {
			summary = req.Reason + " (" + summary + ")"
		}
		st.Seq++ // a second click on the same button is stale
		if req.Verb == VerbRetry {
			st.Status = StepPending
			st.Note, st.Prompt, st.Buttons, st.WaitingOn = "", "", nil, ""
		}
		err := e.save(ctx, l, Changes{Events: []AuditEvent{clicked}, Outbox: sayAll(said)})
		snap := r.Clone()
		l.mu.Unlock()
		if err != nil {
			return err
		}
		e.notify.RunChanged(snap)
		if req.Verb == VerbRetry {
			e.kick(r.ID)
			return nil
		}
		_, err = e.Start(ctx, StartRequest{Kind: KindIncident, Service: snap.Service, Requester: req.User, Channel: snap.Channel, Summary: summary, Data: map[string]string{"from_run": req.RunID}})
		return err
	}

	snap := r.Clone()
	x := e.newExec(snap, snap.Step(st.Index))
	x.hold = true
	res := e.safeAct(l.steps[st.Index], ctx, x, Action{Verb: req.Verb, User: req.User, Reason: req.Reason, At: e.now().UTC()})
	end, err := e.apply(ctx, l, st.Index, x, res, req.User, said, clicked)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if end != "" {
		_, err := e.end(r.ID, RunFailed, end, "")
		return err
	}
	e.kick(r.ID)
	return nil
}

// authorize checks the step's gate and four-eyes for a click.
func authorize(r *Run, spec Spec, approver bool, req ActionRequest) *Refused {
	gate := spec.Gate
	switch req.Verb {
	case VerbRetry, VerbIncident:
		gate = GateRequesterOrApprover
	case VerbApprove, VerbPublish, VerbConfirm, VerbSkip:
		// Approvers approve, publish, confirm and skip (accept a risk),
		// whatever the step.
		gate = GateApprover
	}
	switch gate {
	case GateApprover:
		if !approver {
			return refuse("only approvers (listed under `slack.approvers`) may answer “%s”. Ask one of them.", spec.Title)
		}
	default:
		if req.User != r.Requester && !approver {
			return refuse("only <@%s>, who started %s, or an approver may answer “%s”.", r.Requester, r.ID, spec.Title)
		}
	}
	if spec.FourEyes && req.User == r.Requester && affirmative(req.Verb) {
		return refuse("four-eyes applies to %s: you started %s, so another approver must answer “%s”.", spec.Environment, r.ID, spec.Title)
	}
	return nil
}

// roleUnknown refuses what depends on a role deploybot cannot check now
// (Slack's user groups do not answer): roles fail closed.
func roleUnknown(err error) *Refused {
	return refuse("deploybot cannot check your role right now, so nothing was done: %v.", err)
}

// affirmative verbs move a gated change forward; four-eyes applies to them.
func affirmative(verb string) bool {
	switch verb {
	case VerbApprove, VerbPublish, VerbConfirm, VerbDone, VerbSkip:
		return true
	}
	return false
}

// Cancel ends a run at a user's request and runs its compensations. Only the
// requester or an approver may cancel.
func (e *Engine) Cancel(ctx context.Context, runID, user string) error {
	req := ActionRequest{RunID: runID, Verb: VerbCancel, User: user}
	if rf := e.shuttingDown(); rf != nil {
		return e.refused(ctx, req, "%s", rf.Msg)
	}
	l := e.liveRun(runID)
	if l == nil {
		if done, err := e.elsewhere(ctx, actionCancel, req); done {
			return err
		}
		l = e.liveRun(runID)
	}
	if l == nil {
		r, err := e.store.Run(ctx, runID)
		if err != nil {
			return e.refused(ctx, req, "there is no run %s. `/deploy status` lists open runs.", runID)
		}
		return e.refused(ctx, req, "%s has already ended (%s).", r.ID, r.State)
	}
	r := l.snap.Load()
	if r.State != RunActive {
		return e.refused(ctx, req, "%s is already ending.", runID)
	}
	if user != r.Requester {
		ok, err := e.policy.IsApprover(ctx, user)
		if err != nil {
			return e.refused(ctx, req, "%s", roleUnknown(err).Msg)
		}
		if !ok {
			return e.refused(ctx, req, "only <@%s>, who started %s, or an approver may cancel it.", r.Requester, runID)
		}
	}
	ended, err := e.end(runID, RunCancelled, fmt.Sprintf("cancelled by <@%s>", user),
		fmt.Sprintf("<@%s> cancelled the run at %s UTC", user, e.now().UTC().Format("15:04:05")),
		AuditEvent{Actor: user, Action: "run.cancel"})
	if err != nil {
		return fmt.Errorf("cancelling %s: %w", runID, err)
	}
	if !ended {
		return e.refused(ctx, req, "%s is already ending.", runID)
	}
	return nil
}

// Override pushes the waiting step of a run through, with a reason, when
// the step allows it (an Airflow block). Approvers only.
func (e *Engine) Override(ctx context.Context, runID, user, reason string) error {
	req := ActionRequest{RunID: runID, Verb: VerbConfirm, User: user, Reason: reason}
	l := e.liveRun(runID)
	if l == nil {
		if done, err := e.elsewhere(ctx, actionOverride, req); done {
			return err
		}
		l = e.liveRun(runID)
	}
	if l == nil {
		return e.refused(ctx, req, "there is no open run %s. `/deploy status` lists open runs.", runID)
	}
	r := l.snap.Load()
	cur := r.Current()
	if cur == nil || cur.Status != StepWaiting || !l.steps[cur.Index].Spec().Overridable {
		return e.refused(ctx, req, "%s is not waiting on a step that can be overridden (only an Airflow block can).", runID)
	}
	req.StepIndex, req.Seq = cur.Index, cur.Seq
	return e.Act(ctx, req)
}

func hasVerb(bs []Button, verb string) bool {
	for _, b := range bs {
		if b.Verb == verb {
			return true
		}
	}
	return false
}

func label(bs []Button, verb string, override bool) string {
	if override {
		return "Override"
	}
	for _, b := range bs {
		if b.Verb == verb {
			return b.Label
		}
	}
	return verb
}
