package terraform

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
