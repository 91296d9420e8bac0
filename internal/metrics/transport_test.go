package metrics

import (
	"strings"
	"testing"
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
