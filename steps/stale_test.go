package steps_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/steps"
)

// otherReplica changes a run the way a second deploybot sharing the store
// would: from its own fresh copy, committed before this engine writes.
func otherReplica(t *testing.T, f *fixture, id string, change func(*steps.Run), events ...steps.AuditEvent) {
	t.Helper()
	r, err := f.db.Run(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	change(r)
	if err := f.db.SaveRun(context.Background(), r, steps.Changes{Events: events}); err != nil {
		t.Fatalf("the other replica's write: %v", err)
	}
}

// A click decided against a state another replica has since replaced is
// refused, not applied over it; the engine goes on from what the other
// replica committed.
func TestClickOnAChangedRunIsRefusedAndTheRunGoesOnFromTheStore(t *testing.T) {
	f := newFixture(t, false)
	defer f.crash()
	close(f.step.block)
	r := f.start()
	waiting := f.rec.waitRun(t, r.ID, "the confirm step to wait", func(r *steps.Run) bool { return r.Steps[1].Status == steps.StepWaiting })
	st := waiting.Steps[1]

	otherReplica(t, f, r.ID, func(r *steps.Run) {
		s := &r.Steps[1]
		s.Status, s.Actor, s.Note = steps.StepDone, "U0B2", "approved on the other replica"
		s.Prompt, s.Buttons, s.WaitingOn = "", nil, ""
		s.Seq++
	}, steps.AuditEvent{Actor: "U0B2", Action: "step.done", StepID: "confirm"})

	err := f.eng.Act(context.Background(), steps.ActionRequest{RunID: r.ID, StepIndex: 1, Seq: st.Seq, Verb: st.Buttons[0].Verb, User: "U0A1"})
	var rf *steps.Refused
	if !errors.As(err, &rf) || !strings.Contains(rf.Msg, "changed while your click was handled") {
		t.Fatalf("the click on a changed run answered %v, want a refusal saying the run changed", err)
	}
	f.rec.waitRun(t, r.ID, "the run to finish from the other replica's state", func(r *steps.Run) bool { return r.State == steps.RunSucceeded })

	got, err := f.db.Run(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Steps[1].Actor != "U0B2" || got.Steps[1].Note != "approved on the other replica" {
		t.Errorf("the other replica's answer was overwritten: %+v", got.Steps[1])
	}
	evs, _ := f.db.Audit(context.Background(), r.ID)
	var dones []string
	for _, ev := range evs {
		if ev.Action == "step.done" && ev.StepID == "confirm" {
			dones = append(dones, ev.Actor)
		}
	}
	if len(dones) != 1 || dones[0] != "U0B2" {
		t.Errorf("confirm recorded done by %v, want once by U0B2", dones)
	}
}

// A step's result whose commit loses to another replica's write is decided
// again on the stored run: the other write survives, and the result is
// recorded once.
func TestStepResultIsReappliedOnTheStoredRunNotOverIt(t *testing.T) {
	f := newFixture(t, false)
	defer f.crash()
	r := f.start()
	f.rec.waitRun(t, r.ID, "the step to run", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepRunning })

	otherReplica(t, f, r.ID, func(r *steps.Run) { r.MessageTS = "1700000000.000200" })
	close(f.step.block)
	f.rec.waitRun(t, r.ID, "the confirm step to wait", func(r *steps.Run) bool { return r.Steps[1].Status == steps.StepWaiting })

	got, err := f.db.Run(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.MessageTS != "1700000000.000200" {
		t.Errorf("the other replica's write was overwritten: message ts %q", got.MessageTS)
	}
	if got.Steps[0].Status != steps.StepDone || got.Steps[1].Status != steps.StepWaiting {
		t.Errorf("stored steps %s, %s; want done, waiting", got.Steps[0].Status, got.Steps[1].Status)
	}
	evs, _ := f.db.Audit(context.Background(), r.ID)
	done := 0
	for _, ev := range evs {
		if ev.Action == "step.done" && ev.StepID == "custom" {
			done++
		}
	}
	f.world.mu.Lock()
	starts := f.world.starts
	f.world.mu.Unlock()
	if done != 1 || starts != 1 {
		t.Errorf("step recorded done %d times after %d starts, want once after one", done, starts)
	}
}
