// Package githubtest is a fake GitHub REST API for tests, in the spirit of
// net/http/httptest: a stateful server that speaks the shapes go-github v57
// parses and rejects what GitHub rejects (drafts are not found by tag,
// dispatches need a known ref and declared inputs, one open pull request per
// head, no approving your own pull request, bad credentials get 401).
//
// Time only moves when the server's clock says so: workflow runs go from
// queued to in_progress to completed according to the clock at each request,
// with no goroutines, so a test that shares a fake clock with the client
// under test is deterministic. Only GitHub App JWTs and installation token
// expiry use the wall clock, because ghinstallation signs with it.
//
// The server is scoped to what deploybot uses: releases, workflow runs and
// dispatches, pull requests and reviews, App installation tokens, /user and
// /rate_limit. Anything else answers 404 like an unknown route on GitHub.
package githubtest

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultUser is the login the server attributes requests to until SetUser.
const DefaultUser = "deploybot[bot]"

// Server is a fake GitHub. Its methods are safe for concurrent use with the
// requests it serves.
type Server struct {
	srv *httptest.Server

	mu       sync.Mutex
	now      func() time.Time
	user     string
	token    string
	authOn   bool
	apps     map[int64]*app
	issued   map[string]time.Time // installation token → expiry (wall clock)
	readOnly bool                 // GET /repos/{owner}/{repo} reports push: false
	repos    map[string]*repo     // by lower-case "owner/name"
	nextID   int64
	requests []request

	failures      []*failure
	noRunDetails  bool // answer like a GitHub Enterprise Server without return_run_details
	primaryUntil  time.Time
	primaryStatus int
	secondary     []secondaryLimit
}

type request struct{ method, path string }

// failure is a configured failure for the next n matching requests.
type failure struct {
	method, prefix string
	n, status      int
	afterApply     bool
	drop           bool // after applying, close the connection without an answer
}

func (f *failure) matches(r *http.Request) bool {
	return f.n > 0 && (f.method == "" || f.method == r.Method) && strings.HasPrefix(r.URL.Path, f.prefix)
}

type secondaryLimit struct {
	status     int
	retryAfter int
}

// NewServer starts a fake GitHub on a loopback port. Close it when done.
func NewServer() *Server {
	s := &Server{
		now:    time.Now,
		user:   DefaultUser,
		apps:   map[int64]*app{},
		issued: map[string]time.Time{},
		repos:  map[string]*repo{},
		nextID: 1000,
	}
	s.srv = httptest.NewServer(s.routes())
	return s
}

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// URL is the REST API base to configure as github.api_url; it ends in "/".
func (s *Server) URL() string { return s.srv.URL + "/" }

// WebURL is where html_url links point: the server itself, without a
// trailing slash (what github.WebURL derives from URL()).
func (s *Server) WebURL() string { return s.srv.URL }

// SetClock replaces time.Now for everything but App JWTs and installation
// tokens. Share the clock with the client under test to make waits and run
// progress deterministic.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetToken makes tok the only static credential accepted ("Bearer tok" or
// "token tok"). Until SetToken or SetAppKey is called, requests are not
// authenticated at all, like anonymous access to a public repository.
func (s *Server) SetToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = tok
	s.authOn = true
}

// SetUser sets the login of the authenticated user (default DefaultUser):
// the author of pull requests and reviews created through the API.
func (s *Server) SetUser(login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user = login
}

// FailNext makes the next n requests, whatever they are, fail with status
// before doing anything, with a JSON error body.
func (s *Server) FailNext(n, status int) {
	s.FailRequests("", "", n, status)
}

// FailRequests makes the next n requests with that method ("" for any)
// and path prefix fail with status before doing anything.
func (s *Server) FailRequests(method, pathPrefix string, n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, &failure{method: method, prefix: pathPrefix, n: n, status: status})
}

// FailAfterApply makes the next n requests with that method ("" for any)
// and path prefix take effect and then answer status instead of their
// result: GitHub timing out after it applied a change. It checks that a
// client's retries after a lost answer do no harm.
func (s *Server) FailAfterApply(method, pathPrefix string, n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, &failure{method: method, prefix: pathPrefix, n: n, status: status, afterApply: true})
}

// DropAfterApply makes the next n requests with that method ("" for any)
// and path prefix take effect and then close the connection without any
// answer: a proxy or the network losing GitHub's reply. The client sees a
// connection error and cannot know whether the request was applied.
func (s *Server) DropAfterApply(method, pathPrefix string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, &failure{method: method, prefix: pathPrefix, n: n, afterApply: true, drop: true})
}

// FailuresLeft counts the configured failures (FailNext, FailRequests,
// FailAfterApply, DropAfterApply) that no request has met yet, so a test
// can check that the failure it set up really happened.
func (s *Server) FailuresLeft() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, f := range s.failures {
		n += f.n
	}
	return n
}

// failure returns the first configured failure of that kind matching r,
// counting it.
func (s *Server) failure(r *http.Request, afterApply bool) *failure {
	for _, f := range s.failures {
		if f.afterApply == afterApply && f.matches(r) {
			f.n--
			return f
		}
	}
	return nil
}

// RateLimitNext simulates GitHub's rate limits. kind is one of:
//
//   - "primary": every request until reset has passed (on the server's
//     clock) gets 403 with X-RateLimit-Remaining: 0 and X-RateLimit-Reset;
//     GET /rate_limit still answers, as on GitHub.
//   - "primary-429": the same with status 429.
//   - "secondary": the next request gets 403 "You have exceeded a secondary
//     rate limit" with Retry-After: reset in whole seconds, at least 1.
//     Each call queues one more.
//   - "secondary-429": the same with status 429.
func (s *Server) RateLimitNext(kind string, reset time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch kind {
	case "primary", "primary-429":
		s.primaryUntil = s.now().Add(reset)
		s.primaryStatus = http.StatusForbidden
		if kind == "primary-429" {
			s.primaryStatus = http.StatusTooManyRequests
		}
	case "secondary", "secondary-429":
		l := secondaryLimit{status: http.StatusForbidden, retryAfter: max(1, int(math.Ceil(reset.Seconds())))}
		if kind == "secondary-429" {
			l.status = http.StatusTooManyRequests
		}
		s.secondary = append(s.secondary, l)
	default:
		panic("githubtest: unknown rate limit kind " + strconv.Quote(kind))
	}
}

// Requests counts the requests received so far (failed ones included) whose
// method is method ("" for any) and whose path starts with pathPrefix, e.g.
// Requests("POST", "/repos/o/r/actions/workflows/deploy.yml/dispatches").
func (s *Server) Requests(method, pathPrefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if (method == "" || r.method == method) && strings.HasPrefix(r.path, pathPrefix) {
			n++
		}
	}
	return n
}

func (s *Server) id() int64 {
	s.nextID++
	return s.nextID
}

// routes wires GitHub's paths. Go's pattern wildcards receive unescaped
// segments, so tags and file names with reserved characters work.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h func(http.ResponseWriter, *http.Request)) {
		mux.HandleFunc(pattern, h)
	}
	handle("GET /rate_limit", s.rateLimit)
	handle("GET /user", s.getUser)
	handle("GET /app", s.getApp)
	handle("POST /app/installations/{id}/access_tokens", s.accessToken)

	handle("GET /repos/{owner}/{repo}", s.withRepo(s.getRepo))
	handle("GET /repos/{owner}/{repo}/releases", s.withRepo(s.listReleases))
	handle("GET /repos/{owner}/{repo}/releases/tags/{tag...}", s.withRepo(s.releaseByTag))
	handle("GET /repos/{owner}/{repo}/releases/{id}", s.withRepo(s.getRelease))
	handle("PATCH /repos/{owner}/{repo}/releases/{id}", s.withRepo(s.editRelease))

	handle("GET /repos/{owner}/{repo}/actions/workflows/{file}/runs", s.withRepo(s.listRuns))
	handle("POST /repos/{owner}/{repo}/actions/workflows/{file}/dispatches", s.withRepo(s.dispatch))
	handle("GET /repos/{owner}/{repo}/actions/runs/{id}", s.withRepo(s.getRun))

	handle("GET /repos/{owner}/{repo}/pulls", s.withRepo(s.listPRs))
	handle("POST /repos/{owner}/{repo}/pulls", s.withRepo(s.createPR))
	handle("GET /repos/{owner}/{repo}/pulls/{number}", s.withRepo(s.getPR))
	handle("PATCH /repos/{owner}/{repo}/pulls/{number}", s.withRepo(s.editPR))
	handle("GET /repos/{owner}/{repo}/pulls/{number}/reviews", s.withRepo(s.listReviews))
	handle("POST /repos/{owner}/{repo}/pulls/{number}/reviews", s.withRepo(s.createReview))

	handle("/", func(w http.ResponseWriter, r *http.Request) { notFound(w) })
	return s.middleware(mux)
}

// middleware does what GitHub's front end does before any endpoint: count
// the request, inject configured failures, authenticate, and apply rate
// limits. It holds the server lock for the whole request, which keeps the
// fake simple and its state consistent.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.requests = append(s.requests, request{r.Method, r.URL.Path})
		now := s.now()
		s.advance(now)
		w.Header().Set("X-GitHub-Request-Id", fmt.Sprintf("FAKE:%d", len(s.requests)))

		if f := s.failure(r, false); f != nil {
			writeJSON(w, f.status, map[string]any{"message": http.StatusText(f.status)})
			return
		}
		if !strings.HasPrefix(r.URL.Path, "/app/") && r.URL.Path != "/app" && !s.authenticated(r) {
			writeJSON(w, http.StatusUnauthorized, map[string]any{
				"message":           "Bad credentials",
				"documentation_url": "https://docs.github.com/rest",
			})
			return
		}
		s.rateHeaders(w, now)
		if r.URL.Path != "/rate_limit" && now.Before(s.primaryUntil) {
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(ceilUnix(s.primaryUntil), 10))
			writeJSON(w, s.primaryStatus, map[string]any{
				"message":           "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID " + w.Header().Get("X-GitHub-Request-Id") + ".",
				"documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
			})
			return
		}
		if len(s.secondary) > 0 {
			l := s.secondary[0]
			s.secondary = s.secondary[1:]
			w.Header().Set("Retry-After", strconv.Itoa(l.retryAfter))
			writeJSON(w, l.status, map[string]any{
				"message":           "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID " + w.Header().Get("X-GitHub-Request-Id") + ".",
				"documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
			})
			return
		}
		if f := s.failure(r, true); f != nil {
			next.ServeHTTP(httptest.NewRecorder(), r)
			if f.drop {
				if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
					conn.Close()
					return
				}
				panic("githubtest: cannot drop the connection: the server does not allow hijacking")
			}
			writeJSON(w, f.status, map[string]any{"message": http.StatusText(f.status)})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func ceilUnix(t time.Time) int64 {
	u := t.Unix()
	if t.After(time.Unix(u, 0)) {
		u++
	}
	return u
}

func (s *Server) rateHeaders(w http.ResponseWriter, now time.Time) {
	used := min(len(s.requests), 4999)
	h := w.Header()
	h.Set("X-RateLimit-Limit", "5000")
	h.Set("X-RateLimit-Remaining", strconv.Itoa(5000-used))
	h.Set("X-RateLimit-Used", strconv.Itoa(used))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(now.Add(time.Hour).Unix(), 10))
	h.Set("X-RateLimit-Resource", "core")
}

func (s *Server) rateLimit(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	used := min(len(s.requests), 4999)
	core := map[string]any{"limit": 5000, "used": used, "remaining": 5000 - used, "reset": now.Add(time.Hour).Unix(), "resource": "core"}
	if now.Before(s.primaryUntil) {
		core = map[string]any{"limit": 5000, "used": 5000, "remaining": 0, "reset": ceilUnix(s.primaryUntil), "resource": "core"}
	}
	other := func(name string, limit int) map[string]any {
		return map[string]any{"limit": limit, "used": 0, "remaining": limit, "reset": now.Add(time.Hour).Unix(), "resource": name}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"resources": map[string]any{"core": core, "search": other("search", 30), "graphql": other("graphql", 5000)},
		"rate":      core,
	})
}

// getApp answers GET /app for a GitHub App's JWT: the App's slug, whose
// "<slug>[bot]" login is the actor of everything its installation does.
func (s *Server) getApp(w http.ResponseWriter, r *http.Request) {
	id, err := s.verifyJWT(credential(r))
	if err != nil {
		jwtError(w, err.Error())
		return
	}
	slug := strings.TrimSuffix(s.user, "[bot]")
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "slug": slug, "name": slug, "owner": map[string]any{"login": "WordPress"}})
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.issued[credential(r)]; ok {
		// Installation tokens act as the App, which is not a user.
		writeJSON(w, http.StatusForbidden, map[string]any{
			"message":           "Resource not accessible by integration",
			"documentation_url": "https://docs.github.com/rest/users/users#get-the-authenticated-user",
		})
		return
	}
	writeJSON(w, http.StatusOK, s.userJSON(s.user))
}

func (s *Server) userJSON(login string) map[string]any {
	typ := "User"
	if strings.HasSuffix(login, "[bot]") {
		typ = "Bot"
	}
	return map[string]any{
		"login":    login,
		"id":       userID(login),
		"type":     typ,
		"html_url": s.WebURL() + "/" + url.PathEscape(login),
	}
}

func userID(login string) int64 {
	var h int64 = 7
	for _, c := range login {
		h = (h*31 + int64(c)) % 100000000
	}
	return h
}

// credential is the token in an Authorization header, or "".
func credential(r *http.Request) string {
	h := r.Header.Get("Authorization")
	for _, scheme := range []string{"Bearer ", "bearer ", "token ", "Token "} {
		if tok, ok := strings.CutPrefix(h, scheme); ok {
			return strings.TrimSpace(tok)
		}
	}
	return ""
}

func (s *Server) authenticated(r *http.Request) bool {
	if !s.authOn {
		return true
	}
	tok := credential(r)
	if tok == "" {
		return false
	}
	if s.token != "" && tok == s.token {
		return true
	}
	exp, ok := s.issued[tok]
	return ok && time.Now().Before(exp)
}

// writeJSON writes v without HTML escaping, as GitHub does, so bodies with
// <, > and & arrive byte for byte.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func notFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]any{
		"message":           "Not Found",
		"documentation_url": "https://docs.github.com/rest",
	})
}

// validationFailed is GitHub's 422 with structured errors.
func validationFailed(w http.ResponseWriter, errs ...map[string]any) {
	list := make([]any, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
		"message":           "Validation Failed",
		"errors":            list,
		"documentation_url": "https://docs.github.com/rest",
	})
}

// unprocessable is GitHub's 422 whose errors are plain strings, as the
// reviews endpoint answers.
func unprocessable(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
		"message":           "Unprocessable Entity",
		"errors":            []string{msg},
		"documentation_url": "https://docs.github.com/rest",
	})
}

func badJSON(w http.ResponseWriter) {
	writeJSON(w, http.StatusBadRequest, map[string]any{
		"message":           "Problems parsing JSON",
		"documentation_url": "https://docs.github.com/rest",
	})
}

// ts formats a time as GitHub does: UTC, whole seconds.
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// paginate picks the requested page of n items (per_page: default 30, at
// most 100) and sets the Link header go-github follows.
func paginate(w http.ResponseWriter, r *http.Request, n int) (lo, hi int) {
	q := r.URL.Query()
	per, err := strconv.Atoi(q.Get("per_page"))
	if err != nil || per <= 0 {
		per = 30
	}
	per = min(per, 100)
	page, err := strconv.Atoi(q.Get("page"))
	if err != nil || page <= 0 {
		page = 1
	}
	last := max(1, (n+per-1)/per)
	link := func(p int, rel string) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(per))
		return fmt.Sprintf(`<http://%s%s?%s>; rel="%s"`, r.Host, r.URL.Path, q.Encode(), rel)
	}
	var links []string
	if page > 1 {
		links = append(links, link(page-1, "prev"), link(1, "first"))
	}
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	lo = min((page-1)*per, n)
	hi = min(lo+per, n)
	return lo, hi
}

// app is a registered GitHub App.
type app struct {
	key           *rsa.PublicKey
	installations map[int64]bool // empty: any installation id
}
