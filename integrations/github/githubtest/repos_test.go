package githubtest_test

import "testing"

// GET /repos/{owner}/{repo}: 401 for a bad token, 404 for a repository
// the token cannot see, and the token's permissions on it.
func TestGetRepo(t *testing.T) {
	s, _, _ := setup(t)
	u := s.URL() + "repos/" + repo
	if code, _, body := raw(t, "GET", u, "Bearer nope", ""); code != 401 || body["message"] != "Bad credentials" {
		t.Errorf("bad token: %d %v", code, body)
	}
	if code, _, _ := raw(t, "GET", s.URL()+"repos/WordPress/unknown", "Bearer tok", ""); code != 404 {
		t.Errorf("unknown repository: %d", code)
	}
	code, _, body := raw(t, "GET", u, "Bearer tok", "")
	perms, _ := body["permissions"].(map[string]any)
	if code != 200 || body["full_name"] != repo || perms["push"] != true {
		t.Errorf("repository: %d %v", code, body)
	}
	s.SetReadOnly(true)
	if _, _, body := raw(t, "GET", u, "Bearer tok", ""); body["permissions"].(map[string]any)["push"] != false {
		t.Errorf("read-only: %v", body)
	}
}
