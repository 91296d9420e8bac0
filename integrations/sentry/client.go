package sentry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sentinels for errors.Is, so callers can choose between "fix the
// configuration", "try again later" and "Sentry is down" without parsing
// text.
var (
	ErrUnauthorized = errors.New("sentry refused the token")
	ErrNotFound     = errors.New("not found in sentry")
	ErrRateLimited  = errors.New("sentry rate limit")
	ErrUnreachable  = errors.New("sentry unreachable")
)

// Error is what every failing call returns. Its text is scrubbed of the
// token when it is built, because it is shown to people.
type Error struct {
	Kind   error // one of the Err* sentinels, or nil
	Status int   // HTTP status when Sentry answered, else 0
	msg    string
	cause  error
}

func (e *Error) Error() string { return e.msg }

// Unwrap exposes the sentinel and the cause (transport or context error).
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

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the default client (30 s timeout per request).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithMaxRetries sets how many times one request is retried after 429, 5xx
// or a transport failure (default 3; 0 disables retries).
func WithMaxRetries(n int) Option {
	return func(c *Client) {
		if n >= 0 {
			c.maxRetries = n
		}
	}
}

// WithBackoff replaces the delay before retry number attempt (0-based)
// after a 5xx, a transport failure, or a 429 without Retry-After. Tests use
// it to retry without waiting; Retry-After itself is always honoured.
func WithBackoff(f func(attempt int) time.Duration) Option {
	return func(c *Client) {
		if f != nil {
			c.backoff = f
		}
	}
}

// Client talks to one Sentry organisation. It is safe for concurrent use.
type Client struct {
	api        string // ".../api/0/"
	baseErr    error
	display    string // base URL as shown in errors
	org        string
	token      string
	hc         *http.Client
	maxRetries int
	backoff    func(attempt int) time.Duration
	now        func() time.Time

	mu       sync.Mutex
	projects map[string]project // by slug and by id
}

type project struct{ ID, Slug string }

// New returns a client for the organisation org on the Sentry at baseURL
// (like "https://sentry.io/"; "/api/0/" is appended). Problems with the
// arguments are reported by the first call, so wiring stays simple.
func New(baseURL, org, token string, opts ...Option) *Client {
	c := &Client{
		org:        org,
		token:      token,
		hc:         &http.Client{Timeout: 30 * time.Second},
		maxRetries: 3,
		backoff:    defaultBackoff,
		now:        time.Now,
		projects:   map[string]project{},
	}
	u, err := url.Parse(strings.TrimSpace(baseURL))
	switch {
	case err != nil:
		c.baseErr = errors.New("sentry url is not a URL")
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		c.baseErr = fmt.Errorf("sentry url %q must be an http(s) URL like https://sentry.io/", u.Redacted())
	case org == "":
		c.baseErr = errors.New("sentry organisation slug is empty")
	default:
		u.User = nil
		u.RawQuery, u.Fragment = "", ""
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
			u.RawPath = ""
		}
		c.display = u.String()
		c.api = c.display + "api/0/"
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// defaultBackoff doubles from half a second with jitter, so several bots
// (or retries of several calls) do not hit a struggling Sentry in step.
func defaultBackoff(attempt int) time.Duration {
	d := 500 * time.Millisecond << min(attempt, 4)
	return d/2 + rand.N(d)
}

// response is a read answer; bodies are small JSON documents.
type response struct {
	status int
	header http.Header
	body   []byte
}

// maxRetryAfter caps a Retry-After we are willing to wait out; a longer one
// is reported at once so the runbook can offer a manual check instead.
const maxRetryAfter = 2 * time.Minute

// do sends a request to path (relative to /api/0/, already escaped),
// retrying 429, 5xx and transport failures. Other statuses are returned
// for the caller to interpret.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body any) (*response, error) {
	if c.baseErr != nil {
		return nil, &Error{msg: c.baseErr.Error()}
	}
	target := c.api + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	return c.doURL(ctx, method, target, body)
}

func (c *Client) doURL(ctx context.Context, method, target string, body any) (*response, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, &Error{msg: "sentry request: " + err.Error()}
		}
	}
	what := method + " " + c.describe(target)
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(payload))
		if err != nil {
			return nil, &Error{msg: "sentry request: " + c.scrub(err.Error())}
		}
		if body == nil {
			req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", "Bearer "+c.token)

		resp, err := c.hc.Do(req)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, c.deadline(ctxErr)
			}
			cause := err
			var ue *url.Error
			if errors.As(err, &ue) {
				cause = ue.Err
			}
			if attempt < c.maxRetries {
				if err := c.sleep(ctx, c.backoff(attempt)); err != nil {
					return nil, err
				}
				continue
			}
			return nil, &Error{Kind: ErrUnreachable, cause: cause,
				msg: fmt.Sprintf("sentry at %s unreachable: %s", c.display, c.scrub(cause.Error()))}
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, c.deadline(ctxErr)
			}
			if attempt < c.maxRetries {
				if err := c.sleep(ctx, c.backoff(attempt)); err != nil {
					return nil, err
				}
				continue
			}
			return nil, &Error{Kind: ErrUnreachable, cause: err,
				msg: fmt.Sprintf("sentry at %s broke off its answer: %s", c.display, c.scrub(err.Error()))}
		}
		r := &response{status: resp.StatusCode, header: resp.Header, body: data}

		switch {
		case r.status == http.StatusTooManyRequests:
			wait, ok := retryAfter(r.header, c.now())
			if !ok {
				wait = c.backoff(attempt)
			}
			if attempt >= c.maxRetries {
				return nil, &Error{Kind: ErrRateLimited, Status: r.status,
					msg: fmt.Sprintf("sentry rate limit hit for %s after %s%s", what, retries(c.maxRetries), c.detailSuffix(r.body))}
			}
			if wait > maxRetryAfter || beyondDeadline(ctx, c.now(), wait) {
				return nil, &Error{Kind: ErrRateLimited, Status: r.status,
					msg: fmt.Sprintf("sentry rate limit hit for %s: Retry-After %s is longer than the time left", what, wait.Round(time.Second))}
			}
			if err := c.sleep(ctx, wait); err != nil {
				return nil, err
			}
		case r.status >= 500:
			if attempt >= c.maxRetries {
				return nil, &Error{Status: r.status, msg: fmt.Sprintf("sentry at %s answered %d %s for %s (after %s)%s",
					c.display, r.status, http.StatusText(r.status), what, retries(c.maxRetries), c.detailSuffix(r.body))}
			}
			if err := c.sleep(ctx, c.backoff(attempt)); err != nil {
				return nil, err
			}
		default:
			return r, nil
		}
	}
}

func retries(n int) string {
	if n == 1 {
		return "1 retry"
	}
	return strconv.Itoa(n) + " retries"
}

// retryAfter reads how long Sentry wants us to wait: Retry-After in seconds
// or as an HTTP date, else Sentry's own X-Sentry-Rate-Limit-Reset (a Unix
// time).
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
			return time.Duration(secs * float64(time.Second)), true
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0), true
		}
	}
	if v := strings.TrimSpace(h.Get("X-Sentry-Rate-Limit-Reset")); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil {
			reset := time.Unix(0, int64(secs*float64(time.Second)))
			return max(reset.Sub(now), 0), true
		}
	}
	return 0, false
}

func beyondDeadline(ctx context.Context, now time.Time, wait time.Duration) bool {
	dl, ok := ctx.Deadline()
	return ok && now.Add(wait).After(dl)
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		if err := ctx.Err(); err != nil {
			return c.deadline(err)
		}
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return c.deadline(ctx.Err())
	}
}

func (c *Client) deadline(err error) error {
	return &Error{Kind: ErrUnreachable, cause: err,
		msg: fmt.Sprintf("sentry at %s did not answer in time: %v", c.display, err)}
}

// describe shortens a request URL for messages: the path below /api/0/,
// without the query.
func (c *Client) describe(target string) string {
	s := strings.TrimPrefix(target, c.api)
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[:i]
	}
	return "/api/0/" + s
}

// statusError turns an answer the caller did not expect into an error.
func (c *Client) statusError(r *response, what string) error {
	switch r.status {
	case http.StatusUnauthorized:
		return &Error{Kind: ErrUnauthorized, Status: r.status, msg: "sentry refused the auth token (401)" + c.detailSuffix(r.body)}
	case http.StatusForbidden:
		return &Error{Kind: ErrUnauthorized, Status: r.status,
			msg: fmt.Sprintf("sentry auth token may not %s (403)%s", what, c.detailSuffix(r.body))}
	case http.StatusNotFound:
		return &Error{Kind: ErrNotFound, Status: r.status,
			msg: fmt.Sprintf("sentry has nothing at %s (404): check the organisation %q%s", what, c.org, c.detailSuffix(r.body))}
	}
	return &Error{Status: r.status, msg: fmt.Sprintf("sentry answered %d %s to %s%s",
		r.status, http.StatusText(r.status), what, c.detailSuffix(r.body))}
}

// detailSuffix is Sentry's own explanation (DRF's {"detail": …} or field
// errors), scrubbed and short, prefixed for appending to a message.
func (c *Client) detailSuffix(body []byte) string {
	d := strings.TrimSpace(detail(body))
	if d == "" {
		return ""
	}
	return ": " + c.scrub(d)
}

func detail(body []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) == nil {
		if raw, ok := m["detail"]; ok {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				return s
			}
			return truncate(string(raw), 300)
		}
		return truncate(string(body), 300)
	}
	return plainText(body)
}

// plainText keeps a short non-JSON body unless it is markup (a proxy's error
// page), which would only clutter a chat message.
func plainText(body []byte) string {
	s := strings.TrimSpace(string(body))
	if strings.HasPrefix(s, "<") {
		return ""
	}
	return truncate(s, 200)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (c *Client) scrub(s string) string {
	if len(c.token) >= 4 {
		s = strings.ReplaceAll(s, c.token, "[redacted]")
	}
	return s
}

// decode parses a 2xx JSON answer.
func (c *Client) decode(r *response, what string, out any) error {
	if err := json.Unmarshal(r.body, out); err != nil {
		return &Error{Status: r.status, msg: fmt.Sprintf("sentry answered %s with something that is not Sentry JSON: %s", what, c.scrub(err.Error()))}
	}
	return nil
}

// orgPath is the escaped path of an organisation resource.
func (c *Client) orgPath(rest string) string {
	return "organizations/" + url.PathEscape(c.org) + "/" + rest
}
