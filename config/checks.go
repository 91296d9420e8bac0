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
	"unicode/utf8"

	"github.com/deploybot/deploybot/internal/childenv"
)

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

// githubLoginRe is a GitHub login: a user or organisation name (letters,
// digits, single hyphens, at most 39 characters), or an App's bot account
// "<slug>[bot]".
var githubLoginRe = regexp.MustCompile(`^[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}(\[bot\])?$`)

func githubLogin(v string) string {
	if !githubLoginRe.MatchString(v) {
		return fmt.Sprintf("%s is not a GitHub login (like openverse-bot, or my-app[bot] for a GitHub App)", quote(v))
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
				if u.Scheme == "postgres" || u.Scheme == "postgresql" {
					return "DEPLOYBOT_DATABASE_PASSWORD", true
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

var envPatternRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*\*?$`)

// envPattern checks an infra.terraform_env entry: a variable name, or a
// prefix ending in "*". Terraform runs code from the infrastructure
// repository (providers, local-exec), so the bot's own credentials must
// never be passed on, not even by a pattern as broad as "GIT*" or "*".
func envPattern(v string) string {
	if !envPatternRe.MatchString(v) && v != "*" {
		return fmt.Sprintf("%s is not a variable name or a prefix ending in * (like AWS_* or GOOGLE_APPLICATION_CREDENTIALS)", quote(v))
	}
	if childenv.PatternReachesForbidden(v) {
		return fmt.Sprintf("%s would pass deploybot's own credentials to Terraform: variables starting with %s are never given to it; list only what the Terraform backend and providers need", quote(v), strings.Join(childenv.Forbidden, ", "))
	}
	return ""
}
