package steps

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// save commits the run's state with the changes; the caller holds l.mu.
// Readers see the new state only once it is committed. The run's parent
// message owes an edit after every transition: that is an outbox entry too.
func (e *Engine) save(ctx context.Context, l *live, c Changes) error {
	c.Outbox = append(c.Outbox, OutboxEntry{Kind: OutboxUpdate})
	return e.saveQuiet(ctx, l, c)
}

// saveQuiet is save for changes that do not alter how the run looks (step
// data, the parent message's ts).
func (e *Engine) saveQuiet(ctx context.Context, l *live, c Changes) error {
	r := l.run
	if l.fenced() {
		// Another replica may hold the run by now: what this one decided
		// is not written (the compare-and-set on Rev would also refuse it
		// once the new holder has written).
		l.run = l.snap.Load().Clone()
		return ErrLeaseLost
	}
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
	for i := range c.Outbox {
		c.Outbox[i].RunID = r.ID
		if c.Outbox[i].At.IsZero() {
			c.Outbox[i].At = now
		}
	}
	e.masked(r, &c)
	// A transition must not be lost because the request that caused it was
	// cancelled mid-commit.
	if err := e.store.SaveRun(context.WithoutCancel(ctx), r, c); err != nil {
		// Memory goes back to the last committed state: nothing that was
		// not committed may be acted on or announced.
		l.run = l.snap.Load().Clone()
		if errors.Is(err, ErrStale) {
			// Someone else (another replica) committed first: their state
			// is the truth. The run goes on from it, and whatever the
			// caller retries is decided again from it.
			if fresh, rerr := e.store.Run(context.WithoutCancel(ctx), r.ID); rerr == nil {
				l.run = fresh
				l.snap.Store(fresh.Clone())
				e.kick(r.ID)
			}
		}
		return err
	}
	prev, cur := l.snap.Load(), r.Clone()
	l.snap.Store(cur)
	l.storeRetries.Store(0)
	e.committed(prev, cur)
	return nil
}

// kick advances a run in the background.
func (e *Engine) kick(runID string) { e.spawn(runID, func() { e.advance(runID) }) }

// goEnd finishes ending a run in the background.
func (e *Engine) goEnd(runID string) { e.spawn(runID, func() { e.finish(runID) }) }

// spawn runs f, the engine's work on runID, on a goroutine that Close waits
// for. Steps' own panics are caught closer (safely); one in the engine
// itself is reported here and ends only this goroutine: the run keeps its
// last committed state, and other runs and the bot go on.
func (e *Engine) spawn(runID string, f func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer func() {
			if p := recover(); p != nil {
				e.runLogByID(runID).Error("engine panicked", zap.Error(PanicError(p)), zap.Stack("stack"))
			}
		}()
		f()
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
			if _, err := e.end(runID, RunSucceeded, "all steps done", ""); err != nil {
				e.storeFailed(runID, "ending the run", err, func() { e.advance(runID) })
			}
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
		if err := e.save(e.ctx, l, Changes{Events: []AuditEvent{{Actor: BotActor, Action: "step.started", StepID: cur.ID, Detail: fmt.Sprintf("attempt %d", cur.Attempt)}}}); err != nil {
			l.mu.Unlock()
			e.storeFailed(runID, "committing the start of "+cur.ID, err, func() { e.advance(runID) })
			return
		}
		idx, seq := cur.Index, cur.Seq
		snap := r.Clone()
		ctx, cancel := context.WithCancel(e.ctx)
		running := make(chan struct{})
		l.cancel, l.running = cancel, running
		step := l.steps[idx]
		l.mu.Unlock()
		e.notify.RunChanged(snap)

		x := e.newExec(snap, snap.Step(idx))
		x.checkpoint = func(data map[string]string, out []OutboxEntry) error { return e.checkpoint(l, idx, seq, data, out) }
		res := e.safeStart(step, ctx, x)
		cancel()
		close(running)

		l.mu.Lock()
		l.cancel, l.running = nil, nil
		r = l.run
		st := r.Step(idx)
		if r.State != RunActive || st.Seq != seq || e.ctx.Err() != nil || l.fenced() {
			// The run was cancelled, or the engine is closing, while the
			// step ran: its result no longer applies. On close the step
			// stays "running" and Resume decides what to do.
			l.mu.Unlock()
			return
		}
		end, err := e.apply(e.ctx, l, idx, x, res, BotActor, "")
		l.mu.Unlock()
		// The step's work is done and only its record is missing (the
		// store is busy or refused the write): the result is kept and
		// committed as soon as the store takes it, never lost or redone.
		for attempt := 1; err != nil; attempt++ {
			if errors.Is(err, ErrLeaseLost) {
				return // the run's new holder resumes it
			}
			e.log.Error("committing step result failed; retrying", zap.String("run_id", runID), zap.String("service", r.Service), zap.String("step", st.ID), zap.Int("attempt", attempt), zap.Error(err))
			t := time.NewTimer(storeBackoff(attempt))
			select {
			case <-e.ctx.Done():
				// Closing: the step stays "running" in the store and
				// Resume decides, as after a crash.
				t.Stop()
				return
			case <-t.C:
			}
			l.mu.Lock()
			if l.run.State != RunActive || l.run.Step(idx).Seq != seq {
				l.mu.Unlock()
				return
			}
			end, err = e.apply(e.ctx, l, idx, x, res, BotActor, "")
			l.mu.Unlock()
		}
		if end != "" {
			e.endFailed(runID, end)
			return
		}
		if res.Status != StepDone && res.Status != StepSkipped && res.Rewind == "" {
			return
		}
	}
}

// storeBackoff is the pause before the n-th retry of a write the store
// refused: 1s, 2s, 4s … up to 30s.
func storeBackoff(n int) time.Duration {
	return min(time.Second<<min(n-1, 5), 30*time.Second)
}

// storeFailed logs a write the store refused outside any person's request
// and tries again later, so a busy or briefly failing database delays a run
// instead of stalling it until a restart.
func (e *Engine) storeFailed(runID, what string, err error, again func()) {
	l := e.liveRun(runID)
	if l == nil || errors.Is(err, ErrLeaseLost) {
		return
	}
	n := int(l.storeRetries.Add(1))
	e.runLog(l.snap.Load()).Error(what+" failed; retrying", zap.Int("attempt", n), zap.Error(err))
	e.spawn(runID, func() {
		t := time.NewTimer(storeBackoff(n))
		defer t.Stop()
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		again()
	})
}

// endFailed ends a run a step's result failed, retrying for as long as the
// store refuses the write.
func (e *Engine) endFailed(runID, why string) {
	if _, err := e.end(runID, RunFailed, why, ""); err != nil {
		e.storeFailed(runID, "ending the run", err, func() { e.endFailed(runID, why) })
	}
}

// apply commits a step's result; the caller holds l.mu. It returns a
// non-empty reason when the result ends the run.
// said, when set, is posted in the thread first, once the change is
// committed (who clicked what).
func (e *Engine) apply(ctx context.Context, l *live, idx int, x *Exec, res Result, actor, said string, events ...AuditEvent) (string, error) {
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
	rewound := false
	if res.Rewind != "" {
		if to := r.StepByID(res.Rewind); to != nil && to.Index <= idx {
			for k := to.Index; k <= idx; k++ {
				s := &r.Steps[k]
				s.Status, s.Actor = StepPending, ""
				s.Prompt, s.Buttons, s.WaitingOn = "", nil, ""
				s.Seq++
			}
			c.Events = append(c.Events, AuditEvent{Actor: actor, Action: "step.rewound", StepID: st.ID, Detail: "back to " + res.Rewind + ": " + res.Note})
			rewound = true
		} else {
			res = Failed(fmt.Errorf("internal error: cannot go back to step %q", res.Rewind))
			res.Rewind = ""
		}
	}
	switch {
	case rewound:
	case res.Status == StepDone || res.Status == StepSkipped:
		st.Status = res.Status
		st.EndedAt = now
		if actor != BotActor {
			st.Actor = actor
		}
		c.Events = append(c.Events, AuditEvent{Actor: actor, Action: "step." + string(res.Status), StepID: st.ID, Detail: res.Note})
	case res.Status == StepWaiting:
		st.Status = StepWaiting
		st.Prompt = res.Prompt
		st.Buttons = append(append([]Button(nil), res.Buttons...), Button{Verb: VerbCancel, Label: "Cancel run", Style: "danger"})
		st.WaitingOn = res.WaitingOn
		if st.WaitingOn == "" {
			st.WaitingOn = l.steps[idx].Spec().Gate.String()
		}
		c.Events = append(c.Events, AuditEvent{Actor: actor, Action: "step.waiting", StepID: st.ID, Detail: "waiting for " + st.WaitingOn})
	default:
		res.Status = StepFailed
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
	// The thread reads in order: who clicked, what the step said, its
	// result.
	c.Outbox = append(c.Outbox, sayAll(said)...)
	c.Outbox = append(c.Outbox, x.held...)
	c.Outbox = append(c.Outbox, sayAll(res.Say)...)
	if res.Status == StepFailed && res.EndRun == "" {
		c.Outbox = append(c.Outbox, sayAll(fmt.Sprintf(":x: “%s” failed: %s", st.Title, res.Note))...)
	}
	if err := e.save(ctx, l, c); err != nil {
		return "", err
	}
	e.notify.RunChanged(r.Clone())
	return res.EndRun, nil
}

// end decides a run's outcome: it commits the decision and the
// compensations owed, runs them, then commits the final state, which frees
// the service.
// said, when set, is posted in the thread once the decision is committed.
func (e *Engine) end(runID string, final RunState, outcome, said string, events ...AuditEvent) (bool, error) {
	l := e.liveRun(runID)
	if l == nil {
		return false, nil
	}
	l.mu.Lock()
	r := l.run
	if r.State != RunActive {
		l.mu.Unlock()
		return false, nil
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
			// Every step that ever started owes its compensation.
			if _, ok := l.steps[i].(Compensator); ok && st.Attempt > 0 {
				st.Comp = CompNeeded
			}
			if st.Status == StepWaiting || st.Status == StepRunning || st.Status == StepInterrupted {
				st.Prompt, st.Buttons, st.WaitingOn = "", nil, ""
				st.Status = StepSkipped
				st.Note = "not finished: " + outcome
			}
		}
	}
	events = append(events, AuditEvent{Actor: BotActor, Action: "run.ending", Detail: string(final) + ": " + outcome})
	err := e.save(e.ctx, l, Changes{Events: events, Outbox: sayAll(said)})
	if err == nil && l.cancel != nil {
		l.cancel() // stop the step that is running; its result is discarded
	}
	snap := l.run.Clone()
	l.mu.Unlock()
	if err != nil {
		e.runLog(snap).Error("committing run end failed", zap.Error(err))
		return false, err
	}
	e.notify.RunChanged(snap)
	e.goEnd(runID)
	return true, nil
}

// finish runs owed compensations, newest step first, then closes the run.
func (e *Engine) finish(runID string) {
	l := e.liveRun(runID)
	if l == nil {
		return
	}
	// A step cancelled by the end may still be finishing what it does
	// (writing a file, Terraform releasing its lock): compensating at the
	// same time could be undone by it. Wait until it has returned.
	l.mu.Lock()
	running := l.running
	l.mu.Unlock()
	if running != nil {
		<-running
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
		snap := r.Clone()
		x := e.newExec(snap, snap.Step(i))
		x.hold = true
		err := errors.New("the runbook no longer knows how to undo this step")
		if comp, ok := l.steps[i].(Compensator); ok {
			err = e.safeCompensate(comp, ctx, x)
		}
		ev := AuditEvent{Actor: BotActor, Action: "compensation.done", StepID: st.ID}
		st.Comp = CompDone
		if err != nil {
			st.Comp = CompFailed
			ev.Action, ev.Detail = "compensation.failed", err.Error()
		}
		for k, v := range x.data {
			if st.Data == nil {
				st.Data = map[string]string{}
			}
			st.Data[k] = v
		}
		out := x.held
		if ev.Action == "compensation.failed" {
			out = append(out, sayAll(fmt.Sprintf(":rotating_light: Undoing “%s” failed: %s. Fix this by hand.", st.Title, Escape(ev.Detail)))...)
		}
		if err := e.save(ctx, l, Changes{Events: []AuditEvent{ev}, Outbox: out}); err != nil {
			e.log.Error("committing compensation failed", zap.String("run_id", runID), zap.String("service", r.Service), zap.String("step", st.ID), zap.Error(err))
			return
		}
		r = l.run
		e.notify.RunChanged(r.Clone())
	}
	final := RunState(r.Data["final_state"])
	if final == "" {
		final = RunFailed
	}
	r.State = final
	r.EndedAt = e.now().UTC()
	if err := e.save(ctx, l, Changes{Events: []AuditEvent{{Actor: BotActor, Action: "run." + string(final), Detail: r.Outcome}}}); err != nil {
		e.storeFailed(runID, "committing the run's end", err, func() { e.finish(runID) })
		return
	}
	snap := r.Clone()
	e.mu.Lock()
	delete(e.runs, runID)
	e.mu.Unlock()
	close(l.done)
	e.releaseLease(l)
	e.notify.RunChanged(snap)
}

// A panicking step must fail its step, not take the bot (and every other
// run) down with it. The panic is logged at error level from inside the
// deferred call, where the stack still holds the panic site, so the Sentry
// bridge reports the panicking frames, tagged with the run, service and
// step; the step's note says it was reported, and its Retry is the usual one.
func (e *Engine) safely(x *Exec, phase string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			fields := []zap.Field{zap.String("phase", phase), zap.Error(PanicError(p)), zap.Stack("stack")}
			if x != nil && x.Run != nil {
				step := ""
				if x.Step != nil {
					step = x.Step.ID
				}
				fields = append(fields, zap.String("run_id", x.Run.ID), zap.String("service", x.Run.Service), zap.String("step", step))
			}
			e.log.Error("step panicked", fields...)
			v := fmt.Sprint(p)
			if len(v) > 200 {
				v = v[:200] + "…"
			}
			err = fmt.Errorf("internal error, reported (%s)", v)
		}
	}()
	return f()
}

// PanicError turns a recovered value into an error for the log, keeping an
// error's own type (a runtime error) in the chain.
func PanicError(p any) error {
	if err, ok := p.(error); ok {
		return fmt.Errorf("panic: %w", err)
	}
	return fmt.Errorf("panic: %v", p)
}

func (e *Engine) safeStart(s Step, ctx context.Context, x *Exec) (res Result) {
	ctx = withWhere(ctx, x)
	if err := e.safely(x, "start", func() error { res = s.Start(ctx, x); return nil }); err != nil {
		return Failed(err)
	}
	return res
}

func (e *Engine) safeAct(s Step, ctx context.Context, x *Exec, a Action) (res Result) {
	ctx = withWhere(ctx, x)
	if err := e.safely(x, "act", func() error { res = s.Act(ctx, x, a); return nil }); err != nil {
		return Failed(err)
	}
	return res
}

func (e *Engine) safeCompensate(c Compensator, ctx context.Context, x *Exec) error {
	ctx = withWhere(ctx, x)
	return e.safely(x, "compensate", func() error { return c.Compensate(ctx, x) })
}

// checkpoint commits a running step's data so far, and the messages it
// says, at once and together: what the step did (an issue posted, a
// dispatch sent) survives a crash exactly when its message does.
func (e *Engine) checkpoint(l *live, idx, seq int, data map[string]string, out []OutboxEntry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.run.Step(idx)
	if st == nil || st.Seq != seq {
		return errors.New("the step is no longer running")
	}
	if st.Data == nil {
		st.Data = map[string]string{}
	}
	for k, v := range data {
		st.Data[k] = v
	}
	if err := e.saveQuiet(context.WithoutCancel(e.ctx), l, Changes{Outbox: out}); err != nil {
		return err
	}
	if len(out) > 0 {
		e.notify.RunChanged(l.run.Clone())
	}
	return nil
}

// sayAll makes thread lines of the non-empty texts.
func sayAll(texts ...string) []OutboxEntry {
	var out []OutboxEntry
	for _, t := range texts {
		if t != "" {
			out = append(out, OutboxEntry{Kind: OutboxSay, Text: t})
		}
	}
	return out
}
