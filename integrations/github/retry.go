package github

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RateLimitError reports that GitHub's primary rate limit is exhausted until
// Reset, further away than the client was allowed to wait. Callers usually
// show it to a person and let them retry after Reset.
type RateLimitError struct {
	Reset time.Time
}

func (e *RateLimitError) Error() string {
	return "GitHub rate limit exhausted until " + e.Reset.UTC().Format("15:04") + " UTC"
}

// retryTransport resends requests that failed for reasons that pass: server
// errors and rate limits. It lives below go-github so that go-github only
// ever sees the final answer and its own client-side rate-limit bookkeeping
// is not confused by intermediate failures.
//
// Which requests are resent: GET, HEAD, PUT, PATCH, DELETE and OPTIONS on any
// 5xx, because they are idempotent (the PATCHes this package sends set
// absolute values). A POST (workflow dispatch, review, pull request) is
// never resent after any 5xx, a timeout or a lost connection: even a 502 or
// 504 can come after GitHub applied it, and a second dispatch deploys
// production twice. The methods that POST look for their effect first and
// repeat only what did not happen (Approve, CreatePR), or leave the
// decision to the caller (Dispatch). A POST is resent only when it was
// refused unprocessed: a secondary rate limit, or no connection made at all
// (a failed dial sends nothing). Idempotent methods are also resent after
// network errors.
type retryTransport struct {
	next     http.RoundTripper
	clock    Clock
	attempts int
	base     time.Duration
	max      time.Duration
	maxWait  time.Duration
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return true
	}
	return false
}

// maxErrorBody bounds how much of an error response is read to classify it.
const maxErrorBody = 1 << 16

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	primaryWaited := false
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 {
			var err error
			if r, err = rewind(req); err != nil {
				return nil, err
			}
		}
		resp, err := t.next.RoundTrip(r)
		if err != nil {
			if ctx.Err() != nil || attempt >= t.attempts || !(idempotent(req.Method) || neverSent(err)) {
				return nil, err
			}
			if serr := t.clock.Sleep(ctx, t.backoff(attempt)); serr != nil {
				return nil, err
			}
			continue
		}

		d := t.classify(req.Method, resp, attempt, &primaryWaited)
		if d.err != nil {
			drain(resp)
			return nil, d.err
		}
		if !d.retry {
			return resp, nil
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d.wait {
			// Waiting would outlive the caller: answer now.
			if d.giveUp != nil {
				drain(resp)
				return nil, d.giveUp
			}
			return resp, nil
		}
		drain(resp)
		if err := t.clock.Sleep(ctx, d.wait); err != nil {
			return nil, err
		}
	}
}

// decision is what to do with a response: return it (retry false), return
// err instead, or retry after wait. giveUp, when set, is the error to
// return instead of the response if the wait is not possible.
type decision struct {
	retry  bool
	wait   time.Duration
	err    error
	giveUp error
}

// classify decides what to do with a response.
func (t *retryTransport) classify(method string, resp *http.Response, attempt int, primaryWaited *bool) decision {
	code := resp.StatusCode
	switch {
	case code >= 500:
		if attempt >= t.attempts {
			return decision{}
		}
		if !idempotent(method) {
			return decision{}
		}
		if ra, ok := retryAfter(resp); ok && ra <= t.maxWait {
			return decision{retry: true, wait: ra}
		}
		return decision{retry: true, wait: t.backoff(attempt)}

	case code == http.StatusForbidden || code == http.StatusTooManyRequests:
		body := peekBody(resp)
		ra, hasRetryAfter := retryAfter(resp)
		// GitHub's documented order: Retry-After (or a message naming the
		// secondary limit) first, then X-RateLimit-Remaining: 0.
		if hasRetryAfter || strings.Contains(strings.ToLower(string(body)), "secondary rate limit") {
			if attempt >= t.attempts {
				return decision{}
			}
			if !hasRetryAfter {
				if reset, ok := rateReset(resp); ok {
					ra = reset.Sub(t.clock.Now())
				} else {
					ra = t.backoff(attempt)
				}
			}
			if ra > t.maxWait {
				return decision{}
			}
			return decision{retry: true, wait: max(ra, t.base)}
		}
		if resp.Header.Get("X-RateLimit-Remaining") == "0" {
			reset, ok := rateReset(resp)
			if !ok {
				return decision{}
			}
			limited := &RateLimitError{Reset: reset}
			wait := reset.Sub(t.clock.Now())
			if *primaryWaited || wait > t.maxWait {
				return decision{err: limited}
			}
			*primaryWaited = true
			// A second of margin covers the reset's whole-second
			// resolution and small clock skew.
			return decision{retry: true, wait: max(wait, 0) + time.Second, giveUp: limited}
		}
	}
	return decision{}
}

// backoff is the wait before attempt+1: base, 2·base, 4·base … up to max.
// There is no jitter: one bot is the only client of its credentials, so
// there is no herd to spread.
func (t *retryTransport) backoff(attempt int) time.Duration {
	d := t.base
	for i := 1; i < attempt && d < t.max; i++ {
		d *= 2
	}
	return min(d, t.max)
}

func retryAfter(resp *http.Response) (time.Duration, bool) {
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(time.Until(at), 0), true
	}
	return 0, false
}

func rateReset(resp *http.Response) (time.Time, bool) {
	v, err := strconv.ParseInt(strings.TrimSpace(resp.Header.Get("X-RateLimit-Reset")), 10, 64)
	if err != nil || v <= 0 {
		return time.Time{}, false
	}
	return time.Unix(v, 0), true
}

// peekBody reads the start of an error body and puts it back, so the
// response can still be handed to go-github intact.
func peekBody(resp *http.Response) []byte {
	if resp.Body == nil {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
	return b
}

func drain(resp *http.Response) {
	if resp.Body != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
	}
}

// neverSent reports whether err happened before the request left this
// machine (no connection could be made), which makes any method safe to
// resend.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// rewind returns a copy of req whose body can be sent again.
func rewind(req *http.Request) (*http.Request, error) {
	r := req.Clone(req.Context())
	if req.Body == nil || req.Body == http.NoBody {
		return r, nil
	}
	if req.GetBody == nil {
		return nil, errors.New("github: cannot resend a request whose body cannot be replayed")
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, fmt.Errorf("github: replaying request body: %w", err)
	}
	r.Body = body
	return r, nil
}
