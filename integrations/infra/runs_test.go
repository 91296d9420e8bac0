package infra

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/steps"
)

const moduleTF = `module "ingestion-server" {
  source    = "./m"
  image_tag = "rel-2023.07.03.17.52.00"
}
`

// A succeeded run's branch is merged into main (merge_on_success), so the
// next run starts from the version just deployed, not the original one; a
// failed run's branch is not.
func TestMergeOnSuccessMovesTheBase(t *testing.T) {
	remote := infraRepo(t, moduleTF)
	workdir := filepath.Join(t.TempDir(), "work")
	in := New(&config.Infra{CloneURL: remote, BaseBranch: "main", Workdir: workdir, KeepRuns: 10, MergeOnSuccess: true}, nil)
	t.Cleanup(func() { in.Close() })
	ctx := context.Background()
	file := "environments/dev/main.tf"

	deploy := func(id, version string, end steps.RunState) *steps.Run {
		t.Helper()
		r := &steps.Run{ID: id, Service: "ingestion-server", Version: version, State: steps.RunActive, Data: map[string]string{}}
		tree, err := in.Tree(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := tree.SetAttribute(file, "ingestion-server", "image_tag", version); err != nil {
			t.Fatal(err)
		}
		sha, err := tree.Commit(ctx, "Deploy "+version, file)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tree.Push(ctx); err != nil {
			t.Fatal(err)
		}
		r.State, r.Data["infra_branch"], r.Data["infra_commit"] = end, tree.Branch(), sha
		return r
	}
	before := gitOut(t, remote, "rev-parse", "main")
	r1 := deploy("run-1", "rel-2024.09.09.05.40.20", steps.RunSucceeded)
	res, err := in.RunEnded(ctx, r1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := gitOut(t, remote, "rev-parse", "main"); res.Merged == "" || got != res.Merged || got == before {
		t.Fatalf("main is at %s (was %s), RunEnded said %q", got, before, res.Merged)
	}
	if body := gitOut(t, remote, "show", "main:"+file); !strings.Contains(body, "rel-2024.09.09.05.40.20") {
		t.Errorf("main after the merge:\n%s", body)
	}
	// Repeating it changes nothing.
	if again, err := in.RunEnded(ctx, r1, nil); err != nil || again.Merged != res.Merged {
		t.Errorf("second RunEnded: %+v, %v", again, err)
	}

	// The next run bumps from the new version.
	r2 := &steps.Run{ID: "run-2", Service: "ingestion-server", Version: "rel-2024.10.01.00.00.00"}
	tree, err := in.Tree(ctx, r2)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := tree.Attribute(file, "ingestion-server", "image_tag"); err != nil || v != "rel-2024.09.09.05.40.20" {
		t.Errorf("the next run starts from %q (%v), want the merged version", v, err)
	}

	// A failed run is not merged.
	r3 := deploy("run-3", "rel-2024.11.01.00.00.00", steps.RunFailed)
	main := gitOut(t, remote, "rev-parse", "main")
	if res, err := in.RunEnded(ctx, r3, nil); err != nil || res.Merged != "" {
		t.Errorf("failed run: %+v, %v", res, err)
	}
	if got := gitOut(t, remote, "rev-parse", "main"); got != main {
		t.Error("a failed run's branch was merged")
	}

	// A run branch someone moved after the apply (a commit pushed onto the
	// PR) holds what nobody approved: it is not merged.
	r4 := deploy("run-4", "rel-2024.12.01.00.00.00", steps.RunSucceeded)
	gitOut(t, remote, "update-ref", "refs/heads/"+r4.Data["infra_branch"], before)
	res4, err := in.RunEnded(ctx, r4, nil)
	if err == nil || res4.Merged != "" || !strings.Contains(err.Error(), "the commit that was applied") {
		t.Errorf("a moved run branch: %+v, %v; want it refused", res4, err)
	}
	if got := gitOut(t, remote, "rev-parse", "main"); got != main {
		t.Error("a run branch that moved after the apply was merged into main")
	}
}

// Without merge_on_success (the production default) main is left to people.
func TestNoMergeByDefault(t *testing.T) {
	remote := infraRepo(t, moduleTF)
	in := New(&config.Infra{CloneURL: remote, BaseBranch: "main", Workdir: filepath.Join(t.TempDir(), "work"), KeepRuns: 10}, nil)
	t.Cleanup(func() { in.Close() })
	ctx := context.Background()
	r := &steps.Run{ID: "run-1", Service: "ingestion-server", Version: "rel-2024.09.09.05.40.20"}
	tree, err := in.Tree(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tree.SetAttribute("environments/dev/main.tf", "ingestion-server", "image_tag", r.Version); err != nil {
		t.Fatal(err)
	}
	if _, err := tree.Commit(ctx, "Deploy", "environments/dev/main.tf"); err != nil {
		t.Fatal(err)
	}
	if _, err := tree.Push(ctx); err != nil {
		t.Fatal(err)
	}
	before := gitOut(t, remote, "rev-parse", "main")
	r.State, r.Data = steps.RunSucceeded, map[string]string{"infra_branch": tree.Branch()}
	if res, err := in.RunEnded(ctx, r, nil); err != nil || res.Merged != "" {
		t.Errorf("RunEnded = %+v, %v", res, err)
	}
	if gitOut(t, remote, "rev-parse", "main") != before {
		t.Error("main moved without merge_on_success")
	}
}

// When a run ends, only the newest keep_runs finished runs keep their
// checkout and plan files; open runs and folders deploybot did not make are
// never touched.
func TestKeepRunsDeletesOlderFinishedRunFolders(t *testing.T) {
	remote := infraRepo(t, moduleTF)
	workdir := filepath.Join(t.TempDir(), "work")
	in := New(&config.Infra{CloneURL: remote, BaseBranch: "main", Workdir: workdir, KeepRuns: 2}, nil)
	t.Cleanup(func() { in.Close() })
	ctx := context.Background()
	for i := 1; i <= 6; i++ {
		id := "run-" + string(rune('0'+i))
		if _, err := in.Tree(ctx, &steps.Run{ID: id, Service: "ingestion-server", Version: "rel-1"}); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(workdir, "plans", id), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(workdir, "plans", id, "dev.tfplan"), []byte("plan"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mine := filepath.Join(workdir, "runs", "notes")
	if err := os.Mkdir(mine, 0o700); err != nil {
		t.Fatal(err)
	}
	// run-2 is still open (an older run waiting on someone); run-5 ended.
	res, err := in.RunEnded(ctx, &steps.Run{ID: "run-5", State: steps.RunCancelled}, []string{"run-2", "run-6"})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(res.Removed)
	if want := []string{"run-1", "run-3"}; !slices.Equal(res.Removed, want) {
		t.Errorf("removed %v, want %v (kept: the two newest finished, run-4 and run-5, and the open run-2 and run-6)", res.Removed, want)
	}
	for _, id := range []string{"run-1", "run-3"} {
		for _, dir := range []string{"runs", "plans"} {
			if _, err := os.Stat(filepath.Join(workdir, dir, id)); !os.IsNotExist(err) {
				t.Errorf("%s/%s still exists (%v)", dir, id, err)
			}
		}
	}
	for _, id := range []string{"run-2", "run-4", "run-5", "run-6"} {
		for _, dir := range []string{"runs", "plans"} {
			if _, err := os.Stat(filepath.Join(workdir, dir, id)); err != nil {
				t.Errorf("%s/%s: %v", dir, id, err)
			}
		}
	}
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("a folder deploybot did not make was touched: %v", err)
	}
	// git forgot the removed worktrees too.
	if list := gitOut(t, filepath.Join(workdir, "repo"), "worktree", "list"); strings.Contains(list, "run-1") || !strings.Contains(list, "run-4") {
		t.Errorf("worktree list:\n%s", list)
	}
	// Nothing more to remove: a repeat is quiet.
	if res, err := in.RunEnded(ctx, &steps.Run{ID: "run-5", State: steps.RunCancelled}, []string{"run-2", "run-6"}); err != nil || len(res.Removed) != 0 {
		t.Errorf("repeat: %+v, %v", res, err)
	}
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// A base that moved since the run started gets a merge commit; a run whose
// change conflicts with the new base is not merged, and says so.
func TestMergeOnSuccessAfterTheBaseMoved(t *testing.T) {
	remote := infraRepo(t, moduleTF)
	workdir := filepath.Join(t.TempDir(), "work")
	in := New(&config.Infra{CloneURL: remote, BaseBranch: "main", Workdir: workdir, KeepRuns: 10, MergeOnSuccess: true}, nil)
	t.Cleanup(func() { in.Close() })
	ctx := context.Background()
	file := "environments/dev/main.tf"
	// Three runs start from the same base.
	start := func(id string) steps.Tree {
		t.Helper()
		tree, err := in.Tree(ctx, &steps.Run{ID: id, Service: "ingestion-server", Version: "rel-" + id})
		if err != nil {
			t.Fatal(err)
		}
		return tree
	}
	finish := func(id string, tree steps.Tree, files ...string) *steps.Run {
		t.Helper()
		if _, err := tree.Commit(ctx, "change of "+id, files...); err != nil {
			t.Fatal(err)
		}
		if _, err := tree.Push(ctx); err != nil {
			t.Fatal(err)
		}
		return &steps.Run{ID: id, State: steps.RunSucceeded, Data: map[string]string{"infra_branch": tree.Branch()}}
	}
	t1, t2, t3 := start("run-1"), start("run-2"), start("run-3")
	if _, _, err := t1.SetAttribute(file, "ingestion-server", "image_tag", "rel-2024.09.09.05.40.20"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(workdir, "runs", "run-2", "NOTES.md"), []byte("notes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := t3.SetAttribute(file, "ingestion-server", "image_tag", "rel-2024.10.10.10.10.10"); err != nil {
		t.Fatal(err)
	}
	r1, r2, r3 := finish("run-1", t1, file), finish("run-2", t2, "NOTES.md"), finish("run-3", t3, file)

	if _, err := in.RunEnded(ctx, r1, nil); err != nil {
		t.Fatal(err)
	}
	res, err := in.RunEnded(ctx, r2, nil)
	if err != nil || res.Merged == "" {
		t.Fatalf("merging after the base moved: %+v, %v", res, err)
	}
	if parents := strings.Fields(gitOut(t, remote, "log", "-1", "--format=%P", "main")); len(parents) != 2 {
		t.Errorf("main's head has parents %v, want a merge commit", parents)
	}
	if body := gitOut(t, remote, "show", "main:"+file); !strings.Contains(body, "rel-2024.09.09.05.40.20") {
		t.Errorf("the first run's change was lost:\n%s", body)
	}
	if gitOut(t, remote, "show", "main:NOTES.md") != "notes" {
		t.Error("the second run's change is not on main")
	}
	main := gitOut(t, remote, "rev-parse", "main")
	if _, err := in.RunEnded(ctx, r3, nil); err == nil || !strings.Contains(err.Error(), "conflicts with main") {
		t.Errorf("a conflicting run: %v", err)
	}
	if gitOut(t, remote, "rev-parse", "main") != main {
		t.Error("a conflicting merge moved main")
	}
}
