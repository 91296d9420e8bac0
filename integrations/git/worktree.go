package git

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Worktree is one run's checkout, on the run's own branch.
type Worktree struct {
	// Dir is Workdir/runs/<run id>; Terraform edits happen here.
	Dir string
	// Branch is the run's branch, pushed to origin under the same name.
	Branch string

	repo *Repo
}

// Worktree gives the run its own checkout and branch, started from
// origin/<base> as of the last fetch.
//
// After a restart it returns the existing checkout untouched (commits and
// uncommitted edits included), because the run's state machine, not this
// package, knows what was already done. It repairs what a crash can leave
// behind: a half-created worktree is recreated, and a branch without a
// worktree is checked out again rather than started afresh.
func (r *Repo) Worktree(ctx context.Context, runID, branch string) (*Worktree, error) {
	if err := checkRunID(runID); err != nil {
		return nil, fmt.Errorf("git: %w", err)
	}
	if err := checkBranchName(branch); err != nil {
		return nil, fmt.Errorf("git: %w", err)
	}
	if branch == r.base {
		return nil, fmt.Errorf("git: run branch %q must differ from the base branch", branch)
	}
	dir := filepath.Join(r.runsDir, runID)
	w := &Worktree{Dir: dir, Branch: branch, repo: r}

	r.mu.Lock()
	defer r.mu.Unlock()

	// Forget worktrees whose directory was deleted behind our back, so
	// the path can be added again.
	if _, err := r.run(ctx, r.Dir, runOpts{}, "worktree", "prune"); err != nil {
		return nil, err
	}
	e, err := r.findWorktree(ctx, dir)
	if err != nil {
		return nil, err
	}
	if e != nil {
		if e.locked != "initializing" {
			if e.branch != "refs/heads/"+branch {
				return nil, fmt.Errorf("git: worktree %s is on %q, not on branch %q", dir, strings.TrimPrefix(e.branch, "refs/heads/"), branch)
			}
			return w, nil
		}
		// "git worktree add" was killed before its checkout finished:
		// nothing in it can be ours yet, start over.
		if _, err := r.run(ctx, r.Dir, runOpts{}, "worktree", "remove", "--force", "--force", dir); err != nil {
			return nil, err
		}
	} else if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		// Not ours according to git, yet not empty: refuse to guess
		// whether it holds something valuable.
		return nil, fmt.Errorf("git: %s exists but is not a worktree of %s; call RemoveWorktree to clear it", dir, r.Dir)
	}

	_, exists, err := r.refExists(ctx, r.Dir, "refs/heads/"+branch)
	if err != nil {
		return nil, err
	}
	if exists {
		// The branch survived a crash (or an earlier worktree of this
		// run): keep its commits.
		_, err = r.run(ctx, r.Dir, runOpts{}, "worktree", "add", "-q", dir, branch)
	} else {
		// --no-track: the run branch must not follow the base branch,
		// or a stray pull would merge unreviewed changes into it.
		_, err = r.run(ctx, r.Dir, runOpts{}, "worktree", "add", "-q", "--no-track", "-b", branch, dir, r.baseRef())
	}
	if err != nil {
		return nil, err
	}
	// git creates the checkout with the process umask (usually 0755);
	// Terraform keeps its backend settings and provider credentials cache
	// (.terraform/) in it, so only the bot's user may enter it.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("git: worktree %s: %w", dir, err)
	}
	return w, nil
}

// RemoveWorktree deletes the run's checkout, uncommitted edits included.
// The local branch is kept: it may hold commits that were never pushed, and
// its pushed state is the lease for any later push. Removing a worktree that
// is already gone is not an error, so cleanup can simply be retried.
func (r *Repo) RemoveWorktree(ctx context.Context, runID string) error {
	if err := checkRunID(runID); err != nil {
		return fmt.Errorf("git: %w", err)
	}
	dir := filepath.Join(r.runsDir, runID)

	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.run(ctx, r.Dir, runOpts{}, "worktree", "prune"); err != nil {
		return err
	}
	e, err := r.findWorktree(ctx, dir)
	if err != nil {
		return err
	}
	if e != nil {
		// Twice --force: also removes a worktree locked by an
		// interrupted "worktree add".
		if _, err := r.run(ctx, r.Dir, runOpts{}, "worktree", "remove", "--force", "--force", dir); err != nil {
			return err
		}
	}
	// What an interrupted removal leaves is no longer registered; only
	// the directory remains.
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("git: %w", err)
	}
	_, err = r.run(ctx, r.Dir, runOpts{}, "worktree", "prune")
	return err
}

type worktreeEntry struct {
	path   string
	branch string // full ref, "" when detached
	locked string // lock reason; "" when not locked (or locked without reason)
}

func (r *Repo) findWorktree(ctx context.Context, dir string) (*worktreeEntry, error) {
	out, err := r.run(ctx, r.Dir, runOpts{}, "worktree", "list", "--porcelain")
	if err != nil {
		return nil, err
	}
	for _, e := range parseWorktrees(out) {
		p := e.path
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if filepath.Clean(p) == dir {
			return &e, nil
		}
	}
	return nil, nil
}

func parseWorktrees(out []byte) []worktreeEntry {
	var list []worktreeEntry
	var cur *worktreeEntry
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), " ")
		switch key {
		case "worktree":
			list = append(list, worktreeEntry{path: val})
			cur = &list[len(list)-1]
		case "branch":
			if cur != nil {
				cur.branch = val
			}
		case "locked":
			if cur != nil {
				cur.locked = val
			}
		}
	}
	return list
}

// Head is the commit the run's branch points at.
func (w *Worktree) Head(ctx context.Context) (string, error) {
	return w.repo.revParse(ctx, w.Dir, "HEAD")
}

// Commit stages paths (everything when none are given, deletions included)
// and commits them. Nothing to commit is not an error but the current HEAD:
// a run resumed after a crash may repeat a commit that already happened.
// With paths, only those paths are committed, so stray files such as
// Terraform's lock file never ride along.
func (w *Worktree) Commit(ctx context.Context, message string, paths ...string) (string, error) {
	if strings.TrimSpace(message) == "" {
		return "", errors.New("git: empty commit message")
	}
	r := w.repo
	spec := append([]string{"--"}, paths...)
	if _, err := r.run(ctx, w.Dir, runOpts{}, append([]string{"add", "-A"}, spec...)...); err != nil {
		return "", err
	}
	_, err := r.run(ctx, w.Dir, runOpts{}, append([]string{"diff", "--cached", "--quiet"}, spec...)...)
	switch exitCode(err) {
	case 0:
		return w.Head(ctx)
	case 1: // staged changes
	default:
		return "", err
	}
	// The message goes through stdin so that errors naming the command
	// stay short and the message can never be taken for an option.
	args := append([]string{"commit", "-q", "--cleanup=whitespace", "-F", "-"}, spec...)
	if _, err := r.run(ctx, w.Dir, runOpts{stdin: []byte(message)}, args...); err != nil {
		return "", err
	}
	return w.Head(ctx)
}

// Push publishes the run's branch, looking at the remote first, because a
// push that timed out may have landed and a branch may have been pushed by
// someone else meanwhile:
//   - the remote branch is already at our commit: nothing is pushed and
//     already is true (a resumed run repeating its push);
//   - it is where this clone last pushed it: the push is forced with a lease
//     on that commit, so the run may rewrite its own branch (rebuilt on a
//     newer base) but never overwrites what someone pushed since;
//   - it is behind our commit, or absent: an ordinary push;
//   - anything else is refused with a *NonFastForwardError naming both
//     commits: those commits are someone else's work.
func (w *Worktree) Push(ctx context.Context) (already bool, err error) {
	r := w.repo
	ref := "refs/heads/" + w.Branch
	head, err := w.Head(ctx)
	if err != nil {
		return false, err
	}
	remote, err := r.remoteRef(ctx, ref)
	if err != nil {
		return false, err
	}
	if remote == head {
		// Record it as ours, so a later rewrite may lease on it.
		if _, err := r.run(ctx, w.Dir, runOpts{}, "update-ref", "refs/remotes/origin/"+w.Branch, head); err != nil {
			return false, err
		}
		return true, nil
	}
	args := []string{"push", "-q"}
	if remote != "" {
		mine, ok, err := r.refExists(ctx, w.Dir, "refs/remotes/origin/"+w.Branch)
		if err != nil {
			return false, err
		}
		switch {
		case ok && mine == remote:
			args = append(args, "--force-with-lease="+ref+":"+mine)
		case w.isAncestor(ctx, remote, head):
		default:
			return false, &NonFastForwardError{Branch: w.Branch, Remote: remote, Local: head}
		}
	}
	args = append(args, "origin", ref+":"+ref)
	_, err = r.run(ctx, w.Dir, runOpts{remote: true}, args...)
	return false, err
}

// NonFastForwardError: the remote branch holds commits this run did not
// make, so pushing would lose them.
type NonFastForwardError struct {
	Branch, Remote, Local string
}

func (e *NonFastForwardError) Error() string {
	return fmt.Sprintf("git: not pushing %s (non-fast-forward): the remote branch is at %s, which is neither our commit %s nor behind it, so someone else pushed to it. Look at %s on the remote: keep their work by cancelling this run, or delete the remote branch and Retry to push ours", e.Branch, e.Remote, e.Local, e.Remote)
}

// isAncestor reports whether commit a is in b's history. A commit this
// clone does not have cannot be, so a missing object answers false.
func (w *Worktree) isAncestor(ctx context.Context, a, b string) bool {
	_, err := w.repo.run(ctx, w.Dir, runOpts{}, "merge-base", "--is-ancestor", a, b)
	return err == nil
}

// ShowFile returns path (relative to the repository root) as stored in rev,
// byte for byte, e.g. to check that what was pushed is what was planned.
// Use "origin/<branch>" for what the last push published.
func (w *Worktree) ShowFile(ctx context.Context, rev, path string) ([]byte, error) {
	if rev == "" || strings.HasPrefix(rev, "-") || strings.Contains(rev, ":") {
		return nil, fmt.Errorf("git: invalid revision %q", rev)
	}
	path = strings.TrimPrefix(filepath.ToSlash(path), "/")
	// cat-file, not show: no textconv or filters may alter the bytes.
	return w.repo.run(ctx, w.Dir, runOpts{}, "cat-file", "blob", rev+":"+path)
}

// Dirty reports uncommitted changes, untracked files included, so a resumed
// run can tell whether its edit step finished without being committed.
// Ignored files do not count.
func (w *Worktree) Dirty(ctx context.Context) (bool, error) {
	out, err := w.repo.run(ctx, w.Dir, runOpts{}, "status", "--porcelain", "-z", "--untracked-files=all")
	if err != nil {
		return false, err
	}
	return len(out) > 0, nil
}

// Rebase fetches and moves the run's branch onto the newest base branch,
// keeping uncommitted edits (autostash). A plan refused because the base
// moved is made again from the new base, so the re-plan shows what will
// really be applied. When the base has not moved it does nothing. When the
// base changed the lines the run edits, git leaves conflict markers and
// still exits 0: that is reported as an error, never planned or committed.
func (w *Worktree) Rebase(ctx context.Context) error {
	r := w.repo
	if err := r.Fetch(ctx); err != nil {
		return err
	}
	_, err := r.run(ctx, w.Dir, runOpts{}, "merge-base", "--is-ancestor", r.baseRef(), "HEAD")
	switch exitCode(err) {
	case 0:
		return nil // already on the newest base
	case 1:
	default:
		return err
	}
	if _, err := r.run(ctx, w.Dir, runOpts{}, "-c", "user.name=deploybot", "-c", "user.email=deploybot@localhost",
		"rebase", "-q", "--autostash", r.baseRef()); err != nil {
		return err
	}
	conflicts, err := r.run(ctx, w.Dir, runOpts{}, "diff", "--name-only", "--diff-filter=U")
	if err != nil {
		return err
	}
	stash, err := r.run(ctx, w.Dir, runOpts{}, "stash", "list")
	if err != nil {
		return err
	}
	if files := strings.Fields(string(conflicts)); len(files) > 0 || strings.TrimSpace(string(stash)) != "" {
		return fmt.Errorf("git: the base branch changed lines this run edits (%s); the run's edits are kept in `git stash` of %s: cancel the run and deploy again", strings.Join(files, ", "), w.Dir)
	}
	return nil
}
