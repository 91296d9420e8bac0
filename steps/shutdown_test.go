package steps_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/steps"
)

func storedRun(t *testing.T, f *fixture, id string) *steps.Run {
	t.Helper()
	r, err := f.db.Run(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Drain waits for a running non-idempotent step, commits its result,
// starts nothing after it and refuses new work meanwhile.
func TestDrainLetsRunningStepFinishAndStartsNothingAfter(t *testing.T) {
	f := newFixture(t, false)
	r := f.start()
	f.rec.waitRun(t, r.ID, "the step to run", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepRunning })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	drained := make(chan bool, 1)
	go func() { drained <- f.eng.Drain(ctx) }()

	// Refusals during the drain: a new run, a cancel.
	deadline := time.After(10 * time.Second)
	for {
		_, err := f.eng.Start(context.Background(), steps.StartRequest{Kind: steps.KindDeploy, Service: "svc", Requester: "U0A1", Channel: "C0DEPLOYS"})
		var rf *steps.Refused
		if errors.As(err, &rf) && strings.Contains(rf.Msg, "shutting down") {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("Start during the drain answered %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := f.eng.Cancel(context.Background(), r.ID, "U0B2"); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("Cancel during the drain = %v", err)
	}
	select {
	case <-drained:
		t.Fatal("Drain returned while the step still ran")
	default:
	}

	close(f.step.block)
	select {
	case ok := <-drained:
		if !ok {
			t.Error("Drain reported the step unfinished")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Drain did not return after the step finished")
	}
	f.eng.Close()
	got := storedRun(t, f, r.ID)
	f.db.Close()
	if got.Steps[0].Status != steps.StepDone {
		t.Errorf("drained step is %s, want done", got.Steps[0].Status)
	}
	if got.Steps[1].Status != steps.StepPending || got.Steps[1].Attempt != 0 {
		t.Errorf("the next step started during the drain: %s, attempt %d", got.Steps[1].Status, got.Steps[1].Attempt)
	}
}

// When the grace runs out the step is cancelled, its result discarded, and
// the next start marks it interrupted for people to decide.
func TestDrainGraceOverLeavesStepForResume(t *testing.T) {
	f := newFixture(t, false)
	r := f.start()
	f.rec.waitRun(t, r.ID, "the step to run", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepRunning })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if f.eng.Drain(ctx) {
		t.Error("Drain reported success although the step never finished")
	}
	f.eng.Close()
	if st := storedRun(t, f, r.ID).Steps[0]; st.Status != steps.StepRunning {
		t.Fatalf("cancelled step recorded as %s (%s), want still running", st.Status, st.Note)
	}
	f.db.Close()
	f.step.block = nil
	f.open()
	f.rec.waitRun(t, r.ID, "the step to be interrupted", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepInterrupted })
}
