package infra

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/internal/testtool"
	"github.com/deploybot/deploybot/steps"
)

func gitT(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// infraRepo makes a bare infrastructure repository holding main.tf in
// environments/dev, and returns its path.
func infraRepo(t *testing.T, mainTF string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		testtool.Missing(t, "git not in PATH")
	}
	root := t.TempDir()
	seed := filepath.Join(root, "seed")
	gitT(t, root, "init", "-q", "-b", "main", seed)
	if err := os.MkdirAll(filepath.Join(seed, "environments", "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(seed, "environments", "dev", "main.tf"), []byte(mainTF), 0o644); err != nil {
		t.Fatal(err)
	}
	gitT(t, seed, "add", "-A")
	gitT(t, seed, "commit", "-q", "-m", "seed")
	bare := filepath.Join(root, "remote.git")
	gitT(t, root, "clone", "-q", "--bare", seed, bare)
	return bare
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const (
	configuredSecret = "xoxb-configured-slack-secret-1234"
	awsSecret        = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	sensitiveValue   = "hunter2-sensitive-db-password"
)

// leakyTF prints, during a real apply, a configured secret, a credential
// Terraform inherits (AWS_SECRET_ACCESS_KEY through terraform_env), a value
// the configuration marks sensitive and the absolute path of the checkout;
// its plan shows that path too; then a second resource fails with an error
// naming the path and repeating the secrets.
const leakyTF = `
variable "db_password" {
  type      = string
  sensitive = true
  default   = "` + sensitiveValue + `"
}

resource "terraform_data" "ok" {
  input = abspath(path.module)
  provisioner "local-exec" {
    command = "echo using ` + configuredSecret + ` $AWS_SECRET_ACCESS_KEY ${nonsensitive(var.db_password)} in ${abspath(path.module)}"
  }
}

resource "terraform_data" "fail" {
  depends_on = [terraform_data.ok]
  provisioner "local-exec" {
    command = "echo ` + configuredSecret + ` $AWS_SECRET_ACCESS_KEY ${nonsensitive(var.db_password)}; cat ${abspath(path.module)}/missing.txt"
  }
}
`

func TestOutputForSlackHasNoHostPathsOrSecrets(t *testing.T) {
	// t.Setenv: not parallel.
	t.Setenv("AWS_SECRET_ACCESS_KEY", awsSecret)
	bin := testtool.Terraform(t)
	remote := infraRepo(t, leakyTF)
	workdir := t.TempDir()
	in := New(&config.Infra{CloneURL: remote, BaseBranch: "main", Workdir: workdir, TerraformBin: bin, TerraformEnv: config.DefaultTerraformEnv}, nil)
	in.Secrets = []string{configuredSecret}
	t.Cleanup(func() { in.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	tree, err := in.Tree(ctx, &steps.Run{ID: "run-1", Service: "ingestion-server", Version: "rel-1"})
	if err != nil {
		t.Fatal(err)
	}
	env := &config.Environment{Name: "dev", Dir: "environments/dev"}
	plan, err := tree.Plan(ctx, env, 3000)
	if err != nil {
		t.Fatal(err)
	}
	var progress syncBuf
	applyErr := tree.Apply(ctx, env, &progress)
	if applyErr == nil {
		t.Fatal("apply succeeded; the failing provisioner should have failed it")
	}

	real, _ := filepath.EvalSymlinks(workdir)
	for what, text := range map[string]string{
		"plan (rendered)": plan.Rendered, "plan (full)": plan.Full,
		"apply progress": progress.String(), "apply error": applyErr.Error(),
	} {
		for _, leak := range []string{workdir, real, configuredSecret, awsSecret, sensitiveValue} {
			if strings.Contains(text, leak) {
				t.Errorf("%s contains %q:\n%s", what, leak, text)
			}
		}
	}
	// What replaced them is still useful to a reader.
	if !strings.Contains(plan.Full, "<workdir>/runs/run-1/environments/dev") {
		t.Errorf("plan lost the relative path:\n%s", plan.Full)
	}
	if !strings.Contains(progress.String(), "using [redacted] [redacted] [redacted] in <workdir>/runs/run-1/environments/dev") {
		t.Errorf("apply progress not masked as expected:\n%s", progress.String())
	}
	for _, want := range []string{"<workdir>/runs/run-1/environments/dev/missing.txt", "terraform apply in <workdir>/"} {
		if !strings.Contains(applyErr.Error(), want) {
			t.Errorf("apply error lacks %q:\n%v", want, applyErr)
		}
	}
}

func TestMaskerPathsAndSecretForms(t *testing.T) {
	t.Setenv("SENTRY_DSN", "https://abc123@o1.ingest.sentry.io/42")
	t.Setenv("AWS_REGION", "eu-west-1")
	in := New(&config.Infra{Workdir: "/srv/deploybot/work", TerraformEnv: config.DefaultTerraformEnv}, nil)
	in.Secrets = []string{"-----BEGIN KEY-----\nMIIEowIBAAKCAQEAsecretline\n-----END KEY-----\n"}
	m := in.masker()
	for in, want := range map[string]string{
		"/srv/deploybot/work/runs/r1/main.tf":            "<workdir>/runs/r1/main.tf",
		"/srv/deploybot/work2/x and /srv/deploybot/work": "/srv/deploybot/work2/x and <workdir>",
		"key line MIIEowIBAAKCAQEAsecretline seen":       "key line [redacted] seen",
		"dsn https://abc123@o1.ingest.sentry.io/42":      "dsn [redacted]",
		"region eu-west-1 stays readable":                "region eu-west-1 stays readable",
	} {
		if got := m.String(in); got != want {
			t.Errorf("mask(%q) = %q, want %q", in, got, want)
		}
	}
}
