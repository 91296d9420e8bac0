package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/slack-go/slack"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/integrations/airflow"
	"github.com/deploybot/deploybot/integrations/github"
	"github.com/deploybot/deploybot/internal/redact"
)

// `deploybot check-config --online`: every configured token and URL is
// tried the way the bot will use it, and each problem is named on a line of
// its own. No line ever carries a credential: answers are reduced to status
// codes and the services' own error words, then masked.

// onlineCheck is one thing to try; it returns what it found (ok) or what is
// wrong and what to do about it.
type onlineCheck struct {
	name string
	run  func(ctx context.Context) (string, error)
}

func (m *Main) checkOnline(ctx context.Context) error {
	cfg := m.Config
	var checks []onlineCheck
	checks = append(checks, slackChecks(cfg)...)
	if cfg.GitHub != nil {
		checks = append(checks, githubChecks(cfg)...)
	}
	if cfg.Airflow != nil {
		checks = append(checks, airflowChecks(cfg)...)
	}
	if cfg.Sentry != nil {
		checks = append(checks, sentryCheck(cfg))
	}
	values := redact.NewValuesMin(4, cfg.Secrets.Values()...)
	mask := func(s string) string { return values.String(redact.ScrubString(s)) }
	failed, skipped := 0, 0
	for _, c := range checks {
		cctx, cancel := context.WithTimeout(ctx, cfg.HTTPTimeout)
		found, err := c.run(cctx)
		cancel()
		switch {
		case err != nil:
			failed++
			fmt.Fprintf(m.Stdout, "FAIL %s: %s\n", c.name, mask(err.Error()))
		case strings.HasPrefix(found, "not set"):
			skipped++
			fmt.Fprintf(m.Stdout, "skip %s: %s\n", c.name, mask(found))
		default:
			fmt.Fprintf(m.Stdout, "ok   %s: %s\n", c.name, mask(found))
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d online checks failed", failed, len(checks))
	}
	if skipped > 0 {
		// A check not made is not a pass.
		fmt.Fprintf(m.Stdout, "%d of %d online checks passed; %d not made (see skip above)\n", len(checks)-skipped, len(checks), skipped)
		return nil
	}
	fmt.Fprintf(m.Stdout, "all %d online checks passed\n", len(checks))
	return nil
}

// onlineClient bounds every request; the context bounds each check.
func onlineClient(cfg *config.Config) *http.Client { return &http.Client{Timeout: cfg.HTTPTimeout} }

// unreachable words a failure to get any answer.
func unreachable(what, url string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s (%s) did not answer within http_timeout; check the URL and the network", what, url)
	}
	return fmt.Errorf("cannot reach %s (%s): %v; check the URL and the network", what, url, redact.Scrub(err))
}

func slackChecks(cfg *config.Config) []onlineCheck {
	api := func(token string) *slack.Client {
		return slack.New(token, slack.OptionAPIURL(cfg.Slack.APIURL), slack.OptionHTTPClient(onlineClient(cfg)),
			slack.OptionAppLevelToken(cfg.Secrets.SlackAppToken.Reveal()))
	}
	slackErr := func(env, method string, err error, fix string) error {
		var se slack.SlackErrorResponse
		if errors.As(err, &se) || !strings.Contains(err.Error(), " ") {
			return fmt.Errorf("Slack refused %s in %s (%s): %s", env, method, err.Error(), fix)
		}
		return unreachable("Slack", cfg.Slack.APIURL, err)
	}
	return []onlineCheck{
		{"slack bot token (SLACK_BOT_TOKEN)", func(ctx context.Context) (string, error) {
			if !cfg.Secrets.SlackBotToken.IsSet() {
				return "not set: needed by the Slack bot (the console works without it)", nil
			}
			who, err := api(cfg.Secrets.SlackBotToken.Reveal()).AuthTestContext(ctx)
			if err != nil {
				return "", slackErr("SLACK_BOT_TOKEN", "auth.test", err, "use the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page, after installing the app")
			}
			return fmt.Sprintf("auth.test: bot @%s in workspace %s (%s)", who.User, who.Team, who.TeamID), nil
		}},
		{"slack app token (SLACK_APP_TOKEN)", func(ctx context.Context) (string, error) {
			if !cfg.Secrets.SlackAppToken.IsSet() {
				return "not set: needed by the Slack bot for Socket Mode (the console works without it)", nil
			}
			if _, _, err := api(cfg.Secrets.SlackBotToken.Reveal()).StartSocketModeContext(ctx); err != nil {
				return "", slackErr("SLACK_APP_TOKEN", "apps.connections.open", err, "use an app-level token (xapp-…) with the connections:write scope, and turn Socket Mode on for the app")
			}
			return "apps.connections.open: Socket Mode can connect", nil
		}},
	}
}

func githubChecks(cfg *config.Config) []onlineCheck {
	s := cfg.Secrets
	gh, err := github.New(cfg.GitHub.APIURL, github.Auth{Token: s.GitHubToken.Reveal(), AppID: s.GitHubAppID,
		InstallationID: s.GitHubAppInstallationID, PrivateKey: []byte(s.GitHubAppPrivateKey.Reveal())},
		github.WithHTTPClient(onlineClient(cfg)), github.WithAttempts(1))
	cred, vars := "GITHUB_TOKEN", "GITHUB_TOKEN"
	if s.GitHubAppID != 0 {
		cred, vars = "the GitHub App", "GITHUB_APP_ID, GITHUB_APP_INSTALLATION_ID, GITHUB_APP_PRIVATE_KEY"
	}
	out := []onlineCheck{{"github credentials (" + vars + ")", func(ctx context.Context) (string, error) {
		if err != nil {
			return "", err
		}
		who, err := gh.Actor(ctx)
		if err != nil {
			return "", fmt.Errorf("GitHub did not accept %s: %v", cred, err)
		}
		if s.GitHubAppID != 0 {
			// The App is known; its installation is what gives access.
			if _, err := gh.GitToken(ctx); err != nil {
				return "", fmt.Errorf("GitHub knows the App as %s but gives no token for installation %d (%v): install the App on the repositories' account and set GITHUB_APP_INSTALLATION_ID to that installation's id", who, s.GitHubAppInstallationID, err)
			}
		}
		return "GitHub knows deploybot as " + who, nil
	}}}
	for _, repo := range []struct{ key, name, needs string }{
		{"github.monorepo", cfg.GitHub.Monorepo, "publish its releases and approve its changelog PRs"},
		{"github.infra_repo", cfg.GitHub.InfraRepo, "push run branches, open PRs and dispatch the rollback workflow"},
	} {
		out = append(out, onlineCheck{repo.key + " " + repo.name, func(ctx context.Context) (string, error) {
			if err != nil {
				return "", fmt.Errorf("no GitHub credentials to try it with")
			}
			tok, terr := gh.GitToken(ctx)
			if terr != nil {
				return "", fmt.Errorf("no token from %s: %v", cred, terr)
			}
			url := strings.TrimSuffix(cfg.GitHub.APIURL, "/") + "/repos/" + repo.name
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Accept", "application/vnd.github+json")
			var body struct {
				FullName    string          `json:"full_name"`
				Permissions map[string]bool `json:"permissions"`
			}
			code, err := getJSON(onlineClient(cfg), req, &body)
			switch {
			case err != nil:
				return "", unreachable("GitHub", cfg.GitHub.APIURL, err)
			case code == http.StatusUnauthorized:
				return "", fmt.Errorf("GitHub refused %s (401 Bad credentials): make a new token or check the App's key", cred)
			case code == http.StatusNotFound || code == http.StatusForbidden:
				return "", fmt.Errorf("%s cannot see %s (%d): check the name in %s, and give the token or App installation access to it", cred, repo.name, code, repo.key)
			case code != http.StatusOK:
				return "", fmt.Errorf("GitHub answered %d for %s", code, repo.name)
			}
			// A user's token says what it may do; an installation token
			// does not, and its permissions are the App's.
			if p, ok := body.Permissions["push"]; ok && !p {
				return "", fmt.Errorf("%s can read %s but not write to it; deploybot must %s: grant write access (Contents: read and write)", cred, repo.name, repo.needs)
			}
			return "readable" + map[bool]string{true: " and writable", false: ""}[body.Permissions["push"]], nil
		}})
	}
	return out
}

func airflowChecks(cfg *config.Config) []onlineCheck {
	base := strings.TrimSuffix(cfg.Airflow.URL, "/")
	health := base + "/api/v1/health"
	if cfg.Airflow.APIVersion == 3 {
		health = base + "/api/v2/monitor/health"
	}
	return []onlineCheck{
		{"airflow " + health, func(ctx context.Context) (string, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, health, nil)
			var body map[string]struct {
				Status string `json:"status"`
			}
			code, err := getJSON(onlineClient(cfg), req, &body)
			switch {
			case err != nil:
				return "", unreachable("Airflow", base, err)
			case code != http.StatusOK:
				return "", fmt.Errorf("the health endpoint answered %d: check airflow.url and airflow.api_version (%d)", code, cfg.Airflow.APIVersion)
			}
			// Both parts deploybot relies on must say "healthy": an answer
			// without them (a proxy's {}, an error page in JSON) is no
			// answer, never good news.
			var bad []string
			for _, part := range []string{"metadatabase", "scheduler"} {
				switch st, ok := body[part]; {
				case !ok || st.Status == "":
					bad = append(bad, "it did not say whether the "+part+" is healthy")
				case st.Status != "healthy":
					bad = append(bad, part+" is "+st.Status)
				}
			}
			if len(bad) > 0 {
				return "", fmt.Errorf("Airflow answers but %s: a data refresh cannot be seen reliably", strings.Join(bad, ", "))
			}
			return "healthy", nil
		}},
		{"airflow credentials (AIRFLOW_USERNAME, AIRFLOW_PASSWORD) and data_refresh_dags", func(ctx context.Context) (string, error) {
			af := airflow.New(cfg.Airflow.URL, cfg.Airflow.APIVersion, cfg.Secrets.AirflowUsername, cfg.Secrets.AirflowPassword.Reveal(),
				airflow.WithHTTPClient(onlineClient(cfg)))
			runs, err := af.ActiveRuns(ctx, cfg.Airflow.DataRefreshDAGs)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%d DAGs readable, %d data refresh runs active now", len(cfg.Airflow.DataRefreshDAGs), len(runs)), nil
		}},
	}
}

func sentryCheck(cfg *config.Config) onlineCheck {
	url := strings.TrimSuffix(cfg.Sentry.URL, "/") + "/api/0/projects/" + cfg.Sentry.Org + "/" + cfg.Sentry.Project + "/"
	return onlineCheck{"sentry project " + cfg.Sentry.Org + "/" + cfg.Sentry.Project + " (SENTRY_AUTH_TOKEN)", func(ctx context.Context) (string, error) {
		if !cfg.Secrets.SentryAuthToken.IsSet() {
			return "", errors.New("SENTRY_AUTH_TOKEN is not set: the watch cannot read issues without it")
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+cfg.Secrets.SentryAuthToken.Reveal())
		var body struct {
			Slug string `json:"slug"`
		}
		code, err := getJSON(onlineClient(cfg), req, &body)
		switch {
		case err != nil:
			return "", unreachable("Sentry", cfg.Sentry.URL, err)
		case code == http.StatusUnauthorized:
			return "", errors.New("Sentry refused SENTRY_AUTH_TOKEN (401): make a new auth token")
		case code == http.StatusForbidden:
			return "", errors.New("SENTRY_AUTH_TOKEN may not read the project (403): give it the project:read, event:read and project:releases scopes")
		case code == http.StatusNotFound:
			return "", fmt.Errorf("Sentry has no project %s in organization %s that the token can see (404): check sentry.org and sentry.project", cfg.Sentry.Project, cfg.Sentry.Org)
		case code != http.StatusOK:
			return "", fmt.Errorf("Sentry answered %d", code)
		}
		return "project " + body.Slug + " readable", nil
	}}
}

// getJSON sends req and decodes a JSON answer into out when it is 200; the
// body of any other answer is read and dropped (it is not shown: it could
// echo a request).
func getJSON(c *http.Client, req *http.Request, out any) (int, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, out); err != nil {
			return 0, fmt.Errorf("the answer is not JSON (%v): is this the right URL?", err)
		}
	}
	return resp.StatusCode, nil
}
