package infra

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/steps"
)

// EndResult is what RunEnded did.
type EndResult struct {
	// Merged is the base branch's commit after a succeeded run's branch
	// was merged into it (infra.merge_on_success); "" when nothing was
	// merged.
	Merged string
	// Removed lists the runs whose folders were deleted.
	Removed []string
}

// RunEnded tidies up after a run has ended. With infra.merge_on_success, a
// succeeded run's pushed branch is merged into the base branch on the
// remote, so the next run bumps from the version just deployed. Then the
// folders (checkout and plan files) of finished runs beyond the newest
// infra.keep_runs are deleted; runs that open reports are never touched.
// Both are safe to repeat. Nothing about the run itself depends on them, so
// a failure is only reported.
func (in *Infra) RunEnded(ctx context.Context, r *steps.Run, open []string) (EndResult, error) {
	var res EndResult
	var errs []error
	if in.cfg.MergeOnSuccess && r.State == steps.RunSucceeded && r.Data["infra_branch"] != "" {
		repo, err := in.open(ctx)
		if err == nil {
			res.Merged, err = repo.MergeIntoBase(ctx, r.Data["infra_branch"], r.Data["infra_commit"])
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("merging %s into %s: %w", r.Data["infra_branch"], in.cfg.BaseBranch, in.masker().Err(err)))
		}
	}
	removed, err := in.prune(ctx, open)
	res.Removed = removed
	if err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// prune deletes the folders of finished runs older than the newest
// infra.keep_runs finished ones.
func (in *Infra) prune(ctx context.Context, open []string) ([]string, error) {
	keep := in.cfg.KeepRuns
	if keep < 1 {
		keep = 1
	}
	runs := filepath.Join(in.cfg.Workdir, "runs")
	plans := filepath.Join(in.cfg.Workdir, "plans")
	found := map[string]int{}
	for _, dir := range []string{runs, plans} {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		for _, e := range entries {
			// Only folders the bot made (run-<n>); anything else someone
			// put there is left alone.
			if n, ok := runNumber(e.Name()); ok && e.IsDir() && !slices.Contains(open, e.Name()) {
				found[e.Name()] = n
			}
		}
	}
	ids := make([]string, 0, len(found))
	for id := range found {
		ids = append(ids, id)
	}
	// Newest first: run numbers grow with time.
	slices.SortFunc(ids, func(a, b string) int { return found[b] - found[a] })
	if len(ids) <= keep {
		return nil, nil
	}
	var removed []string
	var errs []error
	for _, id := range ids[keep:] {
		err := os.RemoveAll(filepath.Join(plans, id))
		if _, statErr := os.Stat(filepath.Join(runs, id)); err == nil && statErr == nil {
			// Through git, so the clone forgets the worktree too.
			repo, openErr := in.open(ctx)
			err = openErr
			if err == nil {
				err = repo.RemoveWorktree(ctx, id)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("removing the folders of %s: %w", id, in.masker().Err(err)))
			continue
		}
		removed = append(removed, id)
	}
	return removed, errors.Join(errs...)
}

func runNumber(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "run-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0
}

// Notifier passes the engine's notifications on to next and, when a run
// has ended, calls RunEnded in the background: git and file work must not
// hold up the engine. open lists the ids of the runs still open; report
// receives what RunEnded did. Close waits for work in flight.
func (in *Infra) Notifier(next steps.Notifier, open func() []string, report func(*steps.Run, EndResult, error)) steps.Notifier {
	return &endNotifier{Notifier: next, in: in, open: open, report: report, seen: map[string]bool{}}
}

type endNotifier struct {
	steps.Notifier
	in     *Infra
	open   func() []string
	report func(*steps.Run, EndResult, error)

	mu   sync.Mutex
	seen map[string]bool
}

func (n *endNotifier) RunChanged(r *steps.Run) {
	n.Notifier.RunChanged(r)
	if r.State.Open() {
		return
	}
	n.mu.Lock()
	first := !n.seen[r.ID]
	n.seen[r.ID] = true
	n.mu.Unlock()
	if !first {
		return
	}
	n.in.ending.Add(1)
	go func() {
		defer n.in.ending.Done()
		// One at a time: two runs ending together must not prune or
		// merge over each other.
		n.in.endMu.Lock()
		defer n.in.endMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		res, err := n.in.RunEnded(ctx, r, n.open())
		if n.report != nil {
			n.report(r, res, err)
		}
		close(n.in.endedCh(r.ID))
	}()
}

// WaitEnded waits until the work RunEnded started for ended runs is over.
func (in *Infra) WaitEnded() { in.ending.Wait() }

// WaitRunEnded waits until the Notifier has tidied up after run id (merged
// its branch, pruned folders), or ctx ends. It reports whether it has.
func (in *Infra) WaitRunEnded(ctx context.Context, id string) bool {
	select {
	case <-in.endedCh(id):
		return true
	case <-ctx.Done():
		return false
	}
}

func (in *Infra) endedCh(id string) chan struct{} {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ended == nil {
		in.ended = map[string]chan struct{}{}
	}
	ch, ok := in.ended[id]
	if !ok {
		ch = make(chan struct{})
		in.ended[id] = ch
	}
	return ch
}
