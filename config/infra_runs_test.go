package config

import (
	"strings"
	"testing"
)

// infra.merge_on_success is off unless asked for (production leaves main to
// reviewers); infra.keep_runs defaults to 10 and must keep at least the run
// that just ended.
func TestInfraMergeOnSuccessAndKeepRuns(t *testing.T) {
	c := mustParse(t, minimal+"infra: { clone_url: /srv/infra }\n", noEnv)
	if c.Infra.MergeOnSuccess || c.Infra.KeepRuns != 10 {
		t.Errorf("defaults: merge_on_success %v, keep_runs %d; want false, 10", c.Infra.MergeOnSuccess, c.Infra.KeepRuns)
	}
	c = mustParse(t, minimal+"infra:\n  clone_url: /srv/infra\n  merge_on_success: true\n  keep_runs: 3\n", noEnv)
	if !c.Infra.MergeOnSuccess || c.Infra.KeepRuns != 3 {
		t.Errorf("merge_on_success %v, keep_runs %d; want true, 3", c.Infra.MergeOnSuccess, c.Infra.KeepRuns)
	}
	for src, want := range map[string]string{
		"keep_runs: 0":          "infra.keep_runs: must be at least 1",
		"keep_runs: -2":         "infra.keep_runs: must be at least 1",
		"keep_runs: many":       "infra.keep_runs: want an integer",
		"merge_on_success: yes": "infra.merge_on_success: want true or false",
	} {
		p := problems(t, minimal+"infra:\n  clone_url: /srv/infra\n  "+src+"\n", noEnv)
		if len(p) != 1 || !strings.Contains(p[0].Path+": "+p[0].Message, want) {
			t.Errorf("%s: problems %v, want one saying %q", src, p, want)
		}
	}
}
