package githubtest_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	gh "github.com/google/go-github/v57/github"

	"github.com/deploybot/deploybot/integrations/github/githubtest"
)

const repo = "WordPress/openverse"

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func setup(t *testing.T) (*githubtest.Server, *gh.Client, *clock) {
	t.Helper()
	s := githubtest.NewServer()
	t.Cleanup(s.Close)
	clk := &clock{now: time.Date(2024, 9, 9, 5, 40, 20, 0, time.UTC)}
	s.SetClock(clk.Now)
	s.SetToken("tok")
	s.AddRepo(repo)
	c := gh.NewClient(nil).WithAuthToken("tok")
	u, _ := url.Parse(s.URL())
	c.BaseURL = u
	return s, c, clk
}

// raw sends one request and returns the status, headers and decoded body.
func raw(t *testing.T, method, u, auth, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, resp.Header, m
}

func TestURLAndNotFound(t *testing.T) {
	s, _, _ := setup(t)
	if !strings.HasSuffix(s.URL(), "/") || s.WebURL()+"/" != s.URL() {
		t.Fatalf("URL %q, WebURL %q", s.URL(), s.WebURL())
	}
	for _, path := range []string{"repos/WordPress/unknown/releases", "repos/WordPress/openverse/nothing-here", "teams"} {
		code, _, body := raw(t, "GET", s.URL()+path, "Bearer tok", "")
		if code != 404 || body["message"] != "Not Found" {
			t.Errorf("%s: %d %v", path, code, body)
		}
	}
	// Repository names are case-insensitive, as on GitHub.
	if code, _, _ := raw(t, "GET", s.URL()+"repos/wordpress/OPENVERSE/releases", "token tok", ""); code != 200 {
		t.Errorf("case-insensitive repo: %d", code)
	}
}

func TestAuthentication(t *testing.T) {
	s := githubtest.NewServer()
	defer s.Close()
	s.AddRepo(repo)
	u := s.URL() + "repos/" + repo + "/releases"
	if code, _, _ := raw(t, "GET", u, "", ""); code != 200 {
		t.Errorf("before SetToken anonymous requests are served, got %d", code)
	}
	s.SetToken("tok")
	for _, auth := range []string{"", "Bearer nope", "tok", "Basic dG9rOg=="} {
		code, _, body := raw(t, "GET", u, auth, "")
		if code != 401 || body["message"] != "Bad credentials" {
			t.Errorf("auth %q: %d %v", auth, code, body)
		}
	}
	for _, auth := range []string{"Bearer tok", "token tok"} {
		if code, _, _ := raw(t, "GET", u, auth, ""); code != 200 {
			t.Errorf("auth %q: %d", auth, code)
		}
	}
	code, _, body := raw(t, "GET", s.URL()+"user", "Bearer tok", "")
	if code != 200 || body["login"] != githubtest.DefaultUser || body["type"] != "Bot" {
		t.Errorf("/user: %d %v", code, body)
	}
	s.SetUser("octocat")
	if _, _, body := raw(t, "GET", s.URL()+"user", "Bearer tok", ""); body["login"] != "octocat" {
		t.Errorf("/user after SetUser: %v", body)
	}
}

func TestReleasesPagingAndDrafts(t *testing.T) {
	s, c, clk := setup(t)
	ctx := context.Background()
	for i := range 5 {
		s.AddRelease(repo, githubtest.Release{Tag: fmt.Sprintf("api-%d", i), CreatedAt: clk.Now().Add(time.Duration(i) * time.Minute)})
	}
	draft := s.AddRelease(repo, githubtest.Release{Tag: "ingestion_server-2024.09.09.05.40.20", Name: "ingestion_server-2024.09.09.05.40.20", Body: "<!here> & <b>", Draft: true})

	page, resp, err := c.Repositories.ListReleases(ctx, "WordPress", "openverse", &gh.ListOptions{PerPage: 2, Page: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || resp.NextPage != 3 || resp.PrevPage != 1 || resp.LastPage != 3 || resp.FirstPage != 1 {
		t.Fatalf("page 2: %d items, links next=%d prev=%d last=%d first=%d", len(page), resp.NextPage, resp.PrevPage, resp.LastPage, resp.FirstPage)
	}
	first, _, err := c.Repositories.ListReleases(ctx, "WordPress", "openverse", nil)
	if err != nil {
		t.Fatal(err)
	}
	d := first[0]
	if d.GetID() != draft || !d.GetDraft() || d.PublishedAt != nil || d.GetBody() != "<!here> & <b>" || !strings.Contains(d.GetHTMLURL(), "/releases/tag/untagged-") {
		t.Errorf("drafts come first, unpublished: %+v", d)
	}
	if first[1].GetTagName() != "api-4" || first[1].GetPublishedAt().IsZero() {
		t.Errorf("then newest published first: %v", first[1].GetTagName())
	}

	if _, _, err := c.Repositories.GetReleaseByTag(ctx, "WordPress", "openverse", "ingestion_server-2024.09.09.05.40.20"); !is404(err) {
		t.Errorf("draft by tag: %v, want 404", err)
	}
	rel, _, err := c.Repositories.GetReleaseByTag(ctx, "WordPress", "openverse", "api-3")
	if err != nil || rel.GetTagName() != "api-3" {
		t.Errorf("published by tag: %v %v", rel, err)
	}
}

func is404(err error) bool {
	var er *gh.ErrorResponse
	return errors.As(err, &er) && er.Response.StatusCode == 404
}

func TestPublishTriggersRunsAndChangelogPR(t *testing.T) {
	s, c, clk := setup(t)
	ctx := context.Background()
	const tag = "ingestion_server-2024.09.09.05.40.20"
	id := s.AddRelease(repo, githubtest.Release{Tag: tag, Draft: true})
	pre := s.AddRelease(repo, githubtest.Release{Tag: "api-2024.09.09.00.00.00", Draft: true})
	s.OnPublish(repo, "build.yml", "success", 9*time.Minute)
	s.OnPublishPR(repo, 10*time.Minute, func(r githubtest.Release) githubtest.PR {
		date := strings.TrimPrefix(r.Tag, "ingestion_server-")
		return githubtest.PR{Title: "Publish changelog for " + r.Tag, Head: "changelog/ingestion_server-" + date}
	})

	// Publishing as a prerelease is not "released": nothing starts.
	if _, _, err := c.Repositories.EditRelease(ctx, "WordPress", "openverse", pre, &gh.RepositoryRelease{Draft: gh.Bool(false), Prerelease: gh.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Runs(repo, "build.yml")); n != 0 {
		t.Fatalf("prerelease started %d runs", n)
	}
	// Editing a draft without publishing it starts nothing either.
	if _, _, err := c.Repositories.EditRelease(ctx, "WordPress", "openverse", id, &gh.RepositoryRelease{Body: gh.String("edited")}); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Runs(repo, "")); n != 0 {
		t.Fatalf("edit started %d runs", n)
	}

	rel, _, err := c.Repositories.EditRelease(ctx, "WordPress", "openverse", id, &gh.RepositoryRelease{Draft: gh.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	if rel.GetDraft() || rel.GetPublishedAt().Time.IsZero() || rel.GetBody() != "edited" {
		t.Fatalf("published: %+v", rel)
	}
	runs := s.Runs(repo, "build.yml")
	if len(runs) != 1 || runs[0].Event != "release" || runs[0].HeadBranch != tag || runs[0].Status != "queued" {
		t.Fatalf("runs = %+v", runs)
	}
	check := func(wantStatus, wantConclusion string) {
		t.Helper()
		run, _, err := c.Actions.GetWorkflowRunByID(ctx, "WordPress", "openverse", runs[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if run.GetStatus() != wantStatus || run.GetConclusion() != wantConclusion {
			t.Errorf("at %v: %s/%s, want %s/%s", clk.Now(), run.GetStatus(), run.GetConclusion(), wantStatus, wantConclusion)
		}
	}
	check("queued", "")
	clk.Advance(3 * time.Minute)
	check("in_progress", "")
	if n := len(s.PRs(repo)); n != 0 {
		t.Fatalf("changelog PR before the build finished")
	}
	clk.Advance(7 * time.Minute)
	check("completed", "success")
	prs, _, err := c.PullRequests.List(ctx, "WordPress", "openverse", &gh.PullRequestListOptions{Head: "WordPress:changelog/ingestion_server-2024.09.09.05.40.20"})
	if err != nil {
		t.Fatal(err)
	}
	if len(prs) != 1 || prs[0].GetTitle() != "Publish changelog for "+tag || prs[0].GetUser().GetLogin() != githubtest.DefaultPRUser {
		t.Fatalf("changelog PRs = %+v", prs)
	}

	// The published tag is now a ref a workflow can be dispatched on.
	s.AddWorkflow(repo, "other.yml")
	if _, err := c.Actions.CreateWorkflowDispatchEventByFileName(ctx, "WordPress", "openverse", "other.yml", gh.CreateWorkflowDispatchEventRequest{Ref: "refs/tags/" + tag}); err != nil {
		t.Errorf("dispatch on the tag: %v", err)
	}
}

func TestRunsFilters(t *testing.T) {
	s, c, clk := setup(t)
	ctx := context.Background()
	t0 := clk.Now()
	s.AddRun(repo, "w.yml", githubtest.Run{Event: "push", Conclusion: "success", CreatedAt: t0.Add(-48 * time.Hour)})
	s.AddRun(repo, "w.yml", githubtest.Run{Event: "workflow_dispatch", HeadBranch: "main", Conclusion: "failure", CreatedAt: t0.Add(-time.Hour)})
	s.AddRun(repo, "w.yml", githubtest.Run{Event: "workflow_dispatch", HeadBranch: "dev", Status: "waiting", CreatedAt: t0})
	s.AddRun(repo, "other.yml", githubtest.Run{Event: "workflow_dispatch", CreatedAt: t0})

	for _, tc := range []struct {
		opt  gh.ListWorkflowRunsOptions
		want int
	}{
		{gh.ListWorkflowRunsOptions{}, 3},
		{gh.ListWorkflowRunsOptions{Event: "workflow_dispatch"}, 2},
		{gh.ListWorkflowRunsOptions{Branch: "dev"}, 1},
		{gh.ListWorkflowRunsOptions{Status: "failure"}, 1},
		{gh.ListWorkflowRunsOptions{Status: "waiting"}, 1},
		{gh.ListWorkflowRunsOptions{Created: ">=" + t0.Add(-time.Hour).Format(time.RFC3339)}, 2},
		{gh.ListWorkflowRunsOptions{Created: ">" + t0.Add(-time.Hour).Format(time.RFC3339)}, 1},
		{gh.ListWorkflowRunsOptions{Created: "<" + t0.Add(-time.Hour).Format(time.RFC3339)}, 1},
		{gh.ListWorkflowRunsOptions{Created: t0.Add(-50*time.Hour).Format("2006-01-02") + ".." + t0.Add(-2*time.Hour).Format(time.RFC3339)}, 1},
		{gh.ListWorkflowRunsOptions{Created: t0.Format("2006-01-02")}, 2},
	} {
		runs, _, err := c.Actions.ListWorkflowRunsByFileName(ctx, "WordPress", "openverse", "w.yml", &tc.opt)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs.WorkflowRuns) != tc.want || runs.GetTotalCount() != tc.want {
			t.Errorf("%+v: %d runs (total %d), want %d", tc.opt, len(runs.WorkflowRuns), runs.GetTotalCount(), tc.want)
		}
	}
	if _, _, err := c.Actions.ListWorkflowRunsByFileName(ctx, "WordPress", "openverse", "w.yml", &gh.ListWorkflowRunsOptions{Created: ">=yesterday"}); err == nil {
		t.Error("a malformed created filter is accepted")
	}
	if _, _, err := c.Actions.ListWorkflowRunsByFileName(ctx, "WordPress", "openverse", "missing.yml", nil); !is404(err) {
		t.Errorf("unknown workflow: %v", err)
	}
}

func TestDispatchValidation(t *testing.T) {
	s, c, _ := setup(t)
	ctx := context.Background()
	s.DeclareInputs(repo, "deploy.yml", "tag", "actor")
	s.AddRef(repo, "feature/x")
	dispatch := func(ref string, inputs map[string]any) error {
		_, err := c.Actions.CreateWorkflowDispatchEventByFileName(ctx, "WordPress", "openverse", "deploy.yml", gh.CreateWorkflowDispatchEventRequest{Ref: ref, Inputs: inputs})
		return err
	}
	for _, ref := range []string{"main", "refs/heads/main", "feature/x"} {
		if err := dispatch(ref, map[string]any{"tag": "rel-1"}); err != nil {
			t.Errorf("ref %q: %v", ref, err)
		}
	}
	for _, tc := range []struct {
		ref    string
		inputs map[string]any
		msg    string
	}{
		{"", nil, "\"ref\" wasn't supplied"},
		{"nope", nil, "No ref found for: nope"},
		{"main", map[string]any{"tag": "x", "image": "y", "zz": "z"}, `Unexpected inputs provided: ["image", "zz"]`},
		{"main", map[string]any{"tag": true}, "For 'properties/tag', true is not a string."},
	} {
		err := dispatch(tc.ref, tc.inputs)
		var er *gh.ErrorResponse
		if !errors.As(err, &er) || er.Response.StatusCode != 422 || !strings.Contains(er.Message, tc.msg) {
			t.Errorf("dispatch(%q, %v) = %v, want 422 %q", tc.ref, tc.inputs, err, tc.msg)
		}
	}
	ds := s.Dispatches(repo, "deploy.yml")
	if len(ds) != 3 || ds[1].Ref != "refs/heads/main" {
		t.Errorf("dispatches = %+v", ds)
	}
	if len(s.Runs(repo, "deploy.yml")) != 0 {
		t.Error("runs started without OnDispatch")
	}
}

func TestPullRequestsAndReviews(t *testing.T) {
	s, c, _ := setup(t)
	ctx := context.Background()
	s.AddRef(repo, "feature/a")
	newPR := func(head, base string) (*gh.PullRequest, error) {
		pr, _, err := c.PullRequests.Create(ctx, "WordPress", "openverse", &gh.NewPullRequest{Title: gh.String("T"), Head: gh.String(head), Base: gh.String(base), Body: gh.String("B")})
		return pr, err
	}
	pr, err := newPR("WordPress:feature/a", "main")
	if err != nil {
		t.Fatal(err)
	}
	if pr.GetNumber() != 1 || pr.GetHead().GetRef() != "feature/a" || pr.GetHead().GetLabel() != "WordPress:feature/a" || pr.GetUser().GetLogin() != githubtest.DefaultUser {
		t.Fatalf("created %+v", pr)
	}
	for _, tc := range []struct{ head, base, msg string }{
		{"feature/a", "main", "A pull request already exists for WordPress:feature/a."},
		{"nope", "main", "head"},
		{"feature/a", "nope", "base"},
		{"main", "main", "No commits between main and main"},
		{"someone:feature/a", "main", "head"},
	} {
		_, err := newPR(tc.head, tc.base)
		var er *gh.ErrorResponse
		if !errors.As(err, &er) || er.Response.StatusCode != 422 || len(er.Errors) != 1 ||
			(er.Errors[0].Message != tc.msg && er.Errors[0].Field != tc.msg) {
			t.Errorf("create(%q, %q) = %v, want 422 %q", tc.head, tc.base, err, tc.msg)
		}
	}

	// Close it; a new one from the same head is then allowed, and the old
	// one cannot be reopened beside it.
	if _, _, err := c.PullRequests.Edit(ctx, "WordPress", "openverse", 1, &gh.PullRequest{State: gh.String("closed")}); err != nil {
		t.Fatal(err)
	}
	if _, err := newPR("feature/a", "main"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.PullRequests.Edit(ctx, "WordPress", "openverse", 1, &gh.PullRequest{State: gh.String("open")}); err == nil {
		t.Error("reopened a second open PR for one head")
	}
	open, _, _ := c.PullRequests.List(ctx, "WordPress", "openverse", nil)
	all, _, _ := c.PullRequests.List(ctx, "WordPress", "openverse", &gh.PullRequestListOptions{State: "all"})
	if len(open) != 1 || len(all) != 2 || open[0].GetNumber() != 2 {
		t.Errorf("open %d, all %d", len(open), len(all))
	}

	// Our own PR (opened with the token) cannot be approved by us.
	review := func(n int, event, body string) error {
		_, _, err := c.PullRequests.CreateReview(ctx, "WordPress", "openverse", n, &gh.PullRequestReviewRequest{Event: gh.String(event), Body: gh.String(body)})
		return err
	}
	err = review(2, "APPROVE", "")
	var er *gh.ErrorResponse
	if !errors.As(err, &er) || er.Response.StatusCode != 422 || len(er.Errors) != 1 || er.Errors[0].Message != "Can not approve your own pull request" {
		t.Errorf("own approval: %v", err)
	}
	other := s.AddPR(repo, githubtest.PR{Title: "Changelog", Head: "changelog/x"})
	if err := review(other, "COMMENT", ""); err == nil {
		t.Error("comment without body accepted")
	}
	if err := review(other, "APPROVE", "ok"); err != nil {
		t.Fatal(err)
	}
	got, _, err := c.PullRequests.ListReviews(ctx, "WordPress", "openverse", other, nil)
	if err != nil || len(got) != 1 || got[0].GetState() != "APPROVED" || got[0].GetUser().GetLogin() != githubtest.DefaultUser || got[0].SubmittedAt == nil {
		t.Errorf("reviews = %v, %v", got, err)
	}
	if rv := s.Reviews(repo, other); len(rv) != 1 || rv[0].Body != "ok" {
		t.Errorf("Reviews = %+v", rv)
	}
}

func TestInjectedFailuresAndRateLimits(t *testing.T) {
	s, _, clk := setup(t)
	u := s.URL() + "repos/" + repo + "/releases"

	s.FailNext(2, 502)
	for i := range 2 {
		if code, _, body := raw(t, "GET", u, "Bearer tok", ""); code != 502 || body["message"] != "Bad Gateway" {
			t.Errorf("failure %d: %d %v", i, code, body)
		}
	}
	if code, h, _ := raw(t, "GET", u, "Bearer tok", ""); code != 200 || h.Get("X-RateLimit-Remaining") == "0" || h.Get("X-RateLimit-Limit") != "5000" {
		t.Errorf("after failures: %d %v", code, h)
	}

	s.RateLimitNext("primary", 90*time.Second)
	code, h, body := raw(t, "GET", u, "Bearer tok", "")
	if code != 403 || h.Get("X-RateLimit-Remaining") != "0" || h.Get("X-RateLimit-Reset") != fmt.Sprint(clk.Now().Add(90*time.Second).Unix()) ||
		!strings.HasPrefix(body["message"].(string), "API rate limit exceeded") {
		t.Errorf("primary: %d %v %v", code, h, body)
	}
	if code, _, body := raw(t, "GET", s.URL()+"rate_limit", "Bearer tok", ""); code != 200 || body["rate"].(map[string]any)["remaining"] != 0.0 {
		t.Errorf("/rate_limit during the limit: %d %v", code, body)
	}
	clk.Advance(89 * time.Second)
	if code, _, _ := raw(t, "GET", u, "Bearer tok", ""); code != 403 {
		t.Errorf("still limited before reset: %d", code)
	}
	clk.Advance(time.Second)
	if code, _, _ := raw(t, "GET", u, "Bearer tok", ""); code != 200 {
		t.Errorf("after reset: %d", code)
	}

	s.RateLimitNext("secondary-429", 2500*time.Millisecond)
	code, h, body = raw(t, "GET", u, "Bearer tok", "")
	if code != 429 || h.Get("Retry-After") != "3" || !strings.Contains(body["message"].(string), "secondary rate limit") {
		t.Errorf("secondary: %d %v %v", code, h, body)
	}
	if code, _, _ := raw(t, "GET", u, "Bearer tok", ""); code != 200 {
		t.Errorf("secondary is one request only: %d", code)
	}

	s.AddRef(repo, "b")
	s.FailAfterApply("POST", "/repos/"+repo+"/pulls", 1, 504)
	if code, _, _ := raw(t, "POST", s.URL()+"repos/"+repo+"/pulls", "Bearer tok", `{"title":"t","head":"b","base":"main"}`); code != 504 {
		t.Errorf("lost answer: %d", code)
	}
	if n := len(s.PRs(repo)); n != 1 {
		t.Errorf("the lost POST was not applied: %d PRs", n)
	}
	if n := s.Requests("GET", "/repos/"+repo+"/releases"); n != 8 {
		t.Errorf("Requests = %d, want 8", n)
	}
	if n := s.Requests("", "/"); n != 10 {
		t.Errorf("all requests = %d, want 10", n)
	}
}

// jwt signs claims with key the way GitHub Apps do.
func jwt(t *testing.T, key *rsa.PrivateKey, alg string, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(map[string]string{"alg": alg, "typ": "JWT"}) + "." + enc(claims)
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestAppInstallationTokens(t *testing.T) {
	s, _, _ := setup(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s.SetAppKey(7, &key.PublicKey)
	now := time.Now().Unix()
	good := map[string]any{"iss": "7", "iat": now - 30, "exp": now + 90}
	u := s.URL() + "app/installations/99/access_tokens"

	for name, tok := range map[string]string{
		"wrong key":   jwt(t, other, "RS256", good),
		"wrong alg":   jwt(t, key, "RS512", good),
		"expired":     jwt(t, key, "RS256", map[string]any{"iss": "7", "iat": now - 700, "exp": now - 100}),
		"too long":    jwt(t, key, "RS256", map[string]any{"iss": "7", "iat": now, "exp": now + 3600}),
		"unknown app": jwt(t, key, "RS256", map[string]any{"iss": "8", "iat": now - 30, "exp": now + 90}),
		"static":      "tok",
	} {
		if code, _, body := raw(t, "POST", u, "Bearer "+tok, ""); code != 401 {
			t.Errorf("%s: %d %v", name, code, body)
		}
	}
	code, _, body := raw(t, "POST", u, "Bearer "+jwt(t, key, "RS256", good), "")
	if code != 201 || !strings.HasPrefix(body["token"].(string), "ghs_") || body["expires_at"] == nil {
		t.Fatalf("token: %d %v", code, body)
	}
	inst := body["token"].(string)
	if code, _, _ := raw(t, "GET", s.URL()+"repos/"+repo+"/releases", "token "+inst, ""); code != 200 {
		t.Errorf("installation token refused: %d", code)
	}
	if code, _, body := raw(t, "GET", s.URL()+"user", "token "+inst, ""); code != 403 {
		t.Errorf("/user with an installation token: %d %v (GitHub answers 403)", code, body)
	}
	if s.InstallationTokens() != 1 {
		t.Errorf("InstallationTokens = %d", s.InstallationTokens())
	}
}

func TestConcurrentUse(t *testing.T) {
	s, c, clk := setup(t)
	s.AddRef(repo, "x")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.AddRelease(repo, githubtest.Release{Tag: fmt.Sprintf("t-%d", i), Draft: i%2 == 0})
			if _, _, err := c.Repositories.ListReleases(context.Background(), "WordPress", "openverse", nil); err != nil {
				t.Error(err)
			}
			clk.Advance(time.Second)
			_ = s.Requests("GET", "/")
			_ = s.Runs(repo, "")
		}()
	}
	wg.Wait()
	if n := len(s.Releases(repo)); n != 8 {
		t.Errorf("%d releases", n)
	}
}
