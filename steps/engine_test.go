package steps_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/integrations/sqlite"
	"github.com/deploybot/deploybot/steps"
)

// recorder is a Notifier that keeps what the engine announced.
type recorder struct {
	mu   sync.Mutex
	runs map[string]*steps.Run
	ch   chan struct{}
}

func newRecorder() *recorder {
	return &recorder{runs: map[string]*steps.Run{}, ch: make(chan struct{}, 1)}
}

func (r *recorder) RunChanged(run *steps.Run) {
	r.mu.Lock()
	r.runs[run.ID] = run
	r.mu.Unlock()
	r.poke()
}

func (r *recorder) Live(run *steps.Run, key, text string) {}

func (r *recorder) poke() {
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

// waitRun waits until the last announced state of a run satisfies cond.
func (r *recorder) waitRun(t *testing.T, id, what string, cond func(*steps.Run) bool) *steps.Run {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		run := r.runs[id]
		r.mu.Unlock()
		if run != nil && cond(run) {
			return run
		}
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; last state %+v", what, run)
		}
	}
}

type roles struct{}

func (roles) IsDeployer(ctx context.Context, u string) (bool, error) { return u == "U0A1", nil }
func (roles) IsApprover(ctx context.Context, u string) (bool, error) {
	return u == "U0A1" || u == "U0B2", nil
}

// flagStep stands in for an automated step with a compensation, like the
// Terraform flag: it records what it did in a shared "world".
type flagStep struct {
	world      *world
	idempotent bool
	block      chan struct{} // when set, Start blocks until closed or cancelled
}

type world struct {
	mu     sync.Mutex
	flag   bool
	starts int
}

func (f *flagStep) Spec() steps.Spec {
	return steps.Spec{ID: "custom", Title: "Set the flag", Idempotent: f.idempotent}
}

func (f *flagStep) Start(ctx context.Context, x *steps.Exec) steps.Result {
	f.world.mu.Lock()
	f.world.flag = true
	f.world.starts++
	f.world.mu.Unlock()
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return steps.Failed(ctx.Err())
		}
	}
	return steps.Done("flag set")
}

func (f *flagStep) Act(ctx context.Context, x *steps.Exec, a steps.Action) steps.Result {
	return steps.Failed(errors.New("no buttons"))
}

func (f *flagStep) Compensate(ctx context.Context, x *steps.Exec) error {
	f.world.mu.Lock()
	f.world.flag = false
	f.world.mu.Unlock()
	return nil
}

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(`
slack:
  deploy_channels: [C0DEPLOYS]
  deployers: [U0A1]
  approvers: [U0A1, U0B2]
services:
  svc:
    steps:
      - {id: custom, title: Set the flag, instruction: set it}
      - {id: confirm, title: Confirm, instruction: look, approval: true}
`), filepath.Join(t.TempDir(), "c.yaml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type fixture struct {
	t     *testing.T
	cfg   *config.Config
	path  string
	world *world
	step  *flagStep
	db    *sqlite.DB
	rec   *recorder
	eng   *steps.Engine
}

func newFixture(t *testing.T, idempotent bool) *fixture {
	f := &fixture{t: t, cfg: testConfig(t), path: filepath.Join(t.TempDir(), "state.db"), world: &world{}}
	f.step = &flagStep{world: f.world, idempotent: idempotent, block: make(chan struct{})}
	f.open()
	return f
}

func (f *fixture) open() {
	db, err := sqlite.Open(f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	rb := steps.NewRunbooks(f.cfg)
	rb.Automate("custom", func(steps.Spec, *config.Service, *steps.Manual) steps.Step { return f.step })
	f.db, f.rec = db, newRecorder()
	f.eng = steps.NewEngine(db, f.rec, roles{}, rb, nil)
	if err := f.eng.Resume(context.Background()); err != nil {
		f.t.Fatal(err)
	}
}

// crash stops the engine mid-step, as a process death would leave it: the
// running step stays recorded as running.
func (f *fixture) crash() {
	f.eng.Close()
	f.db.Close()
}

func (f *fixture) start() *steps.Run {
	r, err := f.eng.Start(context.Background(), steps.StartRequest{Kind: steps.KindDeploy, Service: "svc", Version: "rel-2024.01.01.00.00.00", Requester: "U0A1", Channel: "C0DEPLOYS"})
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func TestInterruptedStepWaitsForRetryAndCancelCompensates(t *testing.T) {
	f := newFixture(t, false)
	r := f.start()
	f.rec.waitRun(t, r.ID, "the step to run", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepRunning })
	f.crash()

	f.step.block = nil
	f.open()
	got := f.rec.waitRun(t, r.ID, "the step to be interrupted", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepInterrupted })
	if !strings.Contains(got.Steps[0].Prompt, "Retry or Cancel") {
		t.Errorf("prompt = %q", got.Steps[0].Prompt)
	}
	if f.world.starts != 1 {
		t.Fatalf("a non-idempotent step was started again by itself (%d starts)", f.world.starts)
	}
	// Retry by the requester runs it again.
	st := got.Steps[0]
	if err := f.eng.Act(context.Background(), steps.ActionRequest{RunID: r.ID, StepIndex: 0, Seq: st.Seq, Verb: steps.VerbRetry, User: "U0A1"}); err != nil {
		t.Fatal(err)
	}
	got = f.rec.waitRun(t, r.ID, "the next step to wait", func(r *steps.Run) bool { return r.Steps[1].Status == steps.StepWaiting })
	// Cancel: the flag is restored by the compensation and the lock freed.
	if err := f.eng.Cancel(context.Background(), r.ID, "U0B2"); err != nil {
		t.Fatal(err)
	}
	f.rec.waitRun(t, r.ID, "the run to end", func(r *steps.Run) bool { return r.State == steps.RunCancelled })
	if f.world.flag {
		t.Error("flag still set after cancel")
	}
	f.start() // the service is free
}

func TestIdempotentStepIsRetriedAfterACrash(t *testing.T) {
	f := newFixture(t, true)
	r := f.start()
	f.rec.waitRun(t, r.ID, "the step to run", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepRunning })
	f.crash()
	f.step.block = nil
	f.open()
	f.rec.waitRun(t, r.ID, "the step to finish after restart", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepDone })
	if f.world.starts != 2 {
		t.Errorf("starts = %d, want 2", f.world.starts)
	}
}

func TestRejectEndsRunAndCompensates(t *testing.T) {
	f := newFixture(t, true)
	f.step.block = nil
	r := f.start()
	got := f.rec.waitRun(t, r.ID, "the confirm step to wait", func(r *steps.Run) bool { return r.Steps[1].Status == steps.StepWaiting })
	if !f.world.flag {
		t.Fatal("flag not set")
	}
	// A stale Seq is refused and changes nothing.
	err := f.eng.Act(context.Background(), steps.ActionRequest{RunID: r.ID, StepIndex: 1, Seq: got.Steps[1].Seq - 1, Verb: steps.VerbReject, User: "U0B2"})
	var rf *steps.Refused
	if !errors.As(err, &rf) {
		t.Fatalf("stale click: %v", err)
	}
	if err := f.eng.Act(context.Background(), steps.ActionRequest{RunID: r.ID, StepIndex: 1, Seq: got.Steps[1].Seq, Verb: steps.VerbReject, User: "U0B2"}); err != nil {
		t.Fatal(err)
	}
	end := f.rec.waitRun(t, r.ID, "the run to fail", func(r *steps.Run) bool { return r.State == steps.RunFailed })
	if f.world.flag || end.Steps[0].Comp != steps.CompDone {
		t.Errorf("flag=%v comp=%q after reject", f.world.flag, end.Steps[0].Comp)
	}
	apps, _ := f.db.Approvals(context.Background(), r.ID)
	if len(apps) != 1 || apps[0].Decision != "reject" || apps[0].Approver != "U0B2" {
		t.Errorf("approvals = %+v", apps)
	}
}

// crashWhileEnding runs the fixture to its confirm step, then forges what
// a death right after the run was marked ending leaves on disk (change
// adjusts it), and restarts.
func (f *fixture) crashWhileEnding(change func(*steps.Run)) *steps.Run {
	f.t.Helper()
	f.step.block = nil
	r := f.start()
	f.rec.waitRun(f.t, r.ID, "the confirm step to wait", func(r *steps.Run) bool { return r.Steps[1].Status == steps.StepWaiting })
	run, err := f.db.Run(context.Background(), r.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	f.crash()
	run.State = steps.RunEnding
	run.Data["final_state"] = string(steps.RunCancelled)
	run.Steps[0].Comp = steps.CompNeeded
	change(run)
	db, err := sqlite.Open(f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := db.SaveRun(context.Background(), run, steps.Changes{}); err != nil {
		f.t.Fatal(err)
	}
	db.Close()
	f.open()
	f.rec.waitRun(f.t, r.ID, "the run to finish ending", func(r *steps.Run) bool { return r.State == steps.RunCancelled })
	return r
}

func TestCrashWhileEndingStillCompensates(t *testing.T) {
	f := newFixture(t, true)
	f.crashWhileEnding(func(*steps.Run) {})
	if f.world.flag {
		t.Error("flag not restored after a crash while ending")
	}
}

type failStep struct{}

func (failStep) Spec() steps.Spec { return steps.Spec{ID: "custom", Title: "Fail", Idempotent: true} }
func (failStep) Start(ctx context.Context, x *steps.Exec) steps.Result {
	return steps.Failed(errors.New("boom <!channel>"))
}
func (failStep) Act(ctx context.Context, x *steps.Exec, a steps.Action) steps.Result {
	return steps.Failed(errors.New("no"))
}

func openEngine(t *testing.T, step steps.Step) (*steps.Engine, *recorder) {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	rb := steps.NewRunbooks(testConfig(t))
	rb.Automate("custom", func(steps.Spec, *config.Service, *steps.Manual) steps.Step { return step })
	rec := newRecorder()
	eng := steps.NewEngine(db, rec, roles{}, rb, nil)
	t.Cleanup(func() { eng.Close(); db.Close() })
	return eng, rec
}

// A double click on Incident declares one incident, and failure notes
// carrying outside text cannot ping anyone.
func TestDoubleClickOnIncidentDeclaresOne(t *testing.T) {
	eng, rec := openEngine(t, failStep{})
	r, err := eng.Start(context.Background(), steps.StartRequest{Kind: steps.KindDeploy, Service: "svc", Version: "rel-2024.01.01.00.00.00", Requester: "U0A1", Channel: "C"})
	if err != nil {
		t.Fatal(err)
	}
	got := rec.waitRun(t, r.ID, "the step to fail", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepFailed })
	if strings.Contains(got.Steps[0].Note, "<!channel>") {
		t.Errorf("failure note can ping: %q", got.Steps[0].Note)
	}
	seq := got.Steps[0].Seq
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = eng.Act(context.Background(), steps.ActionRequest{RunID: r.ID, StepIndex: 0, Seq: seq, Verb: steps.VerbIncident, User: "U0A1"})
		}()
	}
	wg.Wait()
	// Run-level Declare incident clicks at once, from two people: one
	// incident in all.
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = eng.Act(context.Background(), steps.ActionRequest{RunID: r.ID, StepIndex: steps.RunLevel, Verb: steps.VerbIncident, User: "U0B2"})
		}()
	}
	wg.Wait()
	// A run-level Declare incident on the same run is refused as well.
	err = eng.Act(context.Background(), steps.ActionRequest{RunID: r.ID, StepIndex: steps.RunLevel, Verb: steps.VerbIncident, User: "U0B2"})
	var rf *steps.Refused
	if !errors.As(err, &rf) || !strings.Contains(rf.Msg, "already open") {
		t.Errorf("third incident: %v", err)
	}
	n := 0
	for _, o := range eng.OpenRuns() {
		if o.Kind == steps.KindIncident {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d incidents declared, want 1", n)
	}
}

// slowFlag finishes its write after being cancelled, like a file write
// that does not look at the context.
type slowFlag struct {
	mu       sync.Mutex
	flag     bool
	started  chan struct{}
	release  chan struct{}
	returned chan struct{}
}

func (f *slowFlag) Spec() steps.Spec {
	return steps.Spec{ID: "custom", Title: "Set flag", Idempotent: true}
}
func (f *slowFlag) Start(ctx context.Context, x *steps.Exec) steps.Result {
	close(f.started)
	<-f.release
	f.mu.Lock()
	f.flag = true
	f.mu.Unlock()
	close(f.returned)
	return steps.Done("set")
}
func (f *slowFlag) Act(ctx context.Context, x *steps.Exec, a steps.Action) steps.Result {
	return steps.Failed(errors.New("no"))
}
func (f *slowFlag) Compensate(ctx context.Context, x *steps.Exec) error {
	f.mu.Lock()
	f.flag = false
	f.mu.Unlock()
	return nil
}

// Cancelling while the flag step runs compensates only after the step has
// returned, so its late write cannot undo the compensation.
func TestCancelDuringAStepCompensatesAfterIt(t *testing.T) {
	fs := &slowFlag{started: make(chan struct{}), release: make(chan struct{}), returned: make(chan struct{})}
	eng, rec := openEngine(t, fs)
	r, err := eng.Start(context.Background(), steps.StartRequest{Kind: steps.KindDeploy, Service: "svc", Version: "rel-2024.01.01.00.00.00", Requester: "U0A1", Channel: "C"})
	if err != nil {
		t.Fatal(err)
	}
	<-fs.started
	if err := eng.Cancel(context.Background(), r.ID, "U0A1"); err != nil {
		t.Fatal(err)
	}
	rec.waitRun(t, r.ID, "the run to be ending", func(r *steps.Run) bool { return r.State == steps.RunEnding })
	if got, _ := eng.Run(context.Background(), r.ID); got.State != steps.RunEnding || got.Steps[0].Comp != steps.CompNeeded {
		t.Fatalf("compensated while the step still ran: %s %s", got.State, got.Steps[0].Comp)
	}
	close(fs.release)
	<-fs.returned // the late write has happened
	rec.waitRun(t, r.ID, "the run to be cancelled", func(r *steps.Run) bool { return r.State == steps.RunCancelled })
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.flag {
		t.Error("the flag is true after the run was cancelled")
	}
}

// Several people clicking Declare incident under the same Sentry issue at
// once declare one incident.
func TestConcurrentRunLevelIncidentsDeclareOne(t *testing.T) {
	eng, rec := openEngine(t, failStep{})
	r, err := eng.Start(context.Background(), steps.StartRequest{Kind: steps.KindDeploy, Service: "svc", Version: "rel-2024.01.01.00.00.00", Requester: "U0A1", Channel: "C"})
	if err != nil {
		t.Fatal(err)
	}
	rec.waitRun(t, r.ID, "the step to fail", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepFailed })
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func(u string) {
			defer wg.Done()
			_ = eng.Act(context.Background(), steps.ActionRequest{RunID: r.ID, StepIndex: steps.RunLevel, Verb: steps.VerbIncident, User: u})
		}([]string{"U0A1", "U0B2"}[i%2])
	}
	wg.Wait()
	n := 0
	for _, o := range eng.OpenRuns() {
		if o.Kind == steps.KindIncident {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d incidents declared by simultaneous clicks, want 1", n)
	}
}

// A run that was ending when deploybot died, owing the compensation of a
// step the runbook no longer has, still ends after a restart and says what
// to undo by hand.
func TestResumeEndingRunWhoseStepLeftTheRunbook(t *testing.T) {
	f := newFixture(t, true)
	// The configuration no longer has this step.
	f.crashWhileEnding(func(r *steps.Run) { r.Steps[0].ID = "gone" })
	// Thread lines are outbox entries, owed to Slack from the commit on.
	owed, err := f.db.PendingOutbox(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var says []string
	for _, e := range owed {
		if e.Kind == steps.OutboxSay {
			says = append(says, e.Text)
		}
	}
	found := false
	for _, s := range says {
		found = found || strings.Contains(s, "Undo this now")
	}
	if !found {
		t.Errorf("no undo instruction; thread: %q", says)
	}
}
