package sentrytest

import (
	"encoding/json"
	"net/http"
	"regexp"
	"testing"
	"time"
)

// The Link header must look exactly like Sentry's, since clients parse it.
func TestLinkHeaderFormat(t *testing.T) {
	s := NewServer("tok")
	defer s.Close()
	s.AddProject("p", 7)
	s.SetPageSize(1)
	now := time.Now()
	s.AddIssue("p", "production", Issue{Title: "a", FirstSeen: now, LastSeen: now})
	s.AddIssue("p", "production", Issue{Title: "b", FirstSeen: now, LastSeen: now.Add(-time.Second)})

	fetch := func(cursor string) (string, []map[string]any) {
		t.Helper()
		u := s.URL() + "api/0/organizations/openverse/issues/?project=7&query="
		if cursor != "" {
			u += "&cursor=" + cursor
		}
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out []map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.Header.Get("Link"), out
	}
	re := regexp.MustCompile(`^<(http://[^>]+&cursor=([0-9:]+))>; rel="previous"; results="(true|false)"; cursor="([0-9:]+)", <(http://[^>]+&cursor=([0-9:]+))>; rel="next"; results="(true|false)"; cursor="([0-9:]+)"$`)

	link, page := fetch("")
	m := re.FindStringSubmatch(link)
	if m == nil {
		t.Fatalf("Link = %s", link)
	}
	if m[2] != m[4] || m[6] != m[8] || m[3] != "false" || m[7] != "true" || m[4] != "0:0:1" || m[8] != "0:1:0" {
		t.Fatalf("first page Link = %s", link)
	}
	if len(page) != 1 || page[0]["title"] != "a" || page[0]["count"] != "0" {
		t.Fatalf("page 1 = %v", page)
	}
	link, page = fetch(m[8])
	m = re.FindStringSubmatch(link)
	if m == nil || m[3] != "true" || m[7] != "false" || len(page) != 1 || page[0]["title"] != "b" {
		t.Fatalf("page 2: Link = %s, page = %v", link, page)
	}
}

func TestDefaultQueryIsUnresolved(t *testing.T) {
	s := NewServer("tok")
	defer s.Close()
	s.AddProject("p", 7)
	now := time.Now()
	s.AddIssue("p", "production", Issue{Title: "open", FirstSeen: now, LastSeen: now})
	s.AddIssue("p", "production", Issue{Title: "done", Status: "resolved", FirstSeen: now, LastSeen: now})
	count := func(q string) int {
		req, _ := http.NewRequest(http.MethodGet, s.URL()+"api/0/organizations/openverse/issues/?project=7"+q, nil)
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out []any
		json.NewDecoder(resp.Body).Decode(&out)
		return len(out)
	}
	if n := count(""); n != 1 {
		t.Fatalf("no query: %d issues, want 1 (is:unresolved)", n)
	}
	if n := count("&query="); n != 2 {
		t.Fatalf("empty query: %d issues, want 2", n)
	}
}
