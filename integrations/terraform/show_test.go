package terraform

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/deploybot/deploybot/internal/testtool"
)

// ShowJSON runs Terraform itself (not through terraform-exec): its failures
// must read like every other command's, and it gets the same environment.
func TestShowJSONFailuresAndEnvironment(t *testing.T) {
	// t.Setenv: not parallel.
	testtool.SetForbiddenEnv(t)
	plan := filepath.Join(t.TempDir(), "p.tfplan")
	if err := os.WriteFile(plan, []byte("not a plan"), 0o600); err != nil {
		t.Fatal(err)
	}
	envOut := filepath.Join(t.TempDir(), "env")
	bin := fakeTerraform(t, `
env > `+envOut+`
printf '\033[31mError:\033[0m Failed to read the given file as a state or plan file (key %s)\n' "$AWS_SECRET_ACCESS_KEY" >&2
exit 1
`)
	var log testLog
	r := &Runner{Bin: bin, Dir: t.TempDir(), Log: &log, Env: map[string]string{"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}}
	_, err := r.ShowJSON(t.Context(), plan)
	var tfErr *Error
	if !errors.As(err, &tfErr) || tfErr.Command != "show" {
		t.Fatalf("err = %#v", err)
	}
	for _, want := range []string{"terraform show in ", "exit status 1", "Error: Failed to read the given file as a state or plan file (key [redacted])"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "wJalrXUtnFEMI") || strings.Contains(log.String(), "wJalrXUtnFEMI") || strings.ContainsRune(err.Error(), 0x1b) {
		t.Errorf("secret or escape in the error or log:\n%v\n%s", err, log.String())
	}
	env, _ := os.ReadFile(envOut)
	for _, want := range []string{"TF_IN_AUTOMATION=1\n", "CHECKPOINT_DISABLE=1\n", "AWS_SECRET_ACCESS_KEY="} {
		if !strings.Contains(string(env), want) {
			t.Errorf("terraform's environment lacks %q:\n%s", want, env)
		}
	}
	testtool.AssertNoForbidden(t, "terraform show's environment", string(env))

	// Output that is not a plan's JSON is an error, not an empty plan.
	r.Bin = fakeTerraform(t, `echo '{"format_version": "1.2", "resource_changes": [' ; exit 0`)
	if p, err := r.ShowJSON(t.Context(), plan); err == nil || !strings.Contains(err.Error(), "reading the plan's JSON") {
		t.Errorf("truncated JSON: plan %+v, err %v", p, err)
	}
	r.Bin = fakeTerraform(t, `echo '{"format_version": "9.0", "configuration": {}}'`)
	if _, err := r.ShowJSON(t.Context(), plan); err == nil || !strings.Contains(err.Error(), "unsupported plan format version") {
		t.Errorf("future format: %v", err)
	}
	if _, err := r.ShowJSON(t.Context(), filepath.Join(t.TempDir(), "missing.tfplan")); err == nil {
		t.Error("a missing plan file was shown")
	}
}

func TestShowJSONCancelInterruptsTerraform(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "interrupted")
	plan := filepath.Join(t.TempDir(), "p.tfplan")
	if err := os.WriteFile(plan, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bin := fakeTerraform(t, `
sleep 30 >/dev/null 2>&1 &
pid=$!
trap 'echo "Interrupt received." >&2; touch `+marker+`; kill $pid; exit 130' INT
wait
`)
	r := &Runner{Bin: bin, Dir: t.TempDir(), WaitDelay: 5 * time.Second}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(500*time.Millisecond, cancel)
	start := time.Now()
	_, err := r.ShowJSON(ctx, plan)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Fatalf("cancel took %v", elapsed)
	}
	if _, statErr := os.Stat(marker); statErr != nil {
		t.Fatal("terraform did not get SIGINT")
	}
}

// A plan streamed change by change summarizes exactly as the decoded
// whole, and the parts deploybot never reads are skipped.
func TestShowPlanStreamsChangesLikeShowJSON(t *testing.T) {
	t.Parallel()
	doc := `{"format_version": "1.2", "terraform_version": "1.5.7",
  "variables": {"db_password": {"value": "hunter2"}},
  "planned_values": {"root_module": {"resources": [{"address": "a.one", "values": {"v": "2"}}]}},
  "resource_changes": [
    {"address": "a.one", "change": {"actions": ["update"], "before": {"v": "1", "pw": "s3cret"}, "after": {"v": "2", "pw": "s3cret2"},
     "before_sensitive": {"pw": true}, "after_sensitive": {"pw": true}}},
    {"address": "a.same", "change": {"actions": ["no-op"], "before": {"v": "1"}, "after": {"v": "1"}}},
    {"address": "a.gone", "change": {"actions": ["delete"], "before": {"v": "1"}, "after": null}}
  ],
  "output_changes": {"out": {"actions": ["create"], "before": null, "after": "x"}},
  "prior_state": {"format_version": "1.0", "values": {"root_module": {}}},
  "configuration": {"root_module": {"variables": {"db_password": {"sensitive": true}}}},
  "relevant_attributes": [], "timestamp": "2026-12-01T00:00:00Z"}`
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "plan.json"), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	plan := filepath.Join(dir, "p.tfplan")
	if err := os.WriteFile(plan, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := &Runner{Bin: fakeTerraform(t, `cat `+filepath.Join(dir, "plan.json")), Dir: dir}
	whole, err := r.ShowJSON(t.Context(), plan)
	if err != nil {
		t.Fatal(err)
	}
	var s Summarizer
	var seen []string
	streamed, err := r.ShowPlan(t.Context(), plan, func(rc *tfjson.ResourceChange) {
		seen = append(seen, rc.Address)
		s.Add(rc)
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(seen, " ") != "a.one a.same a.gone" || streamed.ResourceChanges != nil {
		t.Fatalf("streamed %v; the plan kept %d changes", seen, len(streamed.ResourceChanges))
	}
	want, got := Summarize(whole).Text(), s.Diff(streamed).Text()
	if got != want || !strings.Contains(got, "~ a.one (update)\n    pw: (sensitive) → (sensitive)\n    v: \"1\" → \"2\"") || !strings.Contains(got, "+ output.out (create)") {
		t.Fatalf("streamed:\n%s\nwhole:\n%s", got, want)
	}
	if streamed.Config == nil || !streamed.Config.RootModule.Variables["db_password"].Sensitive || streamed.Variables["db_password"].Value != "hunter2" {
		t.Errorf("configuration or variables lost: %+v %+v", streamed.Config, streamed.Variables)
	}
}
