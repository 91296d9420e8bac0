package demo

import (
	"context"
	"os/exec"
	"regexp"
	"strings"

	"github.com/deploybot/deploybot/integrations/github/githubtest"
	"github.com/deploybot/deploybot/integrations/sentry/sentrytest"
)

// Records are what the outside systems saw: what a careful operator would
// check after the runbook.
type Records struct {
	// Release is the drafted release as GitHub holds it now; Publishes
	// counts the requests that edited a release (publishing is one).
	Release   githubtest.Release
	Publishes int
	// BuildRuns are the monorepo's build workflow runs.
	BuildRuns []githubtest.Run
	// ChangelogPR is the bot's changelog PR, Reviews the reviews on it.
	ChangelogPR githubtest.PR
	Reviews     []githubtest.Review
	// InfraPRs are the pull requests on the infrastructure repository.
	InfraPRs []githubtest.PR
	// Dispatches are the rollback workflow's dispatches.
	Dispatches []githubtest.Dispatch
	// SentryDeploys are the deploy markers of Version.
	SentryDeploys []sentrytest.Deploy
	// MainVersions is the image tag each environment's file has on the
	// infrastructure repository's main branch.
	MainVersions map[string]string
}

// Records reads the servers and the infrastructure repository.
func (w *World) Records(ctx context.Context) Records {
	rec := Records{Publishes: w.GitHub.Requests("PATCH", "/repos/"+Monorepo+"/releases/"),
		BuildRuns: w.GitHub.Runs(Monorepo, BuildWorkflow), InfraPRs: w.GitHub.PRs(InfraRep),
		Dispatches: w.GitHub.Dispatches(InfraRep, RollbackWorkflow), SentryDeploys: w.Sentry.Deploys(w.Version),
		MainVersions: map[string]string{}}
	for _, r := range w.GitHub.Releases(Monorepo) {
		if r.Tag == w.Release {
			rec.Release = r
		}
	}
	for _, p := range w.GitHub.PRs(Monorepo) {
		if p.Head == "changelog/"+w.Release {
			rec.ChangelogPR = p
			rec.Reviews = w.GitHub.Reviews(Monorepo, p.Number)
		}
	}
	for _, env := range []string{"dev", "prod"} {
		out, err := exec.CommandContext(ctx, "git", "--git-dir", w.Remote, "cat-file", "blob", "main:environments/"+env+"/ingestion-server.tf").Output()
		if err == nil {
			if m := imageTag.FindSubmatch(out); m != nil {
				rec.MainVersions[env] = string(m[1])
			}
		}
	}
	return rec
}

var imageTag = regexp.MustCompile(`(?m)^\s*image_tag\s*=\s*"([^"]+)"`)

// Published reports whether the drafted release is published.
func (r Records) Published() bool { return r.Release.Tag != "" && !r.Release.Draft }

// InfraPR is the infrastructure PR opened from branch, if any.
func (r Records) InfraPR(branch string) (githubtest.PR, bool) {
	for _, p := range r.InfraPRs {
		if p.Head == branch || strings.HasSuffix(p.Head, ":"+branch) {
			return p, true
		}
	}
	return githubtest.PR{}, false
}
