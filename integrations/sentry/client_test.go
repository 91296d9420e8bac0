package sentry_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/integrations/sentry"
	"github.com/deploybot/deploybot/integrations/sentry/sentrytest"
)

const (
	token   = "sntrys_eyJpYXQiOjE3MDAwMDAwMDB9_SecretTokenValue123"
	org     = sentrytest.DefaultOrg
	slug    = "ingestion-server"
	projID  = 4242
	staging = "staging"
	prod    = "production"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newServer(t *testing.T) *sentrytest.Server {
	t.Helper()
	s := sentrytest.NewServer(token)
	t.Cleanup(s.Close)
	s.AddProject("frontend", 1)
	s.AddProject("api", 2)
	s.AddProject(slug, projID)
	return s
}

// noWait retries at once, so retry tests take no time beyond Retry-After.
func noWait(int) time.Duration { return 0 }

func newClient(s *sentrytest.Server, opts ...sentry.Option) *sentry.Client {
	return sentry.New(s.URL(), org, token, append([]sentry.Option{sentry.WithBackoff(noWait)}, opts...)...)
}

func noToken(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), token) {
		t.Fatalf("error leaks the token: %s", err)
	}
}

// base is a recent time at microsecond precision, as Sentry stores times.
var base = time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Microsecond)

func ids(issues []sentry.Issue) []string {
	var out []string
	for _, is := range issues {
		out = append(out, is.Title)
	}
	return out
}

func TestIssuesPagingOverThreePages(t *testing.T) {
	s := newServer(t)
	s.SetPageSize(2)
	for i, title := range []string{"e1", "e2", "e3", "e4", "e5"} {
		s.AddIssue(slug, prod, sentrytest.Issue{
			Title: title, Count: int64(10 + i), UserCount: i,
			FirstSeen: base.Add(time.Duration(i) * time.Minute), LastSeen: base.Add(time.Duration(10-i) * time.Minute),
		})
	}
	s.AddIssue("api", prod, sentrytest.Issue{Title: "other project", FirstSeen: base, LastSeen: base.Add(time.Minute)})
	c := newClient(s)
	ctx := testCtx(t)

	issues, err := c.Issues(ctx, slug, prod, base.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(issues), []string{"e1", "e2", "e3", "e4", "e5"}; !slices.Equal(got, want) {
		t.Fatalf("issues = %v, want %v (most recently seen first)", got, want)
	}
	if n := s.Requests("/api/0/organizations/openverse/issues/"); n != 3 {
		t.Fatalf("issue pages fetched = %d, want 3", n)
	}
	e1 := issues[0]
	if e1.Count != 10 || e1.UserCount != 0 || e1.Status != "unresolved" || e1.Level != "error" ||
		!e1.FirstSeen.Equal(base) || !e1.LastSeen.Equal(base.Add(10*time.Minute)) ||
		e1.ID == "" || !strings.HasPrefix(e1.ShortID, "INGESTION-SERVER-") ||
		e1.Permalink != s.URL()+"organizations/openverse/issues/"+e1.ID+"/" {
		t.Fatalf("issue = %+v", e1)
	}
	if issues[4].Count != 14 || issues[4].UserCount != 4 {
		t.Fatalf("count/userCount = %d/%d", issues[4].Count, issues[4].UserCount)
	}

	// The slug was resolved through the (paged) project list once, then
	// cached; the issues request filters on the numeric id.
	projects := s.Requests("/api/0/organizations/openverse/projects/")
	if projects != 2 {
		t.Fatalf("project list pages = %d, want 2", projects)
	}
	if _, err := c.Issues(ctx, slug, prod, base); err != nil {
		t.Fatal(err)
	}
	if n := s.Requests("/api/0/organizations/openverse/projects/"); n != projects {
		t.Fatalf("project list fetched again (%d): slug not cached", n)
	}
	for _, uri := range s.RequestURIs() {
		if strings.Contains(uri, "/issues/") && !strings.Contains(uri, "project=4242") {
			t.Fatalf("issues request without the numeric project id: %s", uri)
		}
	}

	// A numeric id needs no lookup.
	c2 := newClient(s)
	if got, err := c2.Issues(ctx, "4242", prod, base.Add(-time.Minute)); err != nil || len(got) != 5 {
		t.Fatalf("by id: %v, %d issues", err, len(got))
	}
	if n := s.Requests("/api/0/organizations/openverse/projects/"); n != projects {
		t.Fatalf("numeric project id looked up")
	}
}

func TestIssuesEnvironmentAndWindow(t *testing.T) {
	s := newServer(t)
	s.AddIssue(slug, prod, sentrytest.Issue{Title: "prod-recent", FirstSeen: base, LastSeen: base.Add(time.Hour)})
	s.AddIssue(slug, staging, sentrytest.Issue{Title: "staging-recent", FirstSeen: base, LastSeen: base.Add(time.Hour)})
	s.AddIssue(slug, prod, sentrytest.Issue{Title: "prod-old", FirstSeen: base.Add(-time.Hour), LastSeen: base.Add(-time.Minute)})
	s.AddIssue(slug, prod, sentrytest.Issue{Title: "prod-resolved", Status: "resolved", FirstSeen: base, LastSeen: base.Add(time.Minute)})
	c := newClient(s)
	ctx := testCtx(t)

	got, err := c.Issues(ctx, slug, prod, base)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"prod-recent", "prod-resolved"}; !slices.Equal(ids(got), want) {
		t.Fatalf("production issues = %v, want %v (resolved ones too: Sentry's default is:unresolved must be overridden)", ids(got), want)
	}
	got, err = c.Issues(ctx, slug, staging, base)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"staging-recent"}; !slices.Equal(ids(got), want) {
		t.Fatalf("staging issues = %v", ids(got))
	}
	got, err = c.Issues(ctx, slug, "", base)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("all environments = %v", ids(got))
	}
}

func TestRegressedDetection(t *testing.T) {
	s := newServer(t)
	regressed := s.AddIssue(slug, prod, sentrytest.Issue{Title: "regressed", Status: "unresolved", Substatus: "regressed", FirstSeen: base.Add(-48 * time.Hour), LastSeen: base.Add(time.Minute)})
	ongoing := s.AddIssue(slug, prod, sentrytest.Issue{Title: "ongoing", Status: "unresolved", Substatus: "ongoing", FirstSeen: base.Add(-48 * time.Hour), LastSeen: base.Add(2 * time.Minute)})
	s.AddIssue(slug, prod, sentrytest.Issue{Title: "brand-new", Substatus: "new", FirstSeen: base.Add(time.Minute), LastSeen: base.Add(3 * time.Minute)})
	c := newClient(s)
	ctx := testCtx(t)

	byTitle := func() map[string]sentry.Issue {
		t.Helper()
		got, err := c.Issues(ctx, slug, prod, base)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]sentry.Issue{}
		for _, is := range got {
			m[is.Title] = is
		}
		return m
	}
	m := byTitle()
	if !m["regressed"].Regressed || m["ongoing"].Regressed || m["brand-new"].Regressed {
		t.Fatalf("regressed flags: regressed=%v ongoing=%v new=%v", m["regressed"].Regressed, m["ongoing"].Regressed, m["brand-new"].Regressed)
	}
	if m["regressed"].Substatus != "regressed" {
		t.Fatalf("substatus = %q", m["regressed"].Substatus)
	}

	// Sentry changes issues under us: the ongoing one regresses, the
	// regressed one gets resolved.
	s.SetIssue(ongoing, func(is *sentrytest.Issue) { is.Substatus = "regressed"; is.Count += 5 })
	s.SetIssue(regressed, func(is *sentrytest.Issue) { is.Status = "resolved"; is.Substatus = "" })
	m = byTitle()
	if !m["ongoing"].Regressed || m["ongoing"].Count != 5 || m["regressed"].Regressed {
		t.Fatalf("after change: ongoing=%+v regressed=%+v", m["ongoing"], m["regressed"])
	}
}

func TestNewIssuesBoundary(t *testing.T) {
	s := newServer(t)
	since := base
	s.AddIssue(slug, prod, sentrytest.Issue{Title: "exactly-at-since", FirstSeen: since, LastSeen: since.Add(time.Minute)})
	s.AddIssue(slug, prod, sentrytest.Issue{Title: "just-before", FirstSeen: since.Add(-time.Microsecond), LastSeen: since.Add(2 * time.Minute)})
	s.AddIssue(slug, prod, sentrytest.Issue{Title: "after", FirstSeen: since.Add(time.Second), LastSeen: since.Add(3 * time.Minute)})
	s.AddIssue(slug, prod, sentrytest.Issue{Title: "old-regressed", Substatus: "regressed", FirstSeen: since.Add(-72 * time.Hour), LastSeen: since.Add(4 * time.Minute)})
	s.AddIssue(slug, prod, sentrytest.Issue{Title: "old-regressed-not-seen", Substatus: "regressed", FirstSeen: since.Add(-72 * time.Hour), LastSeen: since.Add(-time.Second)})
	s.AddIssue(slug, staging, sentrytest.Issue{Title: "staging-new", FirstSeen: since.Add(time.Second), LastSeen: since.Add(time.Minute)})

	got, err := newClient(s).NewIssues(testCtx(t), slug, prod, since)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"old-regressed", "after", "exactly-at-since"}
	if !slices.Equal(ids(got), want) {
		t.Fatalf("new issues = %v, want %v", ids(got), want)
	}
}

func TestCreateDeployExistingRelease(t *testing.T) {
	s := newServer(t)
	s.AddRelease("rel-2024.09.09.05.40.20", slug)
	c := newClient(s)
	started := base
	finished := base.Add(90 * time.Second)
	err := c.CreateDeploy(testCtx(t), slug, sentry.Deploy{
		Version: "rel-2024.09.09.05.40.20", Environment: prod, Name: "deploybot run 7",
		URL: "https://example.slack.com/archives/C0DEPLOYS/p1", Started: started, Finished: finished,
	})
	if err != nil {
		t.Fatal(err)
	}
	deploys := s.Deploys("rel-2024.09.09.05.40.20")
	want := sentrytest.Deploy{Environment: prod, Name: "deploybot run 7", URL: "https://example.slack.com/archives/C0DEPLOYS/p1",
		DateStarted: started, DateFinished: finished}
	if len(deploys) != 1 || deploys[0] != want {
		t.Fatalf("deploys = %+v\nwant %+v", deploys, want)
	}
	if rels := s.Releases(); len(rels) != 1 {
		t.Fatalf("releases = %+v: an existing release was created again", rels)
	}
	if n := s.Requests("/api/0/organizations/openverse/releases/"); n != 0 {
		t.Fatalf("release creation requests = %d", n)
	}
}

func TestCreateDeployCreatesMissingRelease(t *testing.T) {
	s := newServer(t)
	c := newClient(s)
	ctx := testCtx(t)
	if err := c.CreateDeploy(ctx, slug, sentry.Deploy{Version: "rel-2024.10.01.00.00.00", Environment: staging}); err != nil {
		t.Fatal(err)
	}
	rels := s.Releases()
	if len(rels) != 1 || rels[0].Version != "rel-2024.10.01.00.00.00" || !slices.Equal(rels[0].Projects, []string{slug}) {
		t.Fatalf("releases = %+v", rels)
	}
	d := s.Deploys("rel-2024.10.01.00.00.00")
	if len(d) != 1 || d[0].Environment != staging || !d[0].DateStarted.IsZero() || d[0].DateFinished.IsZero() {
		t.Fatalf("deploys = %+v", d)
	}
	deployPath := "/api/0/organizations/openverse/releases/rel-2024.10.01.00.00.00/deploys/"
	if n := s.Requests(deployPath); n != 2 {
		t.Fatalf("deploy requests = %d, want 2 (404, then after creating the release)", n)
	}

	// By numeric project id: the release is created with the slug.
	if err := c.CreateDeploy(ctx, "4242", sentry.Deploy{Version: "rel-2", Environment: prod}); err != nil {
		t.Fatal(err)
	}
	rels = s.Releases()
	if len(rels) != 2 || !slices.Equal(rels[1].Projects, []string{slug}) {
		t.Fatalf("releases = %+v", rels)
	}
}

func TestCreateDeployValidation(t *testing.T) {
	s := newServer(t)
	c := newClient(s)
	ctx := testCtx(t)
	if err := c.CreateDeploy(ctx, slug, sentry.Deploy{Environment: prod}); err == nil {
		t.Fatal("empty version accepted")
	}
	if err := c.CreateDeploy(ctx, slug, sentry.Deploy{Version: "v1"}); err == nil {
		t.Fatal("empty environment accepted")
	}
	err := c.CreateDeploy(ctx, "no-such-project", sentry.Deploy{Version: "v1", Environment: prod})
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("unknown project slug: err = %v", err)
	}
	err = c.CreateDeploy(ctx, "999", sentry.Deploy{Version: "v1", Environment: prod})
	if !errors.Is(err, sentry.ErrNotFound) || !strings.Contains(err.Error(), "project 999 not found") {
		t.Fatalf("unknown project id: err = %v", err)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	s := newServer(t)
	s.AddIssue(slug, prod, sentrytest.Issue{Title: "x", FirstSeen: base, LastSeen: base})
	c := newClient(s)
	ctx := testCtx(t)
	if _, err := c.Issues(ctx, "4242", prod, base); err != nil { // warm up
		t.Fatal(err)
	}
	before := s.Requests("/api/0/organizations/openverse/issues/")

	s.RateLimitNext(1, time.Second)
	start := time.Now()
	got, err := c.Issues(ctx, "4242", prod, base)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("issues = %v", ids(got))
	}
	if elapsed < 950*time.Millisecond {
		t.Fatalf("retried after %v, before Retry-After (1s)", elapsed)
	}
	if n := s.Requests("/api/0/organizations/openverse/issues/") - before; n != 2 {
		t.Fatalf("requests = %d, want 2", n)
	}
}

func TestRateLimitBounded(t *testing.T) {
	s := newServer(t)
	c := newClient(s, sentry.WithMaxRetries(2))

	// Retries exhausted.
	s.RateLimitNext(10, 0)
	_, err := c.Issues(testCtx(t), "4242", prod, base)
	if !errors.Is(err, sentry.ErrRateLimited) {
		t.Fatalf("err = %v", err)
	}
	if n := s.Requests("/api/0/organizations/openverse/issues/"); n != 3 {
		t.Fatalf("requests = %d, want 3 (1 + 2 retries)", n)
	}
	noToken(t, err)

	// A Retry-After past the deadline fails at once instead of sleeping.
	s.RateLimitNext(1, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err = c.Issues(ctx, "4242", prod, base)
	if !errors.Is(err, sentry.ErrRateLimited) || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

func TestServerErrorsRetried(t *testing.T) {
	s := newServer(t)
	s.AddIssue(slug, prod, sentrytest.Issue{Title: "x", FirstSeen: base, LastSeen: base})
	var waits []int
	c := sentry.New(s.URL(), org, token, sentry.WithBackoff(func(a int) time.Duration { waits = append(waits, a); return 0 }))
	ctx := testCtx(t)

	s.FailNext(2, http.StatusBadGateway)
	got, err := c.Issues(ctx, "4242", prod, base)
	if err != nil || len(got) != 1 {
		t.Fatalf("issues = %v, err = %v", ids(got), err)
	}
	if !slices.Equal(waits, []int{0, 1}) {
		t.Fatalf("backoff attempts = %v, want [0 1]", waits)
	}

	s.FailNext(10, http.StatusInternalServerError)
	_, err = c.Issues(ctx, "4242", prod, base)
	if err == nil || !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "after 3 retries") {
		t.Fatalf("err = %v", err)
	}

	// A POST is retried too.
	s.FailNext(1, http.StatusServiceUnavailable)
	s.AddRelease("v9", slug)
	if err := c.CreateDeploy(ctx, slug, sentry.Deploy{Version: "v9", Environment: prod}); err != nil {
		t.Fatal(err)
	}
	if d := s.Deploys("v9"); len(d) != 1 {
		t.Fatalf("deploys = %+v", d)
	}
}

func TestBackoffBoundedByContext(t *testing.T) {
	s := newServer(t)
	s.FailNext(1000, http.StatusServiceUnavailable)
	c := sentry.New(s.URL(), org, token, sentry.WithMaxRetries(1000), sentry.WithBackoff(func(int) time.Duration { return time.Hour }))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Issues(ctx, "4242", prod, base)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
}

func TestAuthAndNotFound(t *testing.T) {
	s := newServer(t)
	ctx := testCtx(t)

	_, err := sentry.New(s.URL(), org, "wrong-token-abcdef", sentry.WithBackoff(noWait)).Issues(ctx, slug, prod, base)
	if !errors.Is(err, sentry.ErrUnauthorized) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("bad token: err = %v", err)
	}
	if strings.Contains(err.Error(), "wrong-token-abcdef") {
		t.Fatalf("token in error: %s", err)
	}

	_, err = sentry.New(s.URL(), "no-such-org", token).Issues(ctx, slug, prod, base)
	if !errors.Is(err, sentry.ErrNotFound) || !strings.Contains(err.Error(), `"no-such-org" not found`) {
		t.Fatalf("unknown org: err = %v", err)
	}
	_, err = sentry.New(s.URL(), "no-such-org", token).Issues(ctx, "4242", prod, base)
	if !errors.Is(err, sentry.ErrNotFound) {
		t.Fatalf("unknown org by id: err = %v", err)
	}

	_, err = newClient(s).Issues(ctx, "ingestion-servr", prod, base)
	if !errors.Is(err, sentry.ErrNotFound) || !strings.Contains(err.Error(), "project ingestion-servr not found") {
		t.Fatalf("unknown project: err = %v", err)
	}
	_, err = newClient(s).Issues(ctx, "777", prod, base)
	if !errors.Is(err, sentry.ErrNotFound) {
		t.Fatalf("unknown project id: err = %v", err)
	}
}

func TestTokenNeverInErrors(t *testing.T) {
	ctx := testCtx(t)
	// A server (or proxy) that echoes the Authorization header back.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		status := http.StatusBadRequest
		if strings.Contains(r.URL.Path, "/projects/") {
			status = http.StatusForbidden
		}
		w.WriteHeader(status)
		w.Write([]byte(`{"detail":"bad request from ` + r.Header.Get("Authorization") + `"}`))
	}))
	defer echo.Close()
	c := sentry.New(echo.URL+"/", org, token, sentry.WithBackoff(noWait))
	for name, call := range map[string]func() error{
		"issues by id":   func() error { _, err := c.Issues(ctx, "1", prod, base); return err },
		"issues by slug": func() error { _, err := c.Issues(ctx, slug, prod, base); return err },
		"deploy":         func() error { return c.CreateDeploy(ctx, slug, sentry.Deploy{Version: "v", Environment: prod}) },
	} {
		err := call()
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		if !strings.Contains(err.Error(), "[redacted]") {
			t.Fatalf("%s: echo not shown redacted: %s", name, err)
		}
		noToken(t, err)
	}

	// Unreachable, after retries.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + l.Addr().String() + "/"
	l.Close()
	_, err = sentry.New(addr, org, token, sentry.WithBackoff(noWait)).Issues(ctx, "1", prod, base)
	if !errors.Is(err, sentry.ErrUnreachable) || !strings.HasPrefix(err.Error(), "sentry at "+addr+" unreachable") {
		t.Fatalf("unreachable: err = %v", err)
	}
	noToken(t, err)
}

func TestBadArguments(t *testing.T) {
	ctx := testCtx(t)
	for _, c := range []*sentry.Client{
		sentry.New("sentry.io", org, token),
		sentry.New("https://sentry.io/", "", token),
	} {
		if _, err := c.Issues(ctx, slug, prod, base); err == nil {
			t.Fatal("bad configuration accepted")
		}
	}
	s := newServer(t)
	if _, err := newClient(s).Issues(ctx, slug, prod, time.Time{}); err == nil {
		t.Fatal("zero since accepted")
	}
	// A base URL without the trailing slash still works.
	if _, err := sentry.New(strings.TrimSuffix(s.URL(), "/"), org, token).Issues(ctx, slug, prod, base); err != nil {
		t.Fatal(err)
	}
}

// HasDeploy finds a recorded deploy by version and environment, and none
// for an unknown release or another environment.
func TestHasDeploy(t *testing.T) {
	s := newServer(t)
	c := newClient(s)
	const v = "rel-2024.09.09.05.40.20"
	if ok, err := c.HasDeploy(testCtx(t), v, prod); ok || err != nil {
		t.Fatalf("unknown release: %v %v", ok, err)
	}
	if err := c.CreateDeploy(testCtx(t), slug, sentry.Deploy{Version: v, Environment: prod}); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.HasDeploy(testCtx(t), v, prod); !ok || err != nil {
		t.Fatalf("after the deploy: %v %v", ok, err)
	}
	if ok, err := c.HasDeploy(testCtx(t), v, "staging"); ok || err != nil {
		t.Fatalf("another environment: %v %v", ok, err)
	}
}
