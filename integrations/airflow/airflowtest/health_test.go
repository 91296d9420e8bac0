package airflowtest

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// The health endpoint needs no credentials, on either version, and says
// which component is unhealthy.
func TestHealthEndpoint(t *testing.T) {
	for _, v := range []struct {
		version int
		path    string
	}{{2, "/api/v1/health"}, {3, "/api/v2/monitor/health"}} {
		s := NewServer(v.version, "u", "p")
		defer s.Close()
		c := &http.Client{Timeout: 10 * time.Second}
		status := func() string {
			resp, err := c.Get(s.URL() + v.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]struct{ Status string }
			if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&body) != nil {
				t.Fatalf("Airflow %d %s = %d", v.version, v.path, resp.StatusCode)
			}
			return body["scheduler"].Status
		}
		if got := status(); got != "healthy" {
			t.Errorf("Airflow %d scheduler = %q", v.version, got)
		}
		s.SetSchedulerDown(true)
		if got := status(); got != "unhealthy" {
			t.Errorf("Airflow %d scheduler with SetSchedulerDown = %q", v.version, got)
		}
	}
}
