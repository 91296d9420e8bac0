package steps_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/integrations/sqlite"
	"github.com/deploybot/deploybot/steps"
)

// panicStep panics while armed, like a step with a bug that a fix (here:
// disarming) removes.
type panicStep struct {
	mu    sync.Mutex
	armed bool
}

func (p *panicStep) Spec() steps.Spec { return steps.Spec{ID: "custom", Title: "Set the flag"} }
func (p *panicStep) Start(ctx context.Context, x *steps.Exec) steps.Result {
	p.mu.Lock()
	armed := p.armed
	p.mu.Unlock()
	if armed {
		var m map[string]string
		m["boom"] = "<!channel>" // assignment to entry in nil map
	}
	return steps.Done("flag set")
}
func (p *panicStep) Act(ctx context.Context, x *steps.Exec, a steps.Action) steps.Result {
	return steps.Done("")
}

// A panicking step fails with "internal error, reported" and the usual
// Retry; the panic is logged at error level with run_id, service and step
// (what the Sentry bridge turns into tags); Retry runs the step again and
// the run goes on.
func TestPanickingStepFailsAndRetryWorks(t *testing.T) {
	core, logs := observer.New(zapcore.ErrorLevel)
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	step := &panicStep{armed: true}
	rb := steps.NewRunbooks(testConfig(t))
	rb.Automate("custom", func(steps.Spec, *config.Service, *steps.Manual) steps.Step { return step })
	rec := newRecorder()
	eng := steps.NewEngine(db, rec, roles{}, rb, zap.New(core))
	t.Cleanup(func() { eng.Close(); db.Close() })

	r, err := eng.Start(context.Background(), steps.StartRequest{Kind: steps.KindDeploy, Service: "svc", Version: "rel-2024.01.01.00.00.00", Requester: "U0A1", Channel: "C"})
	if err != nil {
		t.Fatal(err)
	}
	got := rec.waitRun(t, r.ID, "the panicking step to fail", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepFailed })
	st := got.Steps[0]
	if !strings.HasPrefix(st.Note, "internal error, reported") || strings.Contains(st.Note, "<!channel>") {
		t.Errorf("note %q: want it to start with “internal error, reported” and be escaped", st.Note)
	}
	retry := false
	for _, b := range st.Buttons {
		retry = retry || b.Verb == steps.VerbRetry
	}
	if !retry {
		t.Errorf("no Retry button: %+v", st.Buttons)
	}
	entries := logs.FilterMessage("step panicked").All()
	if len(entries) != 1 {
		t.Fatalf("%d “step panicked” entries, want 1", len(entries))
	}
	fields := entries[0].ContextMap()
	for k, want := range map[string]string{"run_id": r.ID, "service": "svc", "step": "custom"} {
		if fields[k] != want {
			t.Errorf("log field %s = %v, want %q", k, fields[k], want)
		}
	}
	if !strings.Contains(fields["error"].(string), "nil map") || !strings.Contains(fields["stack"].(string), "panicStep).Start") {
		t.Errorf("log lacks the panic or its site: error %v", fields["error"])
	}

	step.mu.Lock()
	step.armed = false
	step.mu.Unlock()
	if err := eng.Act(context.Background(), steps.ActionRequest{RunID: r.ID, StepIndex: 0, Seq: st.Seq, Verb: steps.VerbRetry, User: "U0A1"}); err != nil {
		t.Fatal(err)
	}
	rec.waitRun(t, r.ID, "the retried step to pass and the run to go on", func(r *steps.Run) bool {
		return r.Steps[0].Status == steps.StepDone && r.Steps[1].Status == steps.StepWaiting
	})
}
