package sentrytest

import (
	"net/http"
	"testing"
	"time"
)

// GET /api/0/projects/{org}/{project}/ answers as Sentry does: 401 without
// a valid token, 404 for a project or organisation the token cannot see.
func TestProjectEndpoint(t *testing.T) {
	s := NewServer("tok")
	defer s.Close()
	s.AddProject("ingestion-server", 42)
	c := &http.Client{Timeout: 10 * time.Second}
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"api/0/projects/" + s.Org() + "/ingestion-server/", "tok", 200},
		{"api/0/projects/" + s.Org() + "/ingestion-server/", "wrong", 401},
		{"api/0/projects/" + s.Org() + "/ingestion-servr/", "tok", 404},
		{"api/0/projects/other-org/ingestion-server/", "tok", 404},
	} {
		req, _ := http.NewRequest(http.MethodGet, s.URL()+tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+tc.token)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s with %s = %d, want %d", tc.path, tc.token, resp.StatusCode, tc.want)
		}
	}
}
