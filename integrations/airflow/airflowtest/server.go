// Package airflowtest is a fake Airflow REST API for tests of anything that
// checks for data refreshes, so they run without an Airflow.
//
// It copies the behaviour that decides correctness rather than the whole
// API: Airflow 2 (/api/v1, basic auth, RFC 7807 problem bodies, and 200 with
// no runs for a DAG it does not know) and Airflow 3 (/api/v2, JWTs from
// POST /auth/token answered with 201, FastAPI {"detail"} bodies, 404 for an
// unknown DAG). Each generation answers 404 under the other's prefix, as a
// real server would, so a wrong api_version shows up in tests.
package airflowtest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DagRun is a run as the test wants Airflow to hold it; DagID is filled in
// by SetRuns and AddRun.
type DagRun struct {
	DagID     string
	RunID     string
	State     string    // queued, running, success, failed
	StartDate time.Time // zero: not started (serialised as null)
	QueuedAt  time.Time
}

// Server is a running fake Airflow. All methods are safe for concurrent use
// with requests in flight.
type Server struct {
	srv     *httptest.Server
	version int
	user    string
	pass    string

	mu          sync.Mutex
	dags        []string // known DAG ids in insertion order
	runs        map[string][]DagRun
	tokens      map[string]bool // valid tokens
	requests    map[string]int  // by URL path
	tokenReqs   int
	down        bool
	unavailable bool
	maxLimit    int
	// schedulerDown makes the health endpoint report the scheduler
	// unhealthy.
	schedulerDown bool
}

// NewServer starts a fake Airflow of the given major version (2 or 3) that
// accepts only user/pass. Close it when done.
func NewServer(version int, user, pass string) *Server {
	if version != 2 && version != 3 {
		panic(fmt.Sprintf("airflowtest: version %d: want 2 or 3", version))
	}
	s := &Server{
		version:  version,
		user:     user,
		pass:     pass,
		runs:     map[string][]DagRun{},
		tokens:   map[string]bool{},
		requests: map[string]int{},
		maxLimit: 100,
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the base URL, without a trailing slash, as in the configuration.
func (s *Server) URL() string { return s.srv.URL }

// Close shuts the server down; later requests are refused.
func (s *Server) Close() { s.srv.Close() }

// AddDAG makes DAGs known without runs.
func (s *Server) AddDAG(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		s.addDAGLocked(id)
	}
}

func (s *Server) addDAGLocked(id string) {
	if !slices.Contains(s.dags, id) {
		s.dags = append(s.dags, id)
	}
}

// SetRuns replaces the runs of a DAG (making it known); runs in any state
// may be given, the API filters them like Airflow does.
func (s *Server) SetRuns(dagID string, runs ...DagRun) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addDAGLocked(dagID)
	s.runs[dagID] = nil
	for _, r := range runs {
		r.DagID = dagID
		s.runs[dagID] = append(s.runs[dagID], r)
	}
}

// AddRun appends one run to a DAG (making it known).
func (s *Server) AddRun(dagID string, run DagRun) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addDAGLocked(dagID)
	run.DagID = dagID
	s.runs[dagID] = append(s.runs[dagID], run)
}

// ClearRuns removes all runs of a DAG; the DAG stays known.
func (s *Server) ClearRuns(dagID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.runs, dagID)
}

// Down(true) makes the server drop every connection without an answer, as
// a crashed Airflow or a broken proxy would; Down(false) restores it.
func (s *Server) Down(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// Unavailable(true) makes every request answer 503, as Airflow behind a load
// balancer does while the webserver restarts.
func (s *Server) Unavailable(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unavailable = on
}

// SetMaxPageLimit caps the page size like Airflow's maximum_page_limit
// (default 100), to make clients page.
func (s *Server) SetMaxPageLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n > 0 {
		s.maxLimit = n
	}
}

// ExpireTokens invalidates every token issued so far (Airflow 3): the next
// API request with one of them gets 401.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// Requests counts requests received for an exact URL path, e.g.
// "/api/v1/dags/image_data_refresh/dagRuns", whatever their outcome.
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

// TokenRequests counts POST /auth/token requests.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenReqs
}

func (s *Server) prefix() string {
	if s.version == 3 {
		return "/api/v2/"
	}
	return "/api/v1/"
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests[r.URL.Path]++
	down, unavailable := s.down, s.unavailable
	s.mu.Unlock()

	if down {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	if unavailable {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>")
		return
	}

	switch {
	case r.URL.Path == s.healthPath():
		s.serveHealth(w)
	case s.version == 3 && r.URL.Path == "/auth/token":
		s.serveToken(w, r)
	case strings.HasPrefix(r.URL.Path, s.prefix()):
		if !s.authorized(w, r) {
			return
		}
		s.serveAPI(w, r, strings.TrimPrefix(r.URL.Path, s.prefix()))
	default:
		s.notFound(w, "Not Found", "The requested URL was not found on the server.")
	}
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.tokenReqs++
	s.mu.Unlock()
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"detail": "Method Not Allowed"})
		return
	}
	var body struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []any{map[string]any{
			"type": "json_invalid", "loc": []any{"body"}, "msg": "JSON decode error"}}})
		return
	}
	if !s.credentialsMatch(body.Username, body.Password) {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"detail": "Invalid credentials"})
		return
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := "eyJhbGciOiJIUzUxMiJ9." + hex.EncodeToString(b)
	s.mu.Lock()
	s.tokens[tok] = true
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"access_token": tok})
}

func (s *Server) credentialsMatch(user, pass string) bool {
	u := subtle.ConstantTimeCompare([]byte(user), []byte(s.user))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(s.pass))
	return u&p == 1
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.version == 2 {
		user, pass, ok := r.BasicAuth()
		if ok && s.credentialsMatch(user, pass) {
			return true
		}
		w.Header().Set("WWW-Authenticate", "Basic")
		writeJSON(w, http.StatusUnauthorized, problem(http.StatusUnauthorized, "Unauthorized", "Unauthorized"))
		return false
	}
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || tok == "" {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"detail": "Not authenticated"})
		return false
	}
	s.mu.Lock()
	valid := s.tokens[tok]
	s.mu.Unlock()
	if !valid {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"detail": "Invalid JWT token"})
		return false
	}
	return true
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, rest string) {
	if r.Method != http.MethodGet {
		s.notFound(w, "Method Not Allowed", "Method Not Allowed")
		return
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 2 && parts[0] == "dags":
		s.serveDAG(w, parts[1])
	case len(parts) == 3 && parts[0] == "dags" && parts[2] == "dagRuns":
		s.serveDagRuns(w, r, parts[1])
	default:
		s.notFound(w, "Not Found", "The requested URL was not found on the server.")
	}
}

func (s *Server) known(dagID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.dags, dagID)
}

func (s *Server) serveDAG(w http.ResponseWriter, dagID string) {
	if !s.known(dagID) {
		if s.version == 2 {
			writeJSON(w, http.StatusNotFound, problem(http.StatusNotFound, "DAG not found",
				fmt.Sprintf("The DAG with dag_id: %s was not found", dagID)))
		} else {
			writeJSON(w, http.StatusNotFound, map[string]any{"detail": fmt.Sprintf("Dag with id %s was not found", dagID)})
		}
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"dag_id": dagID, "is_paused": false, "is_active": true, "tags": []any{map[string]any{"name": "data_refresh"}},
	})
}

func (s *Server) serveDagRuns(w http.ResponseWriter, r *http.Request, dagID string) {
	// Airflow 2 filters runs by dag_id without looking the DAG up, so an
	// unknown DAG has no runs; Airflow 3 checks the DAG first.
	if s.version == 3 && !s.known(dagID) {
		writeJSON(w, http.StatusNotFound, map[string]any{
			"detail": fmt.Sprintf("The DAG with dag_id: `%s` was not found", dagID)})
		return
	}
	q := r.URL.Query()
	states := q["state"]
	limit, offset := 100, 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.badRequest(w, "limit must be a non-negative integer")
			return
		}
		limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.badRequest(w, "offset must be a non-negative integer")
			return
		}
		offset = n
	}
	s.mu.Lock()
	if limit > s.maxLimit {
		limit = s.maxLimit
	}
	var matched []DagRun
	for _, run := range s.runs[dagID] {
		if len(states) == 0 || slices.Contains(states, run.State) {
			matched = append(matched, run)
		}
	}
	s.mu.Unlock()

	total := len(matched)
	if offset > len(matched) {
		offset = len(matched)
	}
	matched = matched[offset:]
	if len(matched) > limit {
		matched = matched[:limit]
	}
	out := make([]map[string]any, 0, len(matched))
	for _, run := range matched {
		out = append(out, s.runJSON(run))
	}
	writeJSON(w, http.StatusOK, map[string]any{"dag_runs": out, "total_entries": total})
}

func (s *Server) runJSON(run DagRun) map[string]any {
	// Airflow 2 serialises datetimes with "+00:00", Airflow 3 with "Z".
	ts := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		if s.version == 2 {
			return t.UTC().Format("2006-01-02T15:04:05.999999") + "+00:00"
		}
		return t.UTC().Format("2006-01-02T15:04:05.999999Z")
	}
	m := map[string]any{
		"dag_run_id": run.RunID,
		"dag_id":     run.DagID,
		"state":      run.State,
		"start_date": ts(run.StartDate),
		"end_date":   nil,
		"run_type":   "manual",
		"conf":       map[string]any{},
		"note":       nil,
	}
	logical := run.QueuedAt
	if logical.IsZero() {
		logical = run.StartDate
	}
	m["logical_date"] = ts(logical)
	if s.version == 2 {
		m["execution_date"] = ts(logical)
		m["external_trigger"] = true
	} else {
		m["queued_at"] = ts(run.QueuedAt)
		m["run_after"] = ts(logical)
		m["triggered_by"] = "rest_api"
		m["dag_display_name"] = run.DagID
	}
	return m
}

func (s *Server) notFound(w http.ResponseWriter, title, detail string) {
	if s.version == 2 {
		writeJSON(w, http.StatusNotFound, problem(http.StatusNotFound, title, detail))
		return
	}
	writeJSON(w, http.StatusNotFound, map[string]any{"detail": "Not Found"})
}

func (s *Server) badRequest(w http.ResponseWriter, detail string) {
	if s.version == 2 {
		writeJSON(w, http.StatusBadRequest, problem(http.StatusBadRequest, "Bad Request", detail))
		return
	}
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []any{map[string]any{"msg": detail}}})
}

// problem is Airflow 2's RFC 7807 error body.
func problem(status int, title, detail string) map[string]any {
	return map[string]any{
		"status": status,
		"title":  title,
		"detail": detail,
		"type":   "https://airflow.apache.org/docs/apache-airflow/stable/stable-rest-api-ref.html#section/Errors/" + strings.ReplaceAll(http.StatusText(status), " ", ""),
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// healthPath is the health endpoint, which needs no credentials:
// /api/v1/health on Airflow 2, /api/v2/monitor/health on Airflow 3.
func (s *Server) healthPath() string {
	if s.version == 3 {
		return "/api/v2/monitor/health"
	}
	return "/api/v1/health"
}

func (s *Server) serveHealth(w http.ResponseWriter) {
	s.mu.Lock()
	down := s.schedulerDown
	s.mu.Unlock()
	status := "healthy"
	if down {
		status = "unhealthy"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"metadatabase": map[string]any{"status": "healthy"},
		"scheduler":    map[string]any{"status": status, "latest_scheduler_heartbeat": time.Now().Add(-5 * time.Second).UTC().Format(time.RFC3339)},
	})
}

// SetSchedulerDown makes the health endpoint report the scheduler
// unhealthy (true) or healthy again.
func (s *Server) SetSchedulerDown(v bool) {
	s.mu.Lock()
	s.schedulerDown = v
	s.mu.Unlock()
}
