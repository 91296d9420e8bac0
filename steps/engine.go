package steps

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Notifier is told about every committed transition. The bot implements it
// by re-rendering the run's message and posting in its thread; calls must not
// block on the network.
type Notifier interface {
	// RunChanged receives a snapshot of the run after a committed change.
	RunChanged(r *Run)
	// Say posts a line in the run's thread.
	Say(r *Run, text string)
	// Offer posts a line in the run's thread with run-level buttons
	// (Roll back, Declare incident) under it.
	Offer(r *Run, text string, buttons ...Button)
	// Attach uploads a file into the run's thread.
	Attach(r *Run, name, title string, content []byte)
	// Live posts text in the thread once, then edits that message whenever
	// Live is called again with the same key.
	Live(r *Run, key, text string)
}

// Policy answers who holds which role. Group membership may need a network
// call; the engine only asks after the Slack ack has been sent.
type Policy interface {
	IsDeployer(ctx context.Context, user string) (bool, error)
	IsApprover(ctx context.Context, user string) (bool, error)
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

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	runs map[string]*live
}

// live is an open run in memory. Its mutex serialises every transition of
// the run; the store is written through under it.
type live struct {
	done   chan struct{} // closed when the run has ended
	mu     sync.Mutex
	run    *Run
	steps  []Step
	cancel context.CancelFunc // of the step that is running, if any
}

// NewEngine makes an engine. Call Resume once at start-up.
func NewEngine(store Store, n Notifier, p Policy, rb *Runbooks, log *zap.Logger) *Engine {
	ctx, cancel := context.WithCancel(context.Background())
	if log == nil {
		log = zap.NewNop()
	}
	return &Engine{store: store, notify: n, policy: p, runbooks: rb, log: log, now: time.Now,
		ctx: ctx, cancel: cancel, runs: map[string]*live{}}
}

// Close stops running steps and waits for the engine's goroutines. Runs stay
// as committed and continue on the next Resume.
func (e *Engine) Close() {
	e.cancel()
	e.wg.Wait()
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
// deployer role and services that already have an open run.
func (e *Engine) Start(ctx context.Context, req StartRequest) (*Run, error) {
	ok, err := e.policy.IsDeployer(ctx, req.Requester)
	if err != nil {
		return nil, err
	}
	if !ok {
		approver, err := e.policy.IsApprover(ctx, req.Requester)
		if err != nil {
			return nil, err
		}
		// Anyone with a role may declare an incident; deploys and
		// rollbacks need the deployer role.
		if !(req.Kind == KindIncident && approver) {
			e.audit(ctx, AuditEvent{Actor: req.Requester, Action: "start.refused", Detail: fmt.Sprintf("%s %s: not a deployer", req.Kind, req.Service)})
			return nil, refuse("You are not allowed to start a %s: only deployers (listed under `slack.deployers`) may. Ask one of them.", req.Kind)
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
	if err := e.store.CreateRun(ctx, r, AuditEvent{Actor: req.Requester, Action: "run.started", Detail: detail}); err != nil {
		var le *LockedError
		if errors.As(err, &le) {
			e.audit(ctx, AuditEvent{Actor: req.Requester, Action: "start.refused", Detail: le.Error()})
			return nil, refuse("%s is busy: <@%s> started %s at %s UTC, and it is still open. Wait for it to finish, or cancel it with `/deploy cancel %s`.",
				le.Service, le.Requester, le.RunID, le.Since.UTC().Format("2006-01-02 15:04"), le.RunID)
		}
		return nil, err
	}
	l := &live{run: r, steps: impl, done: make(chan struct{})}
	e.mu.Lock()
	e.runs[r.ID] = l
	e.mu.Unlock()
	snap := r.Clone()
	e.notify.RunChanged(snap)
	e.kick(r.ID)
	return snap.Clone(), nil
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
		impl, err := e.runbooks.Steps(r)
		if err == nil && len(impl) != len(r.Steps) {
			err = fmt.Errorf("the runbook now has %d steps, the run has %d", len(impl), len(r.Steps))
		}
		if err != nil {
			// The configuration changed under an open run. Keep it visible
			// rather than guessing which step is which.
			e.log.Error("cannot resume run", zap.String("run", r.ID), zap.Error(err))
			continue
		}
		l := &live{run: r, steps: impl, done: make(chan struct{})}
		e.mu.Lock()
		e.runs[r.ID] = l
		e.mu.Unlock()

		l.mu.Lock()
		if r.State == RunEnding {
			snap := r.Clone()
			l.mu.Unlock()
			e.notify.RunChanged(snap)
			e.goEnd(r.ID)
			continue
		}
		var events []AuditEvent
		if cur := r.Current(); cur != nil && cur.Status == StepRunning {
			if impl[cur.Index].Spec().Idempotent {
				cur.Status = StepPending
				cur.Seq++
				events = append(events, AuditEvent{Actor: BotActor, Action: "step.resumed", StepID: cur.ID, Detail: "was running when deploybot stopped; starting it again"})
			} else {
				cur.Status = StepInterrupted
				cur.Seq++
				cur.Note = "interrupted: deploybot stopped while this step ran"
				cur.Prompt = "deploybot stopped while this step was running, so it may have half-happened. Check, then Retry or Cancel the run."
				cur.Buttons = []Button{{Verb: VerbRetry, Label: "Retry", Style: "primary"}, {Verb: VerbCancel, Label: "Cancel run", Style: "danger"}}
				cur.WaitingOn = GateRequesterOrApprover.String()
				events = append(events, AuditEvent{Actor: BotActor, Action: "step.interrupted", StepID: cur.ID})
			}
		}
		events = append(events, AuditEvent{Actor: BotActor, Action: "run.resumed"})
		err = e.save(ctx, r, Changes{Events: events})
		snap := r.Clone()
		l.mu.Unlock()
		if err != nil {
			return err
		}
		e.notify.RunChanged(snap)
		if cur := snap.Current(); cur != nil {
			e.notify.Say(snap, fmt.Sprintf(":arrows_counterclockwise: deploybot restarted and picked this run up again at step %d, “%s” (%s).", cur.Index+1, cur.Title, cur.Status))
		}
		e.kick(r.ID)
	}
	return nil
}

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
	if req.StepIndex == RunLevel {
		return e.runAction(ctx, req)
	}
	l := e.liveRun(req.RunID)
	if l == nil {
		r, err := e.store.Run(ctx, req.RunID)
		if err != nil {
			return e.refused(ctx, req, "run %s does not exist. `/deploy status` lists open runs.", req.RunID)
		}
		return e.refused(ctx, req, "%s has already ended (%s). Nothing was changed.", r.ID, r.State)
	}
	l.mu.Lock()
	r := l.run
	if !r.State.Open() || r.State == RunEnding {
		l.mu.Unlock()
		return e.refused(ctx, req, "%s is ending (%s). Nothing was changed.", r.ID, r.State)
	}
	st := r.Step(req.StepIndex)
	if st == nil {
		l.mu.Unlock()
		return e.refused(ctx, req, "that button does not belong to a step of %s.", r.ID)
	}
	if req.Verb == VerbCancel {
		l.mu.Unlock()
		return e.Cancel(ctx, req.RunID, req.User)
	}
	if st.Seq != req.Seq || (st.Status != StepWaiting && st.Status != StepFailed && st.Status != StepInterrupted) {
		msg := fmt.Sprintf("that button is no longer current: “%s” is now %s", st.Title, st.Status)
		if st.Actor != "" {
			msg += fmt.Sprintf(" (by <@%s>)", st.Actor)
		}
		l.mu.Unlock()
		return e.refused(ctx, req, "%s. Nothing was changed.", msg)
	}
	spec0 := l.steps[st.Index].Spec()
	override := req.Verb == VerbConfirm && spec0.Overridable && st.Status == StepWaiting && req.Reason != ""
	if !hasVerb(st.Buttons, req.Verb) && !override {
		l.mu.Unlock()
		return e.refused(ctx, req, "“%s” does not take %q now.", st.Title, req.Verb)
	}
	spec := l.steps[st.Index].Spec()
	gate := spec.Gate
	switch req.Verb {
	case VerbRetry, VerbIncident:
		gate = GateRequesterOrApprover
	case VerbApprove, VerbPublish, VerbConfirm:
		// Approvers approve, publish and confirm, whatever the step.
		gate = GateApprover
	}
	if err := e.authorize(ctx, r, spec, gate, req); err != nil {
		l.mu.Unlock()
		var rf *Refused
		if errors.As(err, &rf) {
			return e.refused(ctx, req, "%s", rf.Msg)
		}
		return err
	}
	clicked := AuditEvent{Actor: req.User, Action: "click." + req.Verb, StepID: st.ID, Detail: req.Reason}
	e.notify.Say(r.Clone(), fmt.Sprintf("<@%s> clicked *%s* on “%s” at %s UTC", req.User, label(st.Buttons, req.Verb), st.Title, e.now().UTC().Format("15:04:05")))

	switch req.Verb {
	case VerbRetry:
		st.Status = StepPending
		st.Seq++
		st.Note, st.Prompt, st.Buttons, st.WaitingOn = "", "", nil, ""
		err := e.save(ctx, r, Changes{Events: []AuditEvent{clicked}})
		snap := r.Clone()
		l.mu.Unlock()
		if err != nil {
			return err
		}
		e.notify.RunChanged(snap)
		e.kick(r.ID)
		return nil
	case VerbIncident:
		summary := fmt.Sprintf("%s of %s failed: %s", st.Title, r.ID, st.Note)
		svc, ch := r.Service, r.Channel
		err := e.save(ctx, r, Changes{Events: []AuditEvent{clicked}})
		l.mu.Unlock()
		if err != nil {
			return err
		}
		_, err = e.Start(ctx, StartRequest{Kind: KindIncident, Service: svc, Requester: req.User, Channel: ch, Summary: summary, Data: map[string]string{"from_run": req.RunID}})
		return err
	}

	snap := r.Clone()
	x := e.newExec(snap, snap.Step(st.Index))
	res := e.safeAct(l.steps[st.Index], ctx, x, Action{Verb: req.Verb, User: req.User, Reason: req.Reason, At: e.now().UTC()})
	end, err := e.apply(ctx, l, st.Index, x, res, req.User, clicked)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if end != "" {
		e.end(r.ID, RunFailed, end)
		return nil
	}
	e.kick(r.ID)
	return nil
}

// authorize checks the gate and four-eyes for a click.
func (e *Engine) authorize(ctx context.Context, r *Run, spec Spec, gate Gate, req ActionRequest) error {
	approver, err := e.policy.IsApprover(ctx, req.User)
	if err != nil {
		return err
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
	l := e.liveRun(runID)
	if l == nil {
		r, err := e.store.Run(ctx, runID)
		if err != nil {
			return e.refused(ctx, req, "there is no run %s. `/deploy status` lists open runs.", runID)
		}
		return e.refused(ctx, req, "%s has already ended (%s).", r.ID, r.State)
	}
	l.mu.Lock()
	r := l.run
	if r.State != RunActive {
		l.mu.Unlock()
		return e.refused(ctx, req, "%s is already ending.", runID)
	}
	if user != r.Requester {
		ok, err := e.policy.IsApprover(ctx, user)
		if err != nil {
			l.mu.Unlock()
			return err
		}
		if !ok {
			l.mu.Unlock()
			return e.refused(ctx, req, "only <@%s>, who started %s, or an approver may cancel it.", r.Requester, runID)
		}
	}
	snap := r.Clone()
	l.mu.Unlock()
	e.notify.Say(snap, fmt.Sprintf("<@%s> cancelled the run at %s UTC", user, e.now().UTC().Format("15:04:05")))
	e.end(runID, RunCancelled, fmt.Sprintf("cancelled by <@%s>", user), AuditEvent{Actor: user, Action: "run.cancel"})
	return nil
}

// SetMessage records where the run's parent message is, and its link
// (which the infrastructure PR cites).
func (e *Engine) SetMessage(ctx context.Context, runID, ts, permalink string) error {
	set := func(r *Run) {
		r.MessageTS = ts
		if permalink != "" {
			if r.Data == nil {
				r.Data = map[string]string{}
			}
			r.Data["permalink"] = permalink
		}
	}
	l := e.liveRun(runID)
	if l == nil {
		r, err := e.store.Run(ctx, runID)
		if err != nil {
			return err
		}
		set(r)
		return e.store.SaveRun(ctx, r, Changes{})
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	set(l.run)
	return e.save(ctx, l.run, Changes{})
}

// Directory turns user ids into names (the rollback workflow's actor input).
type Directory interface {
	UserName(ctx context.Context, id string) (string, error)
}

// SetDirectory sets where steps look up user names.
func (e *Engine) SetDirectory(d Directory) { e.dir = d }

// Run returns a snapshot of a run, open or not.
func (e *Engine) Run(ctx context.Context, id string) (*Run, error) {
	if l := e.liveRun(id); l != nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.run.Clone(), nil
	}
	return e.store.Run(ctx, id)
}

// OpenRuns returns snapshots of the open runs, oldest first.
func (e *Engine) OpenRuns() []*Run {
	e.mu.Lock()
	ls := make([]*live, 0, len(e.runs))
	for _, l := range e.runs {
		ls = append(ls, l)
	}
	e.mu.Unlock()
	var out []*Run
	for _, l := range ls {
		l.mu.Lock()
		if l.run.State.Open() {
			out = append(out, l.run.Clone())
		}
		l.mu.Unlock()
	}
	sortRuns(out)
	return out
}

// Spec returns the spec of a run's step (for rendering who may act).
func (e *Engine) Spec(runID string, index int) (Spec, bool) {
	l := e.liveRun(runID)
	if l == nil || index < 0 || index >= len(l.steps) {
		return Spec{}, false
	}
	return l.steps[index].Spec(), true
}

func (e *Engine) liveRun(id string) *live {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runs[id]
}

func (e *Engine) refused(ctx context.Context, req ActionRequest, format string, args ...any) error {
	rf := refuse(format, args...)
	e.audit(ctx, AuditEvent{RunID: req.RunID, Actor: req.User, Action: "click.refused", Detail: req.Verb + ": " + rf.Msg})
	return rf
}

func (e *Engine) audit(ctx context.Context, ev AuditEvent) {
	if ev.At.IsZero() {
		ev.At = e.now().UTC()
	}
	if err := e.store.AppendAudit(ctx, ev); err != nil {
		e.log.Error("audit append failed", zap.String("action", ev.Action), zap.Error(err))
	}
}

// Audit records an event from outside the engine (the bot's refusals of
// malformed commands, for one).
func (e *Engine) Audit(ctx context.Context, ev AuditEvent) { e.audit(ctx, ev) }

func (e *Engine) save(ctx context.Context, r *Run, c Changes) error {
	now := e.now().UTC()
	r.UpdatedAt = now
	for i := range c.Events {
		if c.Events[i].At.IsZero() {
			c.Events[i].At = now
		}
		c.Events[i].RunID = r.ID
	}
	for i := range c.Approvals {
		c.Approvals[i].RunID = r.ID
		if c.Approvals[i].At.IsZero() {
			c.Approvals[i].At = now
		}
	}
	// A transition must not be lost because the request that caused it was
	// cancelled mid-commit.
	return e.store.SaveRun(context.WithoutCancel(ctx), r, c)
}

// kick advances a run in the background.
func (e *Engine) kick(runID string) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.advance(runID)
	}()
}

// advance starts pending steps one after another until one waits, fails or
// the run is complete.
func (e *Engine) advance(runID string) {
	l := e.liveRun(runID)
	if l == nil {
		return
	}
	for {
		if e.ctx.Err() != nil {
			return
		}
		l.mu.Lock()
		r := l.run
		if r.State != RunActive || l.cancel != nil {
			l.mu.Unlock()
			return
		}
		cur := r.Current()
		if cur == nil {
			l.mu.Unlock()
			e.end(runID, RunSucceeded, "all steps done")
			return
		}
		if cur.Status != StepPending {
			l.mu.Unlock()
			return
		}
		now := e.now().UTC()
		cur.Status = StepRunning
		cur.Seq++
		cur.Attempt++
		cur.StartedAt = now
		cur.Note, cur.Prompt, cur.Buttons, cur.WaitingOn, cur.Actor = "", "", nil, "", ""
		if err := e.save(e.ctx, r, Changes{Events: []AuditEvent{{Actor: BotActor, Action: "step.started", StepID: cur.ID, Detail: fmt.Sprintf("attempt %d", cur.Attempt)}}}); err != nil {
			l.mu.Unlock()
			e.log.Error("committing step start failed", zap.String("run", runID), zap.Error(err))
			return
		}
		idx, seq := cur.Index, cur.Seq
		snap := r.Clone()
		ctx, cancel := context.WithCancel(e.ctx)
		l.cancel = cancel
		step := l.steps[idx]
		l.mu.Unlock()
		e.notify.RunChanged(snap)

		x := e.newExec(snap, snap.Step(idx))
		x.checkpoint = func(key, value string) error { return e.checkpoint(l, idx, seq, key, value) }
		res := e.safeStart(step, ctx, x)
		cancel()

		l.mu.Lock()
		l.cancel = nil
		r = l.run
		st := r.Step(idx)
		if r.State != RunActive || st.Seq != seq || e.ctx.Err() != nil {
			// The run was cancelled, or the engine is closing, while the
			// step ran: its result no longer applies. On close the step
			// stays "running" and Resume decides what to do.
			l.mu.Unlock()
			return
		}
		end, err := e.apply(e.ctx, l, idx, x, res, BotActor)
		l.mu.Unlock()
		if err != nil {
			e.log.Error("committing step result failed", zap.String("run", runID), zap.Error(err))
			return
		}
		if end != "" {
			e.end(runID, RunFailed, end)
			return
		}
		if res.Status != StepDone && res.Status != StepSkipped && res.Rewind == "" {
			return
		}
	}
}

// apply commits a step's result; the caller holds l.mu. It returns a
// non-empty reason when the result ends the run.
func (e *Engine) apply(ctx context.Context, l *live, idx int, x *Exec, res Result, actor string, events ...AuditEvent) (string, error) {
	r := l.run
	st := r.Step(idx)
	now := e.now().UTC()
	for k, v := range x.data {
		if st.Data == nil {
			st.Data = map[string]string{}
		}
		st.Data[k] = v
	}
	for k, v := range x.runData {
		if r.Data == nil {
			r.Data = map[string]string{}
		}
		r.Data[k] = v
	}
	if x.version != "" {
		r.Version = x.version
	}
	st.Seq++
	st.Note = res.Note
	st.Prompt, st.Buttons, st.WaitingOn = "", nil, ""
	c := Changes{Events: events}
	if res.Rewind != "" {
		if to := r.StepByID(res.Rewind); to != nil && to.Index <= idx {
			for k := to.Index; k <= idx; k++ {
				s := &r.Steps[k]
				s.Status, s.Actor = StepPending, ""
				s.Prompt, s.Buttons, s.WaitingOn = "", nil, ""
				s.Seq++
			}
			c.Events = append(c.Events, AuditEvent{Actor: actor, Action: "step.rewound", StepID: st.ID, Detail: "back to " + res.Rewind + ": " + res.Note})
			if err := e.save(ctx, r, c); err != nil {
				return "", err
			}
			snap := r.Clone()
			if res.Say != "" {
				e.notify.Say(snap, res.Say)
			}
			e.notify.RunChanged(snap)
			return "", nil
		}
		res = Failed(fmt.Errorf("internal error: cannot go back to step %q", res.Rewind))
	}
	switch res.Status {
	case StepDone, StepSkipped:
		st.Status = res.Status
		st.EndedAt = now
		if actor != BotActor {
			st.Actor = actor
		}
		c.Events = append(c.Events, AuditEvent{Actor: actor, Action: "step." + string(res.Status), StepID: st.ID, Detail: res.Note})
	case StepWaiting:
		st.Status = StepWaiting
		st.Prompt = res.Prompt
		st.Buttons = append(append([]Button(nil), res.Buttons...), Button{Verb: VerbCancel, Label: "Cancel run", Style: "danger"})
		st.WaitingOn = res.WaitingOn
		if st.WaitingOn == "" {
			st.WaitingOn = l.steps[idx].Spec().Gate.String()
		}
		c.Events = append(c.Events, AuditEvent{Actor: actor, Action: "step.waiting", StepID: st.ID, Detail: "waiting for " + st.WaitingOn})
	default:
		st.Status = StepFailed
		st.EndedAt = now
		if res.EndRun == "" {
			st.Prompt = "This step failed. Fix the cause and Retry, declare an Incident, or Cancel the run."
			st.Buttons = []Button{{Verb: VerbRetry, Label: "Retry", Style: "primary"}, {Verb: VerbIncident, Label: "Incident", Style: "danger"}, {Verb: VerbCancel, Label: "Cancel run", Style: "danger"}}
			st.WaitingOn = GateRequesterOrApprover.String()
		}
		c.Events = append(c.Events, AuditEvent{Actor: actor, Action: "step.failed", StepID: st.ID, Detail: res.Note})
	}
	if res.Approval != nil {
		a := *res.Approval
		a.StepIndex, a.StepID = idx, st.ID
		if a.Approver == "" {
			a.Approver = actor
		}
		c.Approvals = append(c.Approvals, a)
	}
	if err := e.save(ctx, r, c); err != nil {
		return "", err
	}
	snap := r.Clone()
	if res.Say != "" {
		e.notify.Say(snap, res.Say)
	}
	if res.Status == StepFailed && res.EndRun == "" {
		e.notify.Say(snap, fmt.Sprintf(":x: “%s” failed: %s", st.Title, res.Note))
	}
	e.notify.RunChanged(snap)
	return res.EndRun, nil
}

// end decides a run's outcome: it commits the decision and the
// compensations owed, runs them, then commits the final state, which frees
// the service.
func (e *Engine) end(runID string, final RunState, outcome string, events ...AuditEvent) {
	l := e.liveRun(runID)
	if l == nil {
		return
	}
	l.mu.Lock()
	r := l.run
	if r.State != RunActive {
		l.mu.Unlock()
		return
	}
	if l.cancel != nil {
		l.cancel() // stop the step that is running; its result is discarded
	}
	r.State = RunEnding
	r.Outcome = outcome
	if r.Data == nil {
		r.Data = map[string]string{}
	}
	r.Data["final_state"] = string(final)
	if final != RunSucceeded {
		for i := range r.Steps {
			st := &r.Steps[i]
			if _, ok := l.steps[i].(Compensator); ok && st.Status != StepPending && st.Attempt > 0 {
				st.Comp = CompNeeded
			}
			if st.Status == StepWaiting || st.Status == StepRunning || st.Status == StepInterrupted {
				st.Prompt, st.Buttons, st.WaitingOn = "", nil, ""
				if final == RunCancelled {
					st.Status = StepSkipped
					st.Note = "not finished: " + outcome
				}
			}
		}
	}
	events = append(events, AuditEvent{Actor: BotActor, Action: "run.ending", Detail: string(final) + ": " + outcome})
	err := e.save(e.ctx, r, Changes{Events: events})
	snap := r.Clone()
	l.mu.Unlock()
	if err != nil {
		e.log.Error("committing run end failed", zap.String("run", runID), zap.Error(err))
		return
	}
	e.notify.RunChanged(snap)
	e.goEnd(runID)
}

func (e *Engine) goEnd(runID string) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.finish(runID)
	}()
}

// finish runs owed compensations, newest step first, then closes the run.
func (e *Engine) finish(runID string) {
	l := e.liveRun(runID)
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.run
	if r.State != RunEnding {
		return
	}
	// Compensations must complete even while the engine shuts down: an
	// abandoned data_refresh_cleared restore is what this exists to prevent.
	ctx := context.WithoutCancel(e.ctx)
	for i := len(r.Steps) - 1; i >= 0; i-- {
		st := &r.Steps[i]
		if st.Comp != CompNeeded {
			continue
		}
		comp := l.steps[i].(Compensator)
		snap := r.Clone()
		x := e.newExec(snap, snap.Step(i))
		err := e.safeCompensate(comp, ctx, x)
		ev := AuditEvent{Actor: BotActor, Action: "compensation.done", StepID: st.ID}
		st.Comp = CompDone
		if err != nil {
			st.Comp = CompFailed
			ev.Action, ev.Detail = "compensation.failed", err.Error()
			e.notify.Say(r.Clone(), fmt.Sprintf(":rotating_light: Undoing “%s” failed: %s. Fix this by hand.", st.Title, err))
		}
		for k, v := range x.data {
			if st.Data == nil {
				st.Data = map[string]string{}
			}
			st.Data[k] = v
		}
		if err := e.save(ctx, r, Changes{Events: []AuditEvent{ev}}); err != nil {
			e.log.Error("committing compensation failed", zap.String("run", runID), zap.Error(err))
			return
		}
	}
	final := RunState(r.Data["final_state"])
	if final == "" {
		final = RunFailed
	}
	r.State = final
	r.EndedAt = e.now().UTC()
	if err := e.save(ctx, r, Changes{Events: []AuditEvent{{Actor: BotActor, Action: "run." + string(final), Detail: r.Outcome}}}); err != nil {
		e.log.Error("committing run end failed", zap.String("run", runID), zap.Error(err))
		return
	}
	snap := r.Clone()
	e.mu.Lock()
	delete(e.runs, runID)
	e.mu.Unlock()
	close(l.done)
	e.notify.RunChanged(snap)
}

// A panicking step must fail its step, not take the bot (and every other
// run) down with it; the stack goes to the log.
func (e *Engine) safely(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("step panicked", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			err = fmt.Errorf("internal error in deploybot: %v", p)
		}
	}()
	return f()
}

func (e *Engine) safeStart(s Step, ctx context.Context, x *Exec) (res Result) {
	if err := e.safely(func() error { res = s.Start(ctx, x); return nil }); err != nil {
		return Failed(err)
	}
	return res
}

func (e *Engine) safeAct(s Step, ctx context.Context, x *Exec, a Action) (res Result) {
	if err := e.safely(func() error { res = s.Act(ctx, x, a); return nil }); err != nil {
		return Failed(err)
	}
	return res
}

func (e *Engine) safeCompensate(c Compensator, ctx context.Context, x *Exec) error {
	return e.safely(func() error { return c.Compensate(ctx, x) })
}

func hasVerb(bs []Button, verb string) bool {
	for _, b := range bs {
		if b.Verb == verb {
			return true
		}
	}
	return false
}

func label(bs []Button, verb string) string {
	for _, b := range bs {
		if b.Verb == verb {
			return b.Label
		}
	}
	return verb
}

func sortRuns(rs []*Run) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].CreatedAt.Before(rs[j-1].CreatedAt); j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// checkpoint commits one value of a running step's data at once, so that
// what the step did so far (issues already posted) survives a crash.
func (e *Engine) checkpoint(l *live, idx, seq int, key, value string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.run.Step(idx)
	if st == nil || st.Seq != seq {
		return errors.New("the step is no longer running")
	}
	if st.Data == nil {
		st.Data = map[string]string{}
	}
	st.Data[key] = value
	return e.save(e.ctx, l.run, Changes{})
}

// Override pushes the waiting step of a run through, with a reason, when
// the step allows it (an Airflow block). Approvers only.
func (e *Engine) Override(ctx context.Context, runID, user, reason string) error {
	req := ActionRequest{RunID: runID, Verb: VerbConfirm, User: user, Reason: reason}
	l := e.liveRun(runID)
	if l == nil {
		return e.refused(ctx, req, "there is no open run %s. `/deploy status` lists open runs.", runID)
	}
	l.mu.Lock()
	cur := l.run.Current()
	ok := cur != nil && cur.Status == StepWaiting && l.steps[cur.Index].Spec().Overridable
	if ok {
		req.StepIndex, req.Seq = cur.Index, cur.Seq
	}
	l.mu.Unlock()
	if !ok {
		return e.refused(ctx, req, "%s is not waiting on a step that can be overridden (only an Airflow block can).", runID)
	}
	return e.Act(ctx, req)
}

// Watching lists open runs whose Sentry watch is running.
func (e *Engine) Watching() []*Run {
	var out []*Run
	for _, r := range e.OpenRuns() {
		if cur := r.Current(); cur != nil && cur.ID == "sentry" && cur.Status == StepRunning {
			out = append(out, r)
		}
	}
	return out
}
