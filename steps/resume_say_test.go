package steps_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/integrations/sqlite"
	"github.com/deploybot/deploybot/steps"
)

// sayingStep says a line, then waits until released.
type sayingStep struct{ release chan struct{} }

func (s *sayingStep) Spec() steps.Spec {
	return steps.Spec{ID: "custom", Title: "Say", Idempotent: true}
}
func (s *sayingStep) Start(ctx context.Context, x *steps.Exec) steps.Result {
	x.Say(":package: the release preview")
	select {
	case <-s.release:
	case <-ctx.Done():
		return steps.Failed(ctx.Err())
	}
	return steps.Done("shown")
}
func (s *sayingStep) Act(ctx context.Context, x *steps.Exec, a steps.Action) steps.Result {
	return steps.Done("ok")
}

// A step started again after a crash does not repeat what it already said
// in the thread; a person's Retry would.
func TestResumedStepDoesNotRepeatItsLines(t *testing.T) {
	cfg := testConfig(t)
	path := filepath.Join(t.TempDir(), "state.db")
	step := &sayingStep{release: make(chan struct{})}
	open := func() (*sqlite.DB, *steps.Engine, *recorder) {
		db, err := sqlite.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		rb := steps.NewRunbooks(cfg)
		rb.Automate("custom", func(steps.Spec, *config.Service, *steps.Manual) steps.Step { return step })
		rec := newRecorder()
		eng := steps.NewEngine(db, rec, roles{}, rb, nil)
		if err := eng.Resume(context.Background()); err != nil {
			t.Fatal(err)
		}
		return db, eng, rec
	}
	db, eng, rec := open()
	r, err := eng.Start(context.Background(), steps.StartRequest{Kind: steps.KindDeploy, Service: "svc", Version: "rel-2024.01.01.00.00.00", Requester: "U0A1", Channel: "C0DEPLOYS"})
	if err != nil {
		t.Fatal(err)
	}
	rec.waitRun(t, r.ID, "the step to run", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepRunning })
	owed := func() int {
		es, err := db.PendingOutbox(context.Background(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range es {
			if e.Text == ":package: the release preview" {
				n++
			}
		}
		return n
	}
	rec.waitRun(t, r.ID, "the line to be said", func(*steps.Run) bool { return owed() == 1 })
	eng.Close() // the process dies with the step running
	db.Close()

	db, eng, rec = open()
	defer db.Close()
	defer eng.Close()
	close(step.release)
	rec.waitRun(t, r.ID, "the restarted step to finish", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepDone })
	if n := owed(); n != 1 {
		t.Errorf("the line is owed to the thread %d times after the restart, want once", n)
	}
}

// failOnceStep says a line, fails the first time, succeeds after.
type failOnceStep struct{ starts int }

func (s *failOnceStep) Spec() steps.Spec { return steps.Spec{ID: "custom", Title: "Say"} }
func (s *failOnceStep) Start(ctx context.Context, x *steps.Exec) steps.Result {
	s.starts++
	x.Say(":package: the release preview")
	if s.starts == 1 {
		return steps.FailedText("GitHub did not answer")
	}
	return steps.Done("shown")
}
func (s *failOnceStep) Act(ctx context.Context, x *steps.Exec, a steps.Action) steps.Result {
	return steps.Done("ok")
}

// A person's Retry is a new attempt: it says its lines again.
func TestRetriedStepSaysItsLinesAgain(t *testing.T) {
	cfg := testConfig(t)
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	step := &failOnceStep{}
	rb := steps.NewRunbooks(cfg)
	rb.Automate("custom", func(steps.Spec, *config.Service, *steps.Manual) steps.Step { return step })
	rec := newRecorder()
	eng := steps.NewEngine(db, rec, roles{}, rb, nil)
	defer eng.Close()
	ctx := context.Background()
	r, err := eng.Start(ctx, steps.StartRequest{Kind: steps.KindDeploy, Service: "svc", Version: "rel-2024.01.01.00.00.00", Requester: "U0A1", Channel: "C0DEPLOYS"})
	if err != nil {
		t.Fatal(err)
	}
	failed := rec.waitRun(t, r.ID, "the step to fail", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepFailed })
	if err := eng.Act(ctx, steps.ActionRequest{RunID: r.ID, StepIndex: 0, Seq: failed.Steps[0].Seq, Verb: steps.VerbRetry, User: "U0A1"}); err != nil {
		t.Fatal(err)
	}
	rec.waitRun(t, r.ID, "the retried step to finish", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepDone })
	es, _ := db.PendingOutbox(ctx, r.ID)
	n := 0
	for _, e := range es {
		if e.Text == ":package: the release preview" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("the line is owed %d times after a Retry, want twice (once per attempt)", n)
	}
}
