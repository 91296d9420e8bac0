package github

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v57/github"
)

// opError names the operation that failed and describes GitHub's answer in
// words a person in the channel can act on. It unwraps to the underlying
// error (*RateLimitError, go-github's *ErrorResponse, context errors …).
type opError struct {
	op     string
	err    error
	secret string
}

func (e *opError) Error() string {
	return redact(e.op+": "+describe(e.err), e.secret)
}

func (e *opError) Unwrap() error { return e.err }

// Ambiguous reports whether the request may have taken effect although no
// success was seen (see Ambiguous).
func (e *opError) Ambiguous() bool { return Ambiguous(e.err) }

// Ambiguous reports whether err leaves open whether GitHub applied the
// request: a 5xx (GitHub may have acted before failing to answer), a
// connection lost or a timeout after the request was sent. A 4xx is a
// refusal and a connection never made sent nothing: neither is ambiguous.
// Before repeating an effect after an ambiguous error, look for it.
func Ambiguous(err error) bool {
	if err == nil {
		return false
	}
	if code := StatusCode(err); code != 0 {
		return code >= 500
	}
	var own *RateLimitError
	if errors.As(err, &own) || neverSent(err) {
		return false
	}
	var rl *gh.RateLimitError
	var ab *gh.AbuseRateLimitError
	if errors.As(err, &rl) || errors.As(err, &ab) {
		return false
	}
	var ie *ghinstallation.HTTPError
	if errors.As(err, &ie) {
		return false // no installation token: the request itself never left
	}
	return true
}

func (c *Client) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return &opError{op: op, err: err, secret: c.secret}
}

// StatusCode is the HTTP status GitHub answered with when err came from a
// GitHub answer, and 0 otherwise (network failure, cancelled context …).
func StatusCode(err error) int {
	var er *gh.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return er.Response.StatusCode
	}
	var ab *gh.AbuseRateLimitError
	if errors.As(err, &ab) && ab.Response != nil {
		return ab.Response.StatusCode
	}
	var rl *gh.RateLimitError
	if errors.As(err, &rl) && rl.Response != nil {
		return rl.Response.StatusCode
	}
	return 0
}

func isNotFound(err error) bool { return StatusCode(err) == 404 }

// describe turns an error from go-github, the transport or ghinstallation
// into a sentence without request URLs or Go type noise.
func describe(err error) string {
	var own *RateLimitError
	if errors.As(err, &own) {
		return own.Error()
	}
	var rl *gh.RateLimitError
	if errors.As(err, &rl) {
		if !rl.Rate.Reset.Time.IsZero() {
			return (&RateLimitError{Reset: rl.Rate.Reset.Time}).Error()
		}
		return "GitHub rate limit exhausted: " + rl.Message
	}
	var ab *gh.AbuseRateLimitError
	if errors.As(err, &ab) {
		msg := "GitHub secondary rate limit hit; try again in a few minutes"
		if ab.RetryAfter != nil {
			msg = fmt.Sprintf("GitHub secondary rate limit hit; try again after %s", ab.RetryAfter.Round(1e9))
		}
		return msg
	}
	var er *gh.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return describeResponse(er)
	}
	var ie *ghinstallation.HTTPError
	if errors.As(err, &ie) {
		if ie.Response != nil {
			return fmt.Sprintf("GitHub refused the App installation token (%s); check the app id, installation id and private key", ie.Response.Status)
		}
		if ie.RootCause != nil {
			return "cannot get a GitHub App installation token: " + describe(ie.RootCause)
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out waiting for GitHub"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return "cannot reach GitHub: " + ue.Err.Error()
	}
	return err.Error()
}

func describeResponse(er *gh.ErrorResponse) string {
	code := er.Response.StatusCode
	msg := er.Message
	var details []string
	for _, e := range er.Errors {
		switch {
		case e.Message != "":
			details = append(details, e.Message)
		case e.Field != "":
			details = append(details, fmt.Sprintf("%s %s is %s", e.Resource, e.Field, e.Code))
		}
	}
	if len(details) > 0 {
		if msg == "" || msg == "Validation Failed" || msg == "Unprocessable Entity" {
			msg = strings.Join(details, "; ")
		} else {
			msg += " (" + strings.Join(details, "; ") + ")"
		}
	}
	if msg == "" {
		msg = er.Response.Status
	}
	s := fmt.Sprintf("GitHub answered %d: %s", code, msg)
	switch code {
	case 401:
		s += "; check the GitHub token or App credentials"
	case 403:
		s += "; the credentials lack a permission this needs"
	case 404:
		s += "; it does not exist, or the credentials cannot see it"
	case 500, 502, 503, 504:
		s += "; GitHub is having trouble, try again later"
	}
	return s
}

// tokenPattern matches the shapes of GitHub tokens (classic, fine-grained,
// installation, OAuth, refresh), so that a token can never leak through an
// error message, whoever put it there.
var tokenPattern = regexp.MustCompile(`\b(gh[pousr]_[A-Za-z0-9_]{16,}|github_pat_[A-Za-z0-9_]{20,})`)

func redact(s, secret string) string {
	if secret != "" {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	return tokenPattern.ReplaceAllString(s, "[redacted]")
}
