package childenv

import "testing"

func TestInheritAllowsOnlyNamedAndNeverForbidden(t *testing.T) {
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("LC_TIME", "C")
	t.Setenv("UNRELATED_SECRET", "x")
	t.Setenv("SLACK_BOT_TOKEN", "xoxb-1")
	t.Setenv("GITHUB_TOKEN", "ghp_1")
	env := Inherit([]string{"AWS_*", "SLACK_*", "GITHUB_TOKEN"})
	if env["AWS_REGION"] != "eu-west-1" || env["LC_TIME"] != "C" {
		t.Errorf("allowed variables missing: %v", env)
	}
	for _, k := range []string{"UNRELATED_SECRET", "SLACK_BOT_TOKEN", "GITHUB_TOKEN"} {
		if _, ok := env[k]; ok {
			t.Errorf("%s inherited", k)
		}
	}
}

func TestPatternReachesForbidden(t *testing.T) {
	for p, want := range map[string]bool{
		"AWS_*": false, "TF_TOKEN_*": false, "GOOGLE_APPLICATION_CREDENTIALS": false,
		"GITHUB_TOKEN": true, "SLACK_*": true, "GIT*": true, "*": true, "S*": true,
		"SENTRY_DSN": true, "DEPLOYBOT_GIT_TOKEN": true, "AIRFLOW_*": true, "GITLAB_*": false,
		"PGPASSWORD": true, "PG*": true, "PGHOST": false,
	} {
		if got := PatternReachesForbidden(p); got != want {
			t.Errorf("PatternReachesForbidden(%q) = %v, want %v", p, got, want)
		}
	}
}
