package git

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestOpenClonesLocalPathAndFileURL(t *testing.T) {
	remote, mainSHA := newRemote(t)
	for name, cloneURL := range map[string]string{
		"path":     remote,
		"file URL": "file://" + remote,
	} {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			wd := t.TempDir()
			r := openT(t, Options{CloneURL: cloneURL, BaseBranch: "main", Workdir: wd})
			if want, _ := filepath.EvalSymlinks(wd); r.Dir != filepath.Join(want, "repo") {
				t.Errorf("Dir = %s, want %s/repo", r.Dir, want)
			}
			if got := gitT(t, r.Dir, "rev-parse", "--is-bare-repository"); got != "true" {
				t.Errorf("clone is not bare: %s", got)
			}
			if got := gitT(t, r.Dir, "remote", "get-url", "origin"); got != cloneURL {
				t.Errorf("origin = %s, want %s", got, cloneURL)
			}
			base, err := r.BaseCommit(ctx)
			if err != nil || base != mainSHA {
				t.Fatalf("BaseCommit = %q, %v; want %s", base, err, mainSHA)
			}
			remoteBase, err := r.RemoteBaseCommit(ctx)
			if err != nil || remoteBase != mainSHA {
				t.Fatalf("RemoteBaseCommit = %q, %v; want %s", remoteBase, err, mainSHA)
			}
		})
	}
}

func TestWorktreeCommitPush(t *testing.T) {
	ctx := testCtx(t)
	remote, mainSHA := newRemote(t)
	r := openT(t, Options{CloneURL: remote, BaseBranch: "main", Workdir: t.TempDir(),
		AuthorName: "Deploy Bot", AuthorEmail: "bot@deploy.example"})

	w, err := r.Worktree(ctx, "run-1", "deploybot/run-1")
	if err != nil {
		t.Fatal(err)
	}
	if w.Dir != filepath.Join(filepath.Dir(r.Dir), "runs", "run-1") || w.Branch != "deploybot/run-1" {
		t.Fatalf("worktree = %+v", w)
	}
	if got := gitT(t, w.Dir, "symbolic-ref", "HEAD"); got != "refs/heads/deploybot/run-1" {
		t.Fatalf("HEAD = %s", got)
	}
	if got := gitT(t, w.Dir, "for-each-ref", "--format=%(upstream)", "refs/heads/deploybot/run-1"); got != "" {
		t.Errorf("run branch tracks %q; want no upstream", got)
	}
	if head, err := w.Head(ctx); err != nil || head != mainSHA {
		t.Fatalf("Head = %q, %v; want %s", head, err, mainSHA)
	}
	if dirty, err := w.Dirty(ctx); err != nil || dirty {
		t.Fatalf("fresh worktree Dirty = %v, %v", dirty, err)
	}

	newTF := strings.Replace(devTFOld, "rel-2023.07.03.17.52.00", "rel-2024.09.09.05.40.20", 1)
	writeFile(t, filepath.Join(w.Dir, devTF), newTF)
	writeFile(t, filepath.Join(w.Dir, "environments/dev/.terraform.lock.hcl"), "stray\n")
	if dirty, err := w.Dirty(ctx); err != nil || !dirty {
		t.Fatalf("edited worktree Dirty = %v, %v", dirty, err)
	}
	sha, err := w.Commit(ctx, "Bump ingestion-server dev to rel-2024.09.09.05.40.20\n\n# not a comment", devTF)
	if err != nil {
		t.Fatal(err)
	}
	if sha == mainSHA {
		t.Fatal("Commit did not create a commit")
	}
	if got := gitT(t, w.Dir, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%B"); got != "Deploy Bot <bot@deploy.example>|Deploy Bot <bot@deploy.example>|Bump ingestion-server dev to rel-2024.09.09.05.40.20\n\n# not a comment" {
		t.Errorf("commit = %q", got)
	}
	if got := gitT(t, w.Dir, "show", "--name-only", "--format=", "HEAD"); got != devTF {
		t.Errorf("committed files = %q, want only %s", got, devTF)
	}
	// The identity must not have been written to any config.
	if cfg := gitT(t, w.Dir, "config", "--list"); strings.Contains(cfg, "bot@deploy.example") {
		t.Errorf("identity written to config:\n%s", cfg)
	}
	// Only the stray untracked file is left.
	if dirty, err := w.Dirty(ctx); err != nil || !dirty {
		t.Fatalf("Dirty with stray file = %v, %v", dirty, err)
	}

	// Nothing (new) to commit: current HEAD, no error.
	again, err := w.Commit(ctx, "again", devTF)
	if err != nil || again != sha {
		t.Fatalf("empty Commit = %q, %v; want %s", again, err, sha)
	}

	if _, err := w.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if got := gitT(t, remote, "rev-parse", "refs/heads/deploybot/run-1"); got != sha {
		t.Fatalf("remote branch = %s, want %s", got, sha)
	}
	if got := gitT(t, remote, "rev-parse", "refs/heads/main"); got != mainSHA {
		t.Fatalf("remote main moved to %s", got)
	}
	if got := gitT(t, remote, "cat-file", "blob", "refs/heads/deploybot/run-1:"+devTF); got+"\n" != newTF {
		t.Errorf("remote file = %q", got)
	}
	pushed, err := w.ShowFile(ctx, "origin/deploybot/run-1", devTF)
	if err != nil || string(pushed) != newTF {
		t.Fatalf("ShowFile(origin/…) = %q, %v", pushed, err)
	}
	if old, err := w.ShowFile(ctx, mainSHA, "./"+devTF); err != nil || string(old) != devTFOld {
		t.Fatalf("ShowFile(base) = %q, %v", old, err)
	}

	// Commit everything (no paths): the deletion and the stray file go in.
	if err := os.Remove(filepath.Join(w.Dir, prodTF)); err != nil {
		t.Fatal(err)
	}
	sha2, err := w.Commit(ctx, "everything")
	if err != nil {
		t.Fatal(err)
	}
	if got := gitT(t, w.Dir, "show", "--name-status", "--format=", "HEAD"); got != "A\tenvironments/dev/.terraform.lock.hcl\nD\t"+prodTF {
		t.Errorf("second commit = %q", got)
	}
	if dirty, err := w.Dirty(ctx); err != nil || dirty {
		t.Fatalf("Dirty after full commit = %v, %v", dirty, err)
	}
	// Second push: the lease on our own previous push holds.
	if _, err := w.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if got := gitT(t, remote, "rev-parse", "refs/heads/deploybot/run-1"); got != sha2 {
		t.Fatalf("remote branch = %s, want %s", got, sha2)
	}

	// The run may rewrite its own branch (force with lease)...
	gitT(t, w.Dir, "reset", "-q", "--hard", mainSHA)
	writeFile(t, filepath.Join(w.Dir, devTF), newTF)
	sha3, err := w.Commit(ctx, "rebuilt", devTF)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Push(ctx); err != nil {
		t.Fatalf("rewriting own branch: %v", err)
	}
	if got := gitT(t, remote, "rev-parse", "refs/heads/deploybot/run-1"); got != sha3 {
		t.Fatalf("remote branch = %s, want %s", got, sha3)
	}

	// ...but never overwrite what someone else pushed to it.
	theirs := pushAsSomeoneElse(t, remote, "deploybot/run-1", "NOTES", "reviewer fixup\n")
	writeFile(t, filepath.Join(w.Dir, devTF), devTFOld+"# more\n")
	if _, err := w.Commit(ctx, "more", devTF); err != nil {
		t.Fatal(err)
	}
	_, err = w.Push(ctx)
	var nff *NonFastForwardError
	if !errors.As(err, &nff) || nff.Remote != theirs || !strings.Contains(err.Error(), theirs) || !strings.Contains(err.Error(), "non-fast-forward") {
		t.Fatalf("push over someone else's commit: %v", err)
	}
	if got := gitT(t, remote, "rev-parse", "refs/heads/deploybot/run-1"); got != theirs {
		t.Fatalf("their commit was overwritten: remote = %s, want %s", got, theirs)
	}
}

func TestWorktreesAreIsolatedAndConcurrent(t *testing.T) {
	ctx := testCtx(t)
	remote, mainSHA := newRemote(t)
	r := openT(t, Options{CloneURL: "file://" + remote, BaseBranch: "main", Workdir: t.TempDir()})

	const runs = 6
	var wg sync.WaitGroup
	errs := make(chan error, runs)
	shas := make([]string, runs)
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				w, err := r.Worktree(ctx, fmt.Sprintf("run-%d", i), fmt.Sprintf("deploybot/run-%d", i))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(w.Dir, devTF), []byte(fmt.Sprintf("# run %d\n", i)), 0o644); err != nil {
					return err
				}
				if shas[i], err = w.Commit(ctx, fmt.Sprintf("run %d", i), devTF); err != nil {
					return err
				}
				_, err = w.Push(ctx)
				return err
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range runs {
		branch := fmt.Sprintf("refs/heads/deploybot/run-%d", i)
		if got := gitT(t, remote, "rev-parse", branch); got != shas[i] {
			t.Errorf("%s = %s, want %s", branch, got, shas[i])
		}
		if got := gitT(t, remote, "cat-file", "blob", branch+":"+devTF); got != fmt.Sprintf("# run %d", i) {
			t.Errorf("%s content = %q: runs leaked into each other", branch, got)
		}
		if got := gitT(t, remote, "rev-parse", branch+"^"); got != mainSHA {
			t.Errorf("%s parent = %s, want base %s", branch, got, mainSHA)
		}
	}

	// Same branch in two runs is git's "already checked out" error.
	if _, err := r.Worktree(ctx, "run-x", "deploybot/run-0"); err == nil {
		t.Fatal("second worktree on the same branch succeeded")
	} else if ge := asGitError(t, err); ge.Args[0] != "worktree" || ge.Stderr == "" {
		t.Fatalf("unexpected error %v", err)
	}
}

func TestReuseAfterCrash(t *testing.T) {
	ctx := testCtx(t)
	remote, _ := newRemote(t)
	wd := t.TempDir()
	opts := Options{CloneURL: remote, BaseBranch: "main", Workdir: wd}

	r1, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	w1, err := r1.Worktree(ctx, "run-7", "deploybot/run-7")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(w1.Dir, devTF), "committed\n")
	committed, err := w1.Commit(ctx, "step 1", devTF)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(w1.Dir, prodTF), "uncommitted\n")
	// "Crash": r1 is abandoned without Close; main moves meanwhile.
	moved := pushAsSomeoneElse(t, remote, "main", "README", "moved\n")

	r2 := openT(t, opts)
	if r2.Dir != r1.Dir {
		t.Fatalf("reopened at %s, was %s", r2.Dir, r1.Dir)
	}
	if base, err := r2.BaseCommit(ctx); err != nil || base != moved {
		t.Fatalf("BaseCommit after reopen = %q, %v; want %s", base, err, moved)
	}
	w2, err := r2.Worktree(ctx, "run-7", "deploybot/run-7")
	if err != nil {
		t.Fatal(err)
	}
	if w2.Dir != w1.Dir {
		t.Fatalf("worktree moved: %s vs %s", w2.Dir, w1.Dir)
	}
	if head, _ := w2.Head(ctx); head != committed {
		t.Fatalf("reused worktree HEAD = %s, want %s (reuse as is, not rebuilt on new base)", head, committed)
	}
	if b, _ := os.ReadFile(filepath.Join(w2.Dir, prodTF)); string(b) != "uncommitted\n" {
		t.Fatalf("uncommitted edit lost: %q", b)
	}
	if _, err := r2.Worktree(ctx, "run-7", "deploybot/other"); err == nil || !strings.Contains(err.Error(), "deploybot/run-7") {
		t.Fatalf("Worktree with a different branch for the same run: %v", err)
	}

	t.Run("directory deleted", func(t *testing.T) {
		if err := os.RemoveAll(w2.Dir); err != nil {
			t.Fatal(err)
		}
		w, err := r2.Worktree(ctx, "run-7", "deploybot/run-7")
		if err != nil {
			t.Fatal(err)
		}
		if head, _ := w.Head(ctx); head != committed {
			t.Fatalf("HEAD = %s, want the branch's commit %s", head, committed)
		}
		if b, _ := os.ReadFile(filepath.Join(w.Dir, devTF)); string(b) != "committed\n" {
			t.Fatalf("checkout = %q", b)
		}
	})

	t.Run("interrupted worktree add", func(t *testing.T) {
		w, err := r2.Worktree(ctx, "run-8", "deploybot/run-8")
		if err != nil {
			t.Fatal(err)
		}
		// What "git worktree add" leaves when killed mid-checkout: the
		// "initializing" lock and a partial checkout.
		admin := gitT(t, w.Dir, "rev-parse", "--absolute-git-dir")
		writeFile(t, filepath.Join(admin, "locked"), "initializing")
		if err := os.RemoveAll(filepath.Join(w.Dir, "environments")); err != nil {
			t.Fatal(err)
		}
		w, err = r2.Worktree(ctx, "run-8", "deploybot/run-8")
		if err != nil {
			t.Fatal(err)
		}
		if head, _ := w.Head(ctx); head != moved {
			t.Fatalf("HEAD = %s, want %s", head, moved)
		}
		if dirty, err := w.Dirty(ctx); err != nil || dirty {
			t.Fatalf("recreated worktree Dirty = %v, %v", dirty, err)
		}
		if _, err := os.Stat(filepath.Join(admin, "locked")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("lock still there: %v", err)
		}
	})

	t.Run("half-initialized clone", func(t *testing.T) {
		wd := t.TempDir()
		// A crash right after "git init", before the remote was set.
		gitT(t, wd, "init", "-q", "--bare", filepath.Join(wd, "repo"))
		r := openT(t, Options{CloneURL: remote, BaseBranch: "main", Workdir: wd})
		if base, err := r.BaseCommit(ctx); err != nil || base != moved {
			t.Fatalf("BaseCommit = %q, %v", base, err)
		}
		// A crash between setting the URL and the fetch refspec.
		gitT(t, r.Dir, "config", "--unset-all", "remote.origin.fetch")
		r = openT(t, Options{CloneURL: remote, BaseBranch: "main", Workdir: wd})
		if got := gitT(t, r.Dir, "config", "--get-all", "remote.origin.fetch"); got != "+refs/heads/*:refs/remotes/origin/*" {
			t.Fatalf("fetch refspec = %q", got)
		}
		// The configured URL wins over a stale one.
		gitT(t, r.Dir, "remote", "set-url", "origin", "/nonexistent")
		r = openT(t, Options{CloneURL: "file://" + remote, BaseBranch: "main", Workdir: wd})
		if got := gitT(t, r.Dir, "remote", "get-url", "origin"); got != "file://"+remote {
			t.Fatalf("origin = %s", got)
		}
	})
}

func TestRemoteBaseCommitSeesOtherPushes(t *testing.T) {
	ctx := testCtx(t)
	remote, mainSHA := newRemote(t)
	r := openT(t, Options{CloneURL: remote, BaseBranch: "main", Workdir: t.TempDir()})
	if got, err := r.RemoteBaseCommit(ctx); err != nil || got != mainSHA {
		t.Fatalf("RemoteBaseCommit = %q, %v", got, err)
	}
	// A branch whose name ends like the base must not be mistaken for it.
	pushAsSomeoneElse(t, remote, "main", "x", "x\n")
	gitT(t, remote, "branch", "feature/refs/heads/main", "main")
	gitT(t, remote, "update-ref", "refs/heads/main", mainSHA)

	moved := pushAsSomeoneElse(t, remote, "main", "README", "someone else was here\n")
	if got, err := r.RemoteBaseCommit(ctx); err != nil || got != moved {
		t.Fatalf("RemoteBaseCommit after push = %q, %v; want %s", got, err, moved)
	}
	if got, err := r.BaseCommit(ctx); err != nil || got != mainSHA {
		t.Fatalf("BaseCommit before Fetch = %q, %v; want the fetched %s", got, err, mainSHA)
	}
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := r.BaseCommit(ctx); err != nil || got != moved {
		t.Fatalf("BaseCommit after Fetch = %q, %v; want %s", got, err, moved)
	}

	gitT(t, remote, "branch", "-m", "main", "trunk")
	if _, err := r.RemoteBaseCommit(ctx); err == nil || !strings.Contains(err.Error(), `"main" not found`) {
		t.Fatalf("RemoteBaseCommit of a deleted branch: %v", err)
	}
}

func TestRemoveWorktree(t *testing.T) {
	ctx := testCtx(t)
	remote, _ := newRemote(t)
	r := openT(t, Options{CloneURL: remote, BaseBranch: "main", Workdir: t.TempDir()})
	w, err := r.Worktree(ctx, "run-1", "deploybot/run-1")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(w.Dir, devTF), "uncommitted\n")
	for range 2 { // idempotent
		if err := r.RemoveWorktree(ctx, "run-1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(w.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("worktree dir still there: %v", err)
	}
	if list := gitT(t, r.Dir, "worktree", "list", "--porcelain"); strings.Contains(list, "run-1") {
		t.Fatalf("still registered:\n%s", list)
	}
	gitT(t, r.Dir, "rev-parse", "--verify", "refs/heads/deploybot/run-1") // branch kept

	// A leftover that git does not know about blocks Worktree until removed.
	writeFile(t, filepath.Join(filepath.Dir(w.Dir), "run-2", "junk"), "x")
	if _, err := r.Worktree(ctx, "run-2", "deploybot/run-2"); err == nil || !strings.Contains(err.Error(), "not a worktree") {
		t.Fatalf("Worktree over a foreign directory: %v", err)
	}
	if err := r.RemoveWorktree(ctx, "run-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Worktree(ctx, "run-2", "deploybot/run-2"); err != nil {
		t.Fatal(err)
	}
	// The kept branch is checked out again, not recreated.
	if _, err := r.Worktree(ctx, "run-1", "deploybot/run-1"); err != nil {
		t.Fatal(err)
	}
}

func TestErrorsNameCommandAndStderr(t *testing.T) {
	ctx := testCtx(t)
	missing := filepath.Join(t.TempDir(), "no-such-repo")
	_, err := Open(ctx, Options{CloneURL: missing, BaseBranch: "main", Workdir: t.TempDir()})
	ge := asGitError(t, err)
	if ge.Args[0] != "fetch" || !strings.HasPrefix(err.Error(), "git fetch ") ||
		!strings.Contains(err.Error(), "exit status 128") ||
		!strings.Contains(ge.Stderr, "does not appear to be a git repository") {
		t.Fatalf("error = %v", err)
	}
	if strings.Contains(err.Error(), "credential.helper") {
		t.Errorf("error shows internal -c overrides: %v", err)
	}

	remote, _ := newRemote(t)
	r := openT(t, Options{CloneURL: remote, BaseBranch: "main", Workdir: t.TempDir()})
	w, err := r.Worktree(ctx, "run-1", "deploybot/run-1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.ShowFile(ctx, "HEAD", "no/such/file.tf")
	ge = asGitError(t, err)
	if !strings.HasPrefix(err.Error(), "git cat-file blob HEAD:no/such/file.tf: exit status 128: fatal:") || ge.Dir != w.Dir {
		t.Fatalf("error = %v (dir %s)", err, ge.Dir)
	}

	_, err = Open(ctx, Options{CloneURL: remote, BaseBranch: "nope", Workdir: t.TempDir()})
	if ge := asGitError(t, err); !strings.Contains(ge.Stderr, "couldn't find remote ref refs/heads/nope") {
		t.Fatalf("missing base branch: %v", err)
	}
}

func TestContextCancellation(t *testing.T) {
	remote, _ := newRemote(t)
	r := openT(t, Options{CloneURL: remote, BaseBranch: "main", Workdir: t.TempDir()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Fetch(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch with cancelled context = %v", err)
	}
	if _, err := Open(ctx, Options{CloneURL: remote, BaseBranch: "main", Workdir: t.TempDir()}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with cancelled context = %v", err)
	}
}

func TestValidation(t *testing.T) {
	ctx := testCtx(t)
	remote, _ := newRemote(t)
	r := openT(t, Options{CloneURL: remote, BaseBranch: "main", Workdir: t.TempDir()})
	for _, id := range []string{"", "..", "../x", "a/b", "-x", ".hidden", "a b", "x.lock"} {
		if _, err := r.Worktree(ctx, id, "ok"); err == nil {
			t.Errorf("run id %q accepted", id)
		}
		if err := r.RemoveWorktree(ctx, id); err == nil {
			t.Errorf("RemoveWorktree(%q) accepted", id)
		}
	}
	for _, b := range []string{"", "-f", "a..b", "a b", "a:b", "x.lock", "a//b", "a/", ".a", "a@{1}", "main"} {
		if _, err := r.Worktree(ctx, "run-1", b); err == nil {
			t.Errorf("branch %q accepted", b)
		}
	}
	w, err := r.Worktree(ctx, "run-1", "deploybot/ingestion-server/2024.09.09-05.40.20")
	if err != nil {
		t.Fatal(err)
	}
	for _, rev := range []string{"", "--output=/tmp/x", "HEAD:x"} {
		if _, err := w.ShowFile(ctx, rev, devTF); err == nil {
			t.Errorf("rev %q accepted", rev)
		}
	}
	if _, err := w.Commit(ctx, "  \n"); err == nil {
		t.Error("empty commit message accepted")
	}

	for _, opts := range []Options{
		{BaseBranch: "main", Workdir: "x"},
		{CloneURL: remote, Workdir: "x"},
		{CloneURL: remote, BaseBranch: "main"},
		{CloneURL: remote, BaseBranch: "-main", Workdir: "x"},
	} {
		if _, err := Open(ctx, opts); err == nil {
			t.Errorf("Open(%+v) succeeded", opts)
		}
	}
}

// runWorktree opens a fresh remote and one run's worktree.
func runWorktree(t *testing.T) (context.Context, string, *Worktree) {
	t.Helper()
	ctx := testCtx(t)
	remote, _ := newRemote(t)
	repo := openT(t, Options{CloneURL: remote, BaseBranch: "main", Workdir: t.TempDir()})
	wt, err := repo.Worktree(ctx, "run-1", "deploybot/x-run-1")
	if err != nil {
		t.Fatal(err)
	}
	return ctx, remote, wt
}

// A base that changed the very lines a run edits is reported, not left as
// conflict markers to be planned and committed.
func TestRebaseReportsConflictingBase(t *testing.T) {
	ctx, remote, wt := runWorktree(t)
	// Nothing moved: a no-op.
	if err := wt.Rebase(ctx); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(wt.Dir, devTF), strings.Replace(devTFOld, "rel-2023.07.03.17.52.00", "rel-run", 1))
	pushAsSomeoneElse(t, remote, "main", devTF, strings.Replace(devTFOld, "rel-2023.07.03.17.52.00", "rel-someone-else", 1))
	err := wt.Rebase(ctx)
	if err == nil || !strings.Contains(err.Error(), "changed lines this run edits") || !strings.Contains(err.Error(), devTF) {
		t.Fatalf("err = %v", err)
	}
}

// A base that moved elsewhere is taken in, keeping the run's edit.
func TestRebaseKeepsEditsOnANewBase(t *testing.T) {
	ctx, remote, wt := runWorktree(t)
	edited := strings.Replace(devTFOld, "rel-2023.07.03.17.52.00", "rel-run", 1)
	writeFile(t, filepath.Join(wt.Dir, devTF), edited)
	newBase := pushAsSomeoneElse(t, remote, "main", "NOTES.md", "moved\n")
	if err := wt.Rebase(ctx); err != nil {
		t.Fatal(err)
	}
	if head, _ := wt.Head(ctx); head != newBase {
		t.Errorf("HEAD %s, want the new base %s", head, newBase)
	}
	if b, _ := os.ReadFile(filepath.Join(wt.Dir, devTF)); string(b) != edited {
		t.Errorf("edit lost: %q", b)
	}
}

// A push whose answer was lost (a timeout after the remote took it) is
// repeated after a restart: the second push must see the branch already at
// our commit and push nothing.
func TestPushSeesBranchAlreadyAtOurCommit(t *testing.T) {
	ctx := testCtx(t)
	remote, _ := newRemote(t)
	r := openT(t, Options{CloneURL: "file://" + remote, BaseBranch: "main", Workdir: t.TempDir()})
	w, err := r.Worktree(ctx, "run-1", "deploybot/run-1")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(w.Dir, devTF), "# bumped\n")
	sha, err := w.Commit(ctx, "bump", devTF)
	if err != nil {
		t.Fatal(err)
	}
	if already, err := w.Push(ctx); err != nil || already {
		t.Fatalf("first push = %v, %v; want a push", already, err)
	}
	// Forget that we pushed, as a crash before recording it would.
	gitT(t, w.Dir, "update-ref", "-d", "refs/remotes/origin/deploybot/run-1")
	// A hook that fails every push proves the second call pushes nothing.
	hook := filepath.Join(remote, "hooks", "pre-receive")
	writeFile(t, hook, "#!/bin/sh\necho 'no pushes expected' >&2\nexit 1\n")
	if err := os.Chmod(hook, 0o755); err != nil {
		t.Fatal(err)
	}
	already, err := w.Push(ctx)
	if err != nil || !already {
		t.Fatalf("second push = %v, %v; want already at %s", already, err, sha)
	}
	if got := gitT(t, remote, "rev-parse", "refs/heads/deploybot/run-1"); got != sha {
		t.Fatalf("remote branch = %s, want %s", got, sha)
	}
}
