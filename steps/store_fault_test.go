package steps_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/integrations/sqlite"
	"github.com/deploybot/deploybot/steps"
)

// flakyStore refuses the next n run writes, as a full disk or a database
// locked by another process would.
type flakyStore struct {
	*sqlite.DB
	mu     sync.Mutex
	fail   int
	failed int
}

func (s *flakyStore) SaveRun(ctx context.Context, r *steps.Run, c steps.Changes) error {
	s.mu.Lock()
	if s.fail > 0 {
		s.fail--
		s.failed++
		s.mu.Unlock()
		return errors.New("sqlite: save: disk I/O error")
	}
	s.mu.Unlock()
	return s.DB.SaveRun(ctx, r, c)
}

func (s *flakyStore) failNext(n int) {
	s.mu.Lock()
	s.fail = n
	s.mu.Unlock()
}

// The store refuses writes for a while: a step's finished work is kept and
// committed once the store takes it (the step does not run twice); a click
// meanwhile gets an error, changes nothing, and works when clicked again.
func TestStoreWriteErrorsDelayRunsButLoseNothing(t *testing.T) {
	cfg := testConfig(t)
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store := &flakyStore{DB: db}
	w := &world{}
	step := &flagStep{world: w, block: make(chan struct{})}
	rb := steps.NewRunbooks(cfg)
	rb.Automate("custom", func(steps.Spec, *config.Service, *steps.Manual) steps.Step { return step })
	rec := newRecorder()
	eng := steps.NewEngine(store, rec, roles{}, rb, nil)
	defer eng.Close()
	ctx := context.Background()
	r, err := eng.Start(ctx, steps.StartRequest{Kind: steps.KindDeploy, Service: "svc", Version: "rel-2024.01.01.00.00.00", Requester: "U0A1", Channel: "C0DEPLOYS"})
	if err != nil {
		t.Fatal(err)
	}
	rec.waitRun(t, r.ID, "the step to run", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepRunning })

	// The step finishes while the store refuses two writes.
	store.failNext(2)
	close(step.block)
	got := rec.waitRun(t, r.ID, "the confirm step to wait", func(r *steps.Run) bool { return r.Steps[1].Status == steps.StepWaiting })
	w.mu.Lock()
	starts := w.starts
	w.mu.Unlock()
	if got.Steps[0].Status != steps.StepDone || starts != 1 {
		t.Fatalf("step 1 is %s after %d starts; want done after one", got.Steps[0].Status, starts)
	}
	verb := got.Steps[1].Buttons[0].Verb

	// A click while the store refuses: an error, nothing changed.
	store.failNext(1)
	err = eng.Act(ctx, steps.ActionRequest{RunID: r.ID, StepIndex: 1, Seq: got.Steps[1].Seq, Verb: verb, User: "U0B2"})
	var rf *steps.Refused
	if err == nil || errors.As(err, &rf) {
		t.Fatalf("a click the store refused answered %v, want the store's error", err)
	}
	now, _ := eng.Run(ctx, r.ID)
	if now.Steps[1].Status != steps.StepWaiting || now.Steps[1].Seq != got.Steps[1].Seq {
		t.Fatalf("the refused click changed the step: %s seq %d", now.Steps[1].Status, now.Steps[1].Seq)
	}
	// Clicked again, it works.
	if err := eng.Act(ctx, steps.ActionRequest{RunID: r.ID, StepIndex: 1, Seq: got.Steps[1].Seq, Verb: verb, User: "U0B2"}); err != nil {
		t.Fatal(err)
	}
	rec.waitRun(t, r.ID, "the run to succeed", func(r *steps.Run) bool { return r.State == steps.RunSucceeded })
	if store.failed != 3 {
		t.Errorf("%d writes refused, want 3", store.failed)
	}
	evs, _ := db.Audit(ctx, r.ID)
	done := 0
	for _, ev := range evs {
		if ev.Action == "step.done" && ev.StepID == "custom" {
			done++
		}
	}
	if done != 1 {
		t.Errorf("the step's result was recorded %d times, want once", done)
	}
}

// postingStep waits, then records an issue as posted and says it: the
// Sentry watch's pattern.
type postingStep struct{ release chan struct{} }

func (s *postingStep) Spec() steps.Spec { return steps.Spec{ID: "custom", Title: "Post"} }
func (s *postingStep) Start(ctx context.Context, x *steps.Exec) steps.Result {
	<-s.release
	x.Set("posted", "9001")
	x.Say(":rotating_light: issue 9001")
	return steps.Done("posted")
}
func (s *postingStep) Act(ctx context.Context, x *steps.Exec, a steps.Action) steps.Result {
	return steps.Done("ok")
}

// When the store refuses the write that commits a line together with its
// record ("posted"), the two still stand or fall together: both commit
// with the step's result, so the line is never lost behind its record.
func TestRefusedCheckpointKeepsTheRecordWithItsMessage(t *testing.T) {
	cfg := testConfig(t)
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store := &flakyStore{DB: db}
	step := &postingStep{release: make(chan struct{})}
	rb := steps.NewRunbooks(cfg)
	rb.Automate("custom", func(steps.Spec, *config.Service, *steps.Manual) steps.Step { return step })
	rec := newRecorder()
	eng := steps.NewEngine(store, rec, roles{}, rb, nil)
	defer eng.Close()
	r, err := eng.Start(context.Background(), steps.StartRequest{Kind: steps.KindDeploy, Service: "svc", Version: "rel-2024.01.01.00.00.00", Requester: "U0A1", Channel: "C0DEPLOYS"})
	if err != nil {
		t.Fatal(err)
	}
	rec.waitRun(t, r.ID, "the step to run", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepRunning })
	store.failNext(1) // the checkpoint of the line and its record
	close(step.release)
	got := rec.waitRun(t, r.ID, "the step to finish", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepDone })
	saved, _ := db.Run(context.Background(), r.ID)
	es, _ := db.PendingOutbox(context.Background(), r.ID)
	n := 0
	for _, e := range es {
		if e.Text == ":rotating_light: issue 9001" {
			n++
		}
	}
	if saved.Steps[0].Data["posted"] != "9001" || n != 1 || store.failed != 1 {
		t.Fatalf("posted=%q, line owed %d times, %d writes refused (step %s): want the record and the line, once", saved.Steps[0].Data["posted"], n, store.failed, got.Steps[0].Status)
	}
}
