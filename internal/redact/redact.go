// Package redact removes secrets from error text before it is logged or
// shown in Slack.
//
// net/http wraps every transport failure in a *url.Error whose message
// quotes the whole URL: a Slack response_url (which anyone holding it can
// post to in the user's name for 30 minutes), a presigned upload URL whose
// signature is a credential, an API call with ?token=. Scrub keeps the
// useful part (scheme, host, the error) and drops the rest.
package redact

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces whatever was removed.
const Mask = "[redacted]"

// secretParams are query parameters whose values are credentials. Matching
// is case-insensitive; X-Amz-* covers S3 presigned URLs (signature,
// credential, security token).
var secretParams = []string{"token", "access_token", "sig", "signature", "key", "password", "client_secret", "code"}

func secretParam(name string) bool {
	n := strings.ToLower(name)
	if strings.HasPrefix(n, "x-amz-") {
		return true
	}
	for _, p := range secretParams {
		if n == p {
			return true
		}
	}
	return false
}

// urlRe finds http(s) URLs in free text, up to whitespace or a character
// that cannot end a URL in an error message (quotes, brackets).
var urlRe = regexp.MustCompile(`(?i)\bhttps?://[^\s"'<>()\[\]{}]+`)

// ScrubURL returns u with the parts that can carry a credential masked:
// the whole path of a Slack webhook or response_url (hooks.slack.com, or any
// path with /actions/ or /commands/), userinfo, and the values of secret
// query parameters. Anything that does not parse is masked whole.
func ScrubURL(raw string) string {
	// A trailing punctuation mark belongs to the sentence, not the URL.
	trail := ""
	for len(raw) > 0 && strings.ContainsRune(".,;:", rune(raw[len(raw)-1])) {
		trail = raw[len(raw)-1:] + trail
		raw = raw[:len(raw)-1]
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return Mask + trail
	}
	if u.User != nil {
		u.User = url.User(Mask)
	}
	host := strings.ToLower(u.Hostname())
	if host == "hooks.slack.com" || strings.HasSuffix(host, ".hooks.slack.com") ||
		strings.Contains(u.Path, "/actions/") || strings.Contains(u.Path, "/commands/") ||
		strings.HasPrefix(u.Path, "/services/") && strings.HasSuffix(host, "slack.com") {
		// The path is the credential: keep only where it pointed.
		return u.Scheme + "://" + u.Host + "/" + Mask + trail
	}
	if u.RawQuery != "" {
		q := u.Query()
		changed := false
		for k := range q {
			if secretParam(k) {
				q[k] = []string{Mask}
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	s := u.String()
	// url.Values.Encode escapes the brackets of the mask; keep it readable.
	s = strings.ReplaceAll(s, url.QueryEscape(Mask), Mask)
	s = strings.ReplaceAll(s, url.PathEscape(Mask), Mask)
	return s + trail
}

// queryParamRe finds query parameters outside a full URL (a URL quoted
// without its scheme, a request line): name=value after "?" or "&".
var queryParamRe = regexp.MustCompile(`([?&])([A-Za-z0-9_.-]+)=([^&\s"'<>]*)`)

// ScrubString masks credentials in every http(s) URL found in s, and the
// values of secret query parameters wherever they appear after "?" or "&".
func ScrubString(s string) string {
	s = urlRe.ReplaceAllStringFunc(s, ScrubURL)
	return queryParamRe.ReplaceAllStringFunc(s, func(m string) string {
		sub := queryParamRe.FindStringSubmatch(m)
		if !secretParam(sub[2]) || strings.HasPrefix(sub[3], Mask) {
			return m
		}
		return sub[1] + sub[2] + "=" + Mask
	})
}

// Scrub returns err with every URL in its message scrubbed, or err itself
// when there is nothing to scrub (so errors.Is and errors.As keep working
// on clean errors). A scrubbed error still unwraps to the original chain,
// for errors.Is(err, context.DeadlineExceeded) and the like; only its text
// changes. When err itself is a *url.Error, Unwrap gives a copy with its URL
// scrubbed, so errors.As(err, &urlErr) finds a clean one.
func Scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := ScrubString(msg)
	if clean == msg {
		return err
	}
	return &scrubbed{msg: clean, err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }

// Unwrap gives errors.Is and errors.As the original chain, except that a
// *url.Error is replaced by a copy with its URL scrubbed.
func (e *scrubbed) Unwrap() error {
	var ue *url.Error
	if errors.As(e.err, &ue) && ue == e.err {
		return &url.Error{Op: ue.Op, URL: ScrubURL(ue.URL), Err: ue.Err}
	}
	return e.err
}
