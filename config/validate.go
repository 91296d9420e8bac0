package config

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Identifier shapes. Slack permissions and channels are ids, not names,
// because names can be changed by any workspace member; rejecting "#deploys"
// or "@alice" here beats a bot that silently ignores everyone.
var (
	channelRe  = regexp.MustCompile(`^[CG][A-Z0-9]{2,}$`)
	userRe     = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	groupRe    = regexp.MustCompile(`^S[A-Z0-9]{2,}$`)
	nameRe     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	repoRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$`)
	identRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`) // Terraform identifiers
	dagRe      = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)         // Airflow's KEY_REGEX
	slugRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	imageTagRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	workflowRe = regexp.MustCompile(`^[^/\s]+\.ya?ml$`)
	// Credentials embedded anywhere in a value (a pasted curl command in an
	// instruction, say). Only realistic lengths, so that prose mentioning
	// "xoxb-" is not flagged.
	embeddedTokenRe = regexp.MustCompile(`\b(xox[abpe]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|sntry[su]_[A-Za-z0-9_+/=-]{20,})`)
)

// secretPrefixes are the shapes of the credentials deploybot uses, with the
// environment variable each belongs in.
var secretPrefixes = []struct{ prefix, env string }{
	{"xoxb-", "SLACK_BOT_TOKEN"},
	{"xoxp-", "SLACK_BOT_TOKEN"},
	{"xapp-", "SLACK_APP_TOKEN"},
	{"ghp_", "GITHUB_TOKEN"},
	{"github_pat_", "GITHUB_TOKEN"},
	{"gho_", "GITHUB_TOKEN"},
	{"ghu_", "GITHUB_TOKEN"},
	{"ghs_", "GITHUB_TOKEN"},
	{"ghr_", "GITHUB_TOKEN"},
	{"-----BEGIN", "GITHUB_APP_PRIVATE_KEY"},
	{"sntrys_", "SENTRY_AUTH_TOKEN"},
	{"sntryu_", "SENTRY_AUTH_TOKEN"},
}

var topKeys = []string{"state_path", "http_addr", "shutdown_grace", "http_timeout", "log", "slack", "github", "infra", "airflow", "sentry", "incident", "services", "store"}

// walker walks the YAML tree and collects every problem instead of stopping
// at the first.
type walker struct {
	file  string
	base  string // absolute directory relative paths are resolved against
	probs Problems
	// flagged holds nodes already reported as secrets; they are never
	// echoed or reported again by the typed walk.
	flagged map[*yaml.Node]bool
	// dups holds duplicate keys already reported: a mapping merged with
	// "<<" is visited once per merge.
	dups map[*yaml.Node]bool
}

func newWalker(file, base string) *walker {
	return &walker{file: file, base: base, flagged: map[*yaml.Node]bool{}, dups: map[*yaml.Node]bool{}}
}

// fieldSet is a validated mapping: its known keys with non-null values.
type fieldSet struct {
	node *yaml.Node // the mapping, for the line of "required" problems; nil at top level
	path string
	vals map[string]*yaml.Node
}

func (f fieldSet) at(key string) string { return join(f.path, key) }

type entry struct{ key, val *yaml.Node }

func (w *walker) add(n *yaml.Node, path, msg string) {
	line := 0
	if n != nil {
		line = n.Line
	}
	if path == "" {
		path = "(top level)"
	}
	w.probs = append(w.probs, Problem{Path: path, Message: msg, Line: line, File: w.file})
}

var syntaxLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (w *walker) parse(data []byte) *Config {
	c := &Config{}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		for _, msg := range strings.Split(err.Error(), "\n") {
			msg = strings.TrimSpace(msg)
			if msg == "" {
				continue
			}
			line := 0
			if m := syntaxLineRe.FindStringSubmatch(msg); m != nil {
				line, _ = strconv.Atoi(m[1])
				msg = m[2]
			}
			w.probs = append(w.probs, Problem{Path: "(syntax)", Message: strings.TrimPrefix(msg, "yaml: "), Line: line, File: w.file})
		}
		return c
	}
	root := &doc
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			root = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		} else {
			root = doc.Content[0]
		}
	} else if doc.Kind == 0 { // empty input
		root = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	w.scanSecrets(root, "")
	w.config(root, c)
	return c
}

func (w *walker) config(root *yaml.Node, c *Config) {
	f, ok := w.fields(root, "", topKeys...)
	if !ok {
		return
	}
	c.StatePath = w.str(f, "state_path", false, "./deploybot.db", nil)
	if c.StatePath != ":memory:" && !strings.HasPrefix(c.StatePath, "file:") {
		c.StatePath = w.resolve(c.StatePath)
	}
	c.StoreURL, c.LeaseTTL = w.storeURL(f)
	c.HTTPAddr = w.str(f, "http_addr", false, "127.0.0.1:9090", hostPort)
	c.HTTPTimeout = 30 * time.Second
	if n := f.vals["http_timeout"]; n != nil {
		if d, ok := w.duration(n, f.at("http_timeout")); ok {
			c.HTTPTimeout = d
		}
	}
	c.ShutdownGrace = 10 * time.Minute
	if n := f.vals["shutdown_grace"]; n != nil {
		if d, ok := w.duration(n, f.at("shutdown_grace")); ok {
			c.ShutdownGrace = d
		}
	}
	c.Log = w.log(f)
	c.Slack = w.slack(f)
	c.GitHub = w.github(f)
	c.Infra = w.infra(f)
	c.Airflow = w.airflow(f)
	var sentryEnvs []entry
	c.Sentry, sentryEnvs = w.sentry(f)
	if inc, ok := w.section(f, "incident", "create_channel"); ok {
		c.Incident.CreateChannel = w.boolean(inc, "create_channel")
	}
	c.Services = w.services(f)

	// A Sentry mapping for an environment no service has is almost
	// certainly a typo, and would leave the real environment unmapped.
	var envs []string
	for _, s := range c.Services {
		for _, e := range s.Environments {
			if e.Name != "" && !slices.Contains(envs, e.Name) {
				envs = append(envs, e.Name)
			}
		}
	}
	if len(envs) > 0 {
		for _, e := range sentryEnvs {
			if !slices.Contains(envs, e.key.Value) {
				w.add(e.key, "sentry.environments."+e.key.Value, fmt.Sprintf("no service has an environment named %s (have %s)", quote(e.key.Value), strings.Join(envs, ", ")))
			}
		}
	}
}

func (w *walker) log(f fieldSet) Log {
	l := Log{Level: "info", Format: "json"}
	if s, ok := w.section(f, "log", "level", "format"); ok {
		l.Level = w.str(s, "level", false, "info", oneOf("debug", "info", "warn", "error"))
		l.Format = w.str(s, "format", false, "json", oneOf("json", "console"))
	}
	return l
}

func (w *walker) slack(f fieldSet) Slack {
	s := Slack{APIURL: "https://slack.com/api/", GroupCacheMaxStale: 10 * time.Minute}
	if f.vals["slack"] == nil {
		w.add(nil, "slack", "required (deploy_channels, deployers and approvers)")
		return s
	}
	sf, ok := w.section(f, "slack", "api_url", "deploy_channels", "alerts_channel", "team_group", "deployers", "approvers", "group_cache_max_stale")
	if !ok {
		return s
	}
	s.APIURL = w.str(sf, "api_url", false, s.APIURL, httpURL(true))
	s.DeployChannels, _ = w.strList(sf, "deploy_channels", true, channelID)
	s.AlertsChannel = w.str(sf, "alerts_channel", false, "", channelID)
	s.TeamGroup = w.str(sf, "team_group", false, "", groupID)
	s.Deployers, _ = w.strList(sf, "deployers", true, principal)
	s.Approvers, _ = w.strList(sf, "approvers", true, principal)
	if n := sf.vals["group_cache_max_stale"]; n != nil {
		if d, ok := w.duration(n, sf.at("group_cache_max_stale")); ok {
			s.GroupCacheMaxStale = d
		}
	}
	return s
}

func (w *walker) github(f fieldSet) *GitHub {
	if f.vals["github"] == nil {
		return nil
	}
	g := &GitHub{APIURL: "https://api.github.com/", PollInterval: 15 * time.Second, BuildTimeout: 45 * time.Minute, ChangelogTimeout: 30 * time.Minute, RollbackTimeout: 30 * time.Minute, ChangelogAuthor: "openverse-bot"}
	gf, ok := w.section(f, "github", "api_url", "monorepo", "infra_repo", "poll_interval", "build_timeout", "changelog_timeout", "rollback_timeout", "changelog_author")
	if !ok {
		return g
	}
	g.APIURL = w.str(gf, "api_url", false, g.APIURL, httpURL(true))
	g.Monorepo = w.str(gf, "monorepo", true, "", repo)
	g.InfraRepo = w.str(gf, "infra_repo", true, "", repo)
	g.ChangelogAuthor = w.str(gf, "changelog_author", false, g.ChangelogAuthor, githubLogin)
	for key, dst := range map[string]*time.Duration{"poll_interval": &g.PollInterval, "build_timeout": &g.BuildTimeout, "changelog_timeout": &g.ChangelogTimeout, "rollback_timeout": &g.RollbackTimeout} {
		if n := gf.vals[key]; n != nil {
			if d, ok := w.duration(n, gf.at(key)); ok {
				*dst = d
			}
		}
	}
	return g
}

func (w *walker) infra(f fieldSet) *Infra {
	if f.vals["infra"] == nil {
		return nil
	}
	in := &Infra{BaseBranch: "main", Workdir: w.resolve("./work"), TerraformBin: "terraform", KeepRuns: DefaultKeepRuns}
	in.TerraformEnv = slices.Clone(DefaultTerraformEnv)
	inf, ok := w.section(f, "infra", "clone_url", "base_branch", "workdir", "terraform_bin", "terraform_env", "merge_on_success", "keep_runs")
	if !ok {
		return in
	}
	in.CloneURL = w.str(inf, "clone_url", true, "", nil)
	if in.CloneURL != "" && !remoteGit(in.CloneURL) {
		in.CloneURL = w.resolve(in.CloneURL)
	}
	in.BaseBranch = w.str(inf, "base_branch", false, "main", refPart)
	in.Workdir = w.resolve(w.str(inf, "workdir", false, "./work", nil))
	in.TerraformBin = w.str(inf, "terraform_bin", false, "terraform", nil)
	if list, present := w.strList(inf, "terraform_env", false, envPattern); present {
		in.TerraformEnv = list
	}
	if strings.Contains(in.TerraformBin, "/") {
		in.TerraformBin = w.resolve(in.TerraformBin)
	}
	in.MergeOnSuccess = w.boolean(inf, "merge_on_success")
	if n := inf.vals["keep_runs"]; n != nil {
		if v, ok := w.integer(n, inf.at("keep_runs")); ok {
			if v < 1 {
				w.add(n, inf.at("keep_runs"), fmt.Sprintf("must be at least 1 (the run that just ended keeps its folder), got %d", v))
			} else {
				in.KeepRuns = v
			}
		}
	}
	return in
}

func (w *walker) airflow(f fieldSet) *Airflow {
	if f.vals["airflow"] == nil {
		return nil
	}
	a := &Airflow{APIVersion: 2}
	af, ok := w.section(f, "airflow", "url", "api_version", "data_refresh_dags")
	if !ok {
		return a
	}
	a.URL = strings.TrimRight(w.str(af, "url", true, "", httpURL(false)), "/")
	if n := af.vals["api_version"]; n != nil {
		if v, ok := w.integer(n, af.at("api_version")); ok {
			if v != 2 && v != 3 {
				w.add(deref(n), af.at("api_version"), fmt.Sprintf("want 2 (Airflow 2, /api/v1) or 3 (Airflow 3, /api/v2), got %d", v))
			} else {
				a.APIVersion = v
			}
		}
	}
	dags, present := w.strList(af, "data_refresh_dags", false, dagID)
	switch {
	case !present:
		a.DataRefreshDAGs = slices.Clone(DefaultDataRefreshDAGs)
	case deref(af.vals["data_refresh_dags"]).Kind == yaml.SequenceNode && seqLen(af.vals["data_refresh_dags"]) == 0:
		w.add(deref(af.vals["data_refresh_dags"]), af.at("data_refresh_dags"), "must list at least one DAG: with none, a running data refresh would never be noticed")
	default:
		a.DataRefreshDAGs = dags
	}
	return a
}

func (w *walker) sentry(f fieldSet) (*Sentry, []entry) {
	if f.vals["sentry"] == nil {
		return nil, nil
	}
	s := &Sentry{URL: "https://sentry.io/", Environments: map[string]string{}, Watch: 15 * time.Minute, PollInterval: time.Minute}
	sf, ok := w.section(f, "sentry", "url", "org", "project", "environments", "watch", "poll_interval")
	if !ok {
		return s, nil
	}
	s.URL = w.str(sf, "url", false, s.URL, sentryURL)
	if !strings.HasSuffix(s.URL, "/") {
		s.URL += "/"
	}
	s.Org = w.str(sf, "org", true, "", slug)
	s.Project = w.str(sf, "project", true, "", slug)

	var keys []entry
	if n := sf.vals["environments"]; n != nil {
		p := sf.at("environments")
		n = deref(n)
		switch {
		case w.flagged[n]:
		case n.Kind != yaml.MappingNode:
			w.add(n, p, "want a mapping of deploy environment to Sentry environment (like { dev: staging, prod: production }), got "+describe(n))
		default:
			for _, e := range w.entries(n, p) {
				ep := join(p, e.key.Value)
				v, ok := w.asString(e.val, ep)
				if !ok {
					continue
				}
				if v == "" || strings.ContainsAny(v, "/\r\n") {
					w.add(deref(e.val), ep, fmt.Sprintf("%s is not a Sentry environment name", quote(v)))
					continue
				}
				s.Environments[e.key.Value] = v
				keys = append(keys, e)
			}
		}
	}
	if n := sf.vals["poll_interval"]; n != nil {
		if d, ok := w.duration(n, sf.at("poll_interval")); ok {
			s.PollInterval = d
		}
	}
	if n := sf.vals["watch"]; n != nil {
		if d, ok := w.duration(n, sf.at("watch")); ok {
			s.Watch = d
		}
	}
	return s, keys
}

func (w *walker) services(f fieldSet) []*Service {
	n := f.vals["services"]
	if n == nil {
		w.add(nil, "services", "required: at least one service")
		return nil
	}
	n = deref(n)
	if w.flagged[n] {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		w.add(n, "services", "want a mapping of service name to its settings, got "+describe(n))
		return nil
	}
	es := w.entries(n, "services")
	if len(es) == 0 {
		w.add(n, "services", "required: at least one service")
	}
	var out []*Service
	for _, e := range es {
		name := e.key.Value
		p := "services." + name
		if !nameRe.MatchString(name) {
			w.add(e.key, p, fmt.Sprintf("service name %s must be lowercase letters, digits and hyphens (like ingestion-server)", quote(name)))
		}
		out = append(out, w.service(e.val, p, name))
	}
	return out
}

func (w *walker) service(n *yaml.Node, p, name string) *Service {
	s := &Service{
		Name: name,
		// Openverse release tags spell the app with underscores, the
		// Terraform module with hyphens (ingestion_server- vs ingestion-server).
		ReleaseTagPrefix:      strings.ReplaceAll(name, "-", "_") + "-",
		ImageTagPrefix:        "rel-",
		ChangelogBranchPrefix: "changelog/",
	}
	f, ok := w.fields(n, p, "release_tag_prefix", "image_tag_prefix", "build_workflow", "changelog_branch_prefix", "environments", "rollback", "steps")
	if !ok {
		return s
	}
	s.ReleaseTagPrefix = w.str(f, "release_tag_prefix", false, s.ReleaseTagPrefix, refPart)
	s.ImageTagPrefix = w.str(f, "image_tag_prefix", false, s.ImageTagPrefix, imageTagPrefix)
	s.BuildWorkflow = w.str(f, "build_workflow", false, "", workflowFile)
	s.ChangelogBranchPrefix = w.str(f, "changelog_branch_prefix", false, s.ChangelogBranchPrefix, refPart)
	s.Environments = w.environments(f)
	if rf, ok := w.section(f, "rollback", "workflow", "ref"); ok {
		s.Rollback = &Rollback{
			Workflow: w.str(rf, "workflow", true, "", workflowFile),
			Ref:      w.str(rf, "ref", false, "main", refPart),
		}
	}
	s.Steps = w.steps(f, s)
	if f.vals["environments"] == nil && seqLen(f.vals["steps"]) == 0 {
		w.add(f.node, f.at("environments"), "required (or define steps:): a service needs environments to deploy to or a runbook of its own")
	}
	return s
}

func (w *walker) environments(f fieldSet) []Environment {
	items, p := w.seq(f, "environments", "environments")
	if items == nil {
		return nil
	}
	if len(items) == 0 {
		w.add(deref(f.vals["environments"]), p, "must list at least one environment")
	}
	var out []Environment
	seen := map[string]int{}
	for i, item := range items {
		ep := fmt.Sprintf("%s[%d]", p, i)
		e := Environment{}
		ef, ok := w.fields(item, ep, "name", "dir", "file", "module", "version_attribute", "target", "clear_flag", "four_eyes", "backend_config")
		if !ok {
			out = append(out, e)
			continue
		}
		e.Name = w.str(ef, "name", true, "", nameCheck("environment", "dev"))
		e.Dir = w.str(ef, "dir", true, "", repoPath)
		e.File = w.str(ef, "file", true, "", tfFile)
		e.Module = w.str(ef, "module", true, "", ident)
		e.VersionAttribute = w.str(ef, "version_attribute", true, "", ident)
		def := ""
		if identRe.MatchString(e.Module) {
			def = "module." + e.Module
		}
		e.Target = w.str(ef, "target", false, def, target)
		e.ClearFlag = w.str(ef, "clear_flag", false, "", ident)
		e.FourEyes = w.boolean(ef, "four_eyes")
		if n := ef.vals["backend_config"]; n != nil {
			p := ef.at("backend_config")
			n = deref(n)
			switch {
			case w.flagged[n]:
			case n.Kind != yaml.MappingNode:
				w.add(n, p, "want a mapping of backend setting to value (like { path: \"{workdir}/state/dev.tfstate\" }), got "+describe(n))
			default:
				e.BackendConfig = map[string]string{}
				for _, kv := range w.entries(n, p) {
					if v, ok := w.asString(kv.val, join(p, kv.key.Value)); ok {
						e.BackendConfig[kv.key.Value] = v
					}
				}
			}
		}
		if e.Name != "" {
			if j, dup := seen[e.Name]; dup {
				w.add(deref(ef.vals["name"]), join(ep, "name"), fmt.Sprintf("duplicate environment name %s (also %s[%d])", quote(e.Name), p, j))
			} else {
				seen[e.Name] = i
			}
		}
		out = append(out, e)
	}
	return out
}

func (w *walker) steps(f fieldSet, s *Service) []StepDef {
	items, p := w.seq(f, "steps", "steps")
	if items == nil {
		return nil
	}
	var envs []string
	for _, e := range s.Environments {
		if e.Name != "" && !slices.Contains(envs, e.Name) {
			envs = append(envs, e.Name)
		}
	}
	var out []StepDef
	seen := map[string]int{}
	for i, item := range items {
		sp := fmt.Sprintf("%s[%d]", p, i)
		sf, ok := w.fields(item, sp, "id", "title", "instruction", "approval", "environment")
		if !ok {
			continue
		}
		st := StepDef{
			ID:          w.str(sf, "id", true, "", nameCheck("step id", "smoke-test")),
			Title:       w.str(sf, "title", true, "", maxLen(150, "a Slack header")),
			Instruction: w.str(sf, "instruction", true, "", maxLen(3000, "a Slack section")),
			Approval:    w.boolean(sf, "approval"),
			Environment: w.str(sf, "environment", false, "", nil),
		}
		if st.ID != "" {
			if j, dup := seen[st.ID]; dup {
				w.add(deref(sf.vals["id"]), join(sp, "id"), fmt.Sprintf("duplicate step id %s (also %s[%d])", quote(st.ID), p, j))
			} else {
				seen[st.ID] = i
			}
		}
		if st.Environment != "" && !slices.Contains(envs, st.Environment) {
			have := "none are defined"
			if len(envs) > 0 {
				have = "have " + strings.Join(envs, ", ")
			}
			w.add(deref(sf.vals["environment"]), join(sp, "environment"), fmt.Sprintf("%s is not one of this service's environments (%s)", quote(st.Environment), have))
		}
		out = append(out, st)
	}
	return out
}

// seq returns the items of the list at key (an empty non-nil slice for an
// empty list), or nil when it is absent or not a list.
