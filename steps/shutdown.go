package steps

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Shutting down without cutting an apply in half.
//
// Close cancels every running step at once, which is right for steps that
// simply start again on the next Resume, and wrong for terraform apply:
// cancelled, it stops half-way and the run needs people to Re-plan. Drain
// comes first: new runs, clicks and cancels are refused, no step starts,
// and the non-idempotent steps already running (applies) get up to a grace
// period to finish and have their result committed. Close then cancels
// whatever is left, which Resume picks up.
//
// The engine's goroutines decide "stop here" by e.ctx.Err() (before
// starting a step, and before committing a step's result), and running
// steps get contexts derived from e.ctx. gateCtx splits the two: during a
// drain its Err() reports Canceled as soon as the awaited steps' results
// are committed (or the grace ran out), so nothing new starts, while its
// Done() closes only at Close, so running steps are not cancelled early.
// That bends the Context rule that Err is nil until Done is closed; only
// the engine sees this context, and children of it (the steps) keep the
// usual contract.

// gateCtx is the engine's lifetime context, with a drain gate.
type gateCtx struct {
	context.Context // cancelled by Close

	mu       sync.Mutex
	draining bool
	expired  bool
	awaited  []awaited
}

// awaited is a step that was running when the drain began and whose result
// the drain waits to see committed.
type awaited struct {
	l   *live
	idx int
	seq int
}

func (a awaited) committed() bool {
	r := a.l.snap.Load()
	st := r.Step(a.idx)
	return r.State != RunActive || st == nil || st.Seq != a.seq
}

func (g *gateCtx) Err() error {
	if err := g.Context.Err(); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.draining {
		return nil
	}
	if g.expired {
		return context.Canceled
	}
	for _, a := range g.awaited {
		if !a.committed() {
			return nil
		}
	}
	return context.Canceled
}

func (g *gateCtx) isDraining() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.draining
}

// shuttingDown refuses work that would start something while draining.
func (e *Engine) shuttingDown() *Refused {
	if e.gate.isDraining() {
		return refuse("deploybot is shutting down and takes no new work right now. Try again in a minute, once it is back.")
	}
	return nil
}

// Drain stops the engine from taking new work and waits, until ctx ends
// (the shutdown grace), for running non-idempotent steps (terraform apply)
// to finish and their results to be committed. It reports whether they
// all did; those still running when ctx ends are cancelled, and Resume
// marks them interrupted. Call Close afterwards.
func (e *Engine) Drain(ctx context.Context) bool {
	g := e.gate
	g.mu.Lock()
	g.draining = true
	g.mu.Unlock()

	e.mu.Lock()
	lives := make([]*live, 0, len(e.runs))
	for _, l := range e.runs {
		lives = append(lives, l)
	}
	e.mu.Unlock()

	// Runs without an apply in flight are held still: their lock keeps
	// idempotent steps from committing a result or starting the next step
	// until Close cancels them. A run that is ending is left to finish its
	// compensations.
	// Known limit: with applies of two services in flight, the run whose
	// apply finishes first may start its next steps (never an apply, which
	// needs an approval click) until the other finishes; Close cancels
	// them and Resume picks them up like any step cut short.
	var held []*live
	var waits []awaited
	var running []chan struct{}
	for _, l := range lives {
		l.mu.Lock()
		r := l.run
		cur := r.Current()
		if r.State == RunActive && l.running != nil && cur != nil && cur.Status == StepRunning && !l.steps[cur.Index].Spec().Idempotent {
			waits = append(waits, awaited{l: l, idx: cur.Index, seq: cur.Seq})
			running = append(running, l.running)
			l.mu.Unlock()
			continue
		}
		if r.State != RunActive {
			l.mu.Unlock()
			continue
		}
		held = append(held, l)
	}
	defer func() {
		for _, l := range held {
			l.mu.Unlock()
		}
	}()
	g.mu.Lock()
	g.awaited = waits
	g.mu.Unlock()
	if len(waits) == 0 {
		return true
	}
	e.log.Info("draining: waiting for running applies", zap.Int("steps", len(waits)))

	// Polled: a result is committed under the run's lock, which the engine
	// announces to nobody but its Notifier.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if g.Err() != nil {
			return true
		}
		select {
		case <-ctx.Done():
			g.mu.Lock()
			g.expired = true
			g.mu.Unlock()
			for _, a := range waits {
				if a.committed() {
					continue
				}
				a.l.mu.Lock()
				if a.l.cancel != nil {
					a.l.cancel()
				}
				a.l.mu.Unlock()
				e.runLog(a.l.snap.Load()).Warn("shutdown grace over: cancelling a running step")
			}
			// Terraform gets its SIGINT now and releases its lock;
			// wait for it so the process exits with the state unlocked.
			for _, ch := range running {
				<-ch
			}
			return false
		case <-tick.C:
		}
	}
}

// interrupted lets a step say what people must decide after deploybot
// stopped while it ran; the caller (Resume) holds the run's lock and
// commits the result. It returns the thread lines the step said, to be
// posted once committed.
func (e *Engine) interrupted(ctx context.Context, in Interrupter, r *Run, cur *StepState) []OutboxEntry {
	snap := r.Clone()
	x := e.newExec(snap, snap.Step(cur.Index))
	x.hold = true
	var res Result
	if err := e.safely(x, "interrupted", func() error { res = in.Interrupted(ctx, x); return nil }); err != nil {
		return sayAll(":warning: " + Escape(err.Error()))
	}
	for k, v := range x.data {
		if cur.Data == nil {
			cur.Data = map[string]string{}
		}
		cur.Data[k] = v
	}
	for k, v := range x.runData {
		r.Data[k] = v
	}
	if res.Note != "" {
		cur.Note = res.Note
	}
	if res.Prompt != "" {
		cur.Prompt = res.Prompt
	}
	if len(res.Buttons) > 0 {
		cur.Buttons = append(append([]Button(nil), res.Buttons...), Button{Verb: VerbCancel, Label: "Cancel run", Style: "danger"})
	}
	if res.WaitingOn != "" {
		cur.WaitingOn = res.WaitingOn
	}
	return x.held
}
