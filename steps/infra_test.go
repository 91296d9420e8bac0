package steps

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/config"
)

// fakeTree is a Tree whose attributes are a map; it records commits.
type fakeTree struct {
	attrs   map[string]string
	commits int
	pushes  int
	already bool // the remote branch is at our commit
	planErr error
	lock    *StateLock // what ParseStateLock reads from planErr
	unlock  []string   // ForceUnlock calls
}

func (f *fakeTree) Branch() string                                   { return "deploybot/x" }
func (f *fakeTree) BaseCommit(context.Context) (string, error)       { return "base", nil }
func (f *fakeTree) RemoteBaseCommit(context.Context) (string, error) { return "base", nil }
func (f *fakeTree) SetAttribute(file, module, attr string, v any) (string, bool, error) {
	old := f.attrs[file+attr]
	f.attrs[file+attr] = strings.ToLower(strings.TrimSpace(fmtAny(v)))
	return old, old != f.attrs[file+attr], nil
}
func (f *fakeTree) Attribute(file, module, attr string) (string, error) {
	return f.attrs[file+attr], nil
}
func (f *fakeTree) Plan(context.Context, *config.Environment, int) (*Plan, error) {
	if f.planErr != nil {
		return nil, f.planErr
	}
	return &Plan{}, nil
}
func (f *fakeTree) PlanSHA256(*config.Environment) (string, error)              { return "", nil }
func (f *fakeTree) Apply(context.Context, *config.Environment, io.Writer) error { return nil }
func (f *fakeTree) Commit(context.Context, string, ...string) (string, error) {
	f.commits++
	return "c0ffee", nil
}
func (f *fakeTree) Push(context.Context) (bool, error) {
	if f.already {
		return true, nil
	}
	f.pushes++
	return false, nil
}
func (f *fakeTree) StateLock(context.Context, *config.Environment) (*StateLock, error) {
	return nil, nil
}
func (f *fakeTree) ForceUnlock(_ context.Context, _ *config.Environment, id string) error {
	f.unlock = append(f.unlock, id)
	return nil
}
func (f *fakeTree) ParseStateLock(err error) *StateLock {
	if err != nil && err == f.planErr {
		return f.lock
	}
	return nil
}
func (f *fakeTree) CommittedAttribute(ctx context.Context, file, module, attr string, pushed bool) (string, error) {
	return f.attrs[file+attr], nil
}

func fmtAny(v any) string {
	switch x := v.(type) {
	case bool:
		if x {
			return "true"
		}
		return "false"
	case string:
		return x
	}
	return ""
}

type fakeInfra struct{ t *fakeTree }

func (f fakeInfra) Tree(context.Context, *Run) (Tree, error) { return f.t, nil }

// deploybot refuses to commit (or push) a tree in which a clear flag is true.
func TestCommitRefusedWhileAFlagIsTrue(t *testing.T) {
	svc := &config.Service{Name: "ingestion-server", Environments: []config.Environment{
		{Name: "prod", File: "prod.tf", Module: "m", VersionAttribute: "image_tag", ClearFlag: "data_refresh_cleared"},
	}}
	tree := &fakeTree{attrs: map[string]string{"prod.tfdata_refresh_cleared": "true"}}
	step := &commitStep{infraStep: infraStep{S: Spec{ID: "infra-pr", Title: "Open the infrastructure PR"}, infra: fakeInfra{tree}, svc: svc}}
	run := &Run{ID: "run-1", Service: svc.Name, Version: "rel-2024.01.01.00.00.00", Data: map[string]string{}}
	x := &Exec{Run: run, Step: &StepState{}, data: map[string]string{}, runData: map[string]string{}}

	res := step.Start(context.Background(), x)
	if res.Status != StepFailed || !strings.Contains(res.Note, "refusing to commit") || tree.commits != 0 || tree.pushes != 0 {
		t.Fatalf("flag true: status=%s note=%q commits=%d pushes=%d", res.Status, res.Note, tree.commits, tree.pushes)
	}
	tree.attrs["prod.tfdata_refresh_cleared"] = "false"
	res = step.Start(context.Background(), x)
	if res.Status != StepWaiting || tree.commits != 1 || tree.pushes != 1 {
		t.Fatalf("flag false: status=%s note=%q commits=%d pushes=%d", res.Status, res.Note, tree.commits, tree.pushes)
	}
}

// A push that already landed (the remote branch is at our commit) is not
// repeated, and the thread says so.
func TestCommitSaysWhenTheBranchWasAlreadyPushed(t *testing.T) {
	svc := &config.Service{Name: "ingestion-server", Environments: []config.Environment{
		{Name: "prod", File: "prod.tf", Module: "m", VersionAttribute: "image_tag", ClearFlag: "data_refresh_cleared"},
	}}
	tree := &fakeTree{attrs: map[string]string{"prod.tfdata_refresh_cleared": "false"}, already: true}
	step := &commitStep{infraStep: infraStep{S: Spec{ID: "infra-pr", Title: "Open the infrastructure PR"}, infra: fakeInfra{tree}, svc: svc}}
	run := &Run{ID: "run-1", Service: svc.Name, Version: "rel-2024.01.01.00.00.00", Data: map[string]string{}}
	x := &Exec{Run: run, Step: &StepState{}, data: map[string]string{}, runData: map[string]string{}, hold: true}
	res := step.Start(context.Background(), x)
	if res.Status != StepWaiting || !strings.Contains(res.Prompt, "is pushed") {
		t.Fatalf("status=%s prompt=%q", res.Status, res.Prompt)
	}
	if len(x.held) != 1 || !strings.Contains(x.held[0].Text, "already at our commit `c0ffee`") || !strings.Contains(x.held[0].Text, "not pushed again") {
		t.Errorf("thread = %+v", x.held)
	}
}

// A plan stopped by another backend's lock (known only from Terraform's
// error) stands the environment down, shows the lock, escaped, and offers
// Force unlock of exactly that lock, then Re-plan.
func TestPlanStoppedByLockShowsItAndForceUnlocks(t *testing.T) {
	svc := &config.Service{Name: "ingestion-server", Environments: []config.Environment{
		{Name: "prod", File: "prod.tf", Module: "m", VersionAttribute: "image_tag", ClearFlag: "data_refresh_cleared", FourEyes: true},
	}}
	tree := &fakeTree{attrs: map[string]string{"prod.tfdata_refresh_cleared": "true"},
		planErr: errors.New("Error acquiring the state lock"),
		lock:    &StateLock{ID: "abc-123", Operation: "OperationTypeApply", Who: "ci@runner <!channel>", Created: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}}
	env := &svc.Environments[0]
	step := &planStep{infraStep{S: Spec{ID: "plan:prod", Title: "Production (prod): verify the plan"}, infra: fakeInfra{tree}, svc: svc, env: env}}
	run := &Run{ID: "run-1", Service: svc.Name, Version: "rel-2024.01.01.00.00.00", Data: map[string]string{planKey("prod", "approved_sha256"): "old"},
		Steps: []StepState{{ID: "airflow:prod"}, {ID: "flag:prod"}, {ID: "plan:prod"}}}
	x := &Exec{Run: run, Step: &StepState{}, data: map[string]string{}, runData: map[string]string{}, hold: true}

	res := step.Start(context.Background(), x)
	if res.Status != StepWaiting || len(res.Buttons) != 1 || res.Buttons[0].Verb != VerbConfirm || res.Buttons[0].Label != "Force unlock" {
		t.Fatalf("plan on a locked state: %+v", res)
	}
	if tree.attrs["prod.tfdata_refresh_cleared"] != "false" {
		t.Error("the flag stayed true after the plan stopped")
	}
	if x.runData[planKey("prod", "approved_sha256")] != "" {
		t.Error("an old approval survived")
	}
	var lines []string
	for _, h := range x.held {
		lines = append(lines, h.Text)
	}
	said := strings.Join(lines, "\n")
	for _, want := range []string{"ID `abc-123`", "Operation `OperationTypeApply`", "ci@runner &lt;!channel&gt;", "2026-12-01 10:00:00 UTC"} {
		if !strings.Contains(said, want) {
			t.Errorf("the thread lacks %q:\n%s", want, said)
		}
	}
	if strings.Contains(said+res.Prompt, "<!channel>") {
		t.Error("the lock's Who was not escaped")
	}

	x.data, x.held = map[string]string{"lock_id": x.data["lock_id"], "lock": x.data["lock"]}, nil
	res = step.Act(context.Background(), x, Action{Verb: VerbConfirm, User: "U0BOB"})
	if len(tree.unlock) != 1 || tree.unlock[0] != "abc-123" {
		t.Fatalf("ForceUnlock calls = %v", tree.unlock)
	}
	if res.Status != StepWaiting || len(res.Buttons) != 1 || res.Buttons[0].Verb != VerbRetry || res.Buttons[0].Label != "Re-plan" {
		t.Fatalf("after unlocking: %+v", res)
	}

	// Re-plan: the flag is false, so the plan goes back to the Airflow check.
	tree.planErr = nil
	res = step.Start(context.Background(), x)
	if res.Rewind != "airflow:prod" {
		t.Errorf("re-plan with the flag false: %+v, want a rewind to airflow:prod", res)
	}
}
