package steps

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/deploybot/deploybot/config"
)

// GitHub is what the runbook's GitHub steps ask of GitHub.
type GitHub interface {
	NewestDraft(ctx context.Context, repo, prefix string) (*Release, error)
	LatestPublished(ctx context.Context, repo, prefix string) (*Release, error)
	ReleaseByTag(ctx context.Context, repo, tag string) (*Release, error)
	Publish(ctx context.Context, repo string, id int64) (*Release, error)
	CompareURL(repo, from, to string) string
	WorkflowRuns(ctx context.Context, repo, file string, f RunFilter) ([]WorkflowRun, error)
	WorkflowRun(ctx context.Context, repo string, id int64) (*WorkflowRun, error)
	Dispatch(ctx context.Context, repo, file, ref string, inputs map[string]any) error
	OpenPRByHead(ctx context.Context, repo, head string) (*PR, error)
	Approve(ctx context.Context, repo string, number int, body string) error
	CreatePR(ctx context.Context, repo, head, base, title, body string) (*PR, error)
	ImageTag(releaseTag, releasePrefix, imagePrefix string) (string, error)
}

// Release is a GitHub release of the monorepo.
type Release struct {
	ID          int64
	Tag, Name   string
	Body        string
	HTMLURL     string
	Draft       bool
	PublishedAt time.Time
}

// WorkflowRun is one run of a GitHub Actions workflow.
type WorkflowRun struct {
	ID                                 int64
	Event, Status, Conclusion, HTMLURL string
	HeadBranch                         string
	CreatedAt                          time.Time
}

// RunFilter narrows a workflow's runs.
type RunFilter struct {
	Event, Branch string
	CreatedAfter  time.Time
}

// PR is a pull request.
type PR struct {
	Number         int
	Title, HTMLURL string
	User           string
}

// AutomateGitHub automates the release, build, changelog, infrastructure PR
// and rollback steps, and checks rollback tags against published releases.
func (rb *Runbooks) AutomateGitHub(gh GitHub, cfg *config.GitHub, baseBranch string) {
	g := &ghSteps{gh: gh, cfg: cfg, base: baseBranch}
	rb.prs = g
	rb.Automate("release", func(spec Spec, svc *config.Service, m *Manual) Step {
		return &releaseStep{ghStep{S: spec, g: g, svc: svc}}
	})
	rb.Automate("build", func(spec Spec, svc *config.Service, m *Manual) Step {
		if svc.BuildWorkflow == "" {
			return nil
		}
		return &buildStep{ghStep{S: spec, g: g, svc: svc}}
	})
	rb.Automate("changelog", func(spec Spec, svc *config.Service, m *Manual) Step {
		return &changelogStep{ghStep{S: spec, g: g, svc: svc}}
	})
	rb.Automate("rollback", func(spec Spec, svc *config.Service, m *Manual) Step {
		if svc.Rollback == nil {
			return nil
		}
		spec.Idempotent = false // a dispatch must never happen twice
		// "Dispatch again" redeploys production: four eyes, like Confirm.
		for _, e := range svc.Environments {
			spec.FourEyes = spec.FourEyes || e.FourEyes
		}
		return &rollbackStep{ghStep{S: spec, g: g, svc: svc}}
	})
	rb.Validate(func(ctx context.Context, req StartRequest) error {
		svc := rb.cfg.Service(req.Service)
		if req.Kind != KindRollback || svc == nil {
			return nil
		}
		tag := releaseTag(svc, req.Version)
		rel, err := gh.ReleaseByTag(ctx, cfg.Monorepo, tag)
		if err != nil {
			return fmt.Errorf("checking release %s on GitHub: %w", tag, err)
		}
		if rel == nil || rel.Draft {
			return refuse("There is no published release `%s` in %s, so there is no image `%s` to roll back to. Check the version in the changelogs and try again; nothing was dispatched.", tag, cfg.Monorepo, Escape(req.Version))
		}
		return nil
	})
}

// releaseTag is the monorepo release tag of an image tag:
// rel-2024.09.09.05.40.20 → ingestion_server-2024.09.09.05.40.20.
func releaseTag(svc *config.Service, imageTag string) string {
	return svc.ReleaseTagPrefix + strings.TrimPrefix(imageTag, svc.ImageTagPrefix)
}

type ghSteps struct {
	gh   GitHub
	cfg  *config.GitHub
	base string // the infrastructure repo's base branch
}

type ghStep struct {
	S   Spec
	g   *ghSteps
	svc *config.Service
}

func (s *ghStep) Spec() Spec { return s.S }

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// deadline is a step's time limit, saved on first start. A restart of
// deploybot (which starts the step again by itself) keeps it; a person's
// Retry or Re-check (a new attempt) gets a new one.
func deadline(x *Exec, limit time.Duration) time.Time {
	attempt := fmt.Sprint(x.Step.Attempt)
	if v := x.Get("deadline"); v != "" && (x.Get("deadline_attempt") == attempt || x.Step.Data[resumedKey] == attempt) {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			_ = x.Save("deadline_attempt", attempt)
			return t
		}
	}
	t := time.Now().Add(limit)
	_ = x.Save("deadline", t.UTC().Format(time.RFC3339Nano))
	_ = x.Save("deadline_attempt", attempt)
	return t
}

// releaseStep previews the drafted release and publishes it on an
// approver's click. The version of the run comes from it when /deploy named
// none.
type releaseStep struct{ ghStep }

func (s *releaseStep) Start(ctx context.Context, x *Exec) Result {
	repo, prefix := s.g.cfg.Monorepo, s.svc.ReleaseTagPrefix
	draft, err := s.g.gh.NewestDraft(ctx, repo, prefix)
	if err != nil {
		return Failed(fmt.Errorf("reading the releases of %s: %w", repo, err))
	}
	if v := x.Run.Version; v != "" {
		want := releaseTag(s.svc, v)
		if draft == nil || draft.Tag != want {
			rel, err := s.g.gh.ReleaseByTag(ctx, repo, want)
			if err != nil {
				return Failed(fmt.Errorf("reading release %s of %s: %w", want, repo, err))
			}
			if rel == nil || rel.Draft {
				return Failed(fmt.Errorf("%s has no published or drafted release `%s` for image `%s`: check the tag", repo, want, v))
			}
			s.remember(x, rel)
			return Done(fmt.Sprintf("release <%s|%s> is already published", rel.HTMLURL, Escape(rel.Tag)))
		}
	}
	if draft == nil {
		latest, err := s.g.gh.LatestPublished(ctx, repo, prefix)
		if err != nil {
			return Failed(fmt.Errorf("reading the releases of %s: %w", repo, err))
		}
		if latest == nil {
			return Failed(fmt.Errorf("%s has no %s release, drafted or published", repo, prefix))
		}
		img, err := s.g.gh.ImageTag(latest.Tag, prefix, s.svc.ImageTagPrefix)
		if err != nil {
			return Failed(err)
		}
		x.Set("candidate", latest.Tag)
		x.Set("candidate_image", img)
		return Wait(fmt.Sprintf("There is no drafted %s release: nothing is unreleased. Go on with the latest published release <%s|%s> (image `%s`)?", s.svc.Name, latest.HTMLURL, Escape(latest.Tag), img),
			Button{Verb: VerbConfirm, Label: "Use " + img, Style: "primary"})
	}
	img, err := s.g.gh.ImageTag(draft.Tag, prefix, s.svc.ImageTagPrefix)
	if err != nil {
		return Failed(fmt.Errorf("drafted release %s: %w", draft.Tag, err))
	}
	x.SetVersion(img)
	x.Set("draft_id", fmt.Sprint(draft.ID))
	x.Set("draft_tag", draft.Tag)
	s.preview(ctx, x, draft)
	return Wait(fmt.Sprintf("Publish the drafted release <%s|%s>? Publishing builds and tags image `%s`. Skip if it is already published.", draft.HTMLURL, Escape(draft.Name), img),
		Button{Verb: VerbPublish, Label: "Publish", Style: "primary"},
		Button{Verb: VerbSkip, Label: "Skip"})
}

func (s *releaseStep) preview(ctx context.Context, x *Exec, draft *Release) {
	compare := ""
	if prev, err := s.g.gh.LatestPublished(ctx, s.g.cfg.Monorepo, s.svc.ReleaseTagPrefix); err == nil && prev != nil {
		compare = fmt.Sprintf("\n<%s|Changes since %s>", s.g.gh.CompareURL(s.g.cfg.Monorepo, prev.Tag, draft.Tag), Escape(prev.Tag))
	}
	body := strings.TrimSpace(draft.Body)
	if body == "" {
		body = "(no release notes)"
	}
	body, whole := fitLines(Escape(body), 2200)
	if !whole {
		body += "\n… (trimmed; see the release)"
	}
	x.Say(":package: *Release preview:* <%s|%s> (tag `%s`)%s\n```\n%s\n```", draft.HTMLURL, Escape(draft.Name), Escape(draft.Tag), compare, body)
}

func (s *releaseStep) remember(x *Exec, rel *Release) {
	x.SetRunValue("release_tag", rel.Tag)
	x.SetRunValue("release_url", rel.HTMLURL)
	at := rel.PublishedAt
	if at.IsZero() {
		at = time.Now()
	}
	x.SetRunValue("published_at", at.UTC().Format(time.RFC3339Nano))
}

func (s *releaseStep) Act(ctx context.Context, x *Exec, a Action) Result {
	repo := s.g.cfg.Monorepo
	switch a.Verb {
	case VerbPublish:
		var id int64
		fmt.Sscan(x.Get("draft_id"), &id)
		rel, err := s.g.gh.Publish(ctx, repo, id)
		if err != nil {
			return Failed(fmt.Errorf("publishing %s: %w", x.Get("draft_tag"), err))
		}
		if rel.PublishedAt.IsZero() {
			rel.PublishedAt = time.Now()
		}
		s.remember(x, rel)
		return Done(fmt.Sprintf("<%s|%s> published by <@%s>", rel.HTMLURL, Escape(rel.Tag), a.User))
	case VerbSkip:
		// Skip is for a release already published by hand: check it is.
		rel, err := s.g.gh.ReleaseByTag(ctx, repo, x.Get("draft_tag"))
		if err != nil {
			return Failed(fmt.Errorf("checking release %s: %w", x.Get("draft_tag"), err))
		}
		if rel == nil || rel.Draft {
			r := Wait(fmt.Sprintf("`%s` is still a draft on GitHub, so skipping would wait for an image that is never built. Publish it, or Cancel.", Escape(x.Get("draft_tag"))),
				Button{Verb: VerbPublish, Label: "Publish", Style: "primary"}, Button{Verb: VerbSkip, Label: "Skip"})
			r.Say = fmt.Sprintf(":warning: <@%s>: `%s` is not published yet.", a.User, Escape(x.Get("draft_tag")))
			return r
		}
		s.remember(x, rel)
		return Skipped(fmt.Sprintf("skipped by <@%s>: already published", a.User))
	case VerbConfirm:
		x.SetVersion(x.Get("candidate_image"))
		rel, err := s.g.gh.ReleaseByTag(ctx, repo, x.Get("candidate"))
		if err != nil || rel == nil {
			return Failed(fmt.Errorf("reading release %s: %v", x.Get("candidate"), err))
		}
		s.remember(x, rel)
		return Done(fmt.Sprintf("going on with the published %s (<@%s>)", Escape(rel.Tag), a.User))
	}
	return unexpected(s.S, a)
}

// buildStep follows the monorepo's build workflow run for the published
// release until the image is built and tagged.
type buildStep struct{ ghStep }

func (s *buildStep) Start(ctx context.Context, x *Exec) Result {
	repo, wf := s.g.cfg.Monorepo, s.svc.BuildWorkflow
	tag := x.RunValue("release_tag")
	if tag == "" {
		tag = releaseTag(s.svc, x.Run.Version)
	}
	after := time.Now().Add(-24 * time.Hour)
	if t, err := time.Parse(time.RFC3339Nano, x.RunValue("published_at")); err == nil {
		after = t.Add(-2 * time.Minute) // clocks differ
	}
	end := deadline(x, s.g.cfg.BuildTimeout)
	for {
		runs, err := s.g.gh.WorkflowRuns(ctx, repo, wf, RunFilter{Event: "release", Branch: tag, CreatedAfter: after})
		if err != nil {
			return Failed(fmt.Errorf("reading runs of %s: %w", wf, err))
		}
		if len(runs) > 0 {
			r := runs[0]
			if r.Status == "completed" {
				if r.Conclusion == "success" {
					return Done(fmt.Sprintf("image `%s` built and tagged: <%s|build run>", Escape(x.Run.Version), r.HTMLURL))
				}
				return FailedText("the build <%s|%s run> for %s concluded %s: the image may not exist. Look at the run, then Retry or Cancel", r.HTMLURL, wf, Escape(tag), Escape(r.Conclusion))
			}
			x.Live("build", fmt.Sprintf(":hourglass_flowing_sand: Build <%s|%s> is %s.", r.HTMLURL, wf, strings.ReplaceAll(r.Status, "_", " ")))
		} else {
			x.Live("build", fmt.Sprintf(":hourglass_flowing_sand: Waiting for %s to start for `%s`…", wf, Escape(tag)))
		}
		if time.Now().After(end) {
			return Wait(fmt.Sprintf("The build of `%s` has not finished after %s. Look at %s, then Re-check or Cancel.", Escape(tag), s.g.cfg.BuildTimeout, wf),
				Button{Verb: VerbRecheck, Label: "Re-check", Style: "primary"})
		}
		if err := sleep(ctx, s.g.cfg.PollInterval); err != nil {
			return Failed(err)
		}
	}
}

func (s *buildStep) Act(ctx context.Context, x *Exec, a Action) Result {
	if a.Verb == VerbRecheck {
		return RewindTo(s.S.ID, "Re-checking the build.")
	}
	return unexpected(s.S, a)
}

// changelogStep finds the changelog PR the release workflow opens and
// approves it, in the approving person's name, on their click.
type changelogStep struct{ ghStep }

func (s *changelogStep) head(x *Exec) string {
	tag := x.RunValue("release_tag")
	if tag == "" {
		tag = releaseTag(s.svc, x.Run.Version)
	}
	return s.svc.ChangelogBranchPrefix + tag
}

func (s *changelogStep) Start(ctx context.Context, x *Exec) Result {
	repo, head := s.g.cfg.Monorepo, s.head(x)
	end := deadline(x, s.g.cfg.ChangelogTimeout)
	wait := s.g.cfg.PollInterval
	for checks := 1; ; checks++ {
		pr, err := s.g.gh.OpenPRByHead(ctx, repo, head)
		if err != nil {
			return Failed(fmt.Errorf("looking for the changelog PR %s: %w", head, err))
		}
		if pr != nil {
			x.Set("pr", fmt.Sprint(pr.Number))
			x.Set("pr_url", pr.HTMLURL)
			x.Say(":memo: Changelog PR: <%s|#%d %s>", pr.HTMLURL, pr.Number, Escape(pr.Title))
			return Wait(fmt.Sprintf("Review <%s|#%d %s>, then Approve (an approver) to approve it on GitHub in your name.", pr.HTMLURL, pr.Number, Escape(pr.Title)),
				Button{Verb: VerbApprove, Label: "Approve", Style: "primary"})
		}
		x.Live("changelog", fmt.Sprintf(":hourglass_flowing_sand: Waiting for the changelog PR from `%s` (checked %d times).", head, checks))
		if time.Now().After(end) {
			return Wait(fmt.Sprintf("No changelog PR from `%s` after %s. Re-check later, or Cancel.", head, s.g.cfg.ChangelogTimeout),
				Button{Verb: VerbRecheck, Label: "Re-check", Style: "primary"})
		}
		if err := sleep(ctx, wait); err != nil {
			return Failed(err)
		}
		// Bounded backoff: GitHub is asked less often the longer it takes.
		wait = min(wait*2, 4*s.g.cfg.PollInterval)
	}
}

func (s *changelogStep) Act(ctx context.Context, x *Exec, a Action) Result {
	switch a.Verb {
	case VerbRecheck:
		return RewindTo(s.S.ID, "Looking for the changelog PR again.")
	case VerbApprove:
		var n int
		fmt.Sscan(x.Get("pr"), &n)
		name := x.UserName(ctx, a.User)
		body := fmt.Sprintf("Approved by %s in Slack, through deploybot (%s).", name, x.Run.ID)
		if err := s.g.gh.Approve(ctx, s.g.cfg.Monorepo, n, body); err != nil {
			return Failed(fmt.Errorf("approving changelog PR #%d: %w", n, err))
		}
		return Done(fmt.Sprintf("<%s|#%d> approved by <@%s>", x.Get("pr_url"), n, a.User))
	}
	return unexpected(s.S, a)
}

// OpenInfraPR implements PullRequests: the PR on the infrastructure repo
// cites the run, who approved which plan, and the flag check.
func (g *ghSteps) OpenInfraPR(ctx context.Context, r *Run, branch string, svc *config.Service) (string, error) {
	var envs, lines []string
	for _, e := range svc.Environments {
		if r.Data[planKey(e.Name, "applied")] != "true" && r.Data[planKey(e.Name, "nochanges")] != "true" {
			continue
		}
		envs = append(envs, e.Name)
		line := fmt.Sprintf("- **%s**: %s", e.Name, r.Data[planKey(e.Name, "summary")])
		if who := r.Data[planKey(e.Name, "approver")]; who != "" {
			line += fmt.Sprintf("; plan `%s` (from `%s`) approved by Slack user %s", short(r.Data[planKey(e.Name, "approved_sha256")]), short(r.Data[planKey(e.Name, "approved_commit")]), who)
		}
		lines = append(lines, line)
	}
	title := fmt.Sprintf("Deploy %s %s (%s)", svc.Name, r.Version, strings.Join(envs, ", "))
	link := r.Data["permalink"]
	if link == "" {
		link = r.ID
	}
	body := fmt.Sprintf("Deployed by deploybot, run %s: %s\n\nRequested by Slack user %s.\n\n%s\n\n%s is `false` in every environment, checked in the pushed tree.\n",
		r.ID, link, r.Requester, strings.Join(lines, "\n"), flagNames(svc))
	base := g.base
	if base == "" {
		base = "main"
	}
	pr, err := g.gh.CreatePR(ctx, g.cfg.InfraRepo, branch, base, title, body)
	if err != nil {
		return "", err
	}
	return pr.HTMLURL, nil
}

// rollbackStep dispatches the infrastructure repo's rollback workflow once
// and follows the run it started.
type rollbackStep struct{ ghStep }

func (s *rollbackStep) Start(ctx context.Context, x *Exec) Result {
	repo, wf, ref := s.g.cfg.InfraRepo, s.svc.Rollback.Workflow, s.svc.Rollback.Ref
	attempt := fmt.Sprint(x.Step.Attempt)
	again := Button{Verb: VerbConfirm, Label: "Dispatch again", Style: "danger"}
	at := x.Get("dispatched_at")
	var id int64
	fmt.Sscan(x.Get("run_id"), &id)
	if at != "" && x.Get("dispatch_attempt") != attempt {
		// A retry, after a crash or an error: the earlier dispatch may
		// have started a run. Never dispatch again without a person
		// saying so.
		if id == 0 {
			since, _ := time.Parse(time.RFC3339Nano, at)
			run, err := s.findRun(ctx, x, since)
			if err != nil {
				return Failed(fmt.Errorf("looking for the run of the earlier dispatch: %w", err))
			}
			if run == nil {
				return Wait(fmt.Sprintf("%s was dispatched at %s UTC, but no run of it can be found. Check GitHub Actions, then Dispatch again or Cancel.", wf, since.UTC().Format("15:04:05")), again)
			}
			id = run.ID
		}
		r, err := s.g.gh.WorkflowRun(ctx, repo, id)
		if err != nil {
			return Failed(fmt.Errorf("reading the %s run: %w", wf, err))
		}
		if r.Status == "completed" && r.Conclusion != "success" {
			return Wait(fmt.Sprintf("The last <%s|rollback run> concluded %s. Dispatch %s again, or Cancel.", r.HTMLURL, Escape(r.Conclusion), wf), again)
		}
		_ = x.Save("dispatch_attempt", attempt)
	}
	if at == "" {
		at = time.Now().UTC().Format(time.RFC3339Nano)
		// The intent is recorded before the dispatch: after a crash or an
		// error the step looks for the run instead of dispatching again.
		if err := x.Save("dispatched_at", at); err != nil {
			return Failed(err)
		}
		_ = x.Save("dispatch_attempt", attempt)
		actor := x.UserName(ctx, x.Run.Requester)
		if err := s.g.gh.Dispatch(ctx, repo, wf, ref, map[string]any{"tag": x.Run.Version, "actor": actor}); err != nil {
			return Failed(fmt.Errorf("dispatching %s on %s (it may still have started; Retry looks for its run first): %w", wf, repo, err))
		}
		x.Say(":rewind: Dispatched %s on `%s` of %s with tag `%s`.", wf, ref, repo, Escape(x.Run.Version))
	}
	dispatched, _ := time.Parse(time.RFC3339Nano, at)
	end := deadline(x, s.g.cfg.RollbackTimeout)
	for {
		if id == 0 {
			run, err := s.findRun(ctx, x, dispatched)
			if err != nil {
				return Failed(fmt.Errorf("finding the %s run: %w", wf, err))
			}
			if run != nil {
				id = run.ID
				x.Say(":eyes: Following <%s|the rollback run>.", run.HTMLURL)
			}
		}
		if id != 0 {
			r, err := s.g.gh.WorkflowRun(ctx, repo, id)
			if err != nil {
				return Failed(fmt.Errorf("reading the %s run: %w", wf, err))
			}
			if r.Status == "completed" {
				if r.Conclusion == "success" {
					res := Done(fmt.Sprintf("rolled back to `%s`: <%s|run> succeeded", Escape(x.Run.Version), r.HTMLURL))
					res.Say = fmt.Sprintf(":white_check_mark: Rollback to `%s` succeeded: %s", Escape(x.Run.Version), r.HTMLURL)
					return res
				}
				return FailedText("the rollback <%s|run> concluded %s. Declare an incident if the service is still down", r.HTMLURL, Escape(r.Conclusion))
			}
		}
		if time.Now().After(end) {
			if id == 0 {
				return Failed(errors.New("no run of the rollback workflow appeared after the dispatch; check GitHub Actions before retrying"))
			}
			return Failed(fmt.Errorf("the rollback run has not finished after %s", s.g.cfg.RollbackTimeout))
		}
		if err := sleep(ctx, s.g.cfg.PollInterval); err != nil {
			return Failed(err)
		}
	}
}

// findRun finds the run a dispatch started: the oldest workflow_dispatch
// run since then that is not an earlier attempt's (clocks differ, so the
// window reaches back a little). It records it with the step.
func (s *rollbackStep) findRun(ctx context.Context, x *Exec, since time.Time) (*WorkflowRun, error) {
	runs, err := s.g.gh.WorkflowRuns(ctx, s.g.cfg.InfraRepo, s.svc.Rollback.Workflow, RunFilter{Event: "workflow_dispatch", CreatedAfter: since.Add(-5 * time.Second)})
	if err != nil {
		return nil, err
	}
	earlier := strings.Fields(x.Get("earlier_runs"))
	for i := len(runs) - 1; i >= 0; i-- {
		if slices.Contains(earlier, fmt.Sprint(runs[i].ID)) {
			continue
		}
		_ = x.Save("run_id", fmt.Sprint(runs[i].ID))
		return &runs[i], nil
	}
	return nil, nil
}

// Act: "Dispatch again" (an approver) after a failed or lost run.
func (s *rollbackStep) Act(ctx context.Context, x *Exec, a Action) Result {
	if a.Verb == VerbConfirm {
		x.Set("earlier_runs", strings.TrimSpace(x.Get("earlier_runs")+" "+x.Get("run_id")))
		x.Set("dispatched_at", "")
		x.Set("run_id", "")
		x.Set("dispatch_attempt", "")
		return RewindTo(s.S.ID, fmt.Sprintf("<@%s> asked to dispatch the rollback again.", a.User))
	}
	return unexpected(s.S, a)
}
