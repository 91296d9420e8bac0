package git

import (
	"context"
	"fmt"
	"strings"
)

// MergeIntoBase merges the run branch, as pushed, into the base branch on
// the remote, the way a reviewer merging its pull request would: a
// fast-forward when the base has not moved since the run started, a merge
// commit otherwise. A branch already merged changes nothing, so the call can
// be repeated. It returns the base branch's commit afterwards.
//
// The push leases on the base commit it merged into: if someone moved the
// base in between, the push is refused rather than overwriting their work.
//
// want, when set, is the commit the branch must be at: the one that was
// planned, approved and applied. A branch someone moved since (a
// suggestion committed on the PR) is refused rather than merged, since
// nobody approved what it now holds.
func (r *Repo) MergeIntoBase(ctx context.Context, branch, want string) (string, error) {
	if err := checkBranchName(branch); err != nil {
		return "", fmt.Errorf("git: %w", err)
	}
	if branch == r.base {
		return "", fmt.Errorf("git: cannot merge %q into itself", branch)
	}
	r.mu.Lock()
	defer r.mu.Unlock()

	head, err := r.remoteRef(ctx, "refs/heads/"+branch)
	if err != nil {
		return "", err
	}
	if head == "" {
		return "", fmt.Errorf("git: branch %q is not on origin, so there is nothing to merge; push it first", branch)
	}
	if want != "" && head != want {
		return "", fmt.Errorf("git: branch %q is at %.12s, not at %.12s, the commit that was applied: not merged; review and merge its PR by hand", branch, head, want)
	}
	if err := r.fetchLocked(ctx); err != nil {
		return "", err
	}
	// The run branch's commits are normally in this clone (it made them);
	// a clone made after the push fetches them, into FETCH_HEAD only.
	if _, err := r.run(ctx, r.Dir, runOpts{}, "cat-file", "-e", head+"^{commit}"); err != nil {
		if _, err := r.run(ctx, r.Dir, runOpts{remote: true}, "fetch", "-q", "--no-tags", "origin", "refs/heads/"+branch); err != nil {
			return "", err
		}
	}
	base, err := r.revParse(ctx, r.Dir, r.baseRef())
	if err != nil {
		return "", err
	}
	if r.ancestor(ctx, head, base) {
		return base, nil // already merged
	}
	merged := head
	if !r.ancestor(ctx, base, head) {
		out, err := r.run(ctx, r.Dir, runOpts{}, "merge-tree", "--write-tree", "--no-messages", base, head)
		if err != nil {
			if exitCode(err) == 1 {
				return "", fmt.Errorf("git: %s conflicts with %s on origin; merge it by hand", branch, r.base)
			}
			return "", err
		}
		tree := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		out, err = r.run(ctx, r.Dir, runOpts{}, "-c", "user.name=deploybot", "-c", "user.email=deploybot@localhost",
			"commit-tree", tree, "-p", base, "-p", head, "-m", "Merge branch '"+branch+"'")
		if err != nil {
			return "", err
		}
		merged = strings.TrimSpace(string(out))
	}
	ref := "refs/heads/" + r.base
	if _, err := r.run(ctx, r.Dir, runOpts{remote: true}, "push", "-q", "--force-with-lease="+ref+":"+base, "origin", merged+":"+ref); err != nil {
		return "", err
	}
	if _, err := r.run(ctx, r.Dir, runOpts{}, "update-ref", r.baseRef(), merged); err != nil {
		return "", err
	}
	return merged, nil
}

// ancestor reports whether commit a is in b's history.
func (r *Repo) ancestor(ctx context.Context, a, b string) bool {
	_, err := r.run(ctx, r.Dir, runOpts{}, "merge-base", "--is-ancestor", a, b)
	return err == nil
}
