package steps_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/steps"
)

// observed is an Observer that keeps what it heard.
type observed struct {
	mu       sync.Mutex
	events   []string
	answered []time.Duration
}

func (o *observed) add(s string) { o.mu.Lock(); o.events = append(o.events, s); o.mu.Unlock() }

func (o *observed) RunStarted(r *steps.Run) { o.add("started " + r.Service + " " + string(r.Kind)) }
func (o *observed) RunEnded(r *steps.Run)   { o.add("ended " + string(r.State)) }
func (o *observed) StepEnded(r *steps.Run, st *steps.StepState, took time.Duration) {
	if took < 0 {
		o.add("negative duration")
	}
	o.add("step " + st.ID + " " + string(st.Status))
}
func (o *observed) Answered(r *steps.Run, st *steps.StepState, waited time.Duration) {
	o.mu.Lock()
	o.answered = append(o.answered, waited)
	o.mu.Unlock()
}

func (o *observed) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.events...)
}

// The observer hears each committed change once: the start, each step's
// end, an approval answered, the end. An approval still waits after a
// restart, counted from the run's last change.
func TestObserverHearsRunsStepsAndApprovals(t *testing.T) {
	f := newFixture(t, true)
	f.step.block = nil
	obs := &observed{}
	f.eng.SetObserver(obs)
	r := f.start()
	f.rec.waitRun(t, r.ID, "the confirm step to wait", func(r *steps.Run) bool { return r.Steps[1].Status == steps.StepWaiting })
	if w := f.eng.Waiting(); len(w) != 1 || !w[0].Approval || w[0].Step != "confirm" || w[0].RunID != r.ID || w[0].Since.IsZero() {
		t.Fatalf("waiting = %+v, want the confirm approval", w)
	}

	f.crash()
	f.open()
	obs2 := &observed{}
	f.eng.SetObserver(obs2)
	got := f.rec.waitRun(t, r.ID, "the resumed run", func(r *steps.Run) bool { return r.Steps[1].Status == steps.StepWaiting })
	w := f.eng.Waiting()
	if len(w) != 1 || !w[0].Approval || time.Since(w[0].Since) > time.Minute {
		t.Fatalf("waiting after a restart = %+v", w)
	}
	if err := f.eng.Act(context.Background(), steps.ActionRequest{RunID: r.ID, StepIndex: 1, Seq: got.Steps[1].Seq, Verb: steps.VerbApprove, User: "U0B2"}); err != nil {
		t.Fatal(err)
	}
	f.rec.waitRun(t, r.ID, "the run to succeed", func(r *steps.Run) bool { return r.State == steps.RunSucceeded })
	if w := f.eng.Waiting(); len(w) != 0 {
		t.Errorf("waiting after the run = %+v", w)
	}
	want1 := []string{"started svc deploy", "step custom done"}
	if got := obs.list(); len(got) != len(want1) || got[0] != want1[0] || got[1] != want1[1] {
		t.Errorf("before the restart the observer heard %v, want %v", got, want1)
	}
	want2 := []string{"step confirm done", "ended succeeded"}
	if got := obs2.list(); len(got) != len(want2) || got[0] != want2[0] || got[1] != want2[1] {
		t.Errorf("after the restart the observer heard %v, want %v", got, want2)
	}
	if len(obs2.answered) != 1 || obs2.answered[0] < 0 {
		t.Errorf("approvals answered = %v, want one", obs2.answered)
	}
}
