package github

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/integrations/github/githubtest"
)

const changelogBranch = "changelog/ingestion_server-2024.09.09.05.40.20"

func TestOpenPRByHead(t *testing.T) {
	f := newFixture(t)
	f.srv.AddPR(monorepo, githubtest.PR{Title: "Old changelog", Head: changelogBranch, State: "closed"})
	n := f.srv.AddPR(monorepo, githubtest.PR{
		Title: "Publish changelog for ingestion_server-2024.09.09.05.40.20 <!here> & co",
		Head:  changelogBranch,
	})
	f.srv.AddPR(monorepo, githubtest.PR{Title: "Other", Head: "feature/x"})
	ctx := ctxT(t)

	pr, err := f.c.openPRByHead(ctx, "test", monorepo, changelogBranch)
	if err != nil {
		t.Fatal(err)
	}
	want := PR{
		Number: n, Title: "Publish changelog for ingestion_server-2024.09.09.05.40.20 <!here> & co",
		HTMLURL: f.srv.WebURL() + "/WordPress/openverse/pull/" + itoa(n),
		Head:    changelogBranch, Base: "main", State: "open", User: githubtest.DefaultPRUser,
		HeadRepo: monorepo, HeadSHA: f.srv.PRs(monorepo)[n-1].HeadSHA,
	}
	if pr == nil || *pr != want {
		t.Fatalf("openPRByHead = %+v\nwant %+v", pr, want)
	}
	if n := f.srv.Requests("GET", "/repos/WordPress/openverse/pulls"); n != 1 {
		t.Errorf("%d list requests, want 1 (the head filter found it)", n)
	}

	none, err := f.c.openPRByHead(ctx, "test", monorepo, "changelog/ingestion_server-2099.01.01.00.00.00")
	if err != nil || none != nil {
		t.Fatalf("openPRByHead(missing) = %+v, %v", none, err)
	}
}

// headFilterIgnored forwards to srv but drops the head filter's match, as
// GitHub does for a head in a fork or a malformed filter: only the fallback
// scan can find the pull request.
func headFilterIgnored(t *testing.T, srv *githubtest.Server) string {
	target, _ := url.Parse(srv.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query(); q.Get("head") != "" {
			q.Set("head", "someone-else:"+q.Get("head"))
			r.URL.RawQuery = q.Encode()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return front.URL + "/"
}

func TestOpenPRByHeadFallsBackToScanning(t *testing.T) {
	f := newFixture(t)
	// The oldest open pull request, on the second page of the scan.
	n := f.srv.AddPR(monorepo, githubtest.PR{Title: "Changelog", Head: changelogBranch})
	for i := range 120 {
		f.srv.AddPR(monorepo, githubtest.PR{Title: "newer", Head: "feature/" + itoa(i)})
	}
	c, err := New(headFilterIgnored(t, f.srv), Auth{Token: testToken}, WithClock(f.clock))
	if err != nil {
		t.Fatal(err)
	}
	pr, err := c.openPRByHead(ctxT(t), "test", monorepo, changelogBranch)
	if err != nil {
		t.Fatal(err)
	}
	if pr == nil || pr.Number != n {
		t.Fatalf("fallback found %+v, want #%d", pr, n)
	}
	if got := f.srv.Requests("GET", "/repos/WordPress/openverse/pulls"); got != 3 {
		t.Errorf("%d list requests, want 3 (filtered, then two pages)", got)
	}
}

func TestApprove(t *testing.T) {
	f := newFixture(t)
	n := f.srv.AddPR(monorepo, githubtest.PR{Title: "Changelog", Head: changelogBranch})
	ctx := ctxT(t)
	sha := headSHA(t, f, monorepo, n)
	res, err := f.c.Approve(ctx, monorepo, n, sha, "Approved in Slack by <@U0ALICE>.")
	if err != nil || res != (Approval{}) {
		t.Fatalf("Approve = %+v, %v", res, err)
	}
	rv := f.srv.Reviews(monorepo, n)
	if len(rv) != 1 || rv[0].State != "APPROVED" || rv[0].User != githubtest.DefaultUser || rv[0].Body != "Approved in Slack by <@U0ALICE>." || rv[0].CommitID != sha {
		t.Fatalf("reviews = %+v", rv)
	}

	// GitHub refuses an author approving their own pull request.
	own := f.srv.AddPR(monorepo, githubtest.PR{Title: "Mine", Head: "bot/branch", User: githubtest.DefaultUser})
	_, err = f.c.Approve(ctx, monorepo, own, headSHA(t, f, monorepo, own), "")
	if err == nil || !strings.Contains(err.Error(), "approving pull request #"+itoa(own)+" of WordPress/openverse: GitHub answered 422: Can not approve your own pull request") {
		t.Fatalf("own approval: %v", err)
	}
	if n := f.srv.Requests("POST", "/repos/WordPress/openverse/pulls/"+itoa(own)+"/reviews"); n != 1 {
		t.Errorf("%d review POSTs, want 1", n)
	}

	if _, err := f.c.Approve(ctx, monorepo, 9999, sha, ""); StatusCode(err) != 404 {
		t.Errorf("approving a missing PR: %v", err)
	}
}

func headSHA(t *testing.T, f *fixture, repo string, n int) string {
	t.Helper()
	p, err := f.c.PR(ctxT(t), repo, n)
	if err != nil {
		t.Fatal(err)
	}
	return p.HeadSHA
}

// The approval is pinned to the commit people were shown: it is sent with
// that commit_id, refused when the head moved, and not sent twice.
func TestApprovePinnedToHeadSHA(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	n := f.srv.AddPR(monorepo, githubtest.PR{Title: "Changelog", Head: changelogBranch})
	shown := headSHA(t, f, monorepo, n)
	reviews := "/repos/WordPress/openverse/pulls/" + itoa(n) + "/reviews"

	// The author pushes after the preview: nothing is approved.
	moved := f.srv.PushPR(monorepo, n)
	res, err := f.c.Approve(ctx, monorepo, n, shown, "ok")
	if err != nil || res.MovedTo != moved {
		t.Fatalf("Approve after a push = %+v, %v; want MovedTo %s", res, err, moved)
	}
	if f.srv.Requests("POST", reviews) != 0 || len(f.srv.Reviews(monorepo, n)) != 0 {
		t.Fatalf("a review was sent for a commit nobody saw: %+v", f.srv.Reviews(monorepo, n))
	}

	// Approving the new head pins it; asking again sends nothing.
	if res, err := f.c.Approve(ctx, monorepo, n, moved, "ok"); err != nil || res != (Approval{}) {
		t.Fatalf("Approve = %+v, %v", res, err)
	}
	if res, err := f.c.Approve(ctx, monorepo, n, moved, "ok"); err != nil || !res.Already {
		t.Fatalf("second Approve = %+v, %v; want Already", res, err)
	}
	if rv := f.srv.Reviews(monorepo, n); len(rv) != 1 || rv[0].CommitID != moved {
		t.Fatalf("reviews = %+v, want one on %s", rv, moved)
	}
	if got := f.srv.Requests("POST", reviews); got != 1 {
		t.Errorf("%d review POSTs, want 1", got)
	}

	// The test server refuses, as GitHub does, a commit_id that is not
	// the head.
	req, _ := http.NewRequest("POST", f.srv.URL()+strings.TrimPrefix(reviews, "/"), strings.NewReader(`{"event":"APPROVE","commit_id":"`+shown+`"}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 422 {
		t.Errorf("stale commit_id answered %d, want 422", resp.StatusCode)
	}
}

// An approval whose answer is lost (504 after it was recorded, or the
// connection dropped) is looked for before it is sent again: one review.
func TestApproveAfterLostAnswer(t *testing.T) {
	for _, drop := range []bool{false, true} {
		f := newFixture(t, WithBackoff(time.Millisecond, time.Millisecond))
		n := f.srv.AddPR(monorepo, githubtest.PR{Title: "Changelog", Head: changelogBranch})
		reviews := "/repos/WordPress/openverse/pulls/" + itoa(n) + "/reviews"
		if drop {
			f.srv.DropAfterApply("POST", reviews, 1)
		} else {
			f.srv.FailAfterApply("POST", reviews, 1, http.StatusGatewayTimeout)
		}
		res, err := f.c.Approve(ctxT(t), monorepo, n, headSHA(t, f, monorepo, n), "ok")
		if err != nil || res.Already {
			t.Fatalf("drop=%v: Approve = %+v, %v; want approved by this call", drop, res, err)
		}
		if rv := f.srv.Reviews(monorepo, n); len(rv) != 1 {
			t.Errorf("drop=%v: %d reviews, want 1", drop, len(rv))
		}
		if got := f.srv.Requests("POST", reviews); got != 1 {
			t.Errorf("drop=%v: %d review POSTs, want 1", drop, got)
		}
	}
}

// Only the monorepo's own branch, opened by the configured author, is the
// changelog PR: a fork's PR from a branch of the same name and another
// author's PR are ignored, with the reason.
func TestPRFromRefusesForksAndOtherAuthors(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	fork := f.srv.AddPR(monorepo, githubtest.PR{Title: "Publish changelog (fork)", Head: changelogBranch, HeadRepo: "mallory/openverse"})
	p, ignored, err := f.c.PRFrom(ctx, monorepo, changelogBranch, githubtest.DefaultPRUser)
	if err != nil {
		t.Fatal(err)
	}
	if p != nil || len(ignored) != 1 || ignored[0].PR.Number != fork || !strings.Contains(ignored[0].Why, "mallory/openverse") {
		t.Fatalf("fork only: PRFrom = %+v, ignored %+v", p, ignored)
	}
	if p, err := f.c.openPRByHead(ctx, "test", monorepo, changelogBranch); err != nil || p != nil {
		t.Errorf("openPRByHead took the fork's PR: %+v %v", p, err)
	}

	// Someone else's PR from the monorepo's own branch: not trusted either.
	f.srv.AddPR(monorepo, githubtest.PR{Title: "Publish changelog", Head: changelogBranch, User: "mallory"})
	p, ignored, err = f.c.PRFrom(ctx, monorepo, changelogBranch, githubtest.DefaultPRUser)
	if err != nil || p != nil || len(ignored) != 2 || !strings.Contains(ignored[0].Why+ignored[1].Why, "opened by mallory, not by openverse-bot") {
		t.Fatalf("other author: PRFrom = %+v, ignored %+v, %v", p, ignored, err)
	}
}

func TestPRFromAcceptsTheAuthorsOwnBranch(t *testing.T) {
	f := newFixture(t)
	f.srv.AddPR(monorepo, githubtest.PR{Title: "Publish changelog (fork)", Head: changelogBranch, HeadRepo: "mallory/openverse", User: githubtest.DefaultPRUser})
	n := f.srv.AddPR(monorepo, githubtest.PR{Title: "Publish changelog", Head: changelogBranch})
	p, ignored, err := f.c.PRFrom(ctxT(t), monorepo, changelogBranch, "OpenVerse-Bot")
	if err != nil || p == nil || p.Number != n || p.HeadRepo != monorepo || p.HeadSHA == "" || len(ignored) != 1 {
		t.Fatalf("PRFrom = %+v, ignored %+v, %v", p, ignored, err)
	}
}

func TestCreatePRIsIdempotent(t *testing.T) {
	f := newFixture(t)
	const head = "deploybot/ingestion-server-rel-2024.09.09.05.40.20"
	f.srv.AddRef(infraRepo, head)
	ctx := ctxT(t)

	first, err := f.c.CreatePR(ctx, infraRepo, head, "main", "Deploy ingestion-server rel-2024.09.09.05.40.20", "body one")
	if err != nil {
		t.Fatal(err)
	}
	if first.Head != head || first.Base != "main" || first.State != "open" || first.User != githubtest.DefaultUser {
		t.Fatalf("created %+v", first)
	}
	second, err := f.c.CreatePR(ctx, infraRepo, head, "main", "Deploy ingestion-server (retry)", "body <two> & more")
	if err != nil {
		t.Fatal(err)
	}
	if second.Number != first.Number || second.Title != "Deploy ingestion-server (retry)" {
		t.Fatalf("second call gave %+v, want #%d updated", second, first.Number)
	}
	prs := f.srv.PRs(infraRepo)
	if len(prs) != 1 || prs[0].Body != "body <two> & more" {
		t.Fatalf("server PRs = %+v", prs)
	}
	if n := f.srv.Requests("POST", "/repos/WordPress/openverse-infrastructure/pulls"); n != 1 {
		t.Errorf("%d create POSTs, want 1", n)
	}
}

// GitHub may create the pull request and still answer 502, or the answer
// may be lost with the connection. The client does not resend the POST: it
// looks, finds the pull request it created, and returns it.
func TestCreatePRAfterLostAnswer(t *testing.T) {
	for _, drop := range []bool{false, true} {
		f := newFixture(t, WithBackoff(time.Millisecond, time.Millisecond))
		const head = "deploybot/bump"
		f.srv.AddRef(infraRepo, head)
		if drop {
			f.srv.DropAfterApply("POST", "/repos/WordPress/openverse-infrastructure/pulls", 1)
		} else {
			f.srv.FailAfterApply("POST", "/repos/WordPress/openverse-infrastructure/pulls", 1, http.StatusBadGateway)
		}
		pr, err := f.c.CreatePR(ctxT(t), infraRepo, head, "main", "Bump", "body")
		if err != nil {
			t.Fatal(err)
		}
		prs := f.srv.PRs(infraRepo)
		if len(prs) != 1 || prs[0].Number != pr.Number || pr.Title != "Bump" {
			t.Fatalf("drop=%v: got %+v, server has %+v", drop, pr, prs)
		}
		if n := f.srv.Requests("POST", "/repos/WordPress/openverse-infrastructure/pulls"); n != 1 {
			t.Errorf("drop=%v: %d create POSTs, want 1", drop, n)
		}
	}
}

// A fork's pull request from a branch named like the run's branch is never
// reused as the infrastructure PR: deploybot opens its own, from its own
// branch, into the configured base.
func TestCreatePRIgnoresForkWithSameBranch(t *testing.T) {
	f := newFixture(t)
	const head = "deploybot/bump"
	f.srv.AddRef(infraRepo, head)
	fork := f.srv.AddPR(infraRepo, githubtest.PR{Title: "Sneaky", Head: head, HeadRepo: "mallory/openverse-infrastructure", User: "mallory"})
	pr, err := f.c.CreatePR(ctxT(t), infraRepo, head, "main", "Bump", "body")
	if err != nil {
		t.Fatal(err)
	}
	if pr.Number == fork || pr.HeadRepo != infraRepo || pr.Head != head || pr.Base != "main" {
		t.Fatalf("CreatePR = %+v, want a new PR from %s:%s (the fork's is #%d)", pr, infraRepo, head, fork)
	}
	if prs := f.srv.PRs(infraRepo); len(prs) != 2 || prs[0].Title != "Sneaky" {
		t.Errorf("the fork's PR was changed: %+v", prs)
	}
}

func TestCreatePRRejected(t *testing.T) {
	f := newFixture(t)
	_, err := f.c.CreatePR(ctxT(t), infraRepo, "no-such-branch", "main", "t", "b")
	if err == nil || !strings.Contains(err.Error(), "opening a pull request from no-such-branch into main in WordPress/openverse-infrastructure: GitHub answered 422: PullRequest head is invalid") {
		t.Fatalf("err = %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
