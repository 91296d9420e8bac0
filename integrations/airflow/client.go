package airflow

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sentinels for errors.Is, so callers can word a Slack message or decide
// whether a "Recheck" button makes sense without parsing text.
var (
	ErrUnreachable  = errors.New("airflow unreachable")
	ErrUnauthorized = errors.New("airflow refused the credentials")
	ErrDAGNotFound  = errors.New("DAG not found in Airflow")
)

// Error is what every failing call returns. Its text is built once, with
// secrets already scrubbed, because it is shown to people; Kind and the
// cause stay reachable through errors.Is/As.
type Error struct {
	Kind   error // one of the Err* sentinels, or nil for other failures
	Status int   // HTTP status when Airflow answered, else 0
	msg    string
	detail string // Airflow's own explanation, scrubbed
	cause  error
	// token marks failures of /auth/token, whose 404 means "not Airflow
	// 3" rather than "no such DAG".
	token bool
}

func (e *Error) Error() string { return e.msg }

// Unwrap exposes both the sentinel and the cause (a transport or context
// error), so errors.Is works for ErrUnreachable and context.DeadlineExceeded
// alike.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// DagRun is one run that is running or queued.
type DagRun struct {
	DagID     string
	RunID     string
	State     string    // "running" or "queued"
	StartDate time.Time // zero while a run is queued and has not started
	URL       string    // the run in the Airflow UI, for a link in chat
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the default client (30 s timeout), e.g. to add a
// proxy or trust a private CA.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// Client talks to one Airflow. It is safe for concurrent use.
type Client struct {
	base     *url.URL // no user info, no trailing slash
	baseErr  error
	display  string // base as shown in errors
	version  int
	user     string
	password string
	hc       *http.Client

	// tokSem serialises token fetches so a burst of 401s after expiry
	// costs one /auth/token call, while waiting for it stays cancellable.
	tokSem chan struct{}
	mu     sync.Mutex // guards token and spent
	token  string
	// spent holds every token handed out so far, so one that Airflow
	// echoes back is scrubbed even after it has been replaced.
	spent []string
}

// New returns a client for the Airflow at baseURL (the UI's address; the API
// paths are appended). apiVersion is the Airflow major version as in the
// configuration: 2 for /api/v1 with basic auth, 3 for /api/v2 with a token.
// Problems with the arguments are reported by the first call, because
// configuration is validated elsewhere and a constructor that cannot fail
// keeps wiring simple.
func New(baseURL string, apiVersion int, username, password string, opts ...Option) *Client {
	c := &Client{
		version:  apiVersion,
		user:     username,
		password: password,
		hc:       &http.Client{Timeout: 30 * time.Second},
		tokSem:   make(chan struct{}, 1),
	}
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(baseURL), "/"))
	switch {
	case err != nil:
		c.baseErr = fmt.Errorf("airflow url %q is not a URL", redactURL(baseURL))
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		c.baseErr = fmt.Errorf("airflow url %q must be an http(s) URL", redactURL(baseURL))
	default:
		// Credentials come from the environment; any in the URL are
		// dropped so they can never reach a message.
		u.User = nil
		u.RawQuery, u.Fragment = "", ""
		c.base = u
		c.display = u.String()
	}
	if c.baseErr == nil && apiVersion != 2 && apiVersion != 3 {
		c.baseErr = fmt.Errorf("airflow api_version %d is not supported (2: Airflow 2, /api/v1; 3: Airflow 3, /api/v2)", apiVersion)
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparsable)"
}

func (c *Client) apiPrefix() string {
	if c.version == 3 {
		return "/api/v2"
	}
	return "/api/v1"
}

// ActiveRuns returns the running and queued runs of the given DAGs, grouped
// by DAG in the order given and by start time within a DAG (runs that have
// not started yet last). No runs means no data refresh is in progress; any
// doubt is an error instead.
func (c *Client) ActiveRuns(ctx context.Context, dagIDs []string) ([]DagRun, error) {
	if c.baseErr != nil {
		return nil, &Error{msg: c.baseErr.Error()}
	}
	if len(dagIDs) == 0 {
		// An empty list would answer "nothing running" without asking.
		return nil, &Error{msg: "no Airflow DAGs to check: list the data refresh DAGs"}
	}
	seen := make(map[string]bool, len(dagIDs))
	var all []DagRun
	for _, id := range dagIDs {
		id = strings.TrimSpace(id)
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		runs, err := c.dagRuns(ctx, id)
		if err != nil {
			return nil, err
		}
		if len(runs) == 0 && c.version == 2 {
			// Airflow 2 lists runs of unknown DAGs as empty; a typo in
			// the configuration must not read as "all clear".
			if err := c.dagExists(ctx, id); err != nil {
				return nil, err
			}
		}
		sort.SliceStable(runs, func(i, j int) bool {
			a, b := runs[i].StartDate, runs[j].StartDate
			if a.IsZero() != b.IsZero() {
				return b.IsZero()
			}
			if !a.Equal(b) {
				return a.Before(b)
			}
			return runs[i].RunID < runs[j].RunID
		})
		all = append(all, runs...)
	}
	return all, nil
}

// pageLimit is Airflow's default maximum_page_limit; asking for more is
// silently capped, so paging is needed whatever we ask for.
const pageLimit = 100

// maxPages bounds paging against a server whose total_entries never
// matches what it returns.
const maxPages = 50

type dagRunJSON struct {
	DagRunID  string     `json:"dag_run_id"`
	DagID     string     `json:"dag_id"`
	State     string     `json:"state"`
	StartDate *time.Time `json:"start_date"`
}

type dagRunsPage struct {
	DagRuns      []dagRunJSON `json:"dag_runs"`
	TotalEntries int          `json:"total_entries"`
}

func (c *Client) dagRuns(ctx context.Context, dagID string) ([]DagRun, error) {
	path := c.apiPrefix() + "/dags/" + url.PathEscape(dagID) + "/dagRuns"
	var out []DagRun
	offset := 0
	for page := 0; page < maxPages; page++ {
		q := url.Values{}
		q.Add("state", "running")
		q.Add("state", "queued")
		q.Set("limit", strconv.Itoa(pageLimit))
		q.Set("offset", strconv.Itoa(offset))
		var p dagRunsPage
		if err := c.getJSON(ctx, path, q, &p); err != nil {
			var e *Error
			if errors.As(err, &e) && e.Status == http.StatusNotFound && !e.token {
				return nil, c.notFound(dagID, e)
			}
			return nil, err
		}
		for _, r := range p.DagRuns {
			run := DagRun{DagID: r.DagID, RunID: r.DagRunID, State: r.State}
			if run.DagID == "" {
				run.DagID = dagID
			}
			if r.StartDate != nil {
				run.StartDate = r.StartDate.UTC()
			}
			run.URL = c.runURL(run.DagID, run.RunID)
			out = append(out, run)
		}
		offset += len(p.DagRuns)
		if len(p.DagRuns) == 0 || offset >= p.TotalEntries {
			return out, nil
		}
	}
	return out, nil
}

func (c *Client) dagExists(ctx context.Context, dagID string) error {
	var dag struct {
		DagID string `json:"dag_id"`
	}
	err := c.getJSON(ctx, c.apiPrefix()+"/dags/"+url.PathEscape(dagID), nil, &dag)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusNotFound && !e.token {
		return c.notFound(dagID, e)
	}
	return err
}

// notFound tells a missing DAG from a missing API: Airflow names the DAG in
// its 404, while a wrong api_version or base path gets a generic one, and
// "DAG not found" would send the operator hunting for the wrong problem.
func (c *Client) notFound(dagID string, e *Error) error {
	if strings.Contains(e.detail, dagID) {
		return &Error{Kind: ErrDAGNotFound, Status: http.StatusNotFound,
			msg: fmt.Sprintf("DAG %s not found in Airflow", dagID)}
	}
	return &Error{Status: http.StatusNotFound, msg: fmt.Sprintf(
		"airflow at %s has no %s API (404): check the url and that api_version %d matches the Airflow major version",
		c.display, c.apiPrefix(), c.version)}
}

// runURL links to the run in the UI of the Airflow generation in use: the
// Airflow 2 grid view, or the Airflow 3 run page (the grid query parameter
// is ignored by the Airflow 3 UI).
func (c *Client) runURL(dagID, runID string) string {
	if c.version == 3 {
		return c.display + "/dags/" + url.PathEscape(dagID) + "/runs/" + url.PathEscape(runID)
	}
	return c.display + "/dags/" + url.PathEscape(dagID) + "/grid?dag_run_id=" + url.QueryEscape(runID)
}

// getJSON GETs an API path and decodes a 2xx answer. On Airflow 3 a 401 is
// taken to mean the token expired: it is refreshed and the request sent
// once more; a second 401 means the credentials themselves are refused.
func (c *Client) getJSON(ctx context.Context, path string, q url.Values, out any) error {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawPath = ""
	if q != nil {
		u.RawQuery = q.Encode()
	}
	stale := ""
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return &Error{msg: "airflow request: " + c.scrub(err.Error())}
		}
		req.Header.Set("Accept", "application/json")
		if c.version == 3 {
			tok, err := c.bearer(ctx, stale)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			stale = tok
		} else {
			req.SetBasicAuth(c.user, c.password)
		}
		status, body, err := c.send(req)
		if err != nil {
			return err
		}
		switch {
		case status >= 200 && status < 300:
			if err := json.Unmarshal(body, out); err != nil {
				return &Error{Status: status, msg: fmt.Sprintf("airflow at %s answered %s with something that is not Airflow JSON: %s",
					c.display, path, c.scrub(err.Error()))}
			}
			return nil
		case status == http.StatusUnauthorized && c.version == 3 && attempt == 0:
			continue
		default:
			return c.statusError(status, body, path)
		}
	}
}

// send performs one request and reads the body, turning transport failures
// into ErrUnreachable and context expiry into a deadline message.
func (c *Client) send(req *http.Request) (int, []byte, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return 0, nil, &Error{Kind: ErrUnreachable, cause: ctxErr,
				msg: fmt.Sprintf("airflow at %s did not answer in time: %v", c.display, ctxErr)}
		}
		cause := err
		var ue *url.Error
		if errors.As(err, &ue) {
			cause = ue.Err // the URL is already in our message
		}
		return 0, nil, &Error{Kind: ErrUnreachable, cause: cause,
			msg: fmt.Sprintf("airflow at %s unreachable: %s", c.display, c.scrub(cause.Error()))}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			err = ctxErr
		}
		return 0, nil, &Error{Kind: ErrUnreachable, cause: err,
			msg: fmt.Sprintf("airflow at %s broke off its answer: %s", c.display, c.scrub(err.Error()))}
	}
	return resp.StatusCode, body, nil
}

func (c *Client) statusError(status int, body []byte, what string) error {
	detail := c.scrub(problemDetail(body))
	switch status {
	case http.StatusUnauthorized:
		return &Error{Kind: ErrUnauthorized, Status: status, msg: "airflow refused the credentials (401)"}
	case http.StatusForbidden:
		return &Error{Kind: ErrUnauthorized, Status: status,
			msg: fmt.Sprintf("airflow user %q may not read %s (403)", c.user, what)}
	}
	msg := fmt.Sprintf("airflow at %s answered %d %s for %s", c.display, status, http.StatusText(status), what)
	if detail != "" {
		msg += ": " + detail
	}
	return &Error{Status: status, msg: msg, detail: detail}
}

// problemDetail pulls the human part out of an Airflow error: Airflow 2
// sends RFC 7807 problem JSON (title, detail), Airflow 3 FastAPI's
// {"detail": …}. Anything else is cut short, since it may be a proxy's HTML.
func problemDetail(body []byte) string {
	var p struct {
		Title  string          `json:"title"`
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(body, &p) == nil {
		var s string
		if json.Unmarshal(p.Detail, &s) == nil && s != "" {
			return s
		}
		if len(p.Detail) > 0 && string(p.Detail) != "null" {
			return truncate(string(p.Detail), 300)
		}
		if p.Title != "" {
			return p.Title
		}
	}
	// A non-JSON body is kept only if it is not markup (a proxy's error
	// page), which would only clutter a chat message.
	if s := strings.TrimSpace(string(body)); !strings.HasPrefix(s, "<") {
		return truncate(s, 200)
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// bearer returns a cached Airflow 3 token, fetching a new one when there is
// none or when the cached one is the token that was just rejected.
func (c *Client) bearer(ctx context.Context, rejected string) (string, error) {
	select {
	case c.tokSem <- struct{}{}:
	case <-ctx.Done():
		return "", &Error{Kind: ErrUnreachable, cause: ctx.Err(),
			msg: fmt.Sprintf("airflow at %s did not answer in time: %v", c.display, ctx.Err())}
	}
	defer func() { <-c.tokSem }()
	c.mu.Lock()
	cached := c.token
	c.mu.Unlock()
	if cached != "" && cached != rejected {
		return cached, nil
	}
	tok, err := c.fetchToken(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.token = ""
		return "", err
	}
	c.token = tok
	c.spent = append(c.spent, tok)
	return tok, nil
}

func (c *Client) fetchToken(ctx context.Context) (string, error) {
	u := *c.base
	u.Path = c.base.Path + "/auth/token"
	u.RawPath = ""
	body, _ := json.Marshal(map[string]string{"username": c.user, "password": c.password})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return "", &Error{msg: "airflow request: " + c.scrub(err.Error())}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	status, resp, err := c.send(req)
	if err != nil {
		return "", err
	}
	switch {
	case status == http.StatusCreated || status == http.StatusOK:
		var t struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal(resp, &t) != nil || t.AccessToken == "" {
			return "", &Error{Status: status, msg: fmt.Sprintf("airflow at %s answered /auth/token without an access_token", c.display)}
		}
		return t.AccessToken, nil
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return "", &Error{Kind: ErrUnauthorized, Status: status,
			msg: fmt.Sprintf("airflow refused the credentials (%d)", status)}
	case status == http.StatusNotFound:
		return "", &Error{Status: status, token: true, msg: fmt.Sprintf(
			"airflow at %s has no /auth/token (404): is it Airflow 3? api_version 3 needs it", c.display)}
	default:
		return "", c.statusError(status, resp, "/auth/token")
	}
}

// scrub removes every form a secret can take in text from outside: the
// password, the basic-auth header value and any token handed out.
func (c *Client) scrub(s string) string {
	secrets := []string{c.password, base64.StdEncoding.EncodeToString([]byte(c.user + ":" + c.password))}
	c.mu.Lock()
	secrets = append(secrets, c.spent...)
	c.mu.Unlock()
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}
