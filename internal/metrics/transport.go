package metrics

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// Transport counts every request next makes to system ("slack", "github",
// "airflow", "sentry") by method and result. The method is the Slack API
// method (chat.postMessage), or the HTTP method and the path as a template
// (GET /repos/{owner}/{repo}/releases/tags/{name}): ids, tags, versions and
// branch names never become label values. The result is the HTTP status,
// "error" when no answer came, and for Slack, whose errors come with a 200,
// "ok" or Slack's error code.
func (m *Metrics) Transport(system string, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{m: m, system: system, next: next}
}

type transport struct {
	m      *Metrics
	system string
	next   http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	method := t.method(req)
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		t.m.Calls.WithLabelValues(t.system, method, "error").Inc()
		return resp, err
	}
	result := strconv.Itoa(resp.StatusCode)
	if t.system == "slack" && resp.StatusCode == http.StatusOK && strings.Contains(resp.Header.Get("Content-Type"), "json") {
		result = slackResult(resp)
	}
	t.m.Calls.WithLabelValues(t.system, method, result).Inc()
	return resp, nil
}

// slackMethodRe is a Web API method name; Slack's error codes are
// lower-case words joined by underscores.
var (
	slackMethodRe = regexp.MustCompile(`^[a-z]+(\.[a-zA-Z]+)+$`)
	slackErrorRe  = regexp.MustCompile(`^[a-z_]{1,64}$`)
)

// slackResult reads {"ok", "error"} from a Web API answer, leaving the body
// readable for the client.
func slackResult(resp *http.Response) string {
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		// The client must meet the same broken answer it would have
		// met unwatched: what was read, then the error.
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), failingReader{err}))
		return "error"
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var r struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &r) != nil {
		return "200"
	}
	switch {
	case r.OK:
		return "ok"
	case slackErrorRe.MatchString(r.Error):
		return r.Error
	}
	return "error"
}

func (t *transport) method(req *http.Request) string {
	segs := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	if t.system == "slack" {
		if n := len(segs); n >= 2 && segs[n-2] == "api" && slackMethodRe.MatchString(segs[n-1]) {
			return segs[n-1]
		}
		// The upload URL files.getUploadURLExternal hands out.
		return req.Method + " upload"
	}
	return req.Method + " " + Template(segs)
}

// words are the fixed parts of the paths deploybot calls; any other
// segment is a value and becomes a placeholder.
var words = map[string]bool{
	// GitHub
	"repos": true, "releases": true, "tags": true, "latest": true, "pulls": true, "reviews": true, "issues": true,
	"comments": true, "actions": true, "workflows": true, "runs": true, "dispatches": true, "jobs": true, "git": true,
	"ref": true, "refs": true, "commits": true, "branches": true, "compare": true, "contents": true, "installation": true,
	"installations": true, "access_tokens": true, "app": true, "user": true, "rate_limit": true, "search": true,
	"merge": true, "files": true, "labels": true, "statuses": true, "status": true,
	// Airflow
	"api": true, "v1": true, "v2": true, "v3": true, "dags": true, "dagRuns": true, "health": true, "monitor": true,
	"auth": true, "token": true, "version": true,
	// Sentry
	"0": true, "organizations": true, "projects": true, "deploys": true, "events": true,
}

// named are the words whose next segments are values with a name of
// their own in the template.
var named = map[string][]string{
	"repos":         {"{owner}", "{repo}"},
	"organizations": {"{org}"},
	"projects":      {"{org}", "{project}"},
	"dags":          {"{dag_id}"},
}

// Template turns a path's segments into its template: fixed words stay,
// numbers become {id}, other values {name}, and a run of values (a branch
// name with slashes) one {name}.
func Template(segs []string) string {
	var out []string
	for i := 0; i < len(segs); i++ {
		s := segs[i]
		if names, ok := named[s]; ok && i+1 < len(segs) {
			out = append(out, s)
			for _, n := range names {
				if i+1 < len(segs) {
					out = append(out, n)
					i++
				}
			}
			continue
		}
		switch {
		case s == "":
		case words[s]:
			out = append(out, s)
		case isNumber(s):
			out = append(out, "{id}")
		case len(out) > 0 && out[len(out)-1] == "{name}":
		default:
			out = append(out, "{name}")
		}
	}
	return "/" + strings.Join(out, "/")
}

func isNumber(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }
