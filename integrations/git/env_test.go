package git

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/deploybot/deploybot/internal/testtool"
)

// envRecordingGit returns a git that appends its environment to a log
// before running the real git, so the test sees exactly what this package
// hands every git process.
func envRecordingGit(t *testing.T) (path, envLog string) {
	t.Helper()
	dir := t.TempDir()
	envLog = filepath.Join(dir, "env.log")
	path = filepath.Join(dir, "git")
	gitPath := gitT(t, dir, "--exec-path") + "/git"
	script := "#!/bin/sh\n{ env; echo '----'; } >> '" + envLog + "'\nexec '" + gitPath + "' \"$@\"\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, envLog
}

// envHook installs a hook that writes its environment to out.
func envHook(t *testing.T, hooksDir, name, out string) {
	t.Helper()
	p := filepath.Join(hooksDir, name)
	writeFile(t, p, "#!/bin/sh\nenv >> '"+out+"'\ncat >/dev/null 2>&1 || true\nexit 0\n")
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func readIfExists(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func TestGitChildEnvironmentIsAllowListed(t *testing.T) {
	testtool.SetForbiddenEnv(t)
	t.Setenv("LANG", "C.UTF-8") // baseline: must still arrive
	ctx := testCtx(t)
	remote, _ := newRemote(t)
	out := t.TempDir()
	preReceive, update := filepath.Join(out, "pre-receive.env"), filepath.Join(out, "update.env")
	envHook(t, filepath.Join(remote, "hooks"), "pre-receive", preReceive)
	envHook(t, filepath.Join(remote, "hooks"), "update", update)
	gitPath, envLog := envRecordingGit(t)

	r := openT(t, Options{CloneURL: remote, BaseBranch: "main", Workdir: t.TempDir(), Git: gitPath})
	w, err := r.Worktree(ctx, "run-1", "deploybot/run-1")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(w.Dir, devTF), "bumped\n")
	if _, err := w.Commit(ctx, "bump", devTF); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Push(ctx); err != nil {
		t.Fatal(err)
	}

	// A local push runs receive-pack, and so the remote's hooks, with the
	// environment of our git: they are where a leak would surface.
	for what, p := range map[string]string{"pre-receive hook": preReceive, "update hook": update, "git processes": envLog} {
		env := readIfExists(t, p)
		if !strings.Contains(env, "PATH=") || !strings.Contains(env, "LANG=C.UTF-8") {
			t.Fatalf("%s: did not run or lost the baseline (PATH, LANG):\n%s", what, env)
		}
		testtool.AssertNoForbidden(t, what, env)
	}
}

func TestHTTPSPushTokenOnlyThroughAskpass(t *testing.T) {
	testtool.SetForbiddenEnv(t)
	ctx := testCtx(t)
	remote, _ := newRemote(t)
	out := t.TempDir()
	serverHook := filepath.Join(out, "server-pre-receive.env")
	envHook(t, filepath.Join(remote, "hooks"), "pre-receive", serverHook)

	// An operator's global hooksPath: client-side hooks would run with the
	// environment of the git that calls them, token included, so the bot
	// must not run them at all.
	clientHooks := filepath.Join(out, "client-hooks")
	for _, h := range []string{"pre-push", "reference-transaction", "post-commit", "pre-commit"} {
		envHook(t, clientHooks, h, filepath.Join(out, h+".env"))
	}
	global := filepath.Join(out, "gitconfig")
	writeFile(t, global, "[credential]\n\thelper = store --file="+leakedCreds+"\n[core]\n\thooksPath = "+clientHooks+"\n")
	t.Setenv("GIT_CONFIG_GLOBAL", global)

	srv := newSmartHTTP(t, filepath.Dir(remote), secretToken)
	gitPath, envLog := envRecordingGit(t)
	var calls atomic.Int64
	r := openT(t, Options{CloneURL: srv.URL + "/" + filepath.Base(remote), BaseBranch: "main", Workdir: t.TempDir(), Git: gitPath,
		Token: func() string { calls.Add(1); return secretToken }})
	w, err := r.Worktree(ctx, "run-1", "deploybot/run-1")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(w.Dir, devTF), "bumped\n")
	if _, err := w.Commit(ctx, "bump", devTF); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if srv.authorized.Load() == 0 || calls.Load() == 0 {
		t.Fatalf("the token never reached the server (authorized %d, Token calls %d)", srv.authorized.Load(), calls.Load())
	}

	// The server's hook ran (the push arrived) and saw nothing of ours.
	// ECHO_SECRET is the test server's own variable (it plays a server that
	// knows the password), so it is left out of the comparison.
	var serverEnv []string
	for _, l := range strings.Split(readIfExists(t, serverHook), "\n") {
		if !strings.HasPrefix(l, "ECHO_SECRET=") {
			serverEnv = append(serverEnv, l)
		}
	}
	if len(serverEnv) < 2 {
		t.Fatal("server-side pre-receive hook did not run")
	}
	testtool.AssertNoForbidden(t, "server hook", strings.Join(serverEnv, "\n"))
	if strings.Contains(strings.Join(serverEnv, "\n"), secretToken) {
		t.Error("token in the server hook's environment")
	}
	for _, h := range []string{"pre-push", "reference-transaction", "post-commit", "pre-commit"} {
		if env := readIfExists(t, filepath.Join(out, h+".env")); env != "" {
			t.Errorf("client-side %s hook ran; its environment:\n%s", h, env)
		}
	}

	// Each git process: network commands carry the token for the askpass
	// helper (DEPLOYBOT_GIT_TOKEN with GIT_ASKPASS) and nothing else of
	// ours; local commands carry no token at all.
	procs := strings.Split(readIfExists(t, envLog), "----\n")
	var withToken, without int
	for _, env := range procs {
		if strings.TrimSpace(env) == "" {
			continue
		}
		testtool.AssertNoForbidden(t, "git process", env)
		if !strings.Contains(env, secretToken) {
			without++
			continue
		}
		withToken++
		for _, l := range strings.Split(env, "\n") {
			if strings.Contains(l, secretToken) && l != tokenEnv+"="+secretToken {
				t.Errorf("token outside %s: %q", tokenEnv, l)
			}
		}
		if !strings.Contains(env, "GIT_ASKPASS="+r.askpass+"\n") {
			t.Errorf("token given without the askpass helper:\n%s", env)
		}
	}
	if withToken == 0 || without == 0 {
		t.Errorf("%d git processes with the token, %d without: want both network and local commands", withToken, without)
	}
	if int64(withToken) != calls.Load() {
		t.Errorf("%d git processes got the token, Token was asked %d times", withToken, calls.Load())
	}
	cfg := readIfExists(t, filepath.Join(r.Dir, "config"))
	if strings.Contains(cfg, secretToken) {
		t.Errorf("token in the clone's config:\n%s", cfg)
	}
	if b := readIfExists(t, leakedCreds); b != "" {
		t.Errorf("credential helper stored credentials: %q", b)
	}
}
