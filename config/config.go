// Package config loads deploybot's YAML configuration and its secrets.
//
// The file format is the contract documented in shared/config.example.yaml:
// every key there is accepted with that meaning, and deploybot adds a few keys
// of its own (services.*.steps). Secrets never come from the file, only from
// environment variables, so that the file can be committed and reviewed like
// any other change to how deploys happen.
//
// Validation is done by walking the yaml.Node tree by hand rather than by
// decoding into structs: a person fixing a broken config wants every problem
// at once, each with the key path and line it is about, instead of the first
// error the decoder happens to hit.
package config

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Secret holds a credential from the environment.
//
// It never prints: String, GoString, Format (every verb), MarshalJSON,
// MarshalText and LogValue all give "[redacted]" (or "" when empty), so a
// Config or Secrets value can be logged, dumped with %+v or serialised for
// debugging without leaking anything. Reveal is the one way to get the value
// and is meant to be called only where the credential is handed to a client.
type Secret string

const redacted = "[redacted]"

// Reveal returns the credential itself.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether the credential was provided.
func (s Secret) IsSet() bool { return s != "" }

// String returns "[redacted]", or "" when the secret is empty so that an
// unset credential is visibly unset in dumps.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return s.String() }

// Format makes every fmt verb (%v %s %q %x %d …) print the redacted form;
// without it %x or %q would bypass String and print the bytes.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// MarshalJSON keeps encoding/json (and loggers that use it) from writing the value.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText covers encoders that use encoding.TextMarshaler, such as
// go.yaml.in/yaml. (encoding/json writes string-kinded map keys as they are,
// so never use a Secret as a map key.)
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue keeps log/slog from printing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Config is a validated configuration. Optional integrations are pointers
// that are nil when their section is absent: an absent section turns the
// integration off and its runbook steps become manual steps.
type Config struct {
	Path      string // file it was loaded from, as given to Load or Parse
	StatePath string // state_path, default "./deploybot.db"; relative paths resolved against the config file's directory (":memory:" and "file:" URIs are kept as written)
	// StoreURL (added key store.url, or env DEPLOYBOT_DATABASE_URL) is a
	// postgres:// URL without a password (that is Secrets.DatabasePassword);
	// "" keeps state in SQLite at StatePath.
	StoreURL string
	// HTTPAddr (http_addr, default "127.0.0.1:9090") is where /healthz,
	// /readyz and /metrics listen. The environment variable
	// DEPLOYBOT_HTTP_ADDR overrides it: the container image sets
	// 0.0.0.0:9090 so the port can be published, while a bot on a host
	// keeps the loopback default.
	HTTPAddr string
	// LeaseTTL (store.lease_ttl, default 15s, at least 3s) is how long a
	// replica's lease on a run lasts unrenewed: the takeover time after a
	// replica dies. Used with store.url only.
	LeaseTTL time.Duration
	// ShutdownGrace (shutdown_grace, default 10m) is how long a SIGTERM
	// lets a running terraform apply finish before it is cancelled.
	ShutdownGrace time.Duration
	// HTTPTimeout (added key http_timeout, default 30s) bounds every single
	// request to GitHub, Airflow and Sentry, so a system that accepts a
	// connection and never answers fails the step (with Retry) instead of
	// holding it forever.
	HTTPTimeout time.Duration
	Log         Log
	Slack       Slack
	GitHub      *GitHub  // nil when the section is absent
	Infra       *Infra   // nil when absent
	Airflow     *Airflow // nil when absent
	Sentry      *Sentry  // nil when absent
	Incident    Incident
	Services    []*Service // in file order
	Secrets     Secrets
}

// Log configures the process logger.
type Log struct {
	Level  string // debug | info | warn | error, default info
	Format string // json | console, default json
}

// Slack says where the bot works and who may do what. Permissions are lists
// of ids rather than names because names can be changed by anyone in the
// workspace while ids cannot.
type Slack struct {
	APIURL         string   // default "https://slack.com/api/"; http(s), ends in "/" (slack.OptionAPIURL requires it)
	DeployChannels []string // required, non-empty; channel ids ^[CG][A-Z0-9]{2,}$
	AlertsChannel  string   // optional channel id
	TeamGroup      string   // optional user group id ^S[A-Z0-9]{2,}$
	Deployers      []string // required, non-empty; user ids ^[UW][A-Z0-9]{2,}$ or user group ids ^S[A-Z0-9]{2,}$
	Approvers      []string // same rules as Deployers
	// GroupCacheMaxStale (added key group_cache_max_stale, default 10m):
	// while usergroups.users.list fails, the last membership seen is used
	// for at most this long; after that, clicks that depend on the group
	// are refused. Roles fail closed.
	GroupCacheMaxStale time.Duration
}

// GitHub names the repositories the runbook works on.
type GitHub struct {
	APIURL    string // default "https://api.github.com/"; ends in "/" (go-github's BaseURL requires it)
	Monorepo  string // required, "owner/name": releases, build workflow, changelog PRs
	InfraRepo string // required, "owner/name": infrastructure PRs, rollback workflow
	// Added keys: how often GitHub is polled while a step waits on it, and
	// how long the build, the changelog PR and the rollback workflow may
	// take before the step says so and offers Re-check.
	PollInterval     time.Duration // poll_interval, default 15s
	BuildTimeout     time.Duration // build_timeout, default 45m
	ChangelogTimeout time.Duration // changelog_timeout, default 30m
	RollbackTimeout  time.Duration // rollback_timeout, default 30m
	// ChangelogAuthor (changelog_author, default "openverse-bot") is the
	// GitHub login that opens the changelog PRs: a PR from anyone else, or
	// from a fork, is never approved even if its branch name matches.
	ChangelogAuthor string
}

// Infra says where the Terraform code is and how to run Terraform.
type Infra struct {
	CloneURL     string // required: a URL, an scp-like git address, or a local path (a relative local path is resolved against the config file's directory)
	BaseBranch   string // default "main"
	Workdir      string // default "./work", resolved against the config file's directory
	TerraformBin string // default "terraform"; a relative path containing "/" is resolved against the config file's directory, a bare name is looked up in PATH
	// TerraformEnv (added key terraform_env, default DefaultTerraformEnv)
	// names the variables of the bot's environment Terraform inherits on
	// top of a baseline (PATH, HOME, locale, proxies, CA bundle): exact
	// names, or prefixes ending in "*". It is for what the backend and
	// providers need (cloud credentials); nothing else reaches Terraform.
	// Patterns that could match deploybot's own variables (SLACK_*,
	// SENTRY_*, AIRFLOW_*, GITHUB_*, DEPLOYBOT_*) are refused. An explicit
	// empty list means the baseline only.
	TerraformEnv []string
	// MergeOnSuccess (added key merge_on_success, default false) merges a
	// succeeded run's branch into BaseBranch on the remote, as a reviewer
	// merging the infrastructure PR would. It is for the console and the
	// demo, whose local repository has no reviewer: without it every run
	// would bump from the same old version. Production leaves the PR to
	// people.
	MergeOnSuccess bool
	// KeepRuns (added key keep_runs, default DefaultKeepRuns) is how many
	// finished runs keep their checkout and plan files under Workdir; older
	// finished runs' folders are deleted when a run ends. Open runs are
	// never touched.
	KeepRuns int
}

// DefaultKeepRuns is infra.keep_runs when the key is absent.
const DefaultKeepRuns = 10

// DefaultTerraformEnv is infra.terraform_env when the key is absent: AWS_*
// for the S3 backend and the AWS provider the Openverse infrastructure
// uses, TF_TOKEN_* for a Terraform Cloud or private registry host. Keep it
// equal to terraform.DefaultInheritEnv.
var DefaultTerraformEnv = []string{"AWS_*", "TF_TOKEN_*"}

// DefaultDataRefreshDAGs are the Openverse data refresh DAGs, used when the
// airflow section does not list its own: an empty list would make the
// "no data refresh is running" check pass without checking anything.
var DefaultDataRefreshDAGs = []string{"image_data_refresh", "audio_data_refresh", "create_filtered_image_index", "create_filtered_audio_index"}

// Airflow is where data refreshes run; a deploy must not overlap one.
type Airflow struct {
	URL             string   // required, http(s); stored without a trailing "/" so callers append "/api/v1/…"
	APIVersion      int      // 2 (/api/v1, basic auth) or 3 (/api/v2, token); default 2
	DataRefreshDAGs []string // default DefaultDataRefreshDAGs; an explicit empty list is a problem
}

// Sentry is watched for new issues after each apply.
type Sentry struct {
	URL          string            // web API base, default "https://sentry.io/"; always ends in "/" ("/api/0/" is appended by the client)
	Org          string            // required organisation slug
	Project      string            // required project slug
	Environments map[string]string // deploy environment -> Sentry environment; never nil
	Watch        time.Duration     // how long to watch after each apply; default 15m, > 0
	// PollInterval (added key poll_interval, default 1m) is how often the
	// watch asks Sentry for new issues.
	PollInterval time.Duration
}

// Environment returns the Sentry environment for a deploy environment: the
// mapped name, or the deploy environment's own name when it is not mapped.
func (s *Sentry) Environment(deployEnv string) string {
	if e, ok := s.Environments[deployEnv]; ok {
		return e
	}
	return deployEnv
}

// Incident configures how production incidents are declared.
type Incident struct {
	CreateChannel bool // also open a dedicated incident channel
}

// Service is one deployable app.
type Service struct {
	Name                  string // the key under services:, ^[a-z0-9][a-z0-9-]*$
	ReleaseTagPrefix      string // drafted release tag prefix; default is the name with "-" replaced by "_" plus "-" (Openverse: ingestion-server -> "ingestion_server-")
	ImageTagPrefix        string // default "rel-"
	BuildWorkflow         string // monorepo workflow file run on release publish; empty: not watched
	ChangelogBranchPrefix string // default "changelog/"
	Environments          []Environment
	Rollback              *Rollback // nil when absent
	Steps                 []StepDef // a custom runbook; empty means "use the built-in runbook for this service if one exists"
}

// Environment is one deploy target of a service, in deploy order.
type Environment struct {
	Name             string // required, ^[a-z0-9][a-z0-9-]*$, unique within the service
	Dir              string // required: Terraform root module, relative to the infra repo
	File             string // required: the .tf file with the module declaration, relative to the infra repo
	Module           string // required: module "<Module>" { … } in File
	VersionAttribute string // required: attribute set to the image tag by the bump
	Target           string // plan/apply -target; default "module.<Module>" so an apply never touches unrelated resources
	ClearFlag        string // optional attribute set to true for this environment's apply and always restored to false
	FourEyes         bool   // the approver must not be the requester
	// BackendConfig (added key backend_config) is passed to `terraform init`
	// as -backend-config=KEY=VALUE. "{workdir}" in a value is replaced by
	// infra.workdir: each run plans in its own checkout, so a local state
	// must live outside it.
	BackendConfig map[string]string
}

// Rollback says how to roll a service back.
type Rollback struct {
	Workflow string // required: infra repo workflow_dispatch file, inputs tag and actor
	Ref      string // default "main"
}

// StepDef is one step of a custom runbook defined in config:
//
//	steps:
//	  - id: smoke-test              # required, ^[a-z0-9][a-z0-9-]*$, unique within the service
//	    title: Run the smoke test   # required, at most 150 characters (a Slack header)
//	    instruction: "..."          # required: what the human must do (at most 3000 characters, a Slack section)
//	    approval: false             # true: only approvers may confirm it (default false)
//	    environment: prod           # optional; must name one of the service's environments (four_eyes applies)
type StepDef struct {
	ID          string
	Title       string
	Instruction string
	Approval    bool
	Environment string
}

// Secrets are the credentials read from the environment.
type Secrets struct {
	SlackBotToken           Secret // SLACK_BOT_TOKEN (xoxb-…)
	SlackAppToken           Secret // SLACK_APP_TOKEN (xapp-…, Socket Mode)
	GitHubToken             Secret // GITHUB_TOKEN
	GitHubAppID             int64  // GITHUB_APP_ID
	GitHubAppInstallationID int64  // GITHUB_APP_INSTALLATION_ID
	GitHubAppPrivateKey     Secret // GITHUB_APP_PRIVATE_KEY, or the contents of the file named by GITHUB_APP_PRIVATE_KEY_FILE
	SentryAuthToken         Secret // SENTRY_AUTH_TOKEN (web API)
	SentryDSN               Secret // SENTRY_DSN (the bot's own error reports)
	AirflowUsername         string // AIRFLOW_USERNAME
	AirflowPassword         Secret // AIRFLOW_PASSWORD
	DatabasePassword        Secret // DEPLOYBOT_DATABASE_PASSWORD, PGPASSWORD, or the one in DEPLOYBOT_DATABASE_URL
}

// Values lists every credential that is set, read off the struct so that a
// credential added later is masked and redacted everywhere without anyone
// remembering to list it.
func (s Secrets) Values() []string {
	var out []string
	v := reflect.ValueOf(s)
	for i := 0; i < v.NumField(); i++ {
		if sec, ok := v.Field(i).Interface().(Secret); ok && sec.IsSet() {
			out = append(out, sec.Reveal()) // a PEM's lines: redact.NewValues
		}
	}
	// What an HTTP Basic Authorization header carries, should an error
	// quote the request.
	if s.AirflowUsername != "" && s.AirflowPassword.IsSet() {
		out = append(out, base64.StdEncoding.EncodeToString([]byte(s.AirflowUsername+":"+s.AirflowPassword.Reveal())))
	}
	return out
}

// secretEnv names the variable each credential comes from.
var secretEnv = map[string]string{
	"SlackBotToken": "SLACK_BOT_TOKEN", "SlackAppToken": "SLACK_APP_TOKEN", "GitHubToken": "GITHUB_TOKEN",
	"GitHubAppPrivateKey": "GITHUB_APP_PRIVATE_KEY", "SentryAuthToken": "SENTRY_AUTH_TOKEN", "SentryDSN": "SENTRY_DSN",
	"AirflowPassword": "AIRFLOW_PASSWORD", "DatabasePassword": "DEPLOYBOT_DATABASE_PASSWORD",
}

// Shorter names the credentials that are set but shorter than n
// characters, by their variable.
func (s Secrets) Shorter(n int) []string {
	var out []string
	v := reflect.ValueOf(s)
	for i := 0; i < v.NumField(); i++ {
		if sec, ok := v.Field(i).Interface().(Secret); ok && sec.IsSet() && len(sec.Reveal()) < n {
			name := secretEnv[v.Type().Field(i).Name]
			if name == "" {
				name = v.Type().Field(i).Name
			}
			out = append(out, name)
		}
	}
	return out
}

// Problem is one thing wrong with the configuration.
type Problem struct {
	Path    string // key path like "slack.deploy_channels[0]", or "env GITHUB_APP_ID"
	Message string // never contains a secret value
	Line    int    // line in the file, 0 when not about a line (environment variables)
	File    string // the config file, for Problems.Error
}

// String formats the problem as "path: message (line N)".
func (p Problem) String() string {
	s := p.Path + ": " + p.Message
	if p.Line > 0 {
		s += fmt.Sprintf(" (line %d)", p.Line)
	}
	return s
}

// Problems is the error Load and Parse return when validation fails: one
// entry per problem, in file order, environment problems last.
type Problems []Problem

// Error lists every problem, one per line:
//
//	config deploybot.yaml: 2 problems:
//	  slack.deploy_channels[0]: "#deploys" is not a channel id (like C0123ABCD) (line 12)
//	  env GITHUB_APP_ID: want a positive integer
func (p Problems) Error() string {
	var b strings.Builder
	b.WriteString("config")
	if len(p) > 0 && p[0].File != "" {
		b.WriteString(" " + p[0].File)
	}
	noun := "problems"
	if len(p) == 1 {
		noun = "problem"
	}
	fmt.Fprintf(&b, ": %d %s:", len(p), noun)
	for _, q := range p {
		b.WriteString("\n  " + q.String())
	}
	return b.String()
}

// sort orders problems by line, keeping discovery order within a line and
// putting problems without a line (environment variables) last.
func (p Problems) sort() {
	sort.SliceStable(p, func(i, j int) bool {
		li, lj := p[i].Line, p[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
}

// Load reads and validates the file at path, then reads secrets with getenv
// (os.Getenv in production, a map lookup in tests; nil means os.Getenv). It
// returns every problem at once as Problems.
func Load(path string, getenv func(string) string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path, getenv)
}

// Parse is Load without reading the file: path is used in messages and its
// directory is the base for relative paths in the configuration. Relative
// paths are made absolute so they keep working when the process (or a
// terraform or git child) runs in another directory.
func Parse(data []byte, path string, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	base := filepath.Dir(path)
	if abs, err := filepath.Abs(base); err == nil {
		base = abs
	}
	w := newWalker(path, base)
	c := w.parse(data)
	c.Path = path
	c.Secrets = w.secrets(getenv)
	w.storeEnv(c, getenv)
	if v := strings.TrimSpace(getenv("DEPLOYBOT_HTTP_ADDR")); v != "" {
		if msg := hostPort(v); msg != "" {
			w.env("DEPLOYBOT_HTTP_ADDR", msg)
		}
		c.HTTPAddr = v
	}
	if len(w.probs) > 0 {
		w.probs.sort()
		return nil, w.probs
	}
	return c, nil
}

// Service returns the service with that name, or nil.
func (c *Config) Service(name string) *Service {
	for _, s := range c.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Environment returns the environment with that name, or nil.
func (s *Service) Environment(name string) *Environment {
	for i := range s.Environments {
		if s.Environments[i].Name == name {
			return &s.Environments[i]
		}
	}
	return nil
}

// RequireSlackSecrets reports a missing SLACK_BOT_TOKEN or SLACK_APP_TOKEN.
// Load does not require them because the console works without Slack; the
// Socket Mode bot calls this before connecting. Messages name the variable,
// never a value.
func (c *Config) RequireSlackSecrets() error {
	var p Problems
	if !c.Secrets.SlackBotToken.IsSet() {
		p = append(p, Problem{Path: "env SLACK_BOT_TOKEN", Message: "required to run the Slack bot (a bot token, xoxb-…)", File: c.Path})
	}
	if !c.Secrets.SlackAppToken.IsSet() {
		p = append(p, Problem{Path: "env SLACK_APP_TOKEN", Message: "required to run the Slack bot (an app-level token with connections:write for Socket Mode, xapp-…)", File: c.Path})
	}
	if len(p) > 0 {
		return p
	}
	return nil
}

// secrets reads the credentials. Tokens are trimmed because values mounted
// from files often end in a newline, which would make every API call fail
// with a confusing authentication error.
func (w *walker) secrets(getenv func(string) string) Secrets {
	var s Secrets
	tok := func(name string) Secret { return Secret(strings.TrimSpace(getenv(name))) }
	s.SlackBotToken = tok("SLACK_BOT_TOKEN")
	s.SlackAppToken = tok("SLACK_APP_TOKEN")
	// Swapped Slack tokens are a common mistake that otherwise surfaces as
	// an opaque "not_allowed_token_type" at connect time.
	if strings.HasPrefix(s.SlackBotToken.Reveal(), "xapp-") {
		w.env("SLACK_BOT_TOKEN", "holds an app-level token (xapp-…); that belongs in SLACK_APP_TOKEN, the bot token (xoxb-…) here")
	}
	if strings.HasPrefix(s.SlackAppToken.Reveal(), "xoxb-") {
		w.env("SLACK_APP_TOKEN", "holds a bot token (xoxb-…); that belongs in SLACK_BOT_TOKEN, the app-level token (xapp-…) here")
	}
	s.GitHubToken = tok("GITHUB_TOKEN")
	s.GitHubAppID = w.envInt(getenv, "GITHUB_APP_ID")
	s.GitHubAppInstallationID = w.envInt(getenv, "GITHUB_APP_INSTALLATION_ID")

	key, keyFile := getenv("GITHUB_APP_PRIVATE_KEY"), strings.TrimSpace(getenv("GITHUB_APP_PRIVATE_KEY_FILE"))
	switch {
	case strings.TrimSpace(key) != "" && keyFile != "":
		w.env("GITHUB_APP_PRIVATE_KEY_FILE", "set only one of GITHUB_APP_PRIVATE_KEY and GITHUB_APP_PRIVATE_KEY_FILE")
	case strings.TrimSpace(key) != "":
		s.GitHubAppPrivateKey = Secret(key)
	case keyFile != "":
		b, err := os.ReadFile(keyFile)
		switch {
		case err != nil:
			w.env("GITHUB_APP_PRIVATE_KEY_FILE", fmt.Sprintf("cannot read the key: %v", err))
		case strings.TrimSpace(string(b)) == "":
			w.env("GITHUB_APP_PRIVATE_KEY_FILE", fmt.Sprintf("%s is empty", keyFile))
		default:
			s.GitHubAppPrivateKey = Secret(b)
		}
	}
	// A GitHub App needs all three values; with only some of them the bot
	// would silently fall back to GITHUB_TOKEN or to no credentials at all.
	appID := strings.TrimSpace(getenv("GITHUB_APP_ID")) != ""
	instID := strings.TrimSpace(getenv("GITHUB_APP_INSTALLATION_ID")) != ""
	appKey := strings.TrimSpace(key) != "" || keyFile != ""
	if appID || instID || appKey {
		const why = "required for a GitHub App (GITHUB_APP_ID, GITHUB_APP_INSTALLATION_ID and GITHUB_APP_PRIVATE_KEY or GITHUB_APP_PRIVATE_KEY_FILE go together)"
		if !appID {
			w.env("GITHUB_APP_ID", why)
		}
		if !instID {
			w.env("GITHUB_APP_INSTALLATION_ID", why)
		}
		if !appKey {
			w.env("GITHUB_APP_PRIVATE_KEY", why)
		}
	}

	s.SentryAuthToken = tok("SENTRY_AUTH_TOKEN")
	s.SentryDSN = tok("SENTRY_DSN")
	s.AirflowUsername = strings.TrimSpace(getenv("AIRFLOW_USERNAME"))
	s.AirflowPassword = Secret(getenv("AIRFLOW_PASSWORD"))
	if (s.AirflowUsername == "") != !s.AirflowPassword.IsSet() {
		if s.AirflowUsername == "" {
			w.env("AIRFLOW_USERNAME", "required when AIRFLOW_PASSWORD is set")
		} else {
			w.env("AIRFLOW_PASSWORD", "required when AIRFLOW_USERNAME is set")
		}
	}
	return s
}

// envInt parses an id from the environment. The value is not echoed: ids
// are not secret, but a misplaced variable may well hold something that is.
func (w *walker) envInt(getenv func(string) string, name string) int64 {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		w.env(name, "want a positive integer")
		return 0
	}
	return n
}

func (w *walker) env(name, msg string) {
	w.probs = append(w.probs, Problem{Path: "env " + name, Message: msg, File: w.file})
}
