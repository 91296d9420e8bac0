package steps_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/integrations/sqlite"
	"github.com/deploybot/deploybot/steps"
)

// fakeLeases keeps leases in memory, by the local clock. An owner that is
// cut hangs in every call until its context ends, as a replica that died,
// paused or lost the database would look to the others.
type fakeLeases struct {
	mu     sync.Mutex
	owner  map[string]string
	expiry map[string]time.Time
	cut    map[string]bool
}

func newFakeLeases() *fakeLeases {
	return &fakeLeases{owner: map[string]string{}, expiry: map[string]time.Time{}, cut: map[string]bool{}}
}

func (f *fakeLeases) TakeLease(ctx context.Context, run, owner string, ttl time.Duration) (bool, error) {
	f.mu.Lock()
	if f.cut[owner] {
		f.mu.Unlock()
		<-ctx.Done()
		return false, ctx.Err()
	}
	defer f.mu.Unlock()
	if o, ok := f.owner[run]; ok && o != owner && time.Now().Before(f.expiry[run]) {
		return false, nil
	}
	f.owner[run], f.expiry[run] = owner, time.Now().Add(ttl)
	return true, nil
}

func (f *fakeLeases) DropLease(ctx context.Context, run, owner string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut[owner] {
		return errors.New("cut off")
	}
	if f.owner[run] == owner {
		delete(f.owner, run)
	}
	return nil
}

// steal gives the run's lease to owner, as a replica that judged it
// expired (its holder was paused) would take it.
func (f *fakeLeases) steal(run, owner string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.owner[run], f.expiry[run] = owner, time.Now().Add(time.Hour)
}

func (f *fakeLeases) setCut(owner string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut[owner] = true
}

// applyStep stands in for terraform apply: not idempotent, it runs until
// released or cancelled, and says when it was stopped.
type applyStep struct {
	mu      sync.Mutex
	starts  int
	release chan struct{}
	stopped chan time.Time // when a start's context was cancelled
}

func (s *applyStep) Spec() steps.Spec { return steps.Spec{ID: "custom", Title: "Apply"} }

func (s *applyStep) Start(ctx context.Context, x *steps.Exec) steps.Result {
	s.mu.Lock()
	s.starts++
	s.mu.Unlock()
	select {
	case <-s.release:
		return steps.Done("applied")
	case <-ctx.Done():
		s.stopped <- time.Now()
		return steps.Failed(ctx.Err())
	}
}

func (s *applyStep) Act(ctx context.Context, x *steps.Exec, a steps.Action) steps.Result {
	return steps.Failed(errors.New("no buttons"))
}

func (s *applyStep) started() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts
}

type replicaFixture struct {
	t    *testing.T
	cfg  *config.Config
	path string
	step *applyStep
	fl   *fakeLeases
}

func newReplicaFixture(t *testing.T) *replicaFixture {
	return &replicaFixture{t: t, cfg: testConfig(t), path: filepath.Join(t.TempDir(), "state.db"),
		step: &applyStep{release: make(chan struct{}), stopped: make(chan time.Time, 4)}, fl: newFakeLeases()}
}

// The lease ttl of these tests: long enough that a loaded machine renews
// in time, short enough to wait out.
const replicaTTL = 2 * time.Second

// replica opens one more bot process on the shared store.
func (f *replicaFixture) replica(owner string) (*steps.Engine, *recorder, *sqlite.DB) {
	db, err := sqlite.Open(f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	rb := steps.NewRunbooks(f.cfg)
	rb.Automate("custom", func(steps.Spec, *config.Service, *steps.Manual) steps.Step { return f.step })
	rec := newRecorder()
	eng := steps.NewEngine(db, rec, roles{}, rb, nil)
	eng.SetReplica(f.fl, owner, replicaTTL)
	if err := eng.Resume(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() {
		eng.Close()
		db.Close()
	})
	return eng, rec, db
}

func startedEvents(t *testing.T, db *sqlite.DB, id string) int {
	t.Helper()
	evs, err := db.Audit(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Action == "step.started" || ev.Action == "step.failed" {
			n++
		}
	}
	return n
}

// A replica whose lease is taken while its step runs stops that step and
// writes nothing more of the run; the new holder resumes the run as after a
// crash (the apply is interrupted, not run again), and a Retry clicked on
// the old holder is passed on to the new one and runs there.
func TestStolenLeaseStopsTheOldHoldersStep(t *testing.T) {
	f := newReplicaFixture(t)
	a, recA, db := f.replica("A")
	r, err := a.Start(context.Background(), steps.StartRequest{Kind: steps.KindDeploy, Service: "svc", Version: "rel-2024.01.01.00.00.00", Requester: "U0A1", Channel: "C0DEPLOYS"})
	if err != nil {
		t.Fatal(err)
	}
	recA.waitRun(t, r.ID, "the apply to run on A", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepRunning })

	f.fl.steal(r.ID, "B")
	select {
	case <-f.step.stopped:
	case <-time.After(10 * replicaTTL):
		t.Fatal("A went on running the apply after its lease was taken")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(a.OpenRuns()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("A still tracks the run whose lease it lost")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stored, err := db.Run(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st := stored.Steps[0]; st.Status != steps.StepRunning || startedEvents(t, db, r.ID) != 1 {
		t.Fatalf("after losing the lease A wrote the run: step %s, %d start/fail events (want running, 1)", st.Status, startedEvents(t, db, r.ID))
	}

	b, recB, _ := f.replica("B")
	got := recB.waitRun(t, r.ID, "B to resume the run", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepInterrupted })
	if n := f.step.started(); n != 1 {
		t.Fatalf("the apply started %d times, want once: B must not run a possibly half-done apply again by itself", n)
	}
	if len(b.OpenRuns()) != 1 {
		t.Fatalf("B tracks %d runs, want the one it resumed", len(b.OpenRuns()))
	}

	st := got.Steps[0]
	err = a.Act(context.Background(), steps.ActionRequest{RunID: r.ID, StepIndex: 0, Seq: st.Seq, Verb: steps.VerbRetry, User: "U0A1"})
	if !errors.Is(err, steps.ErrForwarded) {
		t.Fatalf("a Retry clicked on A, which no longer holds the run, answered %v; want it passed on", err)
	}
	recB.waitRun(t, r.ID, "B to run the Retry clicked on A", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepRunning })
	// The step is announced running just before it starts.
	deadline = time.Now().Add(10 * time.Second)
	for f.step.started() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("after the Retry the apply started %d times, want 2", f.step.started())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(a.OpenRuns()) != 0 {
		t.Fatal("A took the run back while B holds it")
	}
	close(f.step.release)
	recB.waitRun(t, r.ID, "the run to go on to its approval on B", func(r *steps.Run) bool { return r.Steps[1].Status == steps.StepWaiting })

	// A cancel typed where the run is not executed ends it where it is.
	if err := a.Cancel(context.Background(), r.ID, "U0A1"); !errors.Is(err, steps.ErrForwarded) {
		t.Fatalf("a cancel sent to A answered %v; want it passed on", err)
	}
	recB.waitRun(t, r.ID, "B to cancel the run", func(r *steps.Run) bool { return r.State == steps.RunCancelled })
	evs, err := db.Audit(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	var forwarded, cancels int
	for _, ev := range evs {
		switch ev.Action {
		case "request.forwarded":
			forwarded++
		case "run.cancel":
			cancels++
			if ev.Actor != "U0A1" {
				t.Errorf("the cancel is audited as %s's, want U0A1's", ev.Actor)
			}
		}
	}
	if forwarded != 2 || cancels != 1 {
		t.Errorf("audit: %d requests passed on (want 2), %d cancels (want 1)", forwarded, cancels)
	}
}

// A replica that stops renewing (dead, paused, cut off from the database)
// gives its runs up before another replica takes them over after expiry,
// and the survivor resumes them as after a crash. While the holder renews,
// the other replica leaves its runs alone.
func TestDeadReplicasRunIsTakenOverAfterExpiry(t *testing.T) {
	f := newReplicaFixture(t)
	a, recA, _ := f.replica("A")
	b, recB, _ := f.replica("B")
	r, err := a.Start(context.Background(), steps.StartRequest{Kind: steps.KindDeploy, Service: "svc", Version: "rel-2024.01.01.00.00.00", Requester: "U0A1", Channel: "C0DEPLOYS"})
	if err != nil {
		t.Fatal(err)
	}
	recA.waitRun(t, r.ID, "the apply to run on A", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepRunning })

	// Held and renewed: left alone for several ttls.
	time.Sleep(3 * replicaTTL)
	if len(b.OpenRuns()) != 0 || f.step.started() != 1 {
		t.Fatalf("B took a run A holds and renews (B tracks %d runs, %d starts)", len(b.OpenRuns()), f.step.started())
	}

	died := time.Now()
	f.fl.setCut("A")
	var stoppedAt time.Time
	select {
	case stoppedAt = <-f.step.stopped:
	case <-time.After(10 * replicaTTL):
		t.Fatal("A did not stop the apply once it could no longer renew")
	}
	got := recB.waitRun(t, r.ID, "B to take the run over", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepInterrupted })
	tookAt := time.Now()
	if !stoppedAt.Before(tookAt) {
		t.Errorf("A stopped the apply at %v, after B took the run over at %v", stoppedAt, tookAt)
	}
	if n := f.step.started(); n != 1 {
		t.Errorf("the apply started %d times, want once", n)
	}
	if got.Steps[0].Note == "" || len(got.Steps[0].Buttons) == 0 {
		t.Errorf("the taken-over apply has no Retry: %+v", got.Steps[0])
	}
	t.Logf("takeover after the holder stopped renewing: %v (ttl %v); holder stopped acting %v before", tookAt.Sub(died).Round(10*time.Millisecond), replicaTTL, tookAt.Sub(stoppedAt).Round(10*time.Millisecond))
}
