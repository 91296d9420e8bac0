// Package sentrytest is a fake Sentry web API for tests of anything that
// watches issues or records deploys, so they run without a Sentry.
//
// It copies what decides correctness rather than the whole API: bearer
// token auth, the organisation issues endpoint with its default
// is:unresolved query, numeric project filter, environment filter and
// start/end window, cursor paging with Link headers exactly as Sentry
// writes them, the project list, release creation (201, or 208 when it
// exists) and deploys (404 until the release exists). Rate limits and
// server errors can be injected to exercise retries.
package sentrytest

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultOrg is the organisation slug a new Server serves.
const DefaultOrg = "openverse"

// Issue is an issue as the test wants Sentry to hold it. Empty ID and
// ShortID are assigned; an empty Status is "unresolved".
type Issue struct {
	ID        string
	ShortID   string
	Title     string
	Culprit   string
	Permalink string
	Level     string
	Status    string // unresolved, resolved, ignored
	Substatus string // new, ongoing, regressed, escalating, archived_…
	Count     int64
	UserCount int
	FirstSeen time.Time
	LastSeen  time.Time
}

// Deploy is a recorded deploy marker.
type Deploy struct {
	Environment  string
	Name         string
	URL          string
	DateStarted  time.Time // zero when not given
	DateFinished time.Time
}

// Release is a release and the project slugs it belongs to.
type Release struct {
	Version  string
	Projects []string
}

type projectRec struct {
	slug string
	id   int
}

type issueRec struct {
	project projectRec
	env     string
	issue   Issue
}

// Server is a running fake Sentry. All methods are safe for concurrent use
// with requests in flight.
type Server struct {
	srv   *httptest.Server
	token string

	mu           sync.Mutex
	org          string
	projects     []projectRec
	issues       []*issueRec
	nextIssue    int
	releases     []*Release
	deploys      map[string][]Deploy
	pageSize     int
	rateLimitN   int
	retryAfter   time.Duration
	failN        int
	failStatus   int
	requests     map[string]int
	now          func() time.Time
	lastRequests []string
}

// NewServer starts a fake Sentry that accepts only token. Close it when
// done.
func NewServer(token string) *Server {
	s := &Server{
		token:     token,
		org:       DefaultOrg,
		deploys:   map[string][]Deploy{},
		requests:  map[string]int{},
		nextIssue: 1000,
		now:       time.Now,
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the base URL with a trailing slash, as in the configuration.
func (s *Server) URL() string { return s.srv.URL + "/" }

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// Org returns the organisation slug served; others get 404.
func (s *Server) Org() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.org
}

// SetOrg changes the organisation slug served.
func (s *Server) SetOrg(slug string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.org = slug
}

// AddProject adds a project to the organisation.
func (s *Server) AddProject(slug string, id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.projects = append(s.projects, projectRec{slug: slug, id: id})
}

func (s *Server) projectLocked(ref string) (projectRec, bool) {
	for _, p := range s.projects {
		if p.slug == ref || strconv.Itoa(p.id) == ref {
			return p, true
		}
	}
	return projectRec{}, false
}

// AddIssue adds an issue seen in env of project (slug or id) and returns
// its id. It panics on an unknown project: that is a broken test.
func (s *Server) AddIssue(project, env string, is Issue) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.projectLocked(project)
	if !ok {
		panic(fmt.Sprintf("sentrytest: AddIssue: unknown project %q", project))
	}
	s.nextIssue++
	if is.ID == "" {
		is.ID = strconv.Itoa(s.nextIssue)
	}
	if is.ShortID == "" {
		is.ShortID = fmt.Sprintf("%s-%s", strings.ToUpper(p.slug), strconv.FormatInt(int64(s.nextIssue), 36))
	}
	if is.Status == "" {
		is.Status = "unresolved"
	}
	if is.Level == "" {
		is.Level = "error"
	}
	s.issues = append(s.issues, &issueRec{project: p, env: env, issue: is})
	return is.ID
}

// SetIssue changes an issue in place, e.g. to mark it regressed or bump
// its count and lastSeen. It reports whether the issue exists.
func (s *Server) SetIssue(id string, change func(*Issue)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.issues {
		if r.issue.ID == id {
			change(&r.issue)
			r.issue.ID = id
			return true
		}
	}
	return false
}

// AddRelease creates a release as CI would.
func (s *Server) AddRelease(version string, projects ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.releaseLocked(version) == nil {
		s.releases = append(s.releases, &Release{Version: version, Projects: projects})
	}
}

func (s *Server) releaseLocked(version string) *Release {
	for _, r := range s.releases {
		if r.Version == version {
			return r
		}
	}
	return nil
}

// Releases returns the releases in creation order.
func (s *Server) Releases() []Release {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Release, 0, len(s.releases))
	for _, r := range s.releases {
		out = append(out, Release{Version: r.Version, Projects: slices.Clone(r.Projects)})
	}
	return out
}

// Deploys returns the deploys recorded on a release, oldest first.
func (s *Server) Deploys(version string) []Deploy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deploys[version])
}

// SetPageSize caps the page size of list endpoints (Sentry: 100), to make
// clients page.
func (s *Server) SetPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageSize = n
}

// RateLimitNext answers the next n requests with 429 and a Retry-After of
// retryAfter, rounded up to whole seconds as Sentry sends it.
func (s *Server) RateLimitNext(n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateLimitN, s.retryAfter = n, retryAfter
}

// FailNext answers the next n requests with status (e.g. 502).
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failStatus = n, status
}

// Requests counts requests received for an exact URL path, e.g.
// "/api/0/organizations/openverse/issues/", whatever their outcome.
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

// RequestURIs returns the request URIs received so far, oldest first, for
// asserting on query parameters.
func (s *Server) RequestURIs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lastRequests)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests[r.URL.Path]++
	s.lastRequests = append(s.lastRequests, r.URL.RequestURI())
	var inject func()
	switch {
	case s.rateLimitN > 0:
		s.rateLimitN--
		secs := int(math.Ceil(s.retryAfter.Seconds()))
		inject = func() {
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			w.Header().Set("X-Sentry-Rate-Limit-Remaining", "0")
			writeJSON(w, http.StatusTooManyRequests, map[string]any{
				"detail": "You are attempting to use this endpoint too frequently. Limit is 40 requests in 1 seconds"})
		}
	case s.failN > 0:
		s.failN--
		status := s.failStatus
		inject = func() {
			if status >= 500 && status != http.StatusInternalServerError {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(status)
				fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>", status, http.StatusText(status))
				return
			}
			writeJSON(w, status, map[string]any{"detail": "Internal Error"})
		}
	}
	s.mu.Unlock()
	if inject != nil {
		inject()
		return
	}

	if !s.authorized(w, r) {
		return
	}
	segs, ok := segments(r.URL)
	if ok && len(segs) == 5 && segs[0] == "api" && segs[1] == "0" && segs[2] == "projects" && r.Method == http.MethodGet {
		s.getProject(w, segs[3], segs[4])
		return
	}
	if !ok || len(segs) < 4 || segs[0] != "api" || segs[1] != "0" || segs[2] != "organizations" {
		notFound(w)
		return
	}
	s.mu.Lock()
	org := s.org
	s.mu.Unlock()
	if segs[3] != org {
		notFound(w)
		return
	}
	rest := segs[4:]
	switch {
	case len(rest) == 1 && rest[0] == "issues" && r.Method == http.MethodGet:
		s.listIssues(w, r)
	case len(rest) == 1 && rest[0] == "projects" && r.Method == http.MethodGet:
		s.listProjects(w, r)
	case len(rest) == 1 && rest[0] == "releases" && r.Method == http.MethodPost:
		s.createRelease(w, r)
	case len(rest) == 3 && rest[0] == "releases" && rest[2] == "deploys" && r.Method == http.MethodPost:
		s.createDeploy(w, r, rest[1])
	case len(rest) == 3 && rest[0] == "releases" && rest[2] == "deploys" && r.Method == http.MethodGet:
		s.listDeploys(w, rest[1])
	case len(rest) >= 1 && slices.Contains([]string{"issues", "projects", "releases"}, rest[0]):
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"detail": fmt.Sprintf("Method \"%s\" not allowed.", r.Method)})
	default:
		notFound(w)
	}
}

// segments splits the escaped path, unescaping each segment, so a release
// version with escaped characters stays one segment. Sentry's paths end in
// "/", which is required.
func segments(u *url.URL) ([]string, bool) {
	p := u.EscapedPath()
	if !strings.HasSuffix(p, "/") {
		return nil, false
	}
	raw := strings.Split(strings.Trim(p, "/"), "/")
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		seg, err := url.PathUnescape(r)
		if err != nil {
			return nil, false
		}
		out = append(out, seg)
	}
	return out, true
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"detail": "Authentication credentials were not provided."})
		return false
	}
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) != 1 {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"detail": "Invalid token"})
		return false
	}
	return true
}

func (s *Server) listIssues(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()

	var projects []int
	for _, v := range q["project"] {
		id, err := strconv.Atoi(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"detail": "Invalid project parameter. Values must be numbers."})
			return
		}
		if id == -1 {
			projects = nil
			break
		}
		if _, ok := s.projectLocked(v); !ok {
			writeJSON(w, http.StatusNotFound, map[string]any{"detail": fmt.Sprintf("project %d does not exist", id)})
			return
		}
		projects = append(projects, id)
	}
	envs := q["environment"]

	start, end, err := s.window(q)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"detail": err.Error()})
		return
	}
	query, present := q["query"]
	text := "is:unresolved"
	if present {
		text = strings.Join(query, " ")
	}
	match, err := parseQuery(text)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"detail": err.Error()})
		return
	}

	var matched []*issueRec
	for _, rec := range s.issues {
		if len(projects) > 0 && !slices.Contains(projects, rec.project.id) {
			continue
		}
		if len(envs) > 0 && !slices.Contains(envs, rec.env) {
			continue
		}
		// An issue is in the window when it has events in it.
		if rec.issue.LastSeen.Before(start) || rec.issue.FirstSeen.After(end) {
			continue
		}
		if !match(rec.issue) {
			continue
		}
		matched = append(matched, rec)
	}
	switch sortBy := q.Get("sort"); sortBy {
	case "", "date":
		sort.SliceStable(matched, func(i, j int) bool { return matched[i].issue.LastSeen.After(matched[j].issue.LastSeen) })
	case "new":
		sort.SliceStable(matched, func(i, j int) bool { return matched[i].issue.FirstSeen.After(matched[j].issue.FirstSeen) })
	case "freq":
		sort.SliceStable(matched, func(i, j int) bool { return matched[i].issue.Count > matched[j].issue.Count })
	default:
		writeJSON(w, http.StatusBadRequest, map[string]any{"detail": fmt.Sprintf("Invalid sort: %s", sortBy)})
		return
	}

	page, ok := s.page(w, r, len(matched), "limit", 25)
	if !ok {
		return
	}
	out := make([]map[string]any, 0, page.n)
	for _, rec := range matched[page.from:page.to] {
		out = append(out, s.issueJSON(rec))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) issueJSON(rec *issueRec) map[string]any {
	is := rec.issue
	permalink := is.Permalink
	if permalink == "" {
		permalink = fmt.Sprintf("%sorganizations/%s/issues/%s/", s.URL(), s.org, is.ID)
	}
	var substatus any
	if is.Substatus != "" {
		substatus = is.Substatus
	}
	return map[string]any{
		"id":            is.ID,
		"shortId":       is.ShortID,
		"title":         is.Title,
		"culprit":       is.Culprit,
		"permalink":     permalink,
		"logger":        nil,
		"level":         is.Level,
		"status":        is.Status,
		"substatus":     substatus,
		"statusDetails": map[string]any{},
		"isPublic":      false,
		"platform":      "python",
		"project": map[string]any{
			"id": strconv.Itoa(rec.project.id), "name": rec.project.slug, "slug": rec.project.slug, "platform": "python",
		},
		"type":          "error",
		"metadata":      map[string]any{"title": is.Title},
		"numComments":   0,
		"assignedTo":    nil,
		"isBookmarked":  false,
		"isSubscribed":  false,
		"hasSeen":       false,
		"annotations":   []any{},
		"issueType":     "error",
		"issueCategory": "error",
		"isUnhandled":   false,
		"count":         strconv.FormatInt(is.Count, 10),
		"userCount":     is.UserCount,
		"firstSeen":     formatTime(is.FirstSeen),
		"lastSeen":      formatTime(is.LastSeen),
	}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.999999Z")
}

// window reads start/end (both required together) or statsPeriod; the
// default is Sentry's 14 days.
func (s *Server) window(q url.Values) (time.Time, time.Time, error) {
	now := s.now()
	if sp := q.Get("statsPeriod"); sp != "" {
		d, err := parsePeriod(sp)
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		return now.Add(-d), now, nil
	}
	if q.Get("start") != "" || q.Get("end") != "" {
		if q.Get("start") == "" || q.Get("end") == "" {
			return time.Time{}, time.Time{}, fmt.Errorf("start and end are both required")
		}
		start, err := parseTime(q.Get("start"))
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		end, err := parseTime(q.Get("end"))
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		if !start.Before(end) {
			return time.Time{}, time.Time{}, fmt.Errorf("start must be before end")
		}
		return start, end, nil
	}
	return now.Add(-14 * 24 * time.Hour), now, nil
}

// parseTime accepts what Sentry does: ISO 8601 with or without fractional
// seconds, a zone or none (UTC).
func parseTime(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%s is not a valid ISO8601 date query", v)
}

func parsePeriod(v string) (time.Duration, error) {
	units := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}
	if len(v) < 2 {
		return 0, fmt.Errorf("Invalid statsPeriod: %q", v)
	}
	n, err := strconv.Atoi(v[:len(v)-1])
	unit, ok := units[v[len(v)-1]]
	if err != nil || !ok || n < 0 {
		return 0, fmt.Errorf("Invalid statsPeriod: %q", v)
	}
	return time.Duration(n) * unit, nil
}

// parseQuery supports the part of Sentry's search syntax that matters for
// deploy checks: is:<status>, is:<substatus> and free text on the title.
// Anything else is refused so a client relying on it notices.
func parseQuery(q string) (func(Issue) bool, error) {
	var preds []func(Issue) bool
	for _, tok := range strings.Fields(q) {
		key, val, hasColon := strings.Cut(tok, ":")
		switch {
		case hasColon && key == "is":
			switch val {
			case "unresolved", "resolved", "ignored":
				preds = append(preds, func(i Issue) bool { return i.Status == val })
			case "archived":
				preds = append(preds, func(i Issue) bool { return i.Status == "ignored" })
			case "regressed", "new", "ongoing", "escalating":
				preds = append(preds, func(i Issue) bool { return i.Substatus == val })
			default:
				return nil, fmt.Errorf("Invalid status value: %s", val)
			}
		case hasColon:
			return nil, fmt.Errorf("sentrytest does not support the search key %q", key)
		default:
			word := strings.ToLower(tok)
			preds = append(preds, func(i Issue) bool { return strings.Contains(strings.ToLower(i.Title), word) })
		}
	}
	return func(i Issue) bool {
		for _, p := range preds {
			if !p(i) {
				return false
			}
		}
		return true
	}, nil
}

type pageRange struct{ from, to, n int }

// page applies the cursor and page size, and writes the Link header the way
// Sentry does: both relations always, each with results and cursor.
func (s *Server) page(w http.ResponseWriter, r *http.Request, total int, limitParam string, defLimit int) (pageRange, bool) {
	q := r.URL.Query()
	limit := defLimit
	if v := q.Get(limitParam); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"detail": fmt.Sprintf("Invalid %s parameter.", limitParam)})
			return pageRange{}, false
		}
		limit = n
	}
	limit = min(limit, 100)
	if s.pageSize > 0 {
		limit = min(limit, s.pageSize)
	}
	offset := 0
	if c := q.Get("cursor"); c != "" {
		parts := strings.Split(c, ":")
		n := -1
		if len(parts) == 3 {
			n, _ = strconv.Atoi(parts[1])
		}
		if n < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"detail": "Invalid cursor parameter."})
			return pageRange{}, false
		}
		offset = n
	}
	from := min(offset, total)
	to := min(from+limit, total)

	q.Del("cursor")
	base := s.srv.URL + r.URL.EscapedPath() + "?" + q.Encode()
	prevCursor := fmt.Sprintf("0:%d:1", max(offset-limit, 0))
	nextCursor := fmt.Sprintf("0:%d:0", offset+limit)
	w.Header().Set("Link", fmt.Sprintf(
		`<%s&cursor=%s>; rel="previous"; results="%t"; cursor="%s", <%s&cursor=%s>; rel="next"; results="%t"; cursor="%s"`,
		base, prevCursor, offset > 0, prevCursor, base, nextCursor, to < total, nextCursor))
	return pageRange{from: from, to: to, n: to - from}, true
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	page, ok := s.page(w, r, len(s.projects), "per_page", 100)
	if !ok {
		return
	}
	out := make([]map[string]any, 0, page.n)
	for _, p := range s.projects[page.from:page.to] {
		out = append(out, map[string]any{
			"id": strconv.Itoa(p.id), "slug": p.slug, "name": p.slug, "platform": "python",
			"dateCreated": "2020-01-01T00:00:00Z", "isMember": true, "hasAccess": true,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) createRelease(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Version  string   `json:"version"`
		Projects []string `json:"projects"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"detail": "Malformed request."})
		return
	}
	errs := map[string]any{}
	if strings.TrimSpace(body.Version) == "" {
		errs["version"] = []string{"This field is required."}
	} else if strings.ContainsAny(body.Version, "/\\\n\t") || body.Version == "." || body.Version == ".." || body.Version == "latest" {
		errs["version"] = []string{"Release with name " + body.Version + " is not allowed"}
	}
	if len(body.Projects) == 0 {
		errs["projects"] = []string{"This field is required."}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var slugs []string
	for _, ref := range body.Projects {
		p, ok := s.projectLocked(ref)
		if !ok {
			errs["projects"] = []string{"Invalid project ids or slugs"}
			break
		}
		slugs = append(slugs, p.slug)
	}
	if len(errs) > 0 {
		writeJSON(w, http.StatusBadRequest, errs)
		return
	}
	status := http.StatusCreated
	rel := s.releaseLocked(body.Version)
	if rel != nil {
		status = http.StatusAlreadyReported
		for _, slug := range slugs {
			if !slices.Contains(rel.Projects, slug) {
				rel.Projects = append(rel.Projects, slug)
			}
		}
	} else {
		rel = &Release{Version: body.Version, Projects: slugs}
		s.releases = append(s.releases, rel)
	}
	projects := make([]map[string]any, 0, len(rel.Projects))
	for _, slug := range rel.Projects {
		projects = append(projects, map[string]any{"slug": slug, "name": slug})
	}
	writeJSON(w, status, map[string]any{
		"version": rel.Version, "shortVersion": rel.Version, "projects": projects,
		"dateCreated": formatTime(s.now()), "deployCount": len(s.deploys[rel.Version]),
	})
}

func (s *Server) createDeploy(w http.ResponseWriter, r *http.Request, version string) {
	var body struct {
		Environment  string `json:"environment"`
		Name         string `json:"name"`
		URL          string `json:"url"`
		DateStarted  string `json:"dateStarted"`
		DateFinished string `json:"dateFinished"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"detail": "Malformed request."})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.releaseLocked(version) == nil {
		notFound(w)
		return
	}
	errs := map[string]any{}
	if body.Environment == "" {
		errs["environment"] = []string{"This field is required."}
	}
	if body.URL != "" {
		if u, err := url.Parse(body.URL); err != nil || u.Scheme == "" || u.Host == "" {
			errs["url"] = []string{"Enter a valid URL."}
		}
	}
	d := Deploy{Environment: body.Environment, Name: body.Name, URL: body.URL}
	parse := func(field, v string, dst *time.Time) {
		if v == "" {
			return
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			errs[field] = []string{"Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."}
			return
		}
		*dst = t.UTC()
	}
	parse("dateStarted", body.DateStarted, &d.DateStarted)
	parse("dateFinished", body.DateFinished, &d.DateFinished)
	if len(errs) > 0 {
		writeJSON(w, http.StatusBadRequest, errs)
		return
	}
	if d.DateFinished.IsZero() {
		d.DateFinished = s.now().UTC()
	}
	s.deploys[version] = append(s.deploys[version], d)
	writeJSON(w, http.StatusCreated, deployJSON(len(s.deploys[version]), d))
}

func (s *Server) listDeploys(w http.ResponseWriter, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.releaseLocked(version) == nil {
		notFound(w)
		return
	}
	out := []map[string]any{}
	for i, d := range s.deploys[version] {
		out = append(out, deployJSON(i+1, d))
	}
	writeJSON(w, http.StatusOK, out)
}

func deployJSON(id int, d Deploy) map[string]any {
	var started any
	if !d.DateStarted.IsZero() {
		started = formatTime(d.DateStarted)
	}
	return map[string]any{
		"id": strconv.Itoa(id), "environment": d.Environment, "name": d.Name, "url": d.URL,
		"dateStarted": started, "dateFinished": formatTime(d.DateFinished),
	}
}

func notFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]any{"detail": "The requested resource does not exist"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// getProject answers GET /api/0/projects/{org}/{project}/: 404 for an
// organisation or project the token cannot see, as Sentry does.
func (s *Server) getProject(w http.ResponseWriter, org, slug string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if org != s.org {
		notFound(w)
		return
	}
	for _, p := range s.projects {
		if p.slug == slug {
			writeJSON(w, http.StatusOK, map[string]any{"id": fmt.Sprint(p.id), "slug": p.slug, "name": p.slug,
				"organization": map[string]any{"slug": s.org, "name": s.org}})
			return
		}
	}
	notFound(w)
}
