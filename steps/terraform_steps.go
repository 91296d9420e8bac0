package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/deploybot/deploybot/config"
	"slices"
	"strings"
	"sync"
	"time"
)

// planChars bounds the diff posted in the thread: one section of a message
// (3000 characters) less the code fence and headline.
const planChars = 2700

// planStep plans an environment and asks approvers to approve exactly that
// plan: its file's hash and the commit it was planned from are recorded with
// the approval, and the apply checks both.
type planStep struct{ infraStep }

func (s *planStep) Start(ctx context.Context, x *Exec) Result {
	t, err := s.tree(ctx, x)
	if err != nil {
		return Failed(err)
	}
	// Any earlier approval of this environment is void from here on.
	s.voidApproval(x)
	if s.flagged(x) {
		// The flag is false after a failed or interrupted plan or apply
		// (standDown): planning again must go through the Airflow check
		// and set it again, never plan with a stale "cleared".
		v, err := t.Attribute(s.env.File, s.env.Module, s.env.ClearFlag)
		if err != nil {
			return Failed(fmt.Errorf("reading %s in %s: %w", s.env.ClearFlag, s.env.File, err))
		}
		if v != "true" {
			return RewindTo(s.preplan(x), fmt.Sprintf("`%s` is `%s` in %s: checking Airflow and setting it again before planning %s.", s.env.ClearFlag, Escape(v), s.env.File, s.env.Name))
		}
	}
	p, err := t.Plan(ctx, s.env, planChars)
	if err != nil {
		s.standDown(ctx, x, t)
		if l := t.ParseStateLock(err); l != nil {
			return s.locked(x, l, "terraform plan")
		}
		return Failed(fmt.Errorf("terraform plan of %s: %w", s.env.Dir, err))
	}
	x.Set("sha256", p.SHA256)
	x.Set("commit", p.Commit)
	x.SetRunValue(planKey(s.env.Name, "summary"), p.Summary)
	x.SetRunValue(planKey(s.env.Name, "sha256"), p.SHA256)
	x.SetRunValue(planKey(s.env.Name, "commit"), p.Commit)
	if !p.HasChanges {
		x.SetRunValue(planKey(s.env.Name, "nochanges"), "true")
		// Said in the thread too: after a crash that lost an apply's
		// record, this is how people learn the apply did happen.
		r := Done(fmt.Sprintf("no changes in %s: nothing to approve or apply", s.env.Name))
		r.Say = fmt.Sprintf(":white_check_mark: %s already has `%s` = `%s`: the plan has no changes, nothing to apply.", s.env.Name, s.env.VersionAttribute, Escape(x.Run.Version))
		return r
	}
	x.SetRunValue(planKey(s.env.Name, "nochanges"), "")
	head := fmt.Sprintf("*Plan for %s* (`%s`, plan `%s` from `%s`)", s.env.Name, s.env.Dir, short(p.SHA256), short(p.Commit))
	if p.Warning {
		head = ":warning: *This plan destroys or replaces resources.* " + head
	}
	// The budget is on the escaped text: every <, > and & grows.
	diff, fits := fitLines(Escape(p.Rendered), planChars-len(head))
	if !fits {
		diff += "\n… more in the attached file"
		p.Complete = false
	}
	x.Say("%s\n```\n%s\n```", head, diff)
	if !p.Complete {
		x.Attach(fmt.Sprintf("plan-%s-%s.txt", x.Run.ID, s.env.Name), fmt.Sprintf("Full plan for %s (%s)", s.env.Name, p.Summary), []byte(p.Full))
		x.Say("The plan is too long for a message: the most important changes are above, the whole plan is in the attached file.")
	}
	prompt := fmt.Sprintf("%s\nApprove applies exactly plan `%s` (made from `%s`); nothing else.", p.Summary, short(p.SHA256), short(p.Commit))
	if p.Warning {
		prompt = ":warning: destroys or replaces resources. " + prompt
	}
	return Wait(prompt,
		Button{Verb: VerbApprove, Label: "Approve", Style: "primary"},
		Button{Verb: VerbReject, Label: "Reject", Style: "danger"})
}

func (s *planStep) Act(ctx context.Context, x *Exec, a Action) Result {
	sha, commit := x.Get("sha256"), x.Get("commit")
	switch a.Verb {
	case VerbApprove:
		x.SetRunValue(planKey(s.env.Name, "approved_sha256"), sha)
		x.SetRunValue(planKey(s.env.Name, "approved_commit"), commit)
		x.SetRunValue(planKey(s.env.Name, "approver"), a.User)
		r := Done(fmt.Sprintf("plan `%s` approved by <@%s>", short(sha), a.User))
		r.Approval = &Approval{Approver: a.User, Decision: VerbApprove, PlanSHA256: sha, Commit: commit}
		r.Say = fmt.Sprintf(":white_check_mark: <@%s> approved plan `%s` for %s (from `%s`) at %s UTC.", a.User, short(sha), s.env.Name, short(commit), a.At.UTC().Format("15:04:05"))
		return r
	case VerbReject:
		r := FailedText("plan `%s` rejected by <@%s>", short(sha), a.User)
		r.Approval = &Approval{Approver: a.User, Decision: VerbReject, PlanSHA256: sha, Commit: commit}
		r.EndRun = fmt.Sprintf("the %s plan was rejected by <@%s>", s.env.Name, a.User)
		return r
	case VerbConfirm:
		return s.forceUnlock(ctx, x, a)
	}
	return s.infraStep.Act(ctx, x, a)
}

// applyStep applies the approved plan file, and only it: the file's hash and
// the base branch must be as they were when it was approved, or the step
// goes back to planning for a new approval.
type applyStep struct {
	infraStep
	sentry    Sentry
	sentryCfg *config.Sentry
}

func (s *applyStep) Start(ctx context.Context, x *Exec) Result {
	env := s.env.Name
	if x.RunValue(planKey(env, "nochanges")) == "true" {
		if x.Step.Attempt > 1 && x.Get("applied_plan") == "" {
			// This step ran before and the fresh plan finds nothing to
			// change: its apply went through before deploybot stopped
			// and lost its record. The environment has the version now.
			x.Set("applied_at", time.Now().UTC().Format(time.RFC3339Nano))
			x.SetRunValue("applied_at:"+env, x.Get("applied_at"))
			s.markDeploy(ctx, x, x.Step.StartedAt)
			return Skipped("the plan had no changes: the interrupted apply had gone through")
		}
		return Skipped("the plan had no changes")
	}
	want := x.RunValue(planKey(env, "approved_sha256"))
	if done := x.Get("applied_plan"); done != "" && done == want {
		// Applied before deploybot stopped: finish, never apply again.
		return s.applied(ctx, x, want, x.Step.StartedAt)
	}
	if want == "" {
		// After a failure or an interruption the approval is void
		// (standDown): Retry and Re-plan land here and start over from
		// the Airflow check.
		return RewindTo(s.preplan(x), fmt.Sprintf("No approved plan for %s: planning again for a fresh approval.", env))
	}
	t, err := s.tree(ctx, x)
	if err != nil {
		return Failed(err)
	}
	res := s.apply(ctx, x, t, want)
	if res.Status == StepFailed || (res.Status == StepWaiting && x.Get("lock_id") != "") {
		s.standDown(ctx, x, t)
	}
	return res
}

func (s *applyStep) apply(ctx context.Context, x *Exec, t Tree, want string) Result {
	env := s.env.Name
	approvedAt := x.RunValue(planKey(env, "approved_commit"))
	got, err := t.PlanSHA256(s.env)
	if err != nil || got != want {
		what := "is gone"
		if err == nil {
			what = fmt.Sprintf("is now `%s`", short(got))
		}
		return RewindTo("plan:"+env, fmt.Sprintf("Apply refused: the plan file approved as `%s` %s. Planning %s again for a new approval.", short(want), what, env))
	}
	remote, err := t.RemoteBaseCommit(ctx)
	if err != nil {
		return Failed(fmt.Errorf("checking the base branch before applying: %w", err))
	}
	if remote != approvedAt {
		return RewindTo("plan:"+env, fmt.Sprintf("Apply refused: the base branch moved from `%s` to `%s` since the plan was approved. Planning %s again for a new approval.", short(approvedAt), short(remote), env))
	}
	x.Say(":rocket: Applying plan `%s` to %s…", short(want), env)
	started := time.Now()
	prog := newProgress(x, "apply:"+env, fmt.Sprintf("terraform apply (%s)", env))
	err = t.Apply(ctx, s.env, prog)
	prog.flush()
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "Saved plan is stale") {
			return RewindTo("plan:"+env, fmt.Sprintf("Apply refused by Terraform: the saved plan is stale. Planning %s again for a new approval.", env))
		}
		if l := t.ParseStateLock(err); l != nil {
			return s.locked(x, l, "terraform apply")
		}
		return FailedText("terraform apply of %s failed:\n```\n%s\n```", env, Escape(tail(msg, 1500)))
	}
	// Recorded at once, with its message, in one commit: a crash from
	// here on finds the apply done (Interrupted offers Continue, not
	// Re-plan) and the thread already says so.
	x.Set("applied_plan", want)
	x.Set("applied_at", time.Now().UTC().Format(time.RFC3339Nano))
	x.Say(":white_check_mark: %s applied: `%s` is now `%s`.", env, s.env.VersionAttribute, Escape(x.Run.Version))
	return s.applied(ctx, x, want, started)
}

// applied finishes the step once the approved plan is applied: the run
// learns when (the Sentry watch's window), and Sentry gets its deploy
// marker, at most once (the intent is recorded before it is sent).
func (s *applyStep) applied(ctx context.Context, x *Exec, want string, started time.Time) Result {
	env := s.env.Name
	x.SetRunValue(planKey(env, "applied"), "true")
	x.SetRunValue("applied_at:"+env, x.Get("applied_at"))
	s.markDeploy(ctx, x, started)
	return Done(fmt.Sprintf("applied plan `%s`: %s", short(want), x.RunValue(planKey(env, "summary"))))
}

// markDeploy sends Sentry its deploy marker for this environment at most
// once: the intent ("sent") is committed before the call, and "done"
// commits with the message that says so. A crash in between is said as it
// is, and the marker is not sent again.
func (s *applyStep) markDeploy(ctx context.Context, x *Exec, started time.Time) {
	if s.sentry == nil {
		return
	}
	switch x.Get("marker") {
	case "":
		_ = x.Save("marker", "sent")
		x.Set("marker", "done")
		recordDeploy(ctx, s.sentry, s.sentryCfg, x, s.env.Name, started)
	case "sent":
		// A crash came between the intent and its record: look before
		// sending again.
		senv := s.sentryCfg.Environment(s.env.Name)
		there, err := s.sentry.HasDeploy(ctx, x.Run.Version, senv)
		x.Set("marker", "done")
		switch {
		case err != nil:
			x.Say(":warning: The deploy of `%s` to Sentry environment `%s` was being recorded when deploybot stopped, and Sentry cannot be asked now (%s); it is not sent again. Check the release in Sentry.",
				Escape(x.Run.Version), senv, Escape(err.Error()))
		case there:
			x.Say(":bookmark: Recorded the deploy of `%s` to Sentry environment `%s` (before deploybot stopped).", Escape(x.Run.Version), senv)
		default:
			recordDeploy(ctx, s.sentry, s.sentryCfg, x, s.env.Name, started)
		}
	}
}

func (s *applyStep) Act(ctx context.Context, x *Exec, a Action) Result {
	if a.Verb == VerbConfirm {
		return s.forceUnlock(ctx, x, a)
	}
	return s.infraStep.Act(ctx, x, a)
}

// Interrupted: deploybot stopped while terraform apply ran (a crash, a
// kill, or a shutdown whose grace ran out), so the apply may have
// half-happened. The old plan is never applied again: the environment
// stands down (flag false, approval void) and people get Re-plan, or first
// Force unlock when the killed apply left the state locked.
func (s *applyStep) Interrupted(ctx context.Context, x *Exec) Result {
	if done := x.Get("applied_plan"); done != "" && done == x.RunValue(planKey(s.env.Name, "approved_sha256")) {
		// The apply finished and was recorded before deploybot stopped;
		// only the step's end is missing.
		return Result{Note: "interrupted after the apply finished",
			Prompt:  fmt.Sprintf("deploybot stopped just after `terraform apply` of plan `%s` finished for %s (it is recorded). Continue finishes the step; nothing is applied again.", short(done), s.env.Name),
			Buttons: []Button{{Verb: VerbRetry, Label: "Continue", Style: "primary"}}}
	}
	t, err := s.tree(ctx, x)
	if err != nil {
		return Result{Note: "interrupted: deploybot stopped while terraform apply ran",
			Prompt:  fmt.Sprintf("deploybot stopped while `terraform apply` ran for %s, and the working copy cannot be opened now (%s). Check the state by hand, then Re-plan (which plans afresh from the state as it is) or Cancel the run.", s.env.Name, Escape(err.Error())),
			Buttons: []Button{replan}}
	}
	s.standDown(ctx, x, t)
	l, err := t.StateLock(ctx, s.env)
	if err != nil {
		x.Say(":warning: Could not read the state lock of %s: %s", s.env.Name, Escape(err.Error()))
	}
	if l != nil {
		r := s.locked(x, l, "the interrupted terraform apply")
		r.Note = "interrupted: deploybot stopped while terraform apply ran; the state is locked"
		return r
	}
	return Result{Note: "interrupted: deploybot stopped while terraform apply ran",
		Prompt:  fmt.Sprintf("deploybot stopped while `terraform apply` ran for %s, so it may have half-applied. The approved plan will not be applied again: Re-plan checks again, plans afresh from the state as it is now and asks for a new approval.", s.env.Name),
		Buttons: []Button{replan}}
}

// replan is Retry under the name of what it does for Terraform steps: the
// step starts again, finds no approval and rewinds to a fresh plan.
var replan = Button{Verb: VerbRetry, Label: "Re-plan", Style: "primary"}

// progress streams apply output into one thread message, edited at most
// every progressEvery with the latest lines, so Slack's rate limits and
// message size are respected however chatty Terraform is.
type progress struct {
	x     *Exec
	key   string
	title string

	mu    sync.Mutex
	buf   []byte
	lines []string
	last  time.Time
}

const (
	progressEvery = 2 * time.Second
	progressLines = 15
)

func newProgress(x *Exec, key, title string) *progress {
	return &progress{x: x, key: key, title: title}
}

func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(p.buf[:i]), "\r")
		p.buf = p.buf[i+1:]
		if strings.TrimSpace(line) == "" {
			continue
		}
		p.lines = append(p.lines, line)
		if len(p.lines) > progressLines {
			p.lines = p.lines[len(p.lines)-progressLines:]
		}
	}
	if time.Since(p.last) >= progressEvery {
		p.show()
	}
	return len(b), nil
}

func (p *progress) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		p.lines = append(p.lines, string(p.buf))
		p.buf = nil
	}
	p.show()
}

func (p *progress) show() {
	p.last = time.Now()
	if len(p.lines) == 0 {
		return
	}
	text := strings.Join(p.lines, "\n")
	p.x.Live(p.key, fmt.Sprintf("*%s*, latest lines:\n```\n%s\n```", p.title, Escape(tail(text, 2500))))
}

// commitStep commits the run's Terraform changes on the run branch, after
// checking that no clear flag is left true, and pushes the branch. Opening
// the pull request is the GitHub integration's part; without it, a person
// opens the PR.
type commitStep struct {
	infraStep
	prs PullRequests
}

// PullRequests opens the infrastructure pull request (the GitHub
// integration). Nil means a person opens it.
type PullRequests interface {
	OpenInfraPR(ctx context.Context, r *Run, branch string, svc *config.Service) (url string, err error)
}

func (s *commitStep) Start(ctx context.Context, x *Exec) Result {
	t, err := s.tree(ctx, x)
	if err != nil {
		return Failed(err)
	}
	read := func(env *configEnv) (string, error) { return t.Attribute(env.File, env.Module, env.ClearFlag) }
	if err := checkFlags(s.svc, read); err != nil {
		return Failed(err)
	}
	var files, envs []string
	seen := map[string]bool{}
	for _, e := range s.svc.Environments {
		if x.RunValue(planKey(e.Name, "applied")) == "true" || x.RunValue(planKey(e.Name, "nochanges")) == "true" {
			envs = append(envs, e.Name)
		}
		if !seen[e.File] {
			files = append(files, e.File)
			seen[e.File] = true
		}
	}
	msg := fmt.Sprintf("Deploy %s %s (%s)\n\nBumped by deploybot in %s, requested by %s.\n%s is false in every environment.",
		s.svc.Name, x.Run.Version, strings.Join(envs, ", "), x.Run.ID, x.Run.Requester, flagNames(s.svc))
	sha, err := t.Commit(ctx, msg, files...)
	if err != nil {
		return Failed(fmt.Errorf("committing on %s: %w", t.Branch(), err))
	}
	x.SetRunValue("infra_commit", sha)
	x.SetRunValue("infra_branch", t.Branch())
	pushed := true
	already, err := t.Push(ctx)
	if err != nil {
		if !errors.Is(err, ErrNoPush) {
			return Failed(fmt.Errorf("pushing %s: %w", t.Branch(), err))
		}
		pushed = false
	}

	if pushed {
		// Check what actually left the building, not only the working copy.
		if err := checkFlags(s.svc, func(env *configEnv) (string, error) {
			return t.CommittedAttribute(ctx, env.File, env.Module, env.ClearFlag, true)
		}); err != nil {
			return Failed(fmt.Errorf("after pushing %s: %w", t.Branch(), err))
		}
		if already {
			// A push that landed before a restart (or a timeout) is not
			// repeated: the remote was looked at first.
			x.Say(":arrow_up: `%s` was already at our commit `%s` on the remote, so it was not pushed again: %s", t.Branch(), short(sha), strings.Join(envs, ", "))
		} else {
			x.Say(":arrow_up: Committed `%s` on `%s` and pushed it: %s", short(sha), t.Branch(), strings.Join(envs, ", "))
		}
	} else {
		x.Say(":floppy_disk: Committed `%s` on `%s`.", short(sha), t.Branch())
	}
	if s.prs != nil && pushed {
		run := x.Run.Clone()
		if run.Data == nil {
			run.Data = map[string]string{}
		}
		for k, v := range x.runData {
			run.Data[k] = v
		}
		url, err := s.prs.OpenInfraPR(ctx, run, t.Branch(), s.svc)
		if err != nil {
			return Failed(fmt.Errorf("opening the infrastructure PR: %w", err))
		}
		x.SetRunValue("infra_pr", url)
		r := Done("<" + url + "|infrastructure PR> opened")
		r.Say = ":white_check_mark: Opened the infrastructure PR: " + url
		return r
	}
	where := "Push branch `" + t.Branch() + "` and open"
	if pushed {
		where = "Branch `" + t.Branch() + "` is pushed. Open"
	}
	return Wait(fmt.Sprintf("%s a PR on the infrastructure repository with these changes (commit `%s`), then click Done.", where, short(sha)),
		Button{Verb: VerbDone, Label: "Done", Style: "primary"})
}

func (s *commitStep) Act(ctx context.Context, x *Exec, a Action) Result {
	if a.Verb == VerbDone {
		return Done(fmt.Sprintf("confirmed done by <@%s>", a.User))
	}
	return s.infraStep.Act(ctx, x, a)
}

func flagNames(svc *configService) string {
	var fs []string
	for _, e := range svc.Environments {
		if e.ClearFlag != "" && !slices.Contains(fs, "`"+e.ClearFlag+"`") {
			fs = append(fs, "`"+e.ClearFlag+"`")
		}
	}
	if len(fs) == 0 {
		return "No clear flag"
	}
	return strings.Join(fs, ", ")
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// tail keeps the last n characters of s.
func tail(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n:])
}

// fitLines cuts text at a line boundary to at most max characters, and
// reports whether it was whole.
func fitLines(text string, max int) (string, bool) {
	if len([]rune(text)) <= max {
		return text, true
	}
	var b strings.Builder
	n := 0
	for _, line := range strings.Split(text, "\n") {
		l := len([]rune(line)) + 1
		if n+l > max {
			break
		}
		b.WriteString(line)
		b.WriteByte('\n')
		n += l
	}
	return strings.TrimRight(b.String(), "\n"), false
}
