package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/deploybot/deploybot/internal/demo"
	"github.com/deploybot/deploybot/steps"
)

// summary is what the demo prints at its end: each run with its steps and
// their durations, the versions before and after per environment, the
// approvals with their plan hashes, the infrastructure PR, and what the
// test servers recorded.
func (d *driver) summary(ctx context.Context, rec demo.Records) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	rule := strings.Repeat("─", 78)
	total := time.Duration(0)
	if !d.begin.IsZero() {
		total = time.Since(d.begin)
	}
	p("\n%s\nSummary of the demo (scenario %s), %s in all", rule, d.w.Scenario, round(total))
	runs, err := d.m.Store.Runs(ctx, "", 50)
	if err != nil {
		p("(could not read the runs: %v)", err)
	}
	slices.Reverse(runs) // oldest first
	p("%s", d.verdict(runs, rec))
	if d.err != nil {
		p("The demo stopped early: %v", d.err)
	}
	if len(runs) == 0 {
		p("\nNo run was started.")
	}
	for _, r := range runs {
		p("\n%s  %s: %s", r.ID, r.Title(), outcome(r))
		for _, st := range r.Steps {
			note := plainText(st.Note)
			if len(note) > 90 {
				note = note[:87] + "…"
			}
			p("  %2d. %-46s %-11s %7s  %s", st.Index+1, st.Title, st.Status, stepDuration(st), note)
		}
	}

	p("\nVersions")
	for _, r := range runs {
		switch r.Kind {
		case steps.KindDeploy:
			for _, env := range d.m.Config.Services[0].Environments {
				before := r.Data["previous:"+env.Name]
				if before == "" {
					before = "?"
				}
				p("  %-5s %s → %s  (%s, %s)", env.Name, before, r.Version, applied(r, env.Name), r.ID)
			}
		case steps.KindRollback:
			if r.State == steps.RunSucceeded {
				p("  prod  rolled back to %s by the %s workflow (%s)", r.Version, demo.RollbackWorkflow, r.ID)
			} else {
				p("  prod  rollback to %s: %s (%s)", r.Version, r.State, r.ID)
			}
		}
	}
	if len(rec.MainVersions) > 0 {
		p("  the infrastructure repository's main now says: dev %s, prod %s", rec.MainVersions["dev"], rec.MainVersions["prod"])
	}

	p("\nApprovals")
	n := 0
	for _, r := range runs {
		apps, err := d.m.Store.Approvals(ctx, r.ID)
		if err != nil {
			p("  (could not read the approvals of %s: %v)", r.ID, err)
			continue
		}
		for _, a := range apps {
			n++
			line := fmt.Sprintf("  %s  “%s”: %s by %s at %s", r.ID, titleOf(r, a.StepIndex), a.Decision, a.Approver, a.At.UTC().Format("15:04:05 UTC"))
			if a.PlanSHA256 != "" {
				line += fmt.Sprintf(", plan sha256 %s from commit %s", shortHash(a.PlanSHA256), shortHash(a.Commit))
			}
			p("%s", line)
		}
	}
	if n == 0 {
		p("  none")
	}
	for _, e := range d.events {
		p("  %s", e)
	}

	p("\nInfrastructure PR")
	opened := false
	for _, r := range runs {
		branch := r.Data["infra_branch"]
		pr, ok := rec.InfraPR(branch)
		if r.Kind != steps.KindDeploy || branch == "" || !ok {
			continue
		}
		opened = true
		merged := "left open for a reviewer"
		if rec.MainVersions["prod"] == r.Version {
			merged = "merged into main of the local infrastructure repository (infra.merge_on_success)"
		}
		p("  #%d “%s”, %s → %s, %s", pr.Number, pr.Title, pr.Head, pr.Base, merged)
		if url := r.Data["infra_pr"]; url != "" {
			p("  %s", url)
		}
	}
	if !opened {
		p("  none: no deploy got as far as opening it")
	}

	p("\nWhat the test servers recorded")
	state := "still a draft"
	if rec.Published() {
		state = "published"
	}
	p("  GitHub  release %s: %s (%d publish request(s))", d.w.Release, state, rec.Publishes)
	p("  GitHub  %s runs: %s", demo.BuildWorkflow, runList(rec))
	if rec.ChangelogPR.Number != 0 {
		var rs []string
		for _, rv := range rec.Reviews {
			rs = append(rs, fmt.Sprintf("%s by %s (%q)", rv.State, rv.User, rv.Body))
		}
		if len(rs) == 0 {
			rs = []string{"none"}
		}
		p("  GitHub  changelog PR #%d by %s: reviews: %s", rec.ChangelogPR.Number, rec.ChangelogPR.User, strings.Join(rs, "; "))
	} else {
		p("  GitHub  changelog PR: not opened")
	}
	p("  GitHub  pull requests on %s: %d", demo.InfraRep, len(rec.InfraPRs))
	var ds []string
	for _, x := range rec.Dispatches {
		ds = append(ds, fmt.Sprintf("ref %s, tag %v, actor %v", x.Ref, x.Inputs["tag"], x.Inputs["actor"]))
	}
	if len(ds) == 0 {
		ds = []string{"none"}
	}
	p("  GitHub  %s dispatches: %d (%s)", demo.RollbackWorkflow, len(rec.Dispatches), strings.Join(ds, "; "))
	var envs []string
	for _, x := range rec.SentryDeploys {
		envs = append(envs, x.Environment)
	}
	p("  Sentry  deploy markers for %s: %d (%s)", d.w.Version, len(rec.SentryDeploys), strings.Join(envs, ", "))
	for _, r := range runs {
		if st := r.StepByID("sentry"); st != nil && st.Note != "" {
			p("  Sentry  %s watch: %s", r.ID, plainText(st.Note))
		}
	}
	p("\nThe demo's files (infrastructure repository, Terraform state, database) are in %s", d.w.Dir)
	p("%s", rule)
	return b.String()
}

func outcome(r *steps.Run) string {
	s := string(r.State)
	if !r.EndedAt.IsZero() {
		s += " after " + round(r.EndedAt.Sub(r.CreatedAt)).String()
	}
	s += ", requested by " + r.Requester
	if r.Outcome != "" && r.State != steps.RunSucceeded {
		s += ": " + plainText(r.Outcome)
	}
	return s
}

func stepDuration(st steps.StepState) string {
	if st.StartedAt.IsZero() || st.EndedAt.IsZero() || st.EndedAt.Before(st.StartedAt) {
		return "-"
	}
	if d := st.EndedAt.Sub(st.StartedAt); d < 50*time.Millisecond {
		return "<0.1s"
	}
	return round(st.EndedAt.Sub(st.StartedAt)).String()
}

func round(d time.Duration) time.Duration {
	if d > 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

func applied(r *steps.Run, env string) string {
	switch {
	case r.Data["plan:"+env+":applied"] == "true":
		return "applied"
	case r.Data["plan:"+env+":nochanges"] == "true":
		return "no changes"
	}
	if st := r.StepByID("apply:" + env); st != nil && st.Status == steps.StepFailed {
		return "apply failed"
	}
	return "not applied"
}

func titleOf(r *steps.Run, i int) string {
	if st := r.Step(i); st != nil {
		return st.Title
	}
	return fmt.Sprint("step ", i+1)
}

func shortHash(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	if s == "" {
		return "?"
	}
	return s
}

func runList(rec demo.Records) string {
	if len(rec.BuildRuns) == 0 {
		return "none"
	}
	var out []string
	for _, r := range rec.BuildRuns {
		out = append(out, fmt.Sprintf("%s on %s: %s %s", r.Event, r.HeadBranch, r.Status, r.Conclusion))
	}
	return strings.Join(out, "; ")
}

// verdict says in one sentence how the scenario went.
func (d *driver) verdict(runs []*steps.Run, rec demo.Records) string {
	var dep, rb *steps.Run
	for _, r := range runs {
		if r.Kind == steps.KindDeploy && dep == nil {
			dep = r
		}
		if r.Kind == steps.KindRollback && rb == nil {
			rb = r
		}
	}
	switch {
	case dep == nil:
		return "No deploy was started."
	case dep.State == steps.RunSucceeded:
		merged := ""
		if rec.MainVersions["prod"] == dep.Version {
			merged = ", which was merged into main"
		}
		return fmt.Sprintf("%s deployed %s to dev and prod and opened the infrastructure PR%s.", dep.ID, dep.Version, merged)
	case d.w.Scenario == demo.FailedApply && rb != nil && rb.State == steps.RunSucceeded:
		return fmt.Sprintf("Failure path, as the scenario intends: production's apply of %s failed in %s, which was cancelled "+
			"(data_refresh_cleared restored to false); %s rolled production back to %s with the rollback workflow (%d dispatch).",
			dep.Version, dep.ID, rb.ID, rb.Version, len(rec.Dispatches))
	}
	return fmt.Sprintf("%s is %s: the scenario did not finish.", dep.ID, dep.State)
}
