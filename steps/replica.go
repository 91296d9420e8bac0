package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Replicas. Several bot processes may share one store (PostgreSQL). Each
// executes a run only while it holds the run's lease (see Hold):
//
//   - Start and Resume take a run's lease before tracking it; a run whose
//     lease another replica holds is left alone.
//   - A loop takes over runs whose lease expired (their replica died) and
//     resumes them exactly as after a crash: the same resumeRun, so a
//     non-idempotent step that was running becomes interrupted with Retry.
//   - A replica that loses a lease (a pause, a cut to the database) stops
//     the run's running step, forgets the run and saves nothing more of
//     it. Lost fires before another replica can take the lease; the
//     compare-and-set on Run.Rev is the backstop behind it.
//   - A click or command that reaches a replica not holding the run is
//     recorded in the store (Mailbox) and taken by the holder, which runs
//     it through the usual Act, Cancel or Override: the same authorization,
//     four-eyes and audit as a click it received itself.
//
// Without SetReplica (SQLite, one process) none of this happens.

// Mailbox is a store that keeps requests for the replica holding a run.
type Mailbox interface {
	// AddPendingAction records a request for a run's holder; a.ID is set.
	AddPendingAction(ctx context.Context, a *PendingAction) error
	// PendingActions lists requests not yet taken, oldest first.
	PendingActions(ctx context.Context) ([]PendingAction, error)
	// MarkActionTaken records that a request was handled.
	MarkActionTaken(ctx context.Context, id int64) error
}

// ActionWaker is a Mailbox that can wake the holder as soon as a request
// is recorded (PostgreSQL's LISTEN/NOTIFY). Without it the holder polls.
type ActionWaker interface {
	// WaitActions calls woken whenever a request may have been recorded,
	// until ctx ends.
	WaitActions(ctx context.Context, woken func()) error
}

// PendingAction is a request recorded by a replica that does not hold
// the run. Body is the request, opaque to the store.
type PendingAction struct {
	ID        int64
	RunID     string
	Body      []byte
	CreatedAt time.Time
}

// ErrLeaseLost is a save refused because this replica may no longer hold
// the run's lease.
var ErrLeaseLost = errors.New("this replica no longer holds the run's lease")

// ErrForwarded is a request recorded for the replica that executes the
// run: it was received and will be acted on there, and the run's thread
// shows the outcome.
var ErrForwarded = errors.New("the run is executed by another deploybot replica; the request was passed on to it")

// actionPoll is the longest a recorded request waits for its holder when
// no wake-up arrives.
const actionPoll = time.Second

type replica struct {
	leases Leases
	owner  string
	ttl    time.Duration
	mail   Mailbox

	takeMu sync.Mutex // one takeover at a time: the loop and a click may race for a run
	actMu  sync.Mutex // one pass over pending requests at a time
	once   sync.Once
	wake   chan struct{}
}

// SetReplica makes the engine one of several replicas sharing its store:
// it executes a run only while holding the run's lease, as owner, for
// ttl at a time (renewed every ttl/3). Call it before Resume.
func (e *Engine) SetReplica(leases Leases, owner string, ttl time.Duration) {
	rep := &replica{leases: leases, owner: owner, ttl: ttl, wake: make(chan struct{}, 1)}
	if m, ok := e.store.(Mailbox); ok {
		rep.mail = m
	}
	e.rep = rep
}

// Replicated reports whether the engine shares its store with other
// replicas (SetReplica).
func (e *Engine) Replicated() bool { return e.rep != nil }

// fenced reports whether the run's lease may be lost: nothing of the run
// may be done or saved any more.
func (l *live) fenced() bool {
	if l.lease == nil {
		return false
	}
	select {
	case <-l.lease.Lost():
		return true
	default:
		return false
	}
}

// MayDeliver says whether this process may deliver the run's outbox: with
// replicas, only the holder of an open run's lease does (another delivering
// at the same time could post twice); an ended run's leftovers anyone may.
func (e *Engine) MayDeliver(r *Run) bool {
	if e.rep == nil {
		return true
	}
	if l := e.liveRun(r.ID); l != nil {
		return !l.fenced()
	}
	return !r.State.Open()
}

// holdNew takes the lease of a run just created.
func (e *Engine) holdNew(ctx context.Context, runID string) (*Lease, error) {
	lease, err := Hold(ctx, e.rep.leases, runID, e.rep.owner, e.rep.ttl)
	if err != nil {
		e.log.Warn("could not take the lease of a new run; another replica will resume it", zap.String("run_id", runID), zap.Error(err))
	}
	return lease, err
}

// takeOver takes an open run's lease, when free or expired, and resumes the
// run as after a crash. It reports whether it did; ErrLeaseHeld when
// another replica holds the run. A run that is not open is left alone.
func (e *Engine) takeOver(ctx context.Context, runID string) (bool, error) {
	rep := e.rep
	rep.takeMu.Lock()
	defer rep.takeMu.Unlock()
	if e.liveRun(runID) != nil {
		return false, nil
	}
	r, err := e.store.Run(ctx, runID)
	if err != nil || !r.State.Open() {
		return false, nil
	}
	lease, err := Hold(ctx, rep.leases, runID, rep.owner, rep.ttl)
	if err != nil {
		return false, err
	}
	// Read again under the lease: the last holder could still write until
	// its lease ran out.
	if r, err = e.store.Run(ctx, runID); err != nil || !r.State.Open() {
		lease.Release(context.WithoutCancel(ctx))
		return false, err
	}
	if err := e.resumeRun(ctx, r, lease); err != nil {
		// Not resumed: let go, and try again later (here or elsewhere).
		e.untrack(runID)
		lease.Release(context.WithoutCancel(ctx))
		return false, fmt.Errorf("resuming %s: %w", runID, err)
	}
	return true, nil
}

func (e *Engine) untrack(runID string) *live {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.runs[runID]
	delete(e.runs, runID)
	return l
}

// watchLease stops acting on the run as soon as its lease may be lost.
func (e *Engine) watchLease(l *live) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		select {
		case <-l.done:
			return
		case <-e.ctx.Done():
			return // Close releases the leases
		case <-l.lease.Lost():
		}
		select {
		case <-l.done:
			return // released at the run's end
		default:
		}
		id := l.snap.Load().ID
		e.mu.Lock()
		if e.runs[id] == l {
			delete(e.runs, id)
		}
		e.mu.Unlock()
		l.mu.Lock()
		if l.cancel != nil {
			l.cancel()
		}
		l.mu.Unlock()
		e.log.Warn("lost the lease of a run: stopped acting on it; the replica that takes it over resumes it", zap.String("run_id", id))
	}()
}

// releaseLeases frees the leases of the runs this process tracks (on
// Close), so another replica need not wait for them to expire.
func (e *Engine) releaseLeases() {
	e.mu.Lock()
	var ls []*live
	for _, l := range e.runs {
		if l.lease != nil {
			ls = append(ls, l)
		}
	}
	e.mu.Unlock()
	for _, l := range ls {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := l.lease.Release(ctx); err != nil {
			e.log.Warn("releasing a run's lease failed; it expires on its own", zap.String("run_id", l.snap.Load().ID), zap.Error(err))
		}
		cancel()
	}
}

// releaseLease frees an ended run's lease.
func (e *Engine) releaseLease(l *live) {
	if l.lease == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.lease.Release(ctx); err != nil {
		e.log.Warn("releasing a run's lease failed; it expires on its own", zap.String("run_id", l.run.ID), zap.Error(err))
	}
}

// startReplica starts the takeover and request loop, once.
func (e *Engine) startReplica() {
	rep := e.rep
	if rep == nil {
		return
	}
	rep.once.Do(func() {
		base := e.gate.Context // not the gate: the loop ends with Close, not the drain
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.replicaLoop(base)
		}()
		if w, ok := e.store.(ActionWaker); ok && rep.mail != nil {
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				for base.Err() == nil {
					err := w.WaitActions(base, func() {
						select {
						case rep.wake <- struct{}{}:
						default:
						}
					})
					if base.Err() == nil {
						// Polling covers the gap.
						e.log.Warn("waiting for requests from other replicas failed; polling until it works again", zap.Error(err))
						select {
						case <-base.Done():
						case <-time.After(5 * time.Second):
						}
					}
				}
			}()
		}
	})
}

// replicaLoop takes over runs whose lease expired every ttl/3, and hands
// recorded requests to the runs this replica holds as they come.
func (e *Engine) replicaLoop(base context.Context) {
	rep := e.rep
	tick := time.NewTicker(min(actionPoll, rep.ttl/3))
	defer tick.Stop()
	lastTakeover := time.Time{}
	for {
		select {
		case <-base.Done():
			return
		case <-tick.C:
		case <-rep.wake:
		}
		if e.shuttingDown() != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(base, max(rep.ttl, 10*time.Second))
		if time.Since(lastTakeover) >= rep.ttl/3 {
			lastTakeover = time.Now()
			e.takeOverExpired(ctx)
		}
		e.takeActions(ctx)
		cancel()
	}
}

func (e *Engine) takeOverExpired(ctx context.Context) {
	runs, err := e.store.OpenRuns(ctx)
	if err != nil {
		e.log.Warn("listing open runs for takeover failed", zap.Error(err))
		return
	}
	for _, r := range runs {
		// A run just created is its creator's: it takes the lease right
		// after the insert, and must not find it taken.
		if e.liveRun(r.ID) != nil || e.now().Sub(r.CreatedAt) < e.rep.ttl {
			continue
		}
		took, err := e.takeOver(ctx, r.ID)
		switch {
		case took:
			e.log.Info("took over a run whose replica stopped renewing its lease", zap.String("run_id", r.ID), zap.String("owner", e.rep.owner))
		case err != nil && !errors.Is(err, ErrLeaseHeld):
			e.log.Warn("taking over a run failed", zap.String("run_id", r.ID), zap.Error(err))
		}
	}
}

// Forwarded request kinds.
const (
	actionAct      = "act"
	actionCancel   = "cancel"
	actionOverride = "override"
)

type forwarded struct {
	Kind string        `json:"kind"`
	Req  ActionRequest `json:"req"`
}

// elsewhere handles a request about a run this process does not track:
// when another replica holds the run, the request is recorded for it
// (done, ErrForwarded); when no one does, this replica takes the run over
// and the caller goes on with it (not done).
func (e *Engine) elsewhere(ctx context.Context, kind string, req ActionRequest) (bool, error) {
	if e.rep == nil {
		return false, nil
	}
	_, err := e.takeOver(ctx, req.RunID)
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, ErrLeaseHeld):
		return true, e.forward(ctx, kind, req)
	default:
		return true, err
	}
}

func (e *Engine) forward(ctx context.Context, kind string, req ActionRequest) error {
	if e.rep.mail == nil {
		return e.refused(ctx, req, "%s is run by another deploybot replica, and this store cannot pass requests on. Try again in a minute.", req.RunID)
	}
	body, err := json.Marshal(forwarded{Kind: kind, Req: req})
	if err != nil {
		return err
	}
	if err := e.rep.mail.AddPendingAction(context.WithoutCancel(ctx), &PendingAction{RunID: req.RunID, Body: body, CreatedAt: e.now().UTC()}); err != nil {
		return fmt.Errorf("passing the request on to the replica that runs %s: %w", req.RunID, err)
	}
	e.audit(ctx, AuditEvent{RunID: req.RunID, Actor: req.User, Action: "request.forwarded", Detail: kind + " " + req.Verb + ": recorded for the replica that runs the run"})
	return ErrForwarded
}

// takeActions handles the recorded requests about runs this replica holds
// (and about runs no longer open, which are refused as usual), in order.
func (e *Engine) takeActions(ctx context.Context) {
	rep := e.rep
	if rep.mail == nil {
		return
	}
	rep.actMu.Lock()
	defer rep.actMu.Unlock()
	as, err := rep.mail.PendingActions(ctx)
	if err != nil {
		e.log.Warn("reading requests from other replicas failed", zap.Error(err))
		return
	}
	for _, a := range as {
		if e.liveRun(a.RunID) == nil {
			if r, err := e.store.Run(ctx, a.RunID); err != nil || r.State.Open() {
				continue // its holder's
			}
		}
		var f forwarded
		if err := json.Unmarshal(a.Body, &f); err != nil {
			e.log.Error("a request from another replica is unreadable; dropped", zap.Int64("id", a.ID), zap.Error(err))
		} else {
			e.runForwarded(ctx, f)
		}
		// Marked after it ran: a crash in between runs it again, and a
		// click runs at most once anyway (its button's seq is then stale).
		if err := rep.mail.MarkActionTaken(ctx, a.ID); err != nil {
			e.log.Warn("marking a request from another replica taken failed", zap.Int64("id", a.ID), zap.Error(err))
			return
		}
	}
}

// runForwarded runs a request another replica received. The person was
// told it was received; a refusal is audited as usual and said in the
// run's thread, since there is no one to answer privately any more.
func (e *Engine) runForwarded(ctx context.Context, f forwarded) {
	var err error
	switch f.Kind {
	case actionCancel:
		err = e.Cancel(ctx, f.Req.RunID, f.Req.User)
	case actionOverride:
		err = e.Override(ctx, f.Req.RunID, f.Req.User, f.Req.Reason)
	default:
		err = e.Act(ctx, f.Req)
	}
	var rf *Refused
	switch {
	case err == nil, errors.Is(err, ErrForwarded):
	case errors.As(err, &rf):
		if l := e.liveRun(f.Req.RunID); l != nil {
			l.mu.Lock()
			serr := e.saveQuiet(ctx, l, Changes{Outbox: sayAll(fmt.Sprintf("<@%s>: your %s was not applied: %s", f.Req.User, f.Req.Verb, rf.Msg))})
			snap := l.run.Clone()
			l.mu.Unlock()
			if serr == nil {
				e.notify.RunChanged(snap)
			}
		}
	default:
		e.log.Error("a request from another replica failed", zap.String("run_id", f.Req.RunID), zap.String("verb", f.Req.Verb), zap.Error(err))
	}
}

// SharedOpenRuns is OpenRuns across replicas: the runs another replica
// executes are read from the store (this replica's own from memory), so
// /deploy status and the Home tab show every open run whichever replica
// answers. Without replicas it is OpenRuns. A store that does not answer
// leaves this replica's own runs.
func (e *Engine) SharedOpenRuns(ctx context.Context) []*Run {
	local := e.OpenRuns()
	if e.rep == nil {
		return local
	}
	stored, err := e.store.OpenRuns(ctx)
	if err != nil {
		e.log.Warn("listing open runs of other replicas failed", zap.Error(err))
		return local
	}
	out := make([]*Run, 0, len(stored))
	for _, r := range stored {
		if l := e.liveRun(r.ID); l != nil {
			r = l.snap.Load().Clone()
		}
		out = append(out, r)
	}
	return out
}
