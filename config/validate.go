package config

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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

var topKeys = []string{"state_path", "http_addr", "log", "slack", "github", "infra", "airflow", "sentry", "incident", "services"}

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
	c.HTTPAddr = w.str(f, "http_addr", false, "127.0.0.1:9090", hostPort)
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
	s := Slack{APIURL: "https://slack.com/api/"}
	if f.vals["slack"] == nil {
		w.add(nil, "slack", "required (deploy_channels, deployers and approvers)")
		return s
	}
	sf, ok := w.section(f, "slack", "api_url", "deploy_channels", "alerts_channel", "team_group", "deployers", "approvers")
	if !ok {
		return s
	}
	s.APIURL = w.str(sf, "api_url", false, s.APIURL, httpURL(true))
	s.DeployChannels, _ = w.strList(sf, "deploy_channels", true, channelID)
	s.AlertsChannel = w.str(sf, "alerts_channel", false, "", channelID)
	s.TeamGroup = w.str(sf, "team_group", false, "", groupID)
	s.Deployers, _ = w.strList(sf, "deployers", true, principal)
	s.Approvers, _ = w.strList(sf, "approvers", true, principal)
	return s
}

func (w *walker) github(f fieldSet) *GitHub {
	if f.vals["github"] == nil {
		return nil
	}
	g := &GitHub{APIURL: "https://api.github.com/", PollInterval: 15 * time.Second, BuildTimeout: 45 * time.Minute, ChangelogTimeout: 30 * time.Minute, RollbackTimeout: 30 * time.Minute}
	gf, ok := w.section(f, "github", "api_url", "monorepo", "infra_repo", "poll_interval", "build_timeout", "changelog_timeout", "rollback_timeout")
	if !ok {
		return g
	}
	g.APIURL = w.str(gf, "api_url", false, g.APIURL, httpURL(true))
	g.Monorepo = w.str(gf, "monorepo", true, "", repo)
	g.InfraRepo = w.str(gf, "infra_repo", true, "", repo)
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
	in := &Infra{BaseBranch: "main", Workdir: w.resolve("./work"), TerraformBin: "terraform"}
	inf, ok := w.section(f, "infra", "clone_url", "base_branch", "workdir", "terraform_bin")
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
	if strings.Contains(in.TerraformBin, "/") {
		in.TerraformBin = w.resolve(in.TerraformBin)
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
func (w *walker) seq(f fieldSet, key, what string) ([]*yaml.Node, string) {
	p := f.at(key)
	n := f.vals[key]
	if n == nil {
		return nil, p
	}
	n = deref(n)
	if w.flagged[n] {
		return nil, p
	}
	if n.Kind != yaml.SequenceNode {
		w.add(n, p, fmt.Sprintf("want a list of %s, got %s", what, describe(n)))
		return nil, p
	}
	return append([]*yaml.Node{}, n.Content...), p
}

// section validates the mapping at key; false when it is absent or broken.
func (w *walker) section(f fieldSet, key string, known ...string) (fieldSet, bool) {
	n := f.vals[key]
	if n == nil {
		return fieldSet{}, false
	}
	return w.fields(n, f.at(key), known...)
}

// fields checks that n is a mapping, reports unknown and duplicate keys,
// and returns the known keys' non-null values. A null value counts as
// absent, so "github:" with everything below commented out turns GitHub off
// the same way as removing the section.
func (w *walker) fields(n *yaml.Node, path string, known ...string) (fieldSet, bool) {
	n = deref(n)
	f := fieldSet{path: path, vals: map[string]*yaml.Node{}}
	if path != "" {
		f.node = n
	}
	if w.flagged[n] {
		return f, false
	}
	if n.Kind != yaml.MappingNode {
		w.add(n, path, "want a mapping, got "+describe(n))
		return f, false
	}
	for _, e := range w.entries(n, path) {
		k := e.key.Value
		if !slices.Contains(known, k) {
			w.unknown(e, path, known)
			continue
		}
		if !isNull(e.val) {
			f.vals[k] = e.val
		}
	}
	return f, true
}

// entries returns a mapping's key/value pairs in order, with "<<" merge keys
// expanded (explicit keys win over merged ones) and duplicates reported.
func (w *walker) entries(n *yaml.Node, path string) []entry {
	var out, merged []entry
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if w.flagged[k] {
			continue
		}
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			merged = append(merged, w.merge(v, path)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			w.add(k, path, "keys must be plain strings, got "+describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			if !w.dups[k] {
				w.dups[k] = true
				w.add(k, join(path, k.Value), fmt.Sprintf("duplicate key (first at line %d)", first.Line))
			}
			continue
		}
		seen[k.Value] = k
		out = append(out, entry{k, v})
	}
	for _, e := range merged {
		if _, ok := seen[e.key.Value]; !ok {
			seen[e.key.Value] = e.key
			out = append(out, e)
		}
	}
	return out
}

func (w *walker) merge(v *yaml.Node, path string) []entry {
	v = deref(v)
	switch v.Kind {
	case yaml.MappingNode:
		return w.entries(v, path)
	case yaml.SequenceNode:
		var out []entry
		for _, m := range v.Content {
			if m = deref(m); m.Kind == yaml.MappingNode {
				out = append(out, w.entries(m, path)...)
			} else {
				w.add(m, join(path, "<<"), "want a mapping to merge, got "+describe(m))
			}
		}
		return out
	}
	w.add(v, join(path, "<<"), "want a mapping to merge, got "+describe(v))
	return nil
}

// unknown reports a key the schema does not have. Secret-looking keys get
// the secrets message instead, since a misspelled key is the lesser problem.
func (w *walker) unknown(e entry, path string, known []string) {
	p := join(path, e.key.Value)
	if w.containsFlagged(e.val) {
		return // its secret value is already reported at this path
	}
	if secretName(e.key.Value) {
		w.add(e.key, p, secretMessage(p, ""))
		return
	}
	msg := "unknown key"
	if s := suggest(e.key.Value, known); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else {
		msg += " (known: " + strings.Join(known, ", ") + ")"
	}
	w.add(e.key, p, msg)
}

// scanSecrets reports every scalar in the file that looks like a
// credential, before the typed walk, so that secrets are found under
// unknown keys and in wrongly typed values too, and are never echoed.
func (w *walker) scanSecrets(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			p := path
			if n.Kind == yaml.SequenceNode {
				p = fmt.Sprintf("%s[%d]", path, i)
			}
			w.scanSecrets(c, p)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := path
			if k.Kind == yaml.ScalarNode {
				if env, ok := secretValue(k.Value); ok {
					w.flagged[k] = true
					w.add(k, path, secretMessage(path, env))
				} else {
					p = join(path, k.Value)
				}
			}
			w.scanSecrets(v, p)
		}
	case yaml.ScalarNode:
		if env, ok := secretValue(n.Value); ok {
			w.flagged[n] = true
			w.add(n, path, secretMessage(path, env))
		}
	}
}

func (w *walker) containsFlagged(n *yaml.Node) bool {
	if w.flagged[n] {
		return true
	}
	for _, c := range n.Content {
		if w.containsFlagged(c) {
			return true
		}
	}
	return false
}

// str reads the string at key. Absent, null or "" gives def, or a
// "required" problem when required. check returns a message for a
// malformed value, or "".
func (w *walker) str(f fieldSet, key string, required bool, def string, check func(string) string) string {
	n := f.vals[key]
	p := f.at(key)
	if n == nil {
		if required {
			w.add(f.node, p, "required")
		}
		return def
	}
	v, ok := w.asString(n, p)
	if !ok {
		return def
	}
	if strings.TrimSpace(v) == "" {
		if required {
			w.add(deref(n), p, "required")
		}
		return def
	}
	if check != nil {
		if msg := check(v); msg != "" {
			w.add(deref(n), p, msg)
		}
	}
	return v
}

// strList reads a list of strings at key; present reports whether the key
// was there at all. A required list must have at least one entry.
func (w *walker) strList(f fieldSet, key string, required bool, check func(string) string) (list []string, present bool) {
	n := f.vals[key]
	p := f.at(key)
	if n == nil {
		if required {
			w.add(f.node, p, "required")
		}
		return nil, false
	}
	n = deref(n)
	if w.flagged[n] {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		msg := "want a list, got " + describe(n)
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && !strings.ContainsAny(n.Value, "\n[]") {
			msg += fmt.Sprintf(" (write [%s])", n.Value)
		}
		w.add(n, p, msg)
		return nil, true
	}
	if required && len(n.Content) == 0 {
		w.add(n, p, "required: list at least one")
	}
	list = []string{}
	for i, item := range n.Content {
		ip := fmt.Sprintf("%s[%d]", p, i)
		v, ok := w.asString(item, ip)
		if !ok {
			continue
		}
		if check != nil {
			if msg := check(v); msg != "" {
				w.add(deref(item), ip, msg)
				continue
			}
		}
		list = append(list, v)
	}
	return list, true
}

// asString accepts any scalar except null and booleans: "2024" or 1.10 are
// fine as branch names, but "true" where a name is expected is a mistake.
func (w *walker) asString(n *yaml.Node, p string) (string, bool) {
	n = deref(n)
	if w.flagged[n] {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!bool" || n.ShortTag() == "!!null" {
		w.add(n, p, "want a string, got "+describe(n))
		return "", false
	}
	return n.Value, true
}

// boolean reads a YAML boolean. "yes", "on" and the like are refused: YAML
// 1.2 reads them as strings, and guessing would make four_eyes: "no" mean
// something different to different tools.
func (w *walker) boolean(f fieldSet, key string) bool {
	n := f.vals[key]
	if n == nil {
		return false
	}
	n = deref(n)
	if w.flagged[n] {
		return false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		w.add(n, f.at(key), "want true or false, got "+describe(n))
		return false
	}
	return strings.EqualFold(n.Value, "true")
}

func (w *walker) integer(n *yaml.Node, p string) (int, bool) {
	n = deref(n)
	if w.flagged[n] {
		return 0, false
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		if v, err := strconv.Atoi(n.Value); err == nil {
			return v, true
		}
	}
	w.add(n, p, "want an integer, got "+describe(n))
	return 0, false
}

func (w *walker) duration(n *yaml.Node, p string) (time.Duration, bool) {
	n = deref(n)
	if w.flagged[n] {
		return 0, false
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		d, err := time.ParseDuration(n.Value)
		if err == nil && d > 0 {
			return d, true
		}
		if err == nil {
			w.add(n, p, fmt.Sprintf("must be longer than 0, got %s", quote(n.Value)))
			return 0, false
		}
	}
	w.add(n, p, "want a duration like 15m or 1h30m, got "+describe(n))
	return 0, false
}

// resolve makes a relative path absolute against the config file's
// directory, so that the meaning of the file does not depend on the
// directory the bot happens to be started from.
func (w *walker) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(w.base, p)
}

// Checks: each returns a problem message, or "" when the value is fine.

func channelID(v string) string {
	if channelRe.MatchString(v) {
		return ""
	}
	return fmt.Sprintf("%s is not a channel id (like C0123ABCD)", quote(v))
}

func groupID(v string) string {
	if groupRe.MatchString(v) {
		return ""
	}
	return fmt.Sprintf("%s is not a user group id (like S0123ABCD)", quote(v))
}

func principal(v string) string {
	if userRe.MatchString(v) || groupRe.MatchString(v) {
		return ""
	}
	return fmt.Sprintf("%s is not a user id (like U0123ABCD) or user group id (like S0123ABCD)", quote(v))
}

func repo(v string) string {
	if !repoRe.MatchString(v) {
		return fmt.Sprintf("%s is not owner/name (like WordPress/openverse)", quote(v))
	}
	if name := v[strings.IndexByte(v, '/')+1:]; name == "." || name == ".." || strings.HasSuffix(name, ".git") {
		return fmt.Sprintf("%s is not owner/name (like WordPress/openverse, without .git)", quote(v))
	}
	return ""
}

func nameCheck(what, example string) func(string) string {
	return func(v string) string {
		if nameRe.MatchString(v) {
			return ""
		}
		return fmt.Sprintf("%s %s must be lowercase letters, digits and hyphens (like %s)", what, quote(v), example)
	}
}

func ident(v string) string {
	if identRe.MatchString(v) {
		return ""
	}
	return fmt.Sprintf("%s is not a Terraform identifier", quote(v))
}

func target(v string) string {
	if strings.ContainsAny(v, " \t\r\n") {
		return fmt.Sprintf("%s is not a Terraform resource address (like module.ingestion-server)", quote(v))
	}
	return ""
}

func dagID(v string) string {
	if dagRe.MatchString(v) {
		return ""
	}
	return fmt.Sprintf("%s is not a DAG id", quote(v))
}

func slug(v string) string {
	if slugRe.MatchString(v) {
		return ""
	}
	return fmt.Sprintf("%s is not a Sentry slug (like openverse)", quote(v))
}

func imageTagPrefix(v string) string {
	if imageTagRe.MatchString(v) {
		return ""
	}
	return fmt.Sprintf("%s cannot start a Docker image tag", quote(v))
}

func workflowFile(v string) string {
	if workflowRe.MatchString(v) {
		return ""
	}
	return fmt.Sprintf("%s is not a workflow file name (like deploy.yml)", quote(v))
}

// refPart checks a branch, tag or tag prefix against git's ref name rules.
func refPart(v string) string {
	if strings.ContainsAny(v, " \t\r\n~^:?*[\\") || strings.Contains(v, "..") || strings.Contains(v, "@{") ||
		strings.HasPrefix(v, "-") || strings.HasPrefix(v, "/") || strings.Contains(v, "//") {
		return fmt.Sprintf("%s is not usable in a git branch or tag name", quote(v))
	}
	return ""
}

// repoPath checks a path inside the infra repo: relative, not escaping it.
func repoPath(v string) string {
	if filepath.IsLocal(v) {
		return ""
	}
	return fmt.Sprintf("%s must be a relative path inside the infra repo", quote(v))
}

func tfFile(v string) string {
	if msg := repoPath(v); msg != "" {
		return msg
	}
	if !strings.HasSuffix(v, ".tf") {
		return fmt.Sprintf("%s is not a Terraform file (.tf)", quote(v))
	}
	return ""
}

func hostPort(v string) string {
	_, port, err := net.SplitHostPort(v)
	if err == nil {
		if n, err := strconv.Atoi(port); err == nil && n >= 0 && n <= 65535 {
			return ""
		}
	}
	return fmt.Sprintf("%s is not host:port (like 127.0.0.1:9090)", quote(v))
}

func oneOf(choices ...string) func(string) string {
	return func(v string) string {
		if slices.Contains(choices, v) {
			return ""
		}
		return fmt.Sprintf("want %s or %s, got %s", strings.Join(choices[:len(choices)-1], ", "), choices[len(choices)-1], quote(v))
	}
}

func maxLen(n int, why string) func(string) string {
	return func(v string) string {
		if c := utf8.RuneCountInString(v); c > n {
			return fmt.Sprintf("%d characters; at most %d fit in %s", c, n, why)
		}
		return ""
	}
}

// httpURL checks an http(s) base URL. API clients that join paths onto a
// base (slack-go, go-github) need the trailing "/", or the last path element
// is silently dropped.
func httpURL(slash bool) func(string) string {
	return func(v string) string {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Sprintf("%s is not an http(s) URL", quote(v))
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return fmt.Sprintf("%s must not have a query or fragment", quote(v))
		}
		if slash && !strings.HasSuffix(v, "/") {
			return fmt.Sprintf("%s must end in \"/\"", quote(v))
		}
		return ""
	}
}

func sentryURL(v string) string {
	if msg := httpURL(false)(v); msg != "" {
		return msg
	}
	if strings.HasSuffix(strings.TrimRight(v, "/"), "/api/0") {
		return fmt.Sprintf("%s: give the Sentry base URL (like https://sentry.io/); /api/0/ is appended", quote(v))
	}
	return ""
}

// remoteGit tells a git URL ("https://…", "file://…", "git@host:path") from
// a local path, which is resolved against the config file's directory.
func remoteGit(v string) bool {
	if strings.Contains(v, "://") {
		return true
	}
	if i := strings.IndexByte(v, ':'); i > 0 {
		j := strings.IndexByte(v, '/')
		return j < 0 || i < j
	}
	return false
}

// secretValue reports whether v looks like a credential, and the
// environment variable it belongs in when that can be told.
func secretValue(v string) (env string, ok bool) {
	t := strings.TrimSpace(v)
	if env, ok := prefixEnv(t); ok {
		return env, true
	}
	if strings.Contains(t, "PRIVATE KEY-----") {
		return "GITHUB_APP_PRIVATE_KEY", true
	}
	if m := embeddedTokenRe.FindString(t); m != "" {
		env, _ := prefixEnv(m)
		return env, true
	}
	// Credentials in a URL: a Sentry DSN (https://key@o1.ingest.sentry.io/1)
	// or a clone URL with a token in it.
	if strings.Contains(t, "://") {
		if u, err := url.Parse(t); err == nil && u.User != nil {
			_, pw := u.User.Password()
			if pw || u.Scheme == "http" || u.Scheme == "https" {
				if strings.Contains(u.Host, "sentry") {
					return "SENTRY_DSN", true
				}
				return "", true
			}
		}
	}
	return "", false
}

func prefixEnv(v string) (env string, ok bool) {
	for _, s := range secretPrefixes {
		if strings.HasPrefix(v, s.prefix) {
			return s.env, true
		}
	}
	return "", false
}

// secretName reports whether a key is named like a credential.
func secretName(k string) bool {
	k = strings.ToLower(strings.ReplaceAll(k, "-", "_"))
	for _, s := range []string{"token", "password", "passwd", "secret", "private_key", "privatekey", "dsn", "api_key", "apikey"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// secretMessage names the environment variable the secret belongs in,
// guessed from its shape or its key path. It never includes the value.
func secretMessage(path, env string) string {
	if env == "" {
		p := strings.ToLower(path)
		switch {
		case strings.Contains(p, "dsn"):
			env = "SENTRY_DSN"
		case strings.Contains(p, "private"):
			env = "GITHUB_APP_PRIVATE_KEY"
		case strings.Contains(p, "slack") && strings.Contains(p, "app"):
			env = "SLACK_APP_TOKEN"
		case strings.Contains(p, "slack"):
			env = "SLACK_BOT_TOKEN"
		case strings.Contains(p, "github"):
			env = "GITHUB_TOKEN"
		case strings.Contains(p, "sentry"):
			env = "SENTRY_AUTH_TOKEN"
		case strings.Contains(p, "airflow"), strings.Contains(p, "password"):
			env = "AIRFLOW_PASSWORD"
		default:
			env = "SLACK_BOT_TOKEN, SLACK_APP_TOKEN, GITHUB_TOKEN, …"
		}
	}
	return fmt.Sprintf("secrets come from the environment (%s), not the file", env)
}

// suggest returns the known key closest to k, if it is close enough to be
// a plausible typo.
func suggest(k string, known []string) string {
	lk := strings.ToLower(strings.ReplaceAll(k, "-", "_"))
	best, bestD := "", -1
	for _, c := range known {
		if d := levenshtein(lk, c); bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if best != "" && bestD <= max(1, len(best)/3) {
		return best
	}
	if len(lk) >= 4 {
		for _, c := range known {
			if strings.Contains(c, lk) || strings.Contains(lk, c) {
				return c
			}
		}
	}
	return ""
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n == nil {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func seqLen(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	if n = deref(n); n.Kind == yaml.SequenceNode {
		return len(n.Content)
	}
	return 0
}

// describe names what a node holds, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	n = deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!int", "!!float", "!!bool":
			return n.Value
		}
		return quote(n.Value)
	}
	return "nothing"
}

// quote quotes a value for a message, shortened, and never a secret (the
// walk reports secrets first, but a message is the wrong place to rely on
// that).
func quote(v string) string {
	if _, secret := secretValue(v); secret {
		return "[redacted]"
	}
	if utf8.RuneCountInString(v) > 60 {
		v = string([]rune(v)[:57]) + "…"
	}
	return strconv.Quote(v)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
