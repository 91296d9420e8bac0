package git

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/deploybot/deploybot/internal/testtool"
)

// smartHTTP serves bare repositories under root through "git http-backend"
// behind basic auth, the way GitHub serves https remotes.
type smartHTTP struct {
	*httptest.Server
	token      atomic.Value // string: the only password accepted
	authorized atomic.Int64 // requests that carried the right token
	rejected   atomic.Int64 // requests answered 401
}

func newSmartHTTP(t *testing.T, root, token string) *smartHTTP {
	t.Helper()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		testtool.Missing(t, "git not in PATH")
	}
	execPath, err := exec.Command(gitPath, "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend")); err != nil {
		testtool.Missing(t, "git http-backend is not available: "+err.Error())
	}
	s := &smartHTTP{}
	s.token.Store(token)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, pass, ok := req.BasicAuth()
		if !ok || user != tokenUser || pass != s.token.Load().(string) {
			s.rejected.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "auth required", http.StatusUnauthorized)
			return
		}
		s.authorized.Add(1)
		h := &cgi.Handler{
			Path: gitPath,
			Args: []string{"http-backend"},
			Env: []string{
				"GIT_PROJECT_ROOT=" + root,
				"GIT_HTTP_EXPORT_ALL=1",
				"REMOTE_USER=" + user, // enables receive-pack
				"GIT_CONFIG_NOSYSTEM=1",
				"GIT_CONFIG_GLOBAL=/dev/null",
				// For the hook that plays a server echoing the secret.
				"ECHO_SECRET=" + pass,
			},
			InheritEnv: []string{"PATH"},
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(s.Close)
	return s
}

// gitWrapper returns a git that records its argv before running the real
// one, to check what this package puts on command lines.
func gitWrapper(t *testing.T) (path, argvLog string) {
	t.Helper()
	real, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	argvLog = filepath.Join(dir, "argv.log")
	path = filepath.Join(dir, "git")
	script := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '" + argvLog + "'\nexec '" + real + "' \"$@\"\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, argvLog
}

const secretToken = "ghs_s3cr3t-T0ken/with+chars=="

func TestHTTPSTokenOnlyThroughAskpass(t *testing.T) {
	ctx := testCtx(t)
	remote, mainSHA := newRemote(t)
	srv := newSmartHTTP(t, filepath.Dir(remote), secretToken)
	gitPath, argvLog := gitWrapper(t)
	cloneURL := srv.URL + "/" + filepath.Base(remote)
	var calls atomic.Int64
	wd := t.TempDir()

	r, err := Open(ctx, Options{
		CloneURL: cloneURL, BaseBranch: "main", Workdir: wd, Git: gitPath,
		Token: func() string { calls.Add(1); return secretToken },
	})
	if err != nil {
		t.Fatal(err)
	}
	if base, err := r.BaseCommit(ctx); err != nil || base != mainSHA {
		t.Fatalf("BaseCommit = %q, %v", base, err)
	}
	if got, err := r.RemoteBaseCommit(ctx); err != nil || got != mainSHA {
		t.Fatalf("RemoteBaseCommit = %q, %v", got, err)
	}
	w, err := r.Worktree(ctx, "run-1", "deploybot/run-1")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(w.Dir, devTF), "bumped\n")
	sha, err := w.Commit(ctx, "bump", devTF)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if got := gitT(t, remote, "rev-parse", "refs/heads/deploybot/run-1"); got != sha {
		t.Fatalf("pushed branch = %s, want %s", got, sha)
	}

	// The askpass path really carried the credentials: git first asked
	// anonymously, was refused, then came back with the token.
	if srv.rejected.Load() == 0 || srv.authorized.Load() == 0 {
		t.Fatalf("server saw %d rejected, %d authorized requests", srv.rejected.Load(), srv.authorized.Load())
	}
	// Asked once per command that talks to the remote (fetch in Open,
	// ls-remote of the base, ls-remote of the run branch before pushing,
	// push) and never for local ones, so a rotated token is always picked
	// up and local children never hold it.
	if got := calls.Load(); got != 4 {
		t.Errorf("Token called %d times, want 4", got)
	}

	askpassDir := r.askpassDir
	for _, p := range []string{askpassDir, r.askpass} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s mode %v, want 0700", p, fi.Mode().Perm())
		}
	}

	noToken := func(what, s string) {
		t.Helper()
		for _, form := range secretForms(secretToken) {
			if strings.Contains(s, form) {
				t.Errorf("token (as %q) found in %s:\n%s", form, what, s)
			}
		}
	}
	cfg, err := os.ReadFile(filepath.Join(r.Dir, "config"))
	if err != nil {
		t.Fatal(err)
	}
	noToken(".git/config", string(cfg))
	noToken("git config --list", gitT(t, w.Dir, "config", "--list", "--show-origin"))
	url := gitT(t, r.Dir, "remote", "get-url", "origin")
	noToken("remote URL", url)
	if url != cloneURL {
		t.Errorf("remote URL = %s, want %s", url, cloneURL)
	}
	script, _ := os.ReadFile(r.askpass)
	noToken("askpass script", string(script))
	argv, err := os.ReadFile(argvLog)
	if err != nil {
		t.Fatal(err)
	}
	noToken("argv", string(argv))
	if !strings.Contains(string(argv), "push -q origin refs/heads/deploybot/run-1:refs/heads/deploybot/run-1") {
		t.Errorf("argv log does not show the push:\n%s", argv)
	}
	// Nothing anywhere in the workdir, not even in packed objects' side files.
	filepath.WalkDir(wd, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil {
			noToken(p, string(b))
		}
		return nil
	})
	// The globally configured credential store never saw it.
	if b, err := os.ReadFile(leakedCreds); err == nil {
		t.Errorf("credential helper stored credentials: %q", b)
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(askpassDir); !os.IsNotExist(err) {
		t.Errorf("askpass dir survives Close: %v", err)
	}
}

func TestHTTPSWrongOrMissingToken(t *testing.T) {
	ctx := testCtx(t)
	remote, _ := newRemote(t)
	srv := newSmartHTTP(t, filepath.Dir(remote), secretToken)
	cloneURL := srv.URL + "/" + filepath.Base(remote)

	const wrong = "ghs_wrong-token-value"
	_, err := Open(ctx, Options{CloneURL: cloneURL, BaseBranch: "main", Workdir: t.TempDir(),
		Token: func() string { return wrong }})
	ge := asGitError(t, err)
	if ge.Args[0] != "fetch" || !strings.Contains(ge.Stderr, "Authentication failed") {
		t.Fatalf("wrong token: %v", err)
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), secretToken) {
		t.Fatalf("token in error: %v", err)
	}

	// Without a token git must fail at once instead of prompting.
	_, err = Open(ctx, Options{CloneURL: cloneURL, BaseBranch: "main", Workdir: t.TempDir()})
	if ge := asGitError(t, err); !strings.Contains(ge.Stderr, "terminal prompts disabled") {
		t.Fatalf("no token: %v", err)
	}
	if b, err := os.ReadFile(leakedCreds); err == nil {
		t.Errorf("credential helper stored credentials: %q", b)
	}
}

func TestHTTPSTokenRotation(t *testing.T) {
	ctx := testCtx(t)
	remote, _ := newRemote(t)
	srv := newSmartHTTP(t, filepath.Dir(remote), "token-1")
	var mu sync.Mutex
	current := "token-1"
	r := openT(t, Options{CloneURL: srv.URL + "/" + filepath.Base(remote), BaseBranch: "main", Workdir: t.TempDir(),
		Token: func() string { mu.Lock(); defer mu.Unlock(); return current }})

	srv.token.Store("token-2") // the old installation token expired
	if err := r.Fetch(ctx); err == nil {
		t.Fatal("fetch with an expired token succeeded")
	}
	mu.Lock()
	current = "token-2"
	mu.Unlock()
	if err := r.Fetch(ctx); err != nil {
		t.Fatalf("fetch after rotation: %v", err)
	}
}

func TestHTTPSRedactsTokenEchoedByRemote(t *testing.T) {
	ctx := testCtx(t)
	remote, _ := newRemote(t)
	// A server-side hook that repeats the credentials back, as a badly
	// behaved proxy or hook might.
	hook := filepath.Join(remote, "hooks", "pre-receive")
	writeFile(t, hook, "#!/bin/sh\necho \"rejected for $ECHO_SECRET (escaped: ghs_s3cr3t-T0ken%2Fwith%2Bchars%3D%3D)\" >&2\nexit 1\n")
	if err := os.Chmod(hook, 0o755); err != nil {
		t.Fatal(err)
	}
	srv := newSmartHTTP(t, filepath.Dir(remote), secretToken)
	r := openT(t, Options{CloneURL: srv.URL + "/" + filepath.Base(remote), BaseBranch: "main", Workdir: t.TempDir(),
		Token: func() string { return secretToken }})
	w, err := r.Worktree(ctx, "run-1", "deploybot/run-1")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(w.Dir, devTF), "x\n")
	if _, err := w.Commit(ctx, "x", devTF); err != nil {
		t.Fatal(err)
	}
	_, err = w.Push(ctx)
	ge := asGitError(t, err)
	msg := err.Error()
	if !strings.HasPrefix(msg, "git push ") || !strings.Contains(ge.Stderr, "pre-receive hook declined") {
		t.Fatalf("push error = %v", err)
	}
	if !strings.Contains(ge.Stderr, "rejected for "+Redacted+" (escaped: "+Redacted+")") {
		t.Fatalf("echoed token not redacted as expected: %q", ge.Stderr)
	}
	if strings.Contains(msg, "s3cr3t") {
		t.Fatalf("token in error: %v", err)
	}
}

func TestTokenTransportRules(t *testing.T) {
	ctx := testCtx(t)
	tok := func() string { return secretToken }
	for _, u := range []string{"http://example.com/infra.git", "http://10.0.0.1/infra.git"} {
		_, err := Open(ctx, Options{CloneURL: u, BaseBranch: "main", Workdir: t.TempDir(), Token: tok})
		if err == nil || !strings.Contains(err.Error(), "plain http") {
			t.Errorf("%s with token: %v", u, err)
		}
	}
	_, err := Open(ctx, Options{CloneURL: "https://x-access-token:" + secretToken + "@github.com/o/r.git",
		BaseBranch: "main", Workdir: t.TempDir()})
	if err == nil || strings.Contains(err.Error(), secretToken) {
		t.Errorf("URL with password: %v", err)
	}
	for u, want := range map[string]bool{
		"https://github.com/o/r.git": true,
		"http://127.0.0.1:8080/r":    true,
		"http://localhost/r":         true,
		"http://[::1]/r":             true,
		"file:///srv/r.git":          false,
		"/srv/r.git":                 false,
		"git@github.com:o/r.git":     false,
	} {
		if got, err := tokenAllowed(u, true); err != nil || got != want {
			t.Errorf("tokenAllowed(%s) = %v, %v; want %v", u, got, err, want)
		}
	}
}

func TestRedactAndTail(t *testing.T) {
	s := redact("a "+secretToken+" b ghs_s3cr3t-T0ken%2Fwith%2Bchars%3D%3D c x-access-token:ghs_s3cr3t-T0ken%2fwith%2bchars%3d%3d@h", []string{"", secretToken})
	if s != "a "+Redacted+" b "+Redacted+" c x-access-token:"+Redacted+"@h" {
		t.Errorf("redact = %q", s)
	}
	long := strings.Repeat("progress\r", 50) + strings.Repeat("line\n", 30) + "fatal: the cause\n"
	got := tail(long)
	if !strings.HasSuffix(got, "fatal: the cause") || strings.Count(got, "\n") != tailLines-1 {
		t.Errorf("tail = %q", got)
	}
	if got := tail(strings.Repeat("é", 2000)); len(got) > tailBytes+len("…") || !strings.HasPrefix(got, "…é") {
		t.Errorf("tail cut badly: %q…", got[:10])
	}
}

// Cancelling must stop git's helpers too (git-remote-http here), or they
// would keep the connection, and any locks, after the call returned.
func TestCancelStopsInFlightCommand(t *testing.T) {
	started := make(chan struct{})
	disconnected := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		once.Do(func() {
			close(started)
			<-req.Context().Done() // the client went away
			close(disconnected)
		})
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() {
		_, err := Open(ctx, Options{CloneURL: srv.URL + "/infra.git", BaseBranch: "main", Workdir: t.TempDir()})
		done <- err
	}()
	wait := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-testCtx(t).Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
	wait("the fetch to reach the server", started)
	cancel()
	var err error
	wait("Open to return", func() <-chan struct{} {
		ch := make(chan struct{})
		go func() { err = <-done; close(ch) }()
		return ch
	}())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Open = %v, want context.Canceled", err)
	}
	if ge := asGitError(t, err); ge.Args[0] != "fetch" {
		t.Fatalf("error = %v", err)
	}
	wait("git-remote-http to drop the connection", disconnected)
}
