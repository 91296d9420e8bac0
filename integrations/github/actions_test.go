package github

import (
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/integrations/github/githubtest"
)

func TestDispatchAndFindRun(t *testing.T) {
	f := newFixture(t)
	f.srv.DeclareInputs(infraRepo, deployWF, "tag", "actor")
	f.srv.OnDispatch(infraRepo, deployWF, "failure", 5*time.Minute)
	// An older dispatch run and a push run that the filter must skip.
	f.srv.AddRun(infraRepo, deployWF, githubtest.Run{Event: "workflow_dispatch", Conclusion: "success", CreatedAt: f.clock.Now().Add(-time.Hour)})
	f.srv.AddRun(infraRepo, deployWF, githubtest.Run{Event: "push", Conclusion: "success"})
	ctx := ctxT(t)

	f.clock.Advance(time.Minute)
	before := f.clock.Now()
	inputs := map[string]any{"tag": "rel-2023.07.03.17.52.00", "actor": "U0ALICE"}
	d, err := f.c.Dispatch(ctx, infraRepo, deployWF, "main", inputs)
	if err != nil {
		t.Fatal(err)
	}
	ds := f.srv.Dispatches(infraRepo, deployWF)
	if len(ds) != 1 || ds[0].Ref != "main" || ds[0].Inputs["tag"] != "rel-2023.07.03.17.52.00" || ds[0].Inputs["actor"] != "U0ALICE" {
		t.Fatalf("dispatches = %+v", ds)
	}
	if n := f.srv.Requests("POST", "/repos/WordPress/openverse-infrastructure/actions/workflows/"+deployWF+"/dispatches"); n != 1 {
		t.Errorf("dispatched %d times, want exactly once", n)
	}

	runs, err := f.c.WorkflowRuns(ctx, infraRepo, deployWF, RunFilter{Event: "workflow_dispatch", CreatedAfter: before})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].Event != "workflow_dispatch" || runs[0].HeadBranch != "main" || runs[0].CreatedAt.Before(before) {
		t.Fatalf("runs = %+v, want only the new dispatch run", runs)
	}
	if d.RunID != runs[0].ID || d.HTMLURL != runs[0].HTMLURL {
		t.Errorf("Dispatch named run %+v, the new run is %d %s", d, runs[0].ID, runs[0].HTMLURL)
	}
	f.clock.Advance(5 * time.Minute)
	run, err := f.c.WorkflowRun(ctx, infraRepo, runs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !run.Completed() || run.Conclusion != "failure" {
		t.Errorf("run = %+v, want completed failure", run)
	}

	all, err := f.c.WorkflowRuns(ctx, infraRepo, deployWF, RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("%d runs, want 3", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].CreatedAt.After(all[i-1].CreatedAt) {
			t.Errorf("runs not newest first: %v then %v", all[i-1].CreatedAt, all[i].CreatedAt)
		}
	}
}

func TestDispatchRejected(t *testing.T) {
	f := newFixture(t)
	f.srv.DeclareInputs(infraRepo, deployWF, "tag", "actor")
	ctx := ctxT(t)
	for _, tc := range []struct {
		name, repo, file, ref string
		inputs                map[string]any
		want                  string
	}{
		{"undeclared input", infraRepo, deployWF, "main", map[string]any{"tag": "rel-x", "image": "y"}, `GitHub answered 422: Unexpected inputs provided: ["image"]`},
		{"unknown ref", infraRepo, deployWF, "no-such-branch", map[string]any{"tag": "rel-x"}, "GitHub answered 422: No ref found for: no-such-branch"},
		{"non-string input", infraRepo, deployWF, "main", map[string]any{"tag": 12}, "is not a string"},
		{"unknown workflow", infraRepo, "nope.yml", "main", nil, "GitHub answered 404"},
		{"unknown repo", "WordPress/nope", deployWF, "main", nil, "GitHub answered 404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.c.Dispatch(ctx, tc.repo, tc.file, tc.ref, tc.inputs)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "starting workflow "+tc.file+" on "+tc.ref+" in "+tc.repo+": ") {
				t.Errorf("error = %q, want it to name the operation and contain %q", err, tc.want)
			}
		})
	}
	if n := len(f.srv.Dispatches(infraRepo, deployWF)); n != 0 {
		t.Errorf("%d dispatches recorded", n)
	}
	// None of those is retried: 4xx are answers, not accidents.
	if n := f.srv.Requests("POST", ""); n != 5 {
		t.Errorf("%d POSTs, want 5", n)
	}
}

func TestWorkflowRunsPagesAndFilters(t *testing.T) {
	f := newFixture(t)
	start := f.clock.Now()
	for i := range 130 {
		f.srv.AddRun(monorepo, buildWF, githubtest.Run{Event: "release", HeadBranch: "ingestion_server-x", Conclusion: "success", CreatedAt: start.Add(time.Duration(i) * time.Second)})
	}
	f.srv.AddRun(monorepo, buildWF, githubtest.Run{Event: "release", HeadBranch: "api-x", Conclusion: "success", CreatedAt: start.Add(time.Hour)})
	ctx := ctxT(t)

	runs, err := f.c.WorkflowRuns(ctx, monorepo, buildWF, RunFilter{Branch: "ingestion_server-x", CreatedAfter: start.Add(10*time.Second + 500*time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	// Rounded down to whole seconds, as GitHub compares: runs 10 … 129.
	if len(runs) != 120 {
		t.Fatalf("%d runs, want 120", len(runs))
	}
	if !runs[0].CreatedAt.Equal(start.Add(129*time.Second)) || !runs[119].CreatedAt.Equal(start.Add(10*time.Second)) {
		t.Errorf("order: first %v, last %v", runs[0].CreatedAt, runs[119].CreatedAt)
	}

	_, err = f.c.WorkflowRun(ctx, monorepo, 424242)
	if StatusCode(err) != 404 || !strings.HasPrefix(err.Error(), "reading workflow run 424242 of WordPress/openverse: GitHub answered 404") {
		t.Errorf("missing run: %v", err)
	}
}
