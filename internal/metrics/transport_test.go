package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Paths deploybot calls become templates with no id, tag, version or
// branch name in them, so the calls counter keeps few series.
func TestTemplateKeepsLabelsBounded(t *testing.T) {
	for path, want := range map[string]string{
		"/repos/WordPress/openverse/releases/tags/ingestion_server-2024.09.09.05.40.20": "/repos/{owner}/{repo}/releases/tags/{name}",
		"/repos/WordPress/openverse/releases/123":                                       "/repos/{owner}/{repo}/releases/{id}",
		"/api/v3/repos/o/r/git/ref/heads/deploybot/ingestion-server-rel-1-run-4":        "/api/v3/repos/{owner}/{repo}/git/ref/{name}",
		"/repos/o/r/actions/workflows/deploy.yml/dispatches":                            "/repos/{owner}/{repo}/actions/workflows/{name}/dispatches",
		"/api/v1/dags/image_data_refresh/dagRuns":                                       "/api/v1/dags/{dag_id}/dagRuns",
		"/api/0/organizations/openverse/releases/rel-2024.09.09.05.40.20/deploys/":      "/api/0/organizations/{org}/releases/{name}/deploys",
		"/api/0/projects/openverse/ingestion-server/":                                   "/api/0/projects/{org}/{project}",
		"/app/installations/42/access_tokens":                                           "/app/installations/{id}/access_tokens",
	} {
		if got := Template(strings.Split(strings.Trim(path, "/"), "/")); got != want {
			t.Errorf("%s → %s, want %s", path, got, want)
		}
	}
}

// Slack answers its errors with a 200: the result is Slack's error code,
// and the client still reads the whole answer.
func TestTransportCountsSlackErrorsAndLeavesTheBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		switch r.URL.Path {
		case "/api/auth.test":
			fmt.Fprint(w, `{"ok":false,"error":"invalid_auth"}`)
		case "/api/chat.postMessage":
			fmt.Fprint(w, `{"ok":true,"ts":"1.2"}`)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	m := New()
	c := &http.Client{Timeout: 10 * time.Second, Transport: m.Transport("slack", nil)}
	for _, path := range []string{"/api/auth.test", "/api/chat.postMessage", "/api/chat.postMessage", "/upload/v1/abcDEF123"} {
		resp, err := c.Post(srv.URL+path, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if path == "/api/auth.test" && !strings.Contains(string(b), "invalid_auth") {
			t.Errorf("the client read %q", b)
		}
	}
	dead := &http.Client{Timeout: 10 * time.Second, Transport: m.Transport("github", nil)}
	if _, err := dead.Get("http://127.0.0.1:1/repos/o/r"); err == nil {
		t.Fatal("a closed port answered")
	}
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"slack", "auth.test", "invalid_auth"}, 1},
		{[]string{"slack", "chat.postMessage", "ok"}, 2},
		{[]string{"slack", "POST upload", "404"}, 1},
		{[]string{"github", "GET /repos/{owner}/{repo}", "error"}, 1},
	} {
		var got dto.Metric
		if err := m.Calls.WithLabelValues(c.labels...).Write(&got); err != nil || got.GetCounter().GetValue() != c.want {
			t.Errorf("calls%v = %v, want %v", c.labels, got.GetCounter().GetValue(), c.want)
		}
	}
}
