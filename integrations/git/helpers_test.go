package git

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// leakedCreds is where a globally configured "store" credential helper would
// write the token if this package ever let a helper see it.
var leakedCreds string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	home, err := os.MkdirTemp("", "git-test-home-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(home)
	leakedCreds = filepath.Join(home, "leaked-credentials")
	global := filepath.Join(home, "gitconfig")
	// A hostile-but-common global config: a credential store that would
	// persist any token it is handed, and a different identity than the
	// one the bot configures.
	cfg := fmt.Sprintf("[credential]\n\thelper = store --file=%s\n[user]\n\tname = Global User\n\temail = global@example.com\n[init]\n\tdefaultBranch = main\n", leakedCreds)
	if err := os.WriteFile(global, []byte(cfg), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	os.Setenv("HOME", home)
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	os.Setenv("GIT_CONFIG_GLOBAL", global)
	os.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	return m.Run()
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// gitT runs git as "someone else" would, outside the package under test.
func gitT(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s in %s: %v\n%s", strings.Join(args, " "), dir, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

const (
	devTF    = "environments/dev/ingestion-server.tf"
	prodTF   = "environments/prod/ingestion-server.tf"
	devTFOld = "module \"ingestion-server\" {\n  source    = \"../../modules/ingestion-server\"\n  image_tag = \"rel-2023.07.03.17.52.00\"\n}\n"
)

// newRemote creates a bare repository with a main branch holding a small
// infrastructure tree, and returns its path and main's commit.
func newRemote(t *testing.T) (string, string) {
	t.Helper()
	root := t.TempDir()
	seed := filepath.Join(root, "seed")
	gitT(t, root, "init", "-q", "-b", "main", seed)
	writeFile(t, filepath.Join(seed, devTF), devTFOld)
	writeFile(t, filepath.Join(seed, prodTF), "module \"ingestion-server\" {\n  data_refresh_cleared = false\n}\n")
	gitT(t, seed, "add", "-A")
	gitT(t, seed, "commit", "-q", "-m", "seed")
	bare := filepath.Join(root, "remote.git")
	gitT(t, root, "clone", "-q", "--bare", seed, bare)
	return bare, gitT(t, bare, "rev-parse", "refs/heads/main")
}

// pushAsSomeoneElse commits a change to branch in a separate clone and pushes
// it, returning the new commit.
func pushAsSomeoneElse(t *testing.T, remote, branch, file, content string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "other")
	gitT(t, filepath.Dir(dir), "clone", "-q", "-b", branch, remote, dir)
	writeFile(t, filepath.Join(dir, file), content)
	gitT(t, dir, "add", "-A")
	gitT(t, dir, "commit", "-q", "-m", "someone else")
	gitT(t, dir, "push", "-q", "origin", "HEAD:refs/heads/"+branch)
	return gitT(t, dir, "rev-parse", "HEAD")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func openT(t *testing.T, opts Options) *Repo {
	t.Helper()
	r, err := Open(testCtx(t), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func asGitError(t *testing.T, err error) *Error {
	t.Helper()
	var ge *Error
	if !errors.As(err, &ge) {
		t.Fatalf("error %v (%T) is not a *git.Error", err, err)
	}
	return ge
}
