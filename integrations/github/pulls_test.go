package github

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"

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

	pr, err := f.c.OpenPRByHead(ctx, monorepo, changelogBranch)
	if err != nil {
		t.Fatal(err)
	}
	want := PR{
		Number: n, Title: "Publish changelog for ingestion_server-2024.09.09.05.40.20 <!here> & co",
		HTMLURL: f.srv.WebURL() + "/WordPress/openverse/pull/" + itoa(n),
		Head:    changelogBranch, Base: "main", State: "open", User: githubtest.DefaultPRUser,
	}
	if pr == nil || *pr != want {
		t.Fatalf("OpenPRByHead = %+v\nwant %+v", pr, want)
	}
	if n := f.srv.Requests("GET", "/repos/WordPress/openverse/pulls"); n != 1 {
		t.Errorf("%d list requests, want 1 (the head filter found it)", n)
	}

	none, err := f.c.OpenPRByHead(ctx, monorepo, "changelog/ingestion_server-2099.01.01.00.00.00")
	if err != nil || none != nil {
		t.Fatalf("OpenPRByHead(missing) = %+v, %v", none, err)
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
	pr, err := c.OpenPRByHead(ctxT(t), monorepo, changelogBranch)
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
	if err := f.c.Approve(ctx, monorepo, n, "Approved in Slack by <@U0ALICE>."); err != nil {
		t.Fatal(err)
	}
	rv := f.srv.Reviews(monorepo, n)
	if len(rv) != 1 || rv[0].State != "APPROVED" || rv[0].User != githubtest.DefaultUser || rv[0].Body != "Approved in Slack by <@U0ALICE>." {
		t.Fatalf("reviews = %+v", rv)
	}

	// GitHub refuses an author approving their own pull request.
	own := f.srv.AddPR(monorepo, githubtest.PR{Title: "Mine", Head: "bot/branch", User: githubtest.DefaultUser})
	err := f.c.Approve(ctx, monorepo, own, "")
	if err == nil || !strings.Contains(err.Error(), "approving pull request #"+itoa(own)+" of WordPress/openverse: GitHub answered 422: Can not approve your own pull request") {
		t.Fatalf("own approval: %v", err)
	}
	if n := f.srv.Requests("POST", "/repos/WordPress/openverse/pulls/"+itoa(own)+"/reviews"); n != 1 {
		t.Errorf("%d review POSTs, want 1", n)
	}

	if err := f.c.Approve(ctx, monorepo, 9999, ""); StatusCode(err) != 404 {
		t.Errorf("approving a missing PR: %v", err)
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

// GitHub may create the pull request and still answer 502. The client
// resends the POST (502 is safe to resend), gets "already exists", and
// returns the one that was created.
func TestCreatePRAfterLostAnswer(t *testing.T) {
	f := newFixture(t)
	const head = "deploybot/bump"
	f.srv.AddRef(infraRepo, head)
	f.srv.FailAfterApply("POST", "/repos/WordPress/openverse-infrastructure/pulls", 1, http.StatusBadGateway)

	pr, err := f.c.CreatePR(ctxT(t), infraRepo, head, "main", "Bump", "body")
	if err != nil {
		t.Fatal(err)
	}
	prs := f.srv.PRs(infraRepo)
	if len(prs) != 1 || prs[0].Number != pr.Number || pr.Title != "Bump" {
		t.Fatalf("got %+v, server has %+v", pr, prs)
	}
	if n := f.srv.Requests("POST", "/repos/WordPress/openverse-infrastructure/pulls"); n != 2 {
		t.Errorf("%d create POSTs, want 2 (one lost, one refused)", n)
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
