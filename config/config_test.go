package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// examplePath is the documented contract; shared/ sits beside the clone
// both here and in CI.
const examplePath = "../../shared/config.example.yaml"

func noEnv(string) string { return "" }

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// minimal is the smallest valid configuration.
const minimal = `
slack:
  deploy_channels: [C0DEPLOYS]
  deployers: [U0ALICE]
  approvers: [S0MAINTAINERS]
services:
  api:
    environments:
      - name: dev
        dir: environments/dev
        file: environments/dev/api.tf
        module: api
        version_attribute: image_tag
`

func mustParse(t *testing.T, src string, getenv func(string) string) *Config {
	t.Helper()
	c, err := Parse([]byte(src), "/etc/deploybot/deploybot.yaml", getenv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func problems(t *testing.T, src string, getenv func(string) string) Problems {
	t.Helper()
	c, err := Parse([]byte(src), "/etc/deploybot/deploybot.yaml", getenv)
	if err == nil {
		t.Fatalf("Parse succeeded, want problems; config: %+v", c)
	}
	if c != nil {
		t.Errorf("Parse returned a config along with problems")
	}
	var p Problems
	if !errors.As(err, &p) {
		t.Fatalf("error is %T, want Problems: %v", err, err)
	}
	return p
}

func TestExampleParsesWithoutProblems(t *testing.T) {
	c, err := Load(examplePath, noEnv)
	if err != nil {
		t.Fatalf("the documented example must load: %v", err)
	}
	dir, _ := filepath.Abs(filepath.Dir(examplePath))
	if c.Path != examplePath {
		t.Errorf("Path = %q", c.Path)
	}
	if want := filepath.Join(dir, "deploybot.db"); c.StatePath != want {
		t.Errorf("StatePath = %q, want %q", c.StatePath, want)
	}
	if c.HTTPAddr != "127.0.0.1:9090" || c.Log != (Log{"info", "json"}) {
		t.Errorf("HTTPAddr/Log = %q %+v", c.HTTPAddr, c.Log)
	}
	wantSlack := Slack{
		APIURL:         "https://slack.com/api/",
		DeployChannels: []string{"C0DEPLOYS"},
		AlertsChannel:  "C0ALERTS",
		TeamGroup:      "S0MAINTAINERS",
		Deployers:      []string{"S0MAINTAINERS"},
		Approvers:      []string{"S0MAINTAINERS"},
		// Added key, default 10m.
		GroupCacheMaxStale: 10 * time.Minute,
	}
	if !reflect.DeepEqual(c.Slack, wantSlack) {
		t.Errorf("Slack = %+v", c.Slack)
	}
	if c.GitHub == nil || *c.GitHub != (GitHub{APIURL: "https://api.github.com/", Monorepo: "WordPress/openverse", InfraRepo: "WordPress/openverse-infrastructure", PollInterval: 15 * time.Second, BuildTimeout: 45 * time.Minute, ChangelogTimeout: 30 * time.Minute, RollbackTimeout: 30 * time.Minute, ChangelogAuthor: "openverse-bot"}) {
		t.Errorf("GitHub = %+v", c.GitHub)
	}
	if c.Infra == nil || !reflect.DeepEqual(*c.Infra, Infra{CloneURL: "https://github.com/WordPress/openverse-infrastructure.git", BaseBranch: "main", Workdir: filepath.Join(dir, "work"), TerraformBin: "terraform", TerraformEnv: DefaultTerraformEnv, KeepRuns: DefaultKeepRuns}) {
		t.Errorf("Infra = %+v", c.Infra)
	}
	if c.Airflow == nil || c.Airflow.URL != "https://airflow.openverse.org" || c.Airflow.APIVersion != 2 ||
		!reflect.DeepEqual(c.Airflow.DataRefreshDAGs, []string{"image_data_refresh", "audio_data_refresh", "create_filtered_image_index", "create_filtered_audio_index"}) {
		t.Errorf("Airflow = %+v", c.Airflow)
	}
	if c.Sentry == nil || c.Sentry.URL != "https://sentry.io/" || c.Sentry.Org != "openverse" || c.Sentry.Project != "ingestion-server" ||
		c.Sentry.Watch != 15*time.Minute || !reflect.DeepEqual(c.Sentry.Environments, map[string]string{"dev": "staging", "prod": "production"}) {
		t.Errorf("Sentry = %+v", c.Sentry)
	}
	if c.Sentry.Environment("prod") != "production" || c.Sentry.Environment("qa") != "qa" {
		t.Errorf("Sentry.Environment mapping wrong")
	}
	if c.Incident.CreateChannel {
		t.Errorf("Incident.CreateChannel = true")
	}
	if len(c.Services) != 1 {
		t.Fatalf("Services = %d, want 1", len(c.Services))
	}
	s := c.Service("ingestion-server")
	if s == nil || s != c.Services[0] || c.Service("nope") != nil {
		t.Fatalf("Service lookup wrong")
	}
	if s.ReleaseTagPrefix != "ingestion_server-" || s.ImageTagPrefix != "rel-" ||
		s.BuildWorkflow != "tag_docker_image_and_trigger_deployment.yml" || s.ChangelogBranchPrefix != "changelog/" || len(s.Steps) != 0 {
		t.Errorf("Service = %+v", s)
	}
	wantEnvs := []Environment{
		{Name: "dev", Dir: "environments/dev", File: "environments/dev/ingestion-server.tf", Module: "ingestion-server",
			VersionAttribute: "image_tag", Target: "module.ingestion-server"},
		{Name: "prod", Dir: "environments/prod", File: "environments/prod/ingestion-server.tf", Module: "ingestion-server",
			VersionAttribute: "image_tag", Target: "module.ingestion-server", ClearFlag: "data_refresh_cleared", FourEyes: true},
	}
	if !reflect.DeepEqual(s.Environments, wantEnvs) {
		t.Errorf("Environments = %+v", s.Environments)
	}
	if e := s.Environment("prod"); e == nil || !e.FourEyes || s.Environment("qa") != nil {
		t.Errorf("Environment lookup wrong: %+v", e)
	}
	if s.Rollback == nil || *s.Rollback != (Rollback{"deploy-production-ingestion-server.yml", "main"}) {
		t.Errorf("Rollback = %+v", s.Rollback)
	}
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, minimal, noEnv)
	if c.StatePath != "/etc/deploybot/deploybot.db" || c.HTTPAddr != "127.0.0.1:9090" || c.Log != (Log{"info", "json"}) {
		t.Errorf("top-level defaults: %q %q %+v", c.StatePath, c.HTTPAddr, c.Log)
	}
	if c.ShutdownGrace != 10*time.Minute {
		t.Errorf("shutdown_grace default = %v, want 10m", c.ShutdownGrace)
	}
	if c := mustParse(t, minimal+"shutdown_grace: 90s\n", noEnv); c.ShutdownGrace != 90*time.Second {
		t.Errorf("shutdown_grace: 90s = %v", c.ShutdownGrace)
	}
	if c.Slack.APIURL != "https://slack.com/api/" || c.Slack.AlertsChannel != "" || c.Slack.TeamGroup != "" {
		t.Errorf("Slack defaults: %+v", c.Slack)
	}
	if c.GitHub != nil || c.Infra != nil || c.Airflow != nil || c.Sentry != nil {
		t.Errorf("absent sections must be nil: %v %v %v %v", c.GitHub, c.Infra, c.Airflow, c.Sentry)
	}
	s := c.Service("api")
	if s.ReleaseTagPrefix != "api-" || s.ImageTagPrefix != "rel-" || s.ChangelogBranchPrefix != "changelog/" || s.BuildWorkflow != "" || s.Rollback != nil {
		t.Errorf("service defaults: %+v", s)
	}
	if e := s.Environments[0]; e.Target != "module.api" || e.FourEyes || e.ClearFlag != "" {
		t.Errorf("environment defaults: %+v", e)
	}

	c = mustParse(t, minimal+`
github: { monorepo: a/b, infra_repo: a/c }
infra: { clone_url: "https://example.com/infra.git" }
airflow: { url: "https://airflow.example.com/" }
sentry: { org: o, project: p, url: "https://sentry.example.com" }
`, noEnv)
	if c.GitHub.APIURL != "https://api.github.com/" {
		t.Errorf("GitHub.APIURL = %q", c.GitHub.APIURL)
	}
	if !reflect.DeepEqual(*c.Infra, Infra{CloneURL: "https://example.com/infra.git", BaseBranch: "main", Workdir: "/etc/deploybot/work", TerraformBin: "terraform", TerraformEnv: DefaultTerraformEnv, KeepRuns: DefaultKeepRuns}) {
		t.Errorf("Infra = %+v", *c.Infra)
	}
	if c.Airflow.URL != "https://airflow.example.com" || c.Airflow.APIVersion != 2 || !reflect.DeepEqual(c.Airflow.DataRefreshDAGs, DefaultDataRefreshDAGs) {
		t.Errorf("Airflow = %+v", *c.Airflow)
	}
	c.Airflow.DataRefreshDAGs[0] = "changed"
	if DefaultDataRefreshDAGs[0] != "image_data_refresh" {
		t.Errorf("the default DAG list is shared with the config")
	}
	if c.Sentry.URL != "https://sentry.example.com/" || c.Sentry.Watch != 15*time.Minute || c.Sentry.Environments == nil {
		t.Errorf("Sentry = %+v", *c.Sentry)
	}
}

func TestNullSectionIsAbsent(t *testing.T) {
	c := mustParse(t, minimal+"github:\nairflow: ~\n", noEnv)
	if c.GitHub != nil || c.Airflow != nil {
		t.Errorf("null sections must be absent: %v %v", c.GitHub, c.Airflow)
	}
}

func TestRelativePaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "conf", "deploybot.yaml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	src := minimal + `
state_path: state/bot.db
infra:
  clone_url: ../infra
  workdir: scratch
  terraform_bin: ./bin/terraform
`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "conf")
	if c.StatePath != filepath.Join(base, "state/bot.db") {
		t.Errorf("StatePath = %q", c.StatePath)
	}
	if c.Infra.CloneURL != filepath.Join(dir, "infra") || c.Infra.Workdir != filepath.Join(base, "scratch") || c.Infra.TerraformBin != filepath.Join(base, "bin/terraform") {
		t.Errorf("Infra = %+v", *c.Infra)
	}

	// A relative config path is made absolute, so the bot keeps working
	// when terraform or git run in another directory.
	t.Chdir(dir)
	c, err = Load("conf/deploybot.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != "conf/deploybot.yaml" || c.StatePath != filepath.Join(base, "state/bot.db") {
		t.Errorf("relative config path: Path %q StatePath %q", c.Path, c.StatePath)
	}

	for _, tc := range []struct{ in, clone, bin, state string }{
		{"clone_url: /srv/infra\n  terraform_bin: terraform\nstate_path: /var/lib/deploybot.db", "/srv/infra", "terraform", "/var/lib/deploybot.db"},
		{"clone_url: git@github.com:WordPress/openverse-infrastructure.git\n  terraform_bin: /usr/bin/terraform\nstate_path: \":memory:\"",
			"git@github.com:WordPress/openverse-infrastructure.git", "/usr/bin/terraform", ":memory:"},
		{"clone_url: file:///srv/infra.git\n  terraform_bin: tools/terraform\nstate_path: file:bot.db?mode=memory",
			"file:///srv/infra.git", "/etc/deploybot/tools/terraform", "file:bot.db?mode=memory"},
	} {
		c := mustParse(t, minimal+"infra:\n  "+tc.in+"\n", noEnv)
		if c.Infra.CloneURL != tc.clone || c.Infra.TerraformBin != tc.bin || c.StatePath != tc.state {
			t.Errorf("%q: clone %q bin %q state %q", tc.in, c.Infra.CloneURL, c.Infra.TerraformBin, c.StatePath)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), noEnv)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not-exist", err)
	}
}

// replace edits minimal; it fails the test if old is not there, so a case
// cannot silently test the valid config.
func replace(t *testing.T, old, new string) string {
	t.Helper()
	if !strings.Contains(minimal, old) {
		t.Fatalf("minimal has no %q", old)
	}
	return strings.Replace(minimal, old, new, 1)
}

const (
	fullGitHub = "github:\n  monorepo: WordPress/openverse\n  infra_repo: WordPress/openverse-infrastructure\n"
	fullSentry = "sentry:\n  org: openverse\n  project: ingestion-server\n"
)

func TestBadInput(t *testing.T) {
	type want struct{ path, msg string }
	cases := []struct {
		name string
		src  func(t *testing.T) string
		want []want
	}{
		// Unknown keys.
		{"unknown key with suggestion", func(*testing.T) string { return minimal + fullSentry + "  watchh: 15m\n" },
			[]want{{"sentry.watchh", `unknown key (did you mean "watch"?)`}}},
		{"unknown top-level key", func(*testing.T) string { return minimal + "sevrices: {}\n" },
			[]want{{"sevrices", `did you mean "services"?`}}},
		{"unknown key without suggestion", func(*testing.T) string { return minimal + "log: { colour: red }\n" },
			[]want{{"log.colour", "unknown key (known: level, format)"}}},
		{"unknown environment key", func(t *testing.T) string { return replace(t, "module: api", "module: api\n        four-eyes: true") },
			[]want{{"services.api.environments[0].four-eyes", `did you mean "four_eyes"?`}}},

		// Wrong types.
		{"string where a list is expected", func(t *testing.T) string { return replace(t, "[C0DEPLOYS]", "C0DEPLOYS") },
			[]want{{"slack.deploy_channels", `want a list, got "C0DEPLOYS" (write [C0DEPLOYS])`}}},
		{"yes for a bool", func(t *testing.T) string { return replace(t, "module: api", "module: api\n        four_eyes: yes") },
			[]want{{"services.api.environments[0].four_eyes", `want true or false, got "yes"`}}},
		{"string for a bool", func(*testing.T) string { return minimal + "incident: { create_channel: \"true\" }\n" },
			[]want{{"incident.create_channel", `want true or false, got "true"`}}},
		{"list where a string is expected", func(*testing.T) string { return minimal + "http_addr: [a, b]\n" },
			[]want{{"http_addr", "want a string, got a list"}}},
		{"bool where a string is expected", func(t *testing.T) string { return replace(t, "module: api", "module: true") },
			[]want{{"services.api.environments[0].module", "want a string, got true"}}},
		{"scalar where a section is expected", func(*testing.T) string { return minimal + "github: WordPress/openverse\n" },
			[]want{{"github", `want a mapping, got "WordPress/openverse"`}}},
		{"list where a list of mappings is expected", func(t *testing.T) string {
			return replace(t, "    environments:\n", "    environments: dev\n    x_environments:\n")
		}, []want{{"services.api.environments", `want a list of environments, got "dev"`}}},
		{"root is a list", func(*testing.T) string { return "- a\n- b\n" },
			[]want{{"(top level)", "want a mapping, got a list"}}},
		{"syntax error", func(*testing.T) string { return "slack:\n  deploy_channels: [C0\n" },
			[]want{{"(syntax)", ""}}},
		{"duplicate key", func(*testing.T) string { return minimal + "http_addr: :1\nhttp_addr: :2\n" },
			[]want{{"http_addr", "duplicate key (first at line"}}},

		// Malformed ids and URLs.
		{"channel name instead of id", func(t *testing.T) string { return replace(t, "[C0DEPLOYS]", `["#deploys"]`) },
			[]want{{"slack.deploy_channels[0]", `"#deploys" is not a channel id (like C0123ABCD)`}}},
		{"alerts channel", func(t *testing.T) string { return replace(t, "slack:\n", "slack:\n  alerts_channel: alerts\n") },
			[]want{{"slack.alerts_channel", `"alerts" is not a channel id`}}},
		{"user name instead of id", func(t *testing.T) string { return replace(t, "[U0ALICE]", "[U0ALICE, \"@bob\"]") },
			[]want{{"slack.deployers[1]", `"@bob" is not a user id (like U0123ABCD) or user group id (like S0123ABCD)`}}},
		{"channel as approver", func(t *testing.T) string { return replace(t, "[S0MAINTAINERS]", "[C0DEPLOYS]") },
			[]want{{"slack.approvers[0]", `"C0DEPLOYS" is not a user id`}}},
		{"user as team group", func(t *testing.T) string { return replace(t, "slack:\n", "slack:\n  team_group: U0ALICE\n") },
			[]want{{"slack.team_group", `"U0ALICE" is not a user group id (like S0123ABCD)`}}},
		{"repo without owner", func(*testing.T) string {
			return minimal + "github:\n  monorepo: openverse\n  infra_repo: https://github.com/WordPress/openverse-infrastructure\n"
		}, []want{
			{"github.monorepo", `"openverse" is not owner/name (like WordPress/openverse)`},
			{"github.infra_repo", "is not owner/name"},
		}},
		{"repo with .git", func(*testing.T) string {
			return minimal + "github:\n  monorepo: WordPress/openverse.git\n  infra_repo: WordPress/openverse-infrastructure\n"
		}, []want{{"github.monorepo", "without .git"}}},
		{"api url without slash", func(*testing.T) string { return minimal + fullGitHub + "  api_url: https://ghe.example.com/api/v3\n" },
			[]want{{"github.api_url", `"https://ghe.example.com/api/v3" must end in "/"`}}},
		{"slack url not http", func(t *testing.T) string { return replace(t, "slack:\n", "slack:\n  api_url: slack.com/api/\n") },
			[]want{{"slack.api_url", `"slack.com/api/" is not an http(s) URL`}}},
		{"airflow url not http", func(*testing.T) string { return minimal + "airflow: { url: airflow.example.com }\n" },
			[]want{{"airflow.url", "is not an http(s) URL"}}},
		{"sentry api url", func(*testing.T) string { return minimal + fullSentry + "  url: https://sentry.io/api/0/\n" },
			[]want{{"sentry.url", "/api/0/ is appended"}}},
		{"service name", func(t *testing.T) string { return replace(t, "  api:\n", "  Ingestion_Server:\n") },
			[]want{{"services.Ingestion_Server", "must be lowercase letters, digits and hyphens"}}},
		{"environment paths", func(t *testing.T) string {
			return replace(t, "dir: environments/dev\n        file: environments/dev/api.tf", "dir: /etc\n        file: ../api.tf")
		}, []want{
			{"services.api.environments[0].dir", `"/etc" must be a relative path inside the infra repo`},
			{"services.api.environments[0].file", `"../api.tf" must be a relative path inside the infra repo`},
		}},
		{"terraform names", func(t *testing.T) string {
			return replace(t, "module: api\n        version_attribute: image_tag", "module: \"my module\"\n        version_attribute: 1tag\n        target: module. api")
		}, []want{
			{"services.api.environments[0].module", `"my module" is not a Terraform identifier`},
			{"services.api.environments[0].version_attribute", `"1tag" is not a Terraform identifier`},
			{"services.api.environments[0].target", "is not a Terraform resource address"},
		}},
		{"workflow file", func(t *testing.T) string {
			return replace(t, "  api:\n", "  api:\n    build_workflow: build\n    rollback: { workflow: a/b.yml }\n")
		},
			[]want{
				{"services.api.build_workflow", `"build" is not a workflow file name (like deploy.yml)`},
				{"services.api.rollback.workflow", "is not a workflow file name"},
			}},
		{"git ref", func(t *testing.T) string {
			return replace(t, "  api:\n", "  api:\n    release_tag_prefix: \"api server-\"\n")
		},
			[]want{{"services.api.release_tag_prefix", "is not usable in a git branch or tag name"}}},
		{"log level", func(*testing.T) string { return minimal + "log: { level: verbose, format: text }\n" },
			[]want{
				{"log.level", `want debug, info, warn or error, got "verbose"`},
				{"log.format", `want json or console, got "text"`},
			}},
		{"shutdown grace", func(*testing.T) string { return minimal + "shutdown_grace: 0s\n" },
			[]want{{"shutdown_grace", `must be longer than 0, got "0s"`}}},
		{"shutdown grace not a duration", func(*testing.T) string { return minimal + "shutdown_grace: 10\n" },
			[]want{{"shutdown_grace", "want a duration like 15m or 1h30m"}}},
		{"http addr", func(*testing.T) string { return minimal + "http_addr: \"9090\"\n" },
			[]want{{"http_addr", `"9090" is not host:port (like 127.0.0.1:9090)`}}},
		{"dag id", func(*testing.T) string {
			return minimal + "airflow: { url: \"http://a\", data_refresh_dags: [\"image data refresh\"] }\n"
		},
			[]want{{"airflow.data_refresh_dags[0]", "is not a DAG id"}}},

		// Required keys.
		{"missing slack", func(*testing.T) string { return "services: {}\n" },
			[]want{{"slack", "required"}, {"services", "required: at least one service"}}},
		{"missing slack lists", func(t *testing.T) string {
			return replace(t, "  deploy_channels: [C0DEPLOYS]\n  deployers: [U0ALICE]\n  approvers: [S0MAINTAINERS]\n", "  alerts_channel: C0ALERTS\n")
		}, []want{
			{"slack.deploy_channels", "required"},
			{"slack.deployers", "required"},
			{"slack.approvers", "required"},
		}},
		{"empty slack list", func(t *testing.T) string { return replace(t, "[C0DEPLOYS]", "[]") },
			[]want{{"slack.deploy_channels", "required: list at least one"}}},
		{"missing services", func(t *testing.T) string { return minimal[:strings.Index(minimal, "services:")] },
			[]want{{"services", "required: at least one service"}}},
		{"missing github repos", func(*testing.T) string { return minimal + "github: { api_url: \"https://api.github.com/\" }\n" },
			[]want{{"github.monorepo", "required"}, {"github.infra_repo", "required"}}},
		{"empty required string", func(*testing.T) string { return minimal + "github: { monorepo: \"\", infra_repo: a/b }\n" },
			[]want{{"github.monorepo", "required"}}},
		{"missing infra clone_url", func(*testing.T) string { return minimal + "infra: { base_branch: main }\n" },
			[]want{{"infra.clone_url", "required"}}},
		{"missing airflow url", func(*testing.T) string { return minimal + "airflow: { api_version: 3 }\n" },
			[]want{{"airflow.url", "required"}}},
		{"missing sentry org and project", func(*testing.T) string { return minimal + "sentry: { watch: 5m }\n" },
			[]want{{"sentry.org", "required"}, {"sentry.project", "required"}}},
		{"missing environment fields", func(t *testing.T) string {
			return replace(t, "      - name: dev\n        dir: environments/dev\n        file: environments/dev/api.tf\n        module: api\n        version_attribute: image_tag\n", "      - four_eyes: true\n")
		}, []want{
			{"services.api.environments[0].name", "required"},
			{"services.api.environments[0].dir", "required"},
			{"services.api.environments[0].file", "required"},
			{"services.api.environments[0].module", "required"},
			{"services.api.environments[0].version_attribute", "required"},
		}},
		{"rollback without workflow", func(t *testing.T) string { return replace(t, "  api:\n", "  api:\n    rollback: { ref: main }\n") },
			[]want{{"services.api.rollback.workflow", "required"}}},

		// Duplicates.
		{"duplicate environment names", func(*testing.T) string {
			return minimal + "      - name: dev\n        dir: d\n        file: d/api.tf\n        module: api\n        version_attribute: v\n"
		}, []want{{"services.api.environments[1].name", `duplicate environment name "dev" (also services.api.environments[0])`}}},
		{"duplicate step ids", func(*testing.T) string {
			return minimal + "    steps:\n      - { id: smoke, title: Smoke, instruction: Run it }\n      - { id: smoke, title: Again, instruction: Run it again }\n"
		}, []want{{"services.api.steps[1].id", `duplicate step id "smoke" (also services.api.steps[0])`}}},

		// Steps.
		{"bad steps", func(*testing.T) string {
			return minimal + "    steps:\n      - id: Smoke Test\n        title: " + strings.Repeat("x", 151) +
				"\n        approval: \"no\"\n        environment: prod\n"
		}, []want{
			{"services.api.steps[0].id", `step id "Smoke Test" must be lowercase letters, digits and hyphens`},
			{"services.api.steps[0].title", "151 characters; at most 150 fit in a Slack header"},
			{"services.api.steps[0].instruction", "required"},
			{"services.api.steps[0].approval", `want true or false, got "no"`},
			{"services.api.steps[0].environment", `"prod" is not one of this service's environments (have dev)`},
		}},
		{"steps not a list", func(*testing.T) string { return minimal + "    steps: smoke-test\n" },
			[]want{{"services.api.steps", `want a list of steps, got "smoke-test"`}}},

		// Durations and versions.
		{"duration without unit", func(*testing.T) string { return minimal + fullSentry + "  watch: 15\n" },
			[]want{{"sentry.watch", "want a duration like 15m or 1h30m, got 15"}}},
		{"duration garbage", func(*testing.T) string { return minimal + fullSentry + "  watch: soon\n" },
			[]want{{"sentry.watch", `want a duration like 15m or 1h30m, got "soon"`}}},
		{"zero duration", func(*testing.T) string { return minimal + fullSentry + "  watch: 0s\n" },
			[]want{{"sentry.watch", `must be longer than 0, got "0s"`}}},
		{"negative duration", func(*testing.T) string { return minimal + fullSentry + "  watch: -5m\n" },
			[]want{{"sentry.watch", "must be longer than 0"}}},
		{"api_version out of range", func(*testing.T) string { return minimal + "airflow: { url: \"http://a\", api_version: 4 }\n" },
			[]want{{"airflow.api_version", "want 2 (Airflow 2, /api/v1) or 3 (Airflow 3, /api/v2), got 4"}}},
		{"api_version not a number", func(*testing.T) string { return minimal + "airflow: { url: \"http://a\", api_version: two }\n" },
			[]want{{"airflow.api_version", `want an integer, got "two"`}}},
		{"api_version float", func(*testing.T) string { return minimal + "airflow: { url: \"http://a\", api_version: 2.5 }\n" },
			[]want{{"airflow.api_version", "want an integer, got 2.5"}}},
		{"empty dag list", func(*testing.T) string { return minimal + "airflow: { url: \"http://a\", data_refresh_dags: [] }\n" },
			[]want{{"airflow.data_refresh_dags", "must list at least one DAG"}}},
		{"sentry environment typo", func(*testing.T) string {
			return minimal + fullSentry + "  environments: { dev: staging, prd: production }\n"
		},
			[]want{{"sentry.environments.prd", `no service has an environment named "prd" (have dev)`}}},
		{"sentry environments not a mapping", func(*testing.T) string { return minimal + fullSentry + "  environments: [dev]\n" },
			[]want{{"sentry.environments", "want a mapping of deploy environment to Sentry environment"}}},

		// Environment variables.
		{"non-integer app id", func(*testing.T) string { return minimal }, []want{
			{"env GITHUB_APP_ID", "want a positive integer"},
			{"env GITHUB_APP_INSTALLATION_ID", "want a positive integer"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			getenv := noEnv
			if tc.name == "non-integer app id" {
				getenv = envMap(map[string]string{"GITHUB_APP_ID": "abc", "GITHUB_APP_INSTALLATION_ID": "-3", "GITHUB_APP_PRIVATE_KEY": "k"})
			}
			got := problems(t, tc.src(t), getenv)
			for _, w := range tc.want {
				if !hasProblem(got, w.path, w.msg) {
					t.Errorf("missing problem %s: %s\ngot:\n%v", w.path, w.msg, got)
				}
			}
		})
	}
}

func hasProblem(ps Problems, path, msg string) bool {
	for _, p := range ps {
		if p.Path == path && strings.Contains(p.Message, msg) {
			return true
		}
	}
	return false
}

func TestServiceNeedsEnvironmentsOrSteps(t *testing.T) {
	src := minimal + "  worker:\n    image_tag_prefix: w-\n"
	got := problems(t, src, noEnv)
	if !hasProblem(got, "services.worker.environments", "required (or define steps:)") || len(got) != 1 {
		t.Errorf("got %v", got)
	}
	// A custom runbook alone is fine.
	c := mustParse(t, minimal+"  manual:\n    steps:\n      - id: ask\n        title: Ask\n        instruction: Ask someone\n        approval: true\n", noEnv)
	if got := c.Service("manual").Steps; !reflect.DeepEqual(got, []StepDef{{ID: "ask", Title: "Ask", Instruction: "Ask someone", Approval: true}}) {
		t.Errorf("Steps = %+v", got)
	}
}

func TestSteps(t *testing.T) {
	c := mustParse(t, minimal+`    steps:
      - id: smoke-test
        title: Run the smoke test
        instruction: |
          curl https://api.example.com/healthz
        environment: dev
      - id: sign-off
        title: Sign off
        instruction: Approve the release
        approval: true
`, noEnv)
	want := []StepDef{
		{ID: "smoke-test", Title: "Run the smoke test", Instruction: "curl https://api.example.com/healthz\n", Environment: "dev"},
		{ID: "sign-off", Title: "Sign off", Instruction: "Approve the release", Approval: true},
	}
	if got := c.Service("api").Steps; !reflect.DeepEqual(got, want) {
		t.Errorf("Steps = %+v", got)
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	c := mustParse(t, `
slack:
  deploy_channels: &chans [C0DEPLOYS, C0OTHER]
  deployers: &people [U0ALICE, S0TEAM]
  approvers: *people
services:
  api:
    environments:
      - &dev
        name: dev
        dir: environments/dev
        file: environments/dev/api.tf
        module: api
        version_attribute: image_tag
      - <<: *dev
        name: prod
        four_eyes: true
`, noEnv)
	s := c.Service("api")
	if len(s.Environments) != 2 || s.Environments[1].Name != "prod" || s.Environments[1].Module != "api" || !s.Environments[1].FourEyes || s.Environments[0].FourEyes {
		t.Errorf("Environments = %+v", s.Environments)
	}
	if !reflect.DeepEqual(c.Slack.Approvers, []string{"U0ALICE", "S0TEAM"}) {
		t.Errorf("Approvers = %v", c.Slack.Approvers)
	}
}

func TestAllProblemsAtOnceInFileOrder(t *testing.T) {
	src := `state_path: ./x.db
http_addr: nope
log:
  level: loud
slack:
  deploy_channels: ["#deploys"]
  deployers: alice
github:
  monorepo: openverse
sentry:
  org: openverse
  project: ingestion-server
  watchh: 15m
services:
  ingestion-server:
    environments:
      - name: dev
        dir: environments/dev
        file: environments/dev/ingestion-server.tf
        module: ingestion-server
        version_attribute: image_tag
      - name: prod
        dir: environments/prod
        file: environments/prod/ingestion-server.tf
        module: ingestion-server
        version_attribute: image_tag
        four_eyes: "yes"
`
	_, err := Parse([]byte(src), "bad.yaml", envMap(map[string]string{"GITHUB_APP_ID": "x", "GITHUB_APP_INSTALLATION_ID": "1", "GITHUB_APP_PRIVATE_KEY": "k"}))
	var got Problems
	if !errors.As(err, &got) {
		t.Fatalf("err = %v", err)
	}
	want := []Problem{
		{Path: "http_addr", Line: 2},
		{Path: "log.level", Line: 4},
		{Path: "slack.deploy_channels[0]", Line: 6, Message: `"#deploys" is not a channel id (like C0123ABCD)`},
		{Path: "slack.deployers", Line: 7},
		{Path: "slack.approvers", Line: 6, Message: "required"},
		{Path: "github.monorepo", Line: 9},
		{Path: "github.infra_repo", Line: 9, Message: "required"},
		{Path: "sentry.watchh", Line: 13, Message: `unknown key (did you mean "watch"?)`},
		{Path: "services.ingestion-server.environments[1].four_eyes", Line: 27, Message: `want true or false, got "yes"`},
		{Path: "env GITHUB_APP_ID", Message: "want a positive integer"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(got), len(want), got)
	}
	// Sorted by line; problems without a line come last.
	for i := 1; i < len(got); i++ {
		a, b := got[i-1].Line, got[i].Line
		if (a == 0 && b != 0) || (b != 0 && a > b) {
			t.Errorf("problems out of order at %d: %v then %v", i, got[i-1], got[i])
		}
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			if g.Path == w.Path && (w.Message == "" || g.Message == w.Message) {
				found = true
				if w.Line != 0 && g.Line != w.Line {
					t.Errorf("%s: line %d, want %d", g.Path, g.Line, w.Line)
				}
				if g.File != "bad.yaml" {
					t.Errorf("%s: File %q", g.Path, g.File)
				}
			}
		}
		if !found {
			t.Errorf("missing %s %q in\n%v", w.Path, w.Message, got)
		}
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, fmt.Sprintf("config bad.yaml: %d problems:\n  ", len(want))) {
		t.Errorf("Error() header wrong:\n%s", msg)
	}
	if !strings.Contains(msg, "\n  slack.deploy_channels[0]: \"#deploys\" is not a channel id (like C0123ABCD) (line 6)\n") {
		t.Errorf("Error() line format wrong:\n%s", msg)
	}
	if !strings.HasSuffix(msg, "\n  env GITHUB_APP_ID: want a positive integer") {
		t.Errorf("Error() should end with the env problem:\n%s", msg)
	}
}

func TestProblemsErrorFormat(t *testing.T) {
	one := Problems{{Path: "services", Message: "required"}}
	if got := one.Error(); got != "config: 1 problem:\n  services: required" {
		t.Errorf("got %q", got)
	}
}

// Secrets placed in the file are reported and never echoed back.
func TestSecretsInFile(t *testing.T) {
	const (
		bot   = "xoxb-1111-2222-abcdefghijklmnop"
		app   = "xapp-1-A111-222-abcdef0123456789"
		ghp   = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
		pat   = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"
		dsn   = "https://0123456789abcdef@o12345.ingest.sentry.io/67890"
		pw    = "hunter2-correct-horse"
		token = "tok-not-prefixed-9f8e7d"
	)
	cases := []struct {
		name, src, path, env string
		secret               string
	}{
		{"bot token under a secret key", minimal + "slack_extra:\n  bot_token: " + bot + "\n", "slack_extra.bot_token", "SLACK_BOT_TOKEN", bot},
		{"app token in a known key", strings.Replace(minimal, "slack:\n", "slack:\n  alerts_channel: "+app+"\n", 1), "slack.alerts_channel", "SLACK_APP_TOKEN", app},
		{"token in a list", strings.Replace(minimal, "[U0ALICE]", "[U0ALICE, "+ghp+"]", 1), "slack.deployers[1]", "GITHUB_TOKEN", ghp},
		{"token where a list is expected", strings.Replace(minimal, "[C0DEPLOYS]", bot, 1), "slack.deploy_channels", "SLACK_BOT_TOKEN", bot},
		{"pat under an unknown key", minimal + "gh: " + pat + "\n", "gh", "GITHUB_TOKEN", pat},
		{"password by key name", minimal + "airflow:\n  url: http://a\n  password: " + pw + "\n", "airflow.password", "AIRFLOW_PASSWORD", pw},
		{"token by key name", minimal + fullGitHub + "  token: " + token + "\n", "github.token", "GITHUB_TOKEN", token},
		{"dsn", minimal + fullSentry + "  dsn: " + dsn + "\n", "sentry.dsn", "SENTRY_DSN", dsn},
		{"dsn as url", minimal + "sentry:\n  url: " + dsn + "\n  org: o\n  project: p\n", "sentry.url", "SENTRY_DSN", dsn},
		{"private key", minimal + "github_app:\n  key: |\n    -----BEGIN RSA PRIVATE KEY-----\n    MIIEabc\n    -----END RSA PRIVATE KEY-----\n", "github_app.key", "GITHUB_APP_PRIVATE_KEY", "MIIEabc"},
		{"token embedded in an instruction", minimal + "    steps:\n      - id: a\n        title: A\n        instruction: |\n          curl -H 'Authorization: Bearer " + ghp + "' https://api.github.com\n",
			"services.api.steps[0].instruction", "GITHUB_TOKEN", ghp},
		{"credentials in the clone url", minimal + "infra:\n  clone_url: https://x-access-token:" + token + "@github.com/o/r.git\n", "infra.clone_url", "", token},
		{"other slack token embedded", minimal + "notes: see xoxa-2-abcdefghijkl for details\n", "notes", "SLACK_BOT_TOKEN, SLACK_APP_TOKEN", "xoxa-2-abcdefghijkl"},
		{"token as a key", minimal + "sentry:\n  org: o\n  project: p\n  environments: { " + bot + ": production }\n", "sentry.environments", "SLACK_BOT_TOKEN", bot},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := problems(t, tc.src, noEnv)
			if !hasProblem(got, tc.path, "secrets come from the environment ("+tc.env) || !hasProblem(got, tc.path, "), not the file") {
				t.Errorf("no secrets problem at %s naming %s:\n%v", tc.path, tc.env, got)
			}
			if n := strings.Count(got.Error(), "secrets come from"); n != 1 {
				t.Errorf("secret reported %d times:\n%v", n, got)
			}
			if strings.Contains(got.Error(), tc.secret) || strings.Contains(fmt.Sprintf("%#v", got), tc.secret) {
				t.Errorf("the secret is echoed:\n%v", got)
			}
		})
	}
	// Prose that merely mentions a token prefix is not a secret.
	mustParse(t, minimal+"    steps:\n      - id: a\n        title: A\n        instruction: Put the xoxb- token in SLACK_BOT_TOKEN\n", noEnv)
}

func TestSecretsFromEnvironment(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "app.pem")
	pem := "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n"
	if err := os.WriteFile(keyFile, []byte(pem), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, minimal, envMap(map[string]string{
		"SLACK_BOT_TOKEN":             "xoxb-bot\n",
		"SLACK_APP_TOKEN":             "xapp-app",
		"GITHUB_TOKEN":                "ghp_x",
		"GITHUB_APP_ID":               "123",
		"GITHUB_APP_INSTALLATION_ID":  " 456 ",
		"GITHUB_APP_PRIVATE_KEY_FILE": keyFile,
		"SENTRY_AUTH_TOKEN":           "sntrys_x",
		"SENTRY_DSN":                  "https://k@o1.ingest.sentry.io/1",
		"AIRFLOW_USERNAME":            "admin",
		"AIRFLOW_PASSWORD":            "pw",
	}))
	s := c.Secrets
	if s.SlackBotToken.Reveal() != "xoxb-bot" || s.SlackAppToken.Reveal() != "xapp-app" || s.GitHubToken.Reveal() != "ghp_x" ||
		s.GitHubAppID != 123 || s.GitHubAppInstallationID != 456 || s.GitHubAppPrivateKey.Reveal() != pem ||
		s.SentryAuthToken.Reveal() != "sntrys_x" || s.SentryDSN.Reveal() != "https://k@o1.ingest.sentry.io/1" ||
		s.AirflowUsername != "admin" || s.AirflowPassword.Reveal() != "pw" {
		t.Errorf("secrets not read: %#v", s)
	}
	if err := c.RequireSlackSecrets(); err != nil {
		t.Errorf("RequireSlackSecrets: %v", err)
	}

	c = mustParse(t, minimal, envMap(map[string]string{"GITHUB_APP_PRIVATE_KEY": pem, "GITHUB_APP_ID": "1", "GITHUB_APP_INSTALLATION_ID": "2"}))
	if c.Secrets.GitHubAppPrivateKey.Reveal() != pem {
		t.Errorf("GITHUB_APP_PRIVATE_KEY not read")
	}
	if c.Secrets.SlackBotToken.IsSet() || c.Secrets.GitHubToken.IsSet() {
		t.Errorf("unset secrets must not be set")
	}

	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string // "env NAME: message fragment"
	}{
		{"both key and key file", map[string]string{"GITHUB_APP_ID": "1", "GITHUB_APP_INSTALLATION_ID": "2", "GITHUB_APP_PRIVATE_KEY": pem, "GITHUB_APP_PRIVATE_KEY_FILE": keyFile},
			[]string{"env GITHUB_APP_PRIVATE_KEY_FILE: set only one of"}},
		{"unreadable key file", map[string]string{"GITHUB_APP_ID": "1", "GITHUB_APP_INSTALLATION_ID": "2", "GITHUB_APP_PRIVATE_KEY_FILE": keyFile + ".missing"},
			[]string{"env GITHUB_APP_PRIVATE_KEY_FILE: cannot read the key"}},
		{"partial app", map[string]string{"GITHUB_APP_ID": "1"},
			[]string{"env GITHUB_APP_INSTALLATION_ID: required for a GitHub App", "env GITHUB_APP_PRIVATE_KEY: required for a GitHub App"}},
		{"bad ids", map[string]string{"GITHUB_APP_ID": "12x", "GITHUB_APP_INSTALLATION_ID": "0", "GITHUB_APP_PRIVATE_KEY": pem},
			[]string{"env GITHUB_APP_ID: want a positive integer", "env GITHUB_APP_INSTALLATION_ID: want a positive integer"}},
		{"swapped slack tokens", map[string]string{"SLACK_BOT_TOKEN": "xapp-1-secretvalue", "SLACK_APP_TOKEN": "xoxb-secretvalue"},
			[]string{"env SLACK_BOT_TOKEN: holds an app-level token", "env SLACK_APP_TOKEN: holds a bot token"}},
		{"airflow user without password", map[string]string{"AIRFLOW_USERNAME": "admin"},
			[]string{"env AIRFLOW_PASSWORD: required when AIRFLOW_USERNAME is set"}},
		{"airflow password without user", map[string]string{"AIRFLOW_PASSWORD": "pw-secretvalue"},
			[]string{"env AIRFLOW_USERNAME: required when AIRFLOW_PASSWORD is set"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := problems(t, minimal, envMap(tc.env))
			for _, w := range tc.want {
				path, msg, _ := strings.Cut(w, ": ")
				if !hasProblem(got, path, msg) {
					t.Errorf("missing %q in\n%v", w, got)
				}
			}
			if s := got.Error(); strings.Contains(s, "secretvalue") || strings.Contains(s, "MIIE") {
				t.Errorf("a secret is echoed:\n%s", s)
			}
		})
	}
}

func TestRequireSlackSecrets(t *testing.T) {
	c := mustParse(t, minimal, envMap(map[string]string{"SLACK_APP_TOKEN": "xapp-1-abc"}))
	err := c.RequireSlackSecrets()
	var p Problems
	if !errors.As(err, &p) || len(p) != 1 || p[0].Path != "env SLACK_BOT_TOKEN" {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "xapp-1-abc") {
		t.Errorf("value echoed: %v", err)
	}
	c = mustParse(t, minimal, noEnv)
	if err := c.RequireSlackSecrets(); err == nil || !strings.Contains(err.Error(), "SLACK_BOT_TOKEN") || !strings.Contains(err.Error(), "SLACK_APP_TOKEN") {
		t.Errorf("err = %v", err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	const v = "xoxb-very-secret-value"
	s := Secret(v)
	if s.Reveal() != v || !s.IsSet() || Secret("").IsSet() {
		t.Fatal("Reveal/IsSet wrong")
	}
	for _, f := range []string{"%v", "%s", "%q", "%+v", "%#v", "%x", "%X", "%d", "%10s"} {
		got := fmt.Sprintf(f, s)
		if got != "[redacted]" {
			t.Errorf("%s gives %q", f, got)
		}
		if got := fmt.Sprintf(f, Secret("")); got != "" {
			t.Errorf("%s of an empty secret gives %q", f, got)
		}
	}
	secrets := Secrets{SlackBotToken: s, GitHubAppPrivateKey: s, AirflowUsername: "admin"}
	cfg := &Config{Secrets: secrets}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, x := range []any{secrets, &secrets, cfg, []Secret{s}, map[string]Secret{"k": s}} {
			if got := fmt.Sprintf(f, x); strings.Contains(got, "very-secret") {
				t.Errorf("%s of %T leaks: %s", f, x, got)
			}
		}
	}
	if s.String() != "[redacted]" || s.GoString() != "[redacted]" || fmt.Sprint(s) != "[redacted]" || fmt.Sprintln(s) != "[redacted]\n" {
		t.Errorf("String/GoString/Sprint wrong")
	}

	j, err := json.Marshal(map[string]any{"secrets": secrets, "one": s, "empty": Secret("")})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(j), "very-secret") || !strings.Contains(string(j), `"one":"[redacted]"`) || !strings.Contains(string(j), `"empty":""`) {
		t.Errorf("json: %s", j)
	}
	if b, _ := s.MarshalText(); string(b) != "[redacted]" {
		t.Errorf("MarshalText = %q", b)
	}
	y, err := yaml.Marshal(secrets)
	if err != nil || strings.Contains(string(y), "very-secret") {
		t.Errorf("yaml: %s %v", y, err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "token", s, "secrets", secrets)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "token", s, "secrets", secrets)
	if strings.Contains(buf.String(), "very-secret") {
		t.Errorf("slog: %s", buf.String())
	}
}

// github.changelog_author names who may open the changelog PR deploybot
// approves; it defaults to Openverse's bot and must be a GitHub login.
func TestChangelogAuthor(t *testing.T) {
	c := mustParse(t, minimal+"github: { monorepo: a/b, infra_repo: a/c }\n", noEnv)
	if c.GitHub.ChangelogAuthor != "openverse-bot" {
		t.Errorf("default changelog_author = %q, want openverse-bot", c.GitHub.ChangelogAuthor)
	}
	for _, ok := range []string{"release-bot", "my-app[bot]", "A1"} {
		c := mustParse(t, minimal+"github: { monorepo: a/b, infra_repo: a/c, changelog_author: \""+ok+"\" }\n", noEnv)
		if c.GitHub.ChangelogAuthor != ok {
			t.Errorf("changelog_author %q read as %q", ok, c.GitHub.ChangelogAuthor)
		}
	}
	for _, bad := range []string{"-bot", "two words", "bot--x", "a/b", strings.Repeat("x", 40)} {
		p := problems(t, minimal+"github: { monorepo: a/b, infra_repo: a/c, changelog_author: \""+bad+"\" }\n", noEnv)
		if len(p) != 1 || p[0].Path != "github.changelog_author" || !strings.Contains(p[0].Message, "is not a GitHub login") {
			t.Errorf("changelog_author %q: problems %v", bad, p)
		}
	}
}
