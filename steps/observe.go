package steps

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Observer hears what happened to runs once it is committed, for metrics.
// Calls are made while a run's lock may be held: they must return at once.
// The engine works the same without one.
type Observer interface {
	RunStarted(r *Run)
	// RunEnded: r is in its final state.
	RunEnded(r *Run)
	// StepEnded: st reached done, failed or skipped; took is from its
	// start to its end, people's answers included.
	StepEnded(r *Run, st *StepState, took time.Duration)
	// Answered: an approval (a step waiting on an approver's publish,
	// approve or confirm) stopped waiting, after waited.
	Answered(r *Run, st *StepState, waited time.Duration)
}

// SetObserver sets who hears of committed changes. Call before Resume.
func (e *Engine) SetObserver(o Observer) {
	e.obs.mu.Lock()
	e.obs.o = o
	e.obs.mu.Unlock()
}

// observing is the engine's side of the Observer: what it needs to turn
// two committed snapshots into events.
type observing struct {
	mu sync.Mutex
	o  Observer
	// since is when each waiting step (a run, a step, the seq it waits
	// at) began to wait; in memory only: after a restart the run's last
	// change is the best lower bound.
	since map[waitKey]time.Time
}

type waitKey struct {
	run      string
	idx, seq int
}

// Waiter is a step waiting on a person.
type Waiter struct {
	RunID, Service, Step string
	// Approval: the answer is an approver's (publish, approve, confirm).
	Approval bool
	Since    time.Time
}

// Waiting lists the steps of open runs that wait on a person. It never
// waits on a run's lock.
func (e *Engine) Waiting() []Waiter {
	var out []Waiter
	runs := e.OpenRuns()
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	for _, r := range runs {
		if r.State != RunActive {
			continue
		}
		for _, st := range r.Steps {
			if st.Status != StepWaiting {
				continue
			}
			since, ok := e.obs.since[waitKey{r.ID, st.Index, st.Seq}]
			if !ok {
				since = r.UpdatedAt
			}
			out = append(out, Waiter{RunID: r.ID, Service: r.Service, Step: st.ID, Approval: isApproval(&st), Since: since})
		}
	}
	return out
}

// isApproval reports whether a waiting step asks an approver to decide.
func isApproval(st *StepState) bool {
	return hasVerb(st.Buttons, VerbApprove) || hasVerb(st.Buttons, VerbPublish) || hasVerb(st.Buttons, VerbConfirm)
}

// committed is told of every committed change of a run: prev is the state
// before (nil for a new run). It logs the run's life at info level and tells
// the Observer.
func (e *Engine) committed(prev, cur *Run) {
	now := e.now().UTC()
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	o := e.obs.o
	if e.obs.since == nil {
		e.obs.since = map[waitKey]time.Time{}
	}
	if prev == nil {
		e.runLog(cur).Info("run started", zap.String("kind", string(cur.Kind)), zap.String("version", cur.Version), zap.String("requester", cur.Requester))
		if o != nil {
			o.RunStarted(cur)
		}
	}
	for i := range cur.Steps {
		st := &cur.Steps[i]
		var was StepState
		if prev != nil && i < len(prev.Steps) {
			was = prev.Steps[i]
		}
		if st.Status == was.Status && st.Seq == was.Seq {
			continue
		}
		log := e.log.With(zap.String("run_id", cur.ID), zap.String("service", cur.Service), zap.String("step", st.ID))
		if was.Status == StepWaiting && (st.Status != StepWaiting || st.Seq != was.Seq) {
			k := waitKey{cur.ID, i, was.Seq}
			since, ok := e.obs.since[k]
			if !ok && prev != nil {
				since = prev.UpdatedAt
			}
			delete(e.obs.since, k)
			if o != nil && isApproval(&was) && !since.IsZero() {
				o.Answered(cur, st, now.Sub(since))
			}
		}
		switch st.Status {
		case StepRunning:
			log.Info("step started", zap.Int("attempt", st.Attempt))
		case StepWaiting:
			if was.Status != StepWaiting || was.Seq != st.Seq {
				e.obs.since[waitKey{cur.ID, i, st.Seq}] = now
				log.Info("step waiting", zap.String("waiting_on", st.WaitingOn))
			}
		case StepDone, StepFailed, StepSkipped:
			// A step skipped because its run ended keeps the end of an
			// earlier attempt (or none): only a real end is timed.
			if st.EndedAt.Equal(was.EndedAt) || st.StartedAt.IsZero() || st.EndedAt.Before(st.StartedAt) {
				log.Info("step "+string(st.Status), zap.String("note", st.Note))
				break
			}
			took := st.EndedAt.Sub(st.StartedAt)
			log.Info("step "+string(st.Status), zap.Duration("took", took), zap.String("note", st.Note))
			if o != nil {
				o.StepEnded(cur, st, took)
			}
		}
	}
	if prev != nil && prev.State.Open() && !cur.State.Open() {
		for k := range e.obs.since {
			if k.run == cur.ID {
				delete(e.obs.since, k)
			}
		}
		e.runLog(cur).Info("run "+string(cur.State), zap.String("outcome", cur.Outcome), zap.Duration("took", cur.EndedAt.Sub(cur.CreatedAt)))
		if o != nil {
			o.RunEnded(cur)
		}
	}
}

// runLog is the engine's logger for entries about a run: every one carries
// the run, its service and the step it is at ("" once none is left).
func (e *Engine) runLog(r *Run) *zap.Logger {
	step := ""
	if cur := r.Current(); cur != nil {
		step = cur.ID
	}
	return e.log.With(zap.String("run_id", r.ID), zap.String("service", r.Service), zap.String("step", step))
}

// runLogByID is runLog for a run known by its id.
func (e *Engine) runLogByID(runID string) *zap.Logger { return e.RunLog(e.log, runID) }

// RunLog returns log with the run, its service and its current step as
// fields, for adapters' entries about a run (the bot's, when a message to
// Slack fails). A run no longer open gets an empty service and step.
func (e *Engine) RunLog(log *zap.Logger, runID string) *zap.Logger {
	service, step := "", ""
	if l := e.liveRun(runID); l != nil {
		r := l.snap.Load()
		service = r.Service
		if cur := r.Current(); cur != nil {
			step = cur.ID
		}
	}
	return log.With(zap.String("run_id", runID), zap.String("service", service), zap.String("step", step))
}

// whereKey carries, in a step's context, which run and step it works for.
type whereKey struct{}

// Where is the run and step a context works for.
type Where struct{ RunID, Service, Step string }

// WhereOf says which run and step ctx works for: set on the context a
// step's Start, Act and Compensate receive, so an integration can label
// its logs (Terraform's output) without knowing about runs.
func WhereOf(ctx context.Context) (Where, bool) {
	w, ok := ctx.Value(whereKey{}).(Where)
	return w, ok
}

func withWhere(ctx context.Context, x *Exec) context.Context {
	if x == nil || x.Run == nil {
		return ctx
	}
	w := Where{RunID: x.Run.ID, Service: x.Run.Service}
	if x.Step != nil {
		w.Step = x.Step.ID
	}
	return context.WithValue(ctx, whereKey{}, w)
}
