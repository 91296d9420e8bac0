// Package childenv builds the environment of child processes (git,
// Terraform) from an allow list. deploybot's own process holds the Slack,
// GitHub, Sentry and Airflow credentials in its environment; a deny list
// over os.Environ() lets through every credential nobody thought to list,
// so children get only what is named here or by their caller.
package childenv

import (
	"os"
	"strings"
)

// Baseline is what every child gets: how to find programs and the user's
// files, the locale and time zone, where temporary files go, the proxy
// settings and the CA bundle a corporate network needs. Entries ending in
// "*" are prefixes.
var Baseline = []string{
	"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_*", "TZ", "TMPDIR",
	"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
	"SSL_CERT_FILE", "SSL_CERT_DIR",
}

// Forbidden are prefixes no child may ever inherit, whatever a caller or the
// configuration allows: deploybot's own credentials live under them.
// PGPASS covers PGPASSWORD and PGPASSFILE, where the PostgreSQL store's
// password may come from.
var Forbidden = []string{"SLACK_", "SENTRY_", "AIRFLOW_", "GITHUB_", "DEPLOYBOT_", "PGPASS"}

// IsForbidden reports whether name is one of deploybot's own variables.
func IsForbidden(name string) bool {
	for _, p := range Forbidden {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// PatternReachesForbidden reports whether an allow-list pattern (a name, or
// a prefix ending in "*") could match a forbidden variable: "SLACK_X",
// "GITHUB_*", but also "GIT*" or "*", which would let GITHUB_TOKEN through.
func PatternReachesForbidden(pattern string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		for _, f := range Forbidden {
			if strings.HasPrefix(f, prefix) || strings.HasPrefix(prefix, f) {
				return true
			}
		}
		return false
	}
	return IsForbidden(pattern)
}

// Match reports whether name matches one of patterns.
func Match(name string, patterns []string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if name == p {
			return true
		}
	}
	return false
}

// Inherit returns the variables of the current process that match Baseline
// or extra, never a forbidden one.
func Inherit(extra []string) map[string]string {
	env := make(map[string]string)
	for _, kv := range os.Environ() {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || IsForbidden(k) {
			continue
		}
		if Match(k, Baseline) || Match(k, extra) {
			env[k] = v
		}
	}
	return env
}
