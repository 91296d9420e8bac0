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
	// Dispatch starts a workflow and returns the run it started, or 0 when
	// GitHub does not say. An error for which MaybeApplied is true may
	// still have started it: look with DispatchedRuns, never resend.
	Dispatch(ctx context.Context, repo, file, ref string, inputs map[string]any) (runID int64, err error)
	// DispatchedRuns lists the runs a dispatch of ours made at or after
	// since may have started (event workflow_dispatch, our actor), keeping
	// those whose display title contains title when any does.
	DispatchedRuns(ctx context.Context, repo, file string, since time.Time, title string) ([]WorkflowRun, error)
	// PRFrom is the open PR from repo's own branch head opened by author;
	// the open PRs from a branch of that name that are not (a fork's,
	// another author's) come back as ignored, with why.
	PRFrom(ctx context.Context, repo, head, author string) (*PR, []IgnoredPR, error)
	// Approve approves PR number at commit headSHA, unless its head moved
	// or our approval of headSHA is already there.
	Approve(ctx context.Context, repo string, number int, headSHA, body string) (ReviewResult, error)
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
	Actor, DisplayTitle                string
}

// ReviewResult is what GitHub.Approve did: Already when our approval of
// that commit was there before (a retry), MovedTo (the new head) when the
// PR no longer is at the commit shown, and nothing was approved.
type ReviewResult struct {
	Already bool
	MovedTo string
}

// MaybeApplied reports whether err leaves open whether the outside effect
// happened (a timeout, a lost connection, a 5xx after the request was
// sent). Integrations mark such errors with an Ambiguous method.
func MaybeApplied(err error) bool {
	var a interface{ Ambiguous() bool }
	return errors.As(err, &a) && a.Ambiguous()
}

// RunFilter narrows a workflow's runs.
type RunFilter struct {
	Event, Branch string
	CreatedAfter  time.Time
}

// IgnoredPR is a PR from the expected branch that is not trusted, and why.
type IgnoredPR struct {
	PR  PR
	Why string
}

// PR is a pull request. HeadRepo is the "owner/name" its head branch is
// in (a fork's, for a fork's PR); HeadSHA is the head commit.
type PR struct {
	Number            int
	Title, HTMLURL    string
	User              string
	HeadRepo, HeadSHA string
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
		tag := x.Get("draft_tag")
		// Look first: a retry, a restart or a second click after a lost
		// answer finds the release published and says so. If the look
		// fails, publishing is still safe: it only sets draft=false.
		if rel, err := s.g.gh.ReleaseByTag(ctx, repo, tag); err == nil && rel != nil && !rel.Draft {
			s.remember(x, rel)
			return Done(fmt.Sprintf("<%s|%s> is already published on GitHub; nothing was sent again (<@%s>)", rel.HTMLURL, Escape(rel.Tag), a.User))
		}
		rel, err := s.g.gh.Publish(ctx, repo, id)
		if err != nil && MaybeApplied(err) {
			// GitHub may have published it before its answer was lost.
			if again, cerr := s.g.gh.ReleaseByTag(ctx, repo, tag); cerr == nil && again != nil && !again.Draft {
				rel, err = again, nil
				x.Say(":information_source: GitHub's answer to publishing `%s` was lost, but the release is published.", Escape(tag))
			}
		}
		if err != nil {
			return Failed(fmt.Errorf("publishing %s: %w", tag, err))
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

// mention says once in the thread why a PR from the changelog branch is
// not the one approved, so people know why it is not picked.
func (s *changelogStep) mention(x *Exec, ignored []IgnoredPR) {
	for _, ig := range ignored {
		key := fmt.Sprintf("ignored_pr_%d", ig.PR.Number)
		if x.Get(key) != "" {
			continue
		}
		_ = x.Save(key, "true")
		x.Say(":no_entry_sign: Not approving <%s|#%d %s>: %s (`github.changelog_author` is %s).", ig.PR.HTMLURL, ig.PR.Number, Escape(ig.PR.Title), Escape(ig.Why), Escape(s.g.cfg.ChangelogAuthor))
	}
}

func (s *changelogStep) Start(ctx context.Context, x *Exec) Result {
	repo, head := s.g.cfg.Monorepo, s.head(x)
	end := deadline(x, s.g.cfg.ChangelogTimeout)
	wait := s.g.cfg.PollInterval
	for checks := 1; ; checks++ {
		pr, ignored, err := s.g.gh.PRFrom(ctx, repo, head, s.g.cfg.ChangelogAuthor)
		if err != nil {
			return Failed(fmt.Errorf("looking for the changelog PR %s: %w", head, err))
		}
		s.mention(x, ignored)
		if pr != nil {
			x.Set("pr", fmt.Sprint(pr.Number))
			x.Set("pr_url", pr.HTMLURL)
			// The approval is pinned to the commit people see here.
			x.Set("head_sha", pr.HeadSHA)
			x.Say(":memo: Changelog PR: <%s|#%d %s> at `%s`", pr.HTMLURL, pr.Number, Escape(pr.Title), short(pr.HeadSHA))
			return Wait(fmt.Sprintf("Review <%s|#%d %s> at commit `%s`, then Approve (an approver) to approve that commit on GitHub in your name.", pr.HTMLURL, pr.Number, Escape(pr.Title), short(pr.HeadSHA)),
				Button{Verb: VerbApprove, Label: "Approve", Style: "primary"})
		}
		x.Live("changelog", fmt.Sprintf(":hourglass_flowing_sand: Waiting for the changelog PR from `%s` by %s (checked %d times).", head, Escape(s.g.cfg.ChangelogAuthor), checks))
		if time.Now().After(end) {
			return Wait(fmt.Sprintf("No changelog PR from `%s` by %s after %s. Re-check later, or Cancel.", head, Escape(s.g.cfg.ChangelogAuthor), s.g.cfg.ChangelogTimeout),
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
		sha, url := x.Get("head_sha"), x.Get("pr_url")
		name := x.UserName(ctx, a.User)
		body := fmt.Sprintf("Approved by %s in Slack, through deploybot (%s).", name, x.Run.ID)
		res, err := s.g.gh.Approve(ctx, s.g.cfg.Monorepo, n, sha, body)
		if err != nil {
			return Failed(fmt.Errorf("approving changelog PR #%d at %s: %w", n, short(sha), err))
		}
		switch {
		case res.MovedTo != "":
			// New commits arrived after people looked: approving now
			// would approve what nobody reviewed.
			x.Set("head_sha", res.MovedTo)
			r := Wait(fmt.Sprintf("<%s|#%d> now ends at commit `%s`, not `%s` shown before: nothing was approved. Review the new commits, then Approve again.", url, n, short(res.MovedTo), short(sha)),
				Button{Verb: VerbApprove, Label: "Approve again", Style: "primary"})
			r.Say = fmt.Sprintf(":warning: <@%s>: the changelog PR <%s|#%d> changed since it was shown (head `%s` → `%s`); not approved.", a.User, url, n, short(sha), short(res.MovedTo))
			return r
		case res.Already:
			return Done(fmt.Sprintf("<%s|#%d> at `%s` was already approved by deploybot; nothing was sent again (<@%s>)", url, n, short(sha), a.User))
		}
		return Done(fmt.Sprintf("<%s|#%d> approved at `%s` by <@%s>", url, n, short(sha), a.User))
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

// clockSkew widens the search for a dispatched run backwards: GitHub
// stamps the run with its own clock, which may be behind ours.
const clockSkew = 5 * time.Second

// runAppearWait is how long after a dispatch a run may take to be listed
// before the step stops looking and asks a person.
const runAppearWait = 2 * time.Minute

// maxListedRuns bounds the candidate runs listed in a prompt.
const maxListedRuns = 10

func (s *rollbackStep) Start(ctx context.Context, x *Exec) Result {
	repo, wf, ref := s.g.cfg.InfraRepo, s.svc.Rollback.Workflow, s.svc.Rollback.Ref
	attempt := fmt.Sprint(x.Step.Attempt)
	at := x.Get("dispatched_at")
	var id int64
	fmt.Sscan(x.Get("run_id"), &id)
	if at != "" && x.Get("dispatch_attempt") != attempt {
		// A retry, after a crash or an error: the earlier dispatch may
		// have started a run. Never dispatch again without a person
		// saying so.
		since, _ := time.Parse(time.RFC3339Nano, at)
		if id == 0 {
			run, cands, err := s.lookup(ctx, x, since)
			if err != nil {
				return Failed(fmt.Errorf("looking for the run of the earlier dispatch: %w", err))
			}
			if len(cands) > 1 {
				return s.ask(x, since, cands)
			}
			if run == nil {
				return s.none(since)
			}
			id = run.ID
		}
		r, err := s.g.gh.WorkflowRun(ctx, repo, id)
		if err != nil {
			return Failed(fmt.Errorf("reading the %s run: %w", wf, err))
		}
		if r.Status == "completed" && r.Conclusion != "success" {
			return Wait(fmt.Sprintf("The last <%s|rollback run> concluded %s. Dispatch %s again, or Cancel.", r.HTMLURL, Escape(r.Conclusion), wf), s.again())
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
		runID, err := s.g.gh.Dispatch(ctx, repo, wf, ref, map[string]any{"tag": x.Run.Version, "actor": actor})
		switch {
		case err == nil && runID != 0:
			id = runID
			x.Set("run_id", fmt.Sprint(id))
			x.Set("dispatch_said", at)
			x.Say(":rewind: Dispatched %s on `%s` of %s with tag `%s`.", wf, ref, repo, Escape(x.Run.Version))
		case err == nil:
			x.Set("dispatch_said", at)
			x.Say(":rewind: Dispatched %s on `%s` of %s with tag `%s`; looking for its run.", wf, ref, repo, Escape(x.Run.Version))
		case MaybeApplied(err):
			// It may have reached GitHub: look for its run rather than
			// send it again.
			x.Set("dispatch_said", at)
			x.Say(":warning: No clear answer to the dispatch of %s (%s). It may have started: looking for its run instead of dispatching again.", wf, Escape(err.Error()))
		default:
			// GitHub refused it: nothing started, so a Retry may dispatch.
			_ = x.Save("dispatched_at", "")
			return Failed(fmt.Errorf("dispatching %s on %s: %w", wf, repo, err))
		}
	}
	if x.Get("dispatch_said") != at {
		// deploybot stopped between recording the intent and saying how
		// the dispatch went: it may or may not have been sent. Say so, and
		// look for its run rather than send it again.
		x.Set("dispatch_said", at)
		x.Say(":rewind: A dispatch of %s on `%s` of %s with tag `%s` was being sent when deploybot stopped: looking for its run instead of dispatching again.", wf, ref, repo, Escape(x.Run.Version))
	}
	dispatched, _ := time.Parse(time.RFC3339Nano, at)
	end := deadline(x, s.g.cfg.RollbackTimeout)
	announced := x.Get("following") == fmt.Sprint(id) && id != 0
	for {
		if id == 0 {
			run, cands, err := s.lookup(ctx, x, dispatched)
			if err != nil {
				return Failed(fmt.Errorf("finding the %s run: %w", wf, err))
			}
			if len(cands) > 1 {
				return s.ask(x, dispatched, cands)
			}
			if run != nil {
				id = run.ID
			} else if time.Since(dispatched) > min(runAppearWait, s.g.cfg.RollbackTimeout) {
				return s.none(dispatched)
			}
		}
		if id != 0 {
			r, err := s.g.gh.WorkflowRun(ctx, repo, id)
			if err != nil {
				return Failed(fmt.Errorf("reading the %s run: %w", wf, err))
			}
			if !announced && x.Get("following") != fmt.Sprint(id) {
				announced = true
				x.Set("following", fmt.Sprint(id))
				x.Say(":eyes: Following <%s|the rollback run>.", r.HTMLURL)
			}
			if r.Status == "completed" {
				if r.Conclusion == "success" {
					res := Done(fmt.Sprintf("rolled back to `%s`: <%s|run> succeeded", Escape(x.Run.Version), r.HTMLURL))
					res.Say = fmt.Sprintf(":white_check_mark: Rollback to `%s` succeeded: %s", Escape(x.Run.Version), r.HTMLURL)
					return res
				}
				return FailedText("the rollback <%s|run> concluded %s. Declare an incident if the service is still down", r.HTMLURL, Escape(r.Conclusion))
			}
			if time.Now().After(end) {
				return Failed(fmt.Errorf("the rollback run has not finished after %s", s.g.cfg.RollbackTimeout))
			}
		}
		if err := sleep(ctx, s.g.cfg.PollInterval); err != nil {
			return Failed(err)
		}
	}
}

func (s *rollbackStep) again() Button {
	return Button{Verb: VerbConfirm, Label: "Dispatch again", Style: "danger"}
}

// none asks a person when no run of the dispatch can be found.
func (s *rollbackStep) none(since time.Time) Result {
	return Wait(fmt.Sprintf("%s was dispatched at %s UTC, but no run of it can be found. Check GitHub Actions, then Re-check, Dispatch again or Cancel.", s.svc.Rollback.Workflow, since.UTC().Format("15:04:05")),
		Button{Verb: VerbRecheck, Label: "Re-check", Style: "primary"}, s.again())
}

// ask lists the runs that may be the dispatch's and lets a person decide:
// guessing could follow someone else's rollback and report its result as
// ours.
func (s *rollbackStep) ask(x *Exec, since time.Time, cands []WorkflowRun) Result {
	var b strings.Builder
	fmt.Fprintf(&b, "%d runs of %s may be the one dispatched at %s UTC:", len(cands), s.svc.Rollback.Workflow, since.UTC().Format("15:04:05"))
	for i, c := range cands {
		if i == maxListedRuns {
			// A section holds 3000 characters; the rest are on GitHub.
			fmt.Fprintf(&b, "\n• … and %d more", len(cands)-i)
			break
		}
		fmt.Fprintf(&b, "\n• <%s|run %d> “%s”, created %s UTC by %s, %s", c.HTMLURL, c.ID, Escape(c.DisplayTitle), c.CreatedAt.UTC().Format("15:04:05"), Escape(c.Actor), strings.ReplaceAll(c.Status, "_", " "))
	}
	b.WriteString("\nCancel the extra runs on GitHub and Re-check, Dispatch again, or Cancel.")
	return Wait(b.String(), Button{Verb: VerbRecheck, Label: "Re-check", Style: "primary"}, s.again())
}

// lookup finds the run a dispatch made at since started: among our
// workflow_dispatch runs created since then (less clockSkew), not an
// earlier attempt's, and carrying the tag in their title when the
// workflow's run-name shows it. Runs cancelled on GitHub are left out when
// others remain, so that cancelling a duplicate settles the question. With
// one candidate it is recorded and returned; with several they are all
// returned and none is chosen.
func (s *rollbackStep) lookup(ctx context.Context, x *Exec, since time.Time) (*WorkflowRun, []WorkflowRun, error) {
	runs, err := s.g.gh.DispatchedRuns(ctx, s.g.cfg.InfraRepo, s.svc.Rollback.Workflow, since.Add(-clockSkew), x.Run.Version)
	if err != nil {
		return nil, nil, err
	}
	earlier := strings.Fields(x.Get("earlier_runs"))
	var cands, live []WorkflowRun
	for _, r := range runs {
		if slices.Contains(earlier, fmt.Sprint(r.ID)) {
			continue
		}
		cands = append(cands, r)
		if r.Conclusion != "cancelled" {
			live = append(live, r)
		}
	}
	if len(live) > 0 {
		cands = live
	}
	if len(cands) != 1 {
		return nil, cands, nil
	}
	_ = x.Save("run_id", fmt.Sprint(cands[0].ID))
	return &cands[0], cands, nil
}

// Act: "Dispatch again" (an approver) after a failed or lost run, or
// Re-check to look for the run again.
func (s *rollbackStep) Act(ctx context.Context, x *Exec, a Action) Result {
	switch a.Verb {
	case VerbConfirm:
		x.Set("earlier_runs", strings.TrimSpace(x.Get("earlier_runs")+" "+x.Get("run_id")))
		x.Set("dispatched_at", "")
		x.Set("run_id", "")
		x.Set("dispatch_attempt", "")
		return RewindTo(s.S.ID, fmt.Sprintf("<@%s> asked to dispatch the rollback again.", a.User))
	case VerbRecheck:
		return RewindTo(s.S.ID, fmt.Sprintf("<@%s> asked to look for the rollback run again.", a.User))
	}
	return unexpected(s.S, a)
}
