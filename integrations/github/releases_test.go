package github

import (
	"fmt"
	"testing"
	"time"

	"github.com/deploybot/deploybot/integrations/github/githubtest"
)

// A release body as release-drafter writes it, plus text that would ping a
// whole Slack channel if it reached chat unescaped. This package must hand
// it back byte for byte.
const hostileBody = "## New Features\n- [Add <b>bold</b> & more (#4321)](https://github.com/WordPress/openverse/pull/4321) by @someone\n<!channel> <@U123> <!subteam^S0MAINTAINERS> &amp; \"quoted\" 'single'\n"

func TestNewestDraftPagesThroughAllReleases(t *testing.T) {
	f := newFixture(t)
	base := f.clock.Now().Add(-200 * time.Hour)
	// 150 published releases of other apps: the listing takes two pages.
	for i := range 150 {
		f.srv.AddRelease(monorepo, githubtest.Release{
			Tag:       fmt.Sprintf("api-2024.01.01.00.%02d.%02d", i/60, i%60),
			CreatedAt: base.Add(time.Duration(i) * time.Minute),
		})
	}
	f.srv.AddRelease(monorepo, githubtest.Release{Tag: "ingestion_server-2024.09.01.00.00.00", Draft: true, CreatedAt: base.Add(-time.Hour)})
	want := f.srv.AddRelease(monorepo, githubtest.Release{
		Tag: "ingestion_server-2024.09.09.05.40.20", Name: "ingestion_server-2024.09.09.05.40.20",
		Body: hostileBody, Draft: true, CreatedAt: base.Add(time.Hour),
	})
	f.srv.AddRelease(monorepo, githubtest.Release{Tag: "frontend-2024.09.10.00.00.00", Draft: true, CreatedAt: base.Add(2 * time.Hour)})
	f.srv.AddRelease(monorepo, githubtest.Release{Tag: "ingestion_server-2024.09.02.00.00.00", CreatedAt: base.Add(3 * time.Hour)})

	got, err := f.c.NewestDraft(ctxT(t), monorepo, "ingestion_server-")
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || got.ID != want {
		t.Fatalf("NewestDraft = %+v, want id %d", got, want)
	}
	if got.Body != hostileBody {
		t.Errorf("body changed:\n got %q\nwant %q", got.Body, hostileBody)
	}
	if !got.Draft || got.Tag != "ingestion_server-2024.09.09.05.40.20" || got.Name != got.Tag || !got.PublishedAt.IsZero() || got.TargetCommitish != "main" {
		t.Errorf("unexpected release %+v", got)
	}
	if !got.CreatedAt.Equal(base.Add(time.Hour)) {
		t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, base.Add(time.Hour))
	}
	if n := f.srv.Requests("GET", "/repos/WordPress/openverse/releases"); n != 2 {
		t.Errorf("%d list requests, want 2 pages of 100", n)
	}
}

func TestNewestDraftNone(t *testing.T) {
	f := newFixture(t)
	f.srv.AddRelease(monorepo, githubtest.Release{Tag: "ingestion_server-2024.09.02.00.00.00"})
	f.srv.AddRelease(monorepo, githubtest.Release{Tag: "api-2024.09.02.00.00.00", Draft: true})
	got, err := f.c.NewestDraft(ctxT(t), monorepo, "ingestion_server-")
	if err != nil || got != nil {
		t.Fatalf("NewestDraft = %+v, %v; want nil, nil", got, err)
	}
}

func TestLatestPublished(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	f.srv.AddRelease(monorepo, githubtest.Release{Tag: "ingestion_server-2024.08.01.00.00.00", CreatedAt: now.Add(-72 * time.Hour)})
	want := f.srv.AddRelease(monorepo, githubtest.Release{Tag: "ingestion_server-2024.08.20.00.00.00", CreatedAt: now.Add(-48 * time.Hour)})
	f.srv.AddRelease(monorepo, githubtest.Release{Tag: "ingestion_server-2024.08.25.00.00.00", Prerelease: true, CreatedAt: now.Add(-24 * time.Hour)})
	f.srv.AddRelease(monorepo, githubtest.Release{Tag: "ingestion_server-2024.09.09.05.40.20", Draft: true, CreatedAt: now.Add(-time.Hour)})
	f.srv.AddRelease(monorepo, githubtest.Release{Tag: "api-2024.09.01.00.00.00", CreatedAt: now.Add(-2 * time.Hour)})

	got, err := f.c.LatestPublished(ctxT(t), monorepo, "ingestion_server-")
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || got.ID != want || got.Draft || got.PublishedAt.IsZero() {
		t.Fatalf("LatestPublished = %+v, want id %d", got, want)
	}

	none, err := f.c.LatestPublished(ctxT(t), monorepo, "catalog-")
	if err != nil || none != nil {
		t.Fatalf("LatestPublished(catalog-) = %+v, %v; want nil, nil", none, err)
	}
}

func TestReleaseByTag(t *testing.T) {
	f := newFixture(t)
	pub := f.srv.AddRelease(monorepo, githubtest.Release{Tag: "ingestion_server-2024.08.20.00.00.00", Body: hostileBody})
	f.srv.AddRelease(monorepo, githubtest.Release{Tag: "ingestion_server-2024.09.09.05.40.20", Draft: true})
	ctx := ctxT(t)

	got, err := f.c.ReleaseByTag(ctx, monorepo, "ingestion_server-2024.08.20.00.00.00")
	if err != nil || got == nil || got.ID != pub || got.Body != hostileBody {
		t.Fatalf("ReleaseByTag(published) = %+v, %v", got, err)
	}
	wantURL := f.srv.WebURL() + "/WordPress/openverse/releases/tag/ingestion_server-2024.08.20.00.00.00"
	if got.HTMLURL != wantURL {
		t.Errorf("HTMLURL = %q, want %q", got.HTMLURL, wantURL)
	}
	for _, tag := range []string{"ingestion_server-2024.09.09.05.40.20", "no-such-tag", "odd?tag#x"} {
		got, err := f.c.ReleaseByTag(ctx, monorepo, tag)
		if err != nil || got != nil {
			t.Errorf("ReleaseByTag(%q) = %+v, %v; want nil, nil (drafts are not found by tag)", tag, got, err)
		}
	}
}

func TestPublishStartsBuildWorkflow(t *testing.T) {
	f := newFixture(t)
	const tag = "ingestion_server-2024.09.09.05.40.20"
	id := f.srv.AddRelease(monorepo, githubtest.Release{Tag: tag, Name: tag, Body: hostileBody, Draft: true})
	f.srv.OnPublish(monorepo, buildWF, "success", 9*time.Minute)
	ctx := ctxT(t)
	before := f.clock.Now()

	rel, err := f.c.Publish(ctx, monorepo, id)
	if err != nil {
		t.Fatal(err)
	}
	if rel.Draft || rel.PublishedAt.IsZero() || rel.Body != hostileBody || rel.Tag != tag {
		t.Fatalf("Publish returned %+v", rel)
	}
	if s := f.srv.Release(monorepo, id); s.Draft {
		t.Fatal("server still has a draft")
	}
	// A second publish (a retry after a lost answer) changes nothing.
	if _, err := f.c.Publish(ctx, monorepo, id); err != nil {
		t.Fatal(err)
	}
	if n := len(f.srv.Runs(monorepo, buildWF)); n != 1 {
		t.Fatalf("%d build runs, want 1", n)
	}
	if by, err := f.c.ReleaseByTag(ctx, monorepo, tag); err != nil || by == nil || by.ID != id {
		t.Fatalf("published release not found by tag: %+v, %v", by, err)
	}

	filter := RunFilter{Event: "release", Branch: tag, CreatedAfter: before}
	runs, err := f.c.WorkflowRuns(ctx, monorepo, buildWF, filter)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 {
		t.Fatalf("runs = %+v, want one", runs)
	}
	run := runs[0]
	if run.Event != "release" || run.HeadBranch != tag || run.Status != "queued" || run.Conclusion != "" || run.Completed() {
		t.Fatalf("fresh run = %+v", run)
	}
	if run.Name == "" || run.HTMLURL == "" || run.HeadSHA == "" {
		t.Errorf("run lacks name, url or sha: %+v", run)
	}

	// Follow it the way a step does: poll until completed, with a deadline.
	deadline := f.clock.Now().Add(30 * time.Minute)
	seen := map[string]bool{}
	for {
		got, err := f.c.WorkflowRun(ctx, monorepo, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		seen[got.Status] = true
		if got.Completed() {
			if got.Conclusion != "success" {
				t.Fatalf("conclusion = %q", got.Conclusion)
			}
			break
		}
		if f.clock.Now().After(deadline) {
			t.Fatalf("run never completed: %+v", got)
		}
		f.clock.Advance(time.Minute)
	}
	if !seen["queued"] || !seen["in_progress"] || !seen["completed"] {
		t.Errorf("statuses seen %v, want queued, in_progress and completed", seen)
	}
}

func TestPublishUnknownRelease(t *testing.T) {
	f := newFixture(t)
	_, err := f.c.Publish(ctxT(t), monorepo, 999)
	if err == nil {
		t.Fatal("no error")
	}
	want := "publishing release 999 of WordPress/openverse: GitHub answered 404: Not Found"
	if got := err.Error(); len(got) < len(want) || got[:len(want)] != want {
		t.Errorf("error = %q, want prefix %q", got, want)
	}
	if StatusCode(err) != 404 {
		t.Errorf("StatusCode = %d", StatusCode(err))
	}
}

func TestCompareAndWebURL(t *testing.T) {
	for _, tc := range []struct{ api, web string }{
		{"https://api.github.com/", "https://github.com"},
		{"https://api.github.com", "https://github.com"},
		{"https://ghe.example.com/api/v3/", "https://ghe.example.com"},
		{"https://api.acme.ghe.com/", "https://acme.ghe.com"},
		{"http://127.0.0.1:4321/", "http://127.0.0.1:4321"},
	} {
		if got := WebURL(tc.api); got != tc.web {
			t.Errorf("WebURL(%q) = %q, want %q", tc.api, got, tc.web)
		}
	}
	got := CompareURL(monorepo, "ingestion_server-2024.08.20.00.00.00", "ingestion_server-2024.09.09.05.40.20", "https://github.com/")
	want := "https://github.com/WordPress/openverse/compare/ingestion_server-2024.08.20.00.00.00...ingestion_server-2024.09.09.05.40.20"
	if got != want {
		t.Errorf("CompareURL = %q, want %q", got, want)
	}
	if got := CompareURL("o/r", "v1", "feature/x y", ""); got != "https://github.com/o/r/compare/v1...feature/x%20y" {
		t.Errorf("CompareURL escaping = %q", got)
	}
	f := newFixture(t)
	if f.c.WebURL() != f.srv.WebURL() {
		t.Errorf("client web URL %q, server %q", f.c.WebURL(), f.srv.WebURL())
	}
}
