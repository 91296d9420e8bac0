// Package testtool finds the tools tests run for real (the pinned
// Terraform) and decides what a missing one means: a failure in CI
// (CI=true), a skip that says how to fix it elsewhere. Test code only.
package testtool

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Missing fails tb in CI and skips it elsewhere, saying why.
func Missing(tb testing.TB, why string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatal(why)
	}
	tb.Skip(why + " (CI=true makes this a failure)")
}

// WantTerraform is the release the example infrastructure pins; other
// releases write incompatible state.
const WantTerraform = "Terraform v1.5.7"

var (
	once    sync.Once
	version string
	runErr  error
)

// Terraform returns the pinned Terraform: $DEPLOYBOT_TERRAFORM, else
// <module root>/bin/terraform. It never falls back to PATH, where another
// release may live.
func Terraform(tb testing.TB) string {
	tb.Helper()
	bin := os.Getenv("DEPLOYBOT_TERRAFORM")
	if bin == "" {
		bin = filepath.Join(ModuleRoot(tb), "bin", "terraform")
	}
	once.Do(func() {
		var out []byte
		out, runErr = exec.Command(bin, "version").Output()
		version, _, _ = strings.Cut(string(out), "\n")
	})
	if runErr != nil {
		Missing(tb, "Terraform 1.5.7 not found at "+bin+" (set DEPLOYBOT_TERRAFORM or run scripts/install-terraform.sh)")
	}
	// Another release is there: that is a mistake to fix, never a skip.
	if strings.TrimSpace(version) != WantTerraform {
		tb.Fatalf("%s is %q, tests need %q: run scripts/install-terraform.sh", bin, version, WantTerraform)
	}
	return bin
}

// ModuleRoot is the directory holding go.mod, found from the test's
// working directory (its package directory).
func ModuleRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// forbiddenEnv are deploybot's own credentials and settings, and an
// unlisted secret: no child process (git, Terraform, what they start) may
// see any of them.
var forbiddenEnv = map[string]string{
	"SLACK_BOT_TOKEN":        "forbidden-slack-bot-token",
	"SLACK_APP_TOKEN":        "forbidden-slack-app-token",
	"SENTRY_DSN":             "https://forbidden-dsn@sentry.example/1",
	"SENTRY_AUTH_TOKEN":      "forbidden-sentry-auth",
	"AIRFLOW_PASSWORD":       "forbidden-airflow-password",
	"GITHUB_TOKEN":           "forbidden-github-token",
	"GITHUB_APP_PRIVATE_KEY": "forbidden-github-app-private-key",
	"DEPLOYBOT_X":            "forbidden-deploybot-x",
	"SOME_OTHER_SECRET":      "forbidden-unlisted",
}

// SetForbiddenEnv sets them in the test process (t.Setenv: not parallel).
func SetForbiddenEnv(t *testing.T) {
	t.Helper()
	for k, v := range forbiddenEnv {
		t.Setenv(k, v)
	}
}

// AssertNoForbidden fails t for each of them, by name or value, in a
// child's captured environment.
func AssertNoForbidden(t *testing.T, what, env string) {
	t.Helper()
	for k, v := range forbiddenEnv {
		if strings.Contains(env, k+"=") || strings.Contains(env, v) {
			t.Errorf("%s: %s reached it:\n%s", what, k, env)
		}
	}
}
