package github

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/integrations/github/githubtest"
)

const dispatchPath = "/repos/WordPress/openverse-infrastructure/actions/workflows/" + deployWF + "/dispatches"

// GitHub answers a dispatch with return_run_details with 200 and the run:
// the client returns its id without any lookup.
func TestDispatchReturnsRunDetails(t *testing.T) {
	f := newFixture(t)
	f.srv.AddWorkflow(infraRepo, deployWF)
	d, err := f.c.Dispatch(ctxT(t), infraRepo, deployWF, "main", map[string]any{"tag": "rel-1"})
	if err != nil {
		t.Fatal(err)
	}
	runs := f.srv.Runs(infraRepo, deployWF)
	if len(runs) != 1 || d.RunID != runs[0].ID || !strings.HasSuffix(d.HTMLURL, "/actions/runs/"+itoa(int(runs[0].ID))) {
		t.Fatalf("Dispatch = %+v, server runs %+v", d, runs)
	}
	if n := f.srv.Requests("GET", ""); n != 0 {
		t.Errorf("%d GETs, want none: the run id came with the answer", n)
	}
}

// An older GitHub Enterprise Server refuses return_run_details (422, or
// 400): the client dispatches once more without it, and remembers.
func TestDispatchWithoutRunDetailsOnOlderGHES(t *testing.T) {
	t.Run("422 from the test server", func(t *testing.T) {
		f := newFixture(t)
		f.srv.AddWorkflow(infraRepo, deployWF)
		f.srv.OnDispatch(infraRepo, deployWF, "success", time.Minute)
		f.srv.RejectRunDetails()
		d, err := f.c.Dispatch(ctxT(t), infraRepo, deployWF, "main", nil)
		if err != nil || d.RunID != 0 {
			t.Fatalf("Dispatch = %+v, %v; want success without a run id", d, err)
		}
		if n := len(f.srv.Dispatches(infraRepo, deployWF)); n != 1 {
			t.Errorf("%d dispatches, want 1", n)
		}
		if n := f.srv.Requests("POST", dispatchPath); n != 2 {
			t.Errorf("%d POSTs, want 2 (refused, then without the key)", n)
		}
		if _, err := f.c.Dispatch(ctxT(t), infraRepo, deployWF, "main", nil); err != nil {
			t.Fatal(err)
		}
		if n := f.srv.Requests("POST", dispatchPath); n != 3 {
			t.Errorf("%d POSTs after a second dispatch, want 3: the refusal is remembered", n)
		}
	})
	t.Run("400 naming the key", func(t *testing.T) {
		var mu sync.Mutex
		var bodies []map[string]any
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var in map[string]any
			_ = json.NewDecoder(r.Body).Decode(&in)
			mu.Lock()
			bodies = append(bodies, in)
			mu.Unlock()
			if _, ok := in["return_run_details"]; ok {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"message":"Invalid request.\n\n\"return_run_details\" is not a permitted key."}`))
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		defer srv.Close()
		c, err := New(srv.URL, Auth{Token: testToken})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Dispatch(ctxT(t), infraRepo, deployWF, "main", map[string]any{"tag": "rel-1"}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(bodies) != 2 || bodies[1]["return_run_details"] != nil || bodies[1]["ref"] != "main" {
			t.Errorf("bodies = %v, want the refused one, then one without return_run_details", bodies)
		}
	})
	t.Run("other refusals are not retried", func(t *testing.T) {
		f := newFixture(t)
		f.srv.DeclareInputs(infraRepo, deployWF, "tag")
		_, err := f.c.Dispatch(ctxT(t), infraRepo, deployWF, "main", map[string]any{"image": "x"})
		if StatusCode(err) != 422 || Ambiguous(err) {
			t.Fatalf("err = %v, want a plain 422", err)
		}
		if n := f.srv.Requests("POST", dispatchPath); n != 1 {
			t.Errorf("%d POSTs, want 1", n)
		}
	})
}

// The run a dispatch may have started is ours (actor), a workflow_dispatch,
// created at or after the dispatch, and carries the tag in its title when
// the workflow's run-name shows it.
func TestDispatchedRunsMatching(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	f.srv.AddWorkflow(infraRepo, deployWF)
	since := f.clock.Now()
	at := since.Add(2 * time.Second)
	add := func(r githubtest.Run) int64 {
		if r.Event == "" {
			r.Event = "workflow_dispatch"
		}
		if r.CreatedAt.IsZero() {
			r.CreatedAt = at
		}
		if r.DisplayTitle == "" {
			r.DisplayTitle = "Deploy rel-2023.07.03.17.52.00"
		}
		return f.srv.AddRun(infraRepo, deployWF, r)
	}
	ours := add(githubtest.Run{})
	add(githubtest.Run{Actor: "someone-else"})
	add(githubtest.Run{Event: "push"})
	add(githubtest.Run{CreatedAt: since.Add(-time.Minute)})
	other := add(githubtest.Run{DisplayTitle: "Deploy rel-2024.01.01.00.00.00"})

	q := DispatchQuery{Since: since, Title: "rel-2023.07.03.17.52.00"}
	runs, err := f.c.DispatchedRuns(ctx, infraRepo, deployWF, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].ID != ours || runs[0].Actor != githubtest.DefaultUser {
		t.Fatalf("runs = %+v, want only #%d", runs, ours)
	}

	// Without the tag in any title (no run-name), the title says nothing:
	// both of ours count, and the caller must ask.
	runs, err = f.c.DispatchedRuns(ctx, infraRepo, deployWF, DispatchQuery{Since: since, Title: "rel-9999"})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].ID != other || runs[1].ID != ours {
		t.Fatalf("runs = %+v, want #%d and #%d", runs, other, ours)
	}

	// The actor filter uses the given actor.
	runs, err = f.c.DispatchedRuns(ctx, infraRepo, deployWF, DispatchQuery{Since: since, Actor: "someone-else"})
	if err != nil || len(runs) != 1 || runs[0].Actor != "someone-else" {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
}

// A run-name carrying the inputs gives the dispatched run a display_title
// with the tag.
func TestDispatchedRunTitleFromRunName(t *testing.T) {
	f := newFixture(t)
	f.srv.AddWorkflow(infraRepo, deployWF)
	f.srv.OnDispatch(infraRepo, deployWF, "success", time.Minute)
	f.srv.SetRunName(infraRepo, deployWF, "Deploy ${{ inputs.tag }}")
	f.srv.RejectRunDetails()
	since := f.clock.Now()
	if _, err := f.c.Dispatch(ctxT(t), infraRepo, deployWF, "main", map[string]any{"tag": "rel-7"}); err != nil {
		t.Fatal(err)
	}
	runs, err := f.c.DispatchedRuns(ctxT(t), infraRepo, deployWF, DispatchQuery{Since: since, Title: "rel-7"})
	if err != nil || len(runs) != 1 || runs[0].DisplayTitle != "Deploy rel-7" {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
}

// The actor is the token's user, asked once; WithActor sets it without
// asking.
func TestActor(t *testing.T) {
	f := newFixture(t)
	f.srv.SetUser("release-robot")
	for range 2 {
		if a, err := f.c.Actor(ctxT(t)); err != nil || a != "release-robot" {
			t.Fatalf("Actor = %q, %v", a, err)
		}
	}
	if n := f.srv.Requests("GET", "/user"); n != 1 {
		t.Errorf("%d GET /user, want 1 (remembered)", n)
	}

	c, err := New(f.srv.URL(), Auth{Token: testToken}, WithActor("configured-bot"))
	if err != nil {
		t.Fatal(err)
	}
	if a, err := c.Actor(ctxT(t)); err != nil || a != "configured-bot" {
		t.Fatalf("Actor = %q, %v", a, err)
	}
	if n := f.srv.Requests("GET", "/user"); n != 1 {
		t.Errorf("WithActor still asked GitHub")
	}
}
