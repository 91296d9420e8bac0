package steps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/deploybot/deploybot/config"
)

type (
	configEnv     = config.Environment
	configService = config.Service
)

// Infra is the infrastructure repository and Terraform as the deploy steps
// need them. integrations/infra implements it with git and terraform-exec.
type Infra interface {
	// Tree returns the run's own working copy on its own branch, creating
	// it on first use. Calling it again (after a restart) returns the same
	// tree with its edits.
	Tree(ctx context.Context, r *Run) (Tree, error)
}

// Tree is one run's working copy of the infrastructure repository.
type Tree interface {
	Branch() string
	// BaseCommit is the base-branch commit the tree was made from.
	BaseCommit(ctx context.Context) (string, error)
	// RemoteBaseCommit is where the base branch is on the remote now.
	RemoteBaseCommit(ctx context.Context) (string, error)
	// SetAttribute sets a literal attribute (string or bool) of a module
	// block, keeping comments and layout. It reports whether it changed.
	SetAttribute(file, module, attr string, value any) (old string, changed bool, err error)
	// Attribute reads a literal attribute as text ("true", "rel-…").
	Attribute(file, module, attr string) (string, error)
	// Plan runs init and plan for an environment into a plan file kept for
	// the run, and renders it. maxChars bounds Plan.Rendered.
	Plan(ctx context.Context, env *config.Environment, maxChars int) (*Plan, error)
	// PlanSHA256 hashes the saved plan file now.
	PlanSHA256(env *config.Environment) (string, error)
	// Apply applies the saved plan file of an environment, streaming output.
	Apply(ctx context.Context, env *config.Environment, progress io.Writer) error
	// Commit commits the files (relative to the repository root) and
	// returns the commit; nothing to commit returns HEAD.
	Commit(ctx context.Context, message string, files ...string) (string, error)
	// Push pushes the run branch, looking at the remote first: already
	// reports that the remote branch was at our commit, so nothing was
	// pushed. ErrNoPush when the remote cannot be pushed to without the
	// GitHub integration; a remote branch somewhere else is refused.
	Push(ctx context.Context) (already bool, err error)
	// CommittedAttribute reads a literal attribute from a file as committed
	// on the branch, or as pushed when pushed is true.
	CommittedAttribute(ctx context.Context, file, module, attr string, pushed bool) (string, error)
	// StateLock reads the lock on an environment's state: nil when it is
	// not locked, or when the backend can only tell by refusing a command
	// (then the command's error carries it; see ParseStateLock).
	StateLock(ctx context.Context, env *config.Environment) (*StateLock, error)
	// ForceUnlock releases the state lock with this ID.
	ForceUnlock(ctx context.Context, env *config.Environment, lockID string) error
	// ParseStateLock reads the lock out of a command's "Error acquiring the
	// state lock"; nil for other errors.
	ParseStateLock(err error) *StateLock
}

// StateLock is a Terraform state lock: whose it is and since when.
type StateLock struct {
	ID        string
	Path      string
	Operation string
	Who       string
	Version   string
	Created   time.Time
	// Stale: no process holds it any more (a local lock whose Terraform
	// was killed); only its record is left.
	Stale bool
}

// ErrNoPush says the tree's remote needs credentials deploybot was not
// given; a person pushes instead.
var ErrNoPush = errors.New("no credentials to push to this remote")

// Plan is a saved Terraform plan, rendered for people.
type Plan struct {
	HasChanges bool
	Summary    string // "+0 to add, ~2 to change, -0 to destroy, ±0 to replace"
	Rendered   string // the diff, possibly cut to fit
	Complete   bool   // Rendered holds every change
	Full       string // every change, values whole, for the attached file
	Warning    bool   // something is destroyed or replaced
	SHA256     string // of the plan file
	Commit     string // the base commit it was planned from
}

// Terraform steps keep their evidence in run data under these keys, so a
// later step (apply) and the infra PR can check and cite exactly what was
// approved.
func planKey(env, what string) string { return "plan:" + env + ":" + what }

// infraSteps builds the automated forms of the environment steps.
type infraSteps struct {
	infra Infra
	svc   *config.Service
}

// AutomateInfra registers the Terraform steps for every service with
// environments: bump, flag, plan (approval of the exact plan), apply,
// restore, and the commit of the changes on the run branch.
func (rb *Runbooks) AutomateInfra(infra Infra) {
	build := func(spec Spec, svc *config.Service, m *Manual) Step {
		kind, envName, _ := strings.Cut(spec.ID, ":")
		env := svc.Environment(envName)
		if env == nil && kind != "infra-pr" {
			return nil
		}
		base := infraStep{S: spec, infra: infra, svc: svc, env: env}
		switch kind {
		case "bump":
			return &bumpStep{base}
		case "flag":
			return &flagStep{base}
		case "plan":
			return &planStep{base}
		case "apply":
			base.S.Idempotent = false // an apply cut short must be looked at by a person
			// Force unlock (confirm) is as weighty as approving the plan.
			base.S.FourEyes = env.FourEyes
			return &applyStep{infraStep: base, sentry: rb.sentry, sentryCfg: rb.sentryCfg}
		case "restore":
			return &restoreStep{base}
		case "infra-pr":
			return &commitStep{infraStep: base, prs: rb.prs}
		}
		return nil
	}
	for _, k := range []string{"bump", "flag", "plan", "apply", "restore", "infra-pr"} {
		rb.Automate(k, build)
	}
}

type infraStep struct {
	S     Spec
	infra Infra
	svc   *config.Service
	env   *config.Environment
}

func (s *infraStep) Spec() Spec { return s.S }

func (s *infraStep) Act(ctx context.Context, x *Exec, a Action) Result {
	return unexpected(s.S, a)
}

func (s *infraStep) tree(ctx context.Context, x *Exec) (Tree, error) {
	t, err := s.infra.Tree(ctx, x.Run)
	if err != nil {
		return nil, fmt.Errorf("checking out the infrastructure repository: %w", err)
	}
	return t, nil
}

// bumpStep sets the environment's image tag attribute to the run's version.
type bumpStep struct{ infraStep }

func (s *bumpStep) Start(ctx context.Context, x *Exec) Result {
	if x.Run.Version == "" {
		return Failed(errors.New("the run has no version to deploy yet"))
	}
	t, err := s.tree(ctx, x)
	if err != nil {
		return Failed(err)
	}
	old, changed, err := t.SetAttribute(s.env.File, s.env.Module, s.env.VersionAttribute, x.Run.Version)
	if err != nil {
		return Failed(err)
	}
	if x.RunValue("previous:"+s.env.Name) == "" {
		x.SetRunValue("previous:"+s.env.Name, old)
	}
	if !changed {
		return Done(fmt.Sprintf("`%s` already `%s` on branch `%s`", s.env.VersionAttribute, Escape(x.Run.Version), t.Branch()))
	}
	return Done(fmt.Sprintf("`%s`: `%s` → `%s` in `%s`", s.env.VersionAttribute, Escape(old), Escape(x.Run.Version), s.env.File))
}

// flagStep sets the clear flag (data_refresh_cleared) to true for the apply.
// Its compensation puts it back to false however the run ends, a crash and
// restart included.
type flagStep struct{ infraStep }

func (s *flagStep) Start(ctx context.Context, x *Exec) Result {
	t, err := s.tree(ctx, x)
	if err != nil {
		return Failed(err)
	}
	if _, _, err := t.SetAttribute(s.env.File, s.env.Module, s.env.ClearFlag, true); err != nil {
		return Failed(err)
	}
	return Done(fmt.Sprintf("`%s = true` in `%s` (restored to false after the apply, or if the run ends early)", s.env.ClearFlag, s.env.File))
}

func (s *flagStep) Compensate(ctx context.Context, x *Exec) error {
	t, err := s.tree(ctx, x)
	if err != nil {
		return err
	}
	_, changed, err := t.SetAttribute(s.env.File, s.env.Module, s.env.ClearFlag, false)
	if err != nil {
		return err
	}
	// Said only when it changes something: a compensation run again
	// after a crash, or after a failed apply already restored the flag,
	// has nothing new to say.
	if changed {
		x.Say(":leftwards_arrow_with_hook: `%s` restored to `false` in `%s`.", s.env.ClearFlag, s.env.File)
	}
	return nil
}

// restoreStep sets the clear flag back to false after the apply, as the
// runbook says.
type restoreStep struct{ infraStep }

func (s *restoreStep) Start(ctx context.Context, x *Exec) Result {
	t, err := s.tree(ctx, x)
	if err != nil {
		return Failed(err)
	}
	if _, _, err := t.SetAttribute(s.env.File, s.env.Module, s.env.ClearFlag, false); err != nil {
		return Failed(err)
	}
	return Done(fmt.Sprintf("`%s = false` in `%s`", s.env.ClearFlag, s.env.File))
}

// checkFlags refuses a tree in which any configured clear flag is true:
// such a tree must never be committed or pushed.
func checkFlags(svc *config.Service, read func(env *configEnv) (string, error)) error {
	for i := range svc.Environments {
		env := &svc.Environments[i]
		if env.ClearFlag == "" {
			continue
		}
		v, err := read(env)
		if err != nil {
			return fmt.Errorf("checking %s in %s: %w", env.ClearFlag, env.File, err)
		}
		if v != "false" {
			return fmt.Errorf("refusing to commit: `%s` is `%s` in `%s`; it must be `false`", env.ClearFlag, v, env.File)
		}
	}
	return nil
}

// The clear flag (data_refresh_cleared) is true only while a plan or apply
// of its environment is in flight. The design, smallest first:
//   - airflow:<env> checks Airflow, then flag:<env> sets the flag; its
//     compensation restores false however the run ends, a crash included.
//   - restore:<env> sets it back after a successful apply.
//   - A plan or apply that fails, stops on a state lock or is interrupted
//     stands the environment down in the same result that offers Retry,
//     Force unlock or Re-plan (standDown): the flag is false in the working
//     copy and the approval is void before anyone is asked anything.
//   - plan:<env> never plans with the flag false: it rewinds to airflow:<env>.
//     apply:<env> without an approval rewinds there too. So Retry and
//     Re-plan always go Airflow check → flag → bump → plan → fresh approval,
//     and the old plan is never applied again.
// No new step, state or engine rule: two checks at the start of plan and
// apply, and one helper on every failure path.

// flagged reports whether the environment's plan and apply need the clear
// flag set by this run's flag step.
func (s *infraStep) flagged(x *Exec) bool {
	return s.env != nil && s.env.ClearFlag != "" && x.Run.StepByID("flag:"+s.env.Name) != nil
}

// preplan is where a new plan of the environment starts: the Airflow
// check before the flag when the runbook has one, else the flag, else the
// plan itself.
func (s *infraStep) preplan(x *Exec) string {
	for _, id := range []string{"airflow:" + s.env.Name, "flag:" + s.env.Name} {
		if x.Run.StepByID(id) != nil {
			return id
		}
	}
	return "plan:" + s.env.Name
}

func (s *infraStep) voidApproval(x *Exec) {
	for _, k := range []string{"approved_sha256", "approved_commit", "approver"} {
		x.SetRunValue(planKey(s.env.Name, k), "")
	}
}

// standDown takes the environment out of flight after a failed, locked or
// interrupted plan or apply: the approval is void and the clear flag is
// false in the working copy at once, not only when the run ends.
func (s *infraStep) standDown(ctx context.Context, x *Exec, t Tree) {
	s.voidApproval(x)
	if !s.flagged(x) {
		return
	}
	v, _ := t.Attribute(s.env.File, s.env.Module, s.env.ClearFlag)
	if v == "false" {
		return
	}
	if _, _, err := t.SetAttribute(s.env.File, s.env.Module, s.env.ClearFlag, false); err != nil {
		x.Say(":rotating_light: Could not restore `%s = false` in `%s`: %s. Set it by hand before anything is committed.", s.env.ClearFlag, s.env.File, Escape(err.Error()))
		return
	}
	x.Say(":leftwards_arrow_with_hook: `%s` restored to `false` in `%s` (the %s plan or apply is no longer in flight).", s.env.ClearFlag, s.env.File, s.env.Name)
}

// locked shows a state lock in the thread and asks an approver to force it
// open; the step keeps the lock's facts for the click and its audit line.
func (s *infraStep) locked(x *Exec, l *StateLock, what string) Result {
	when := "an unknown time"
	if !l.Created.IsZero() {
		when = l.Created.UTC().Format("2006-01-02 15:04:05") + " UTC"
	}
	x.Set("lock_id", l.ID)
	x.Set("lock", fmt.Sprintf("lock %s, %s by %s since %s", l.ID, l.Operation, l.Who, when))
	state := "Terraform still holds it"
	if l.Stale {
		state = "no process holds it any more: it was left by a Terraform that was killed"
	}
	x.Say(":lock: The %s state is locked (%s):\n• ID `%s`\n• Operation `%s`\n• Who `%s`\n• Since %s\n• Path `%s`",
		s.env.Name, state, Escape(l.ID), Escape(l.Operation), Escape(l.Who), when, Escape(l.Path))
	r := Wait(fmt.Sprintf("%s stopped on the %s state lock `%s` (%s by %s since %s). Make sure no Terraform run is still using it, then an approver may Force unlock it; afterwards Re-plan makes a fresh plan for a fresh approval.",
		what, s.env.Name, Escape(l.ID), Escape(l.Operation), Escape(l.Who), when),
		Button{Verb: VerbConfirm, Label: "Force unlock", Style: "danger"})
	r.Note = fmt.Sprintf("the %s state is locked (`%s`, %s)", s.env.Name, Escape(l.ID), Escape(l.Who))
	r.WaitingOn = GateApprover.String()
	return r
}

// forceUnlock answers Force unlock: it releases exactly the lock that was
// shown, records who did it in the audit log, and offers Re-plan.
func (s *infraStep) forceUnlock(ctx context.Context, x *Exec, a Action) Result {
	id := x.Get("lock_id")
	if id == "" {
		return unexpected(s.S, a)
	}
	t, err := s.tree(ctx, x)
	if err != nil {
		return Failed(err)
	}
	if x.eng != nil {
		detail := fmt.Sprintf("%s state: %s", s.env.Name, x.Get("lock"))
		if a.Reason != "" {
			detail += "; reason: " + a.Reason
		}
		x.eng.audit(ctx, AuditEvent{RunID: x.Run.ID, Actor: a.User, Action: "terraform.force_unlock", StepID: s.S.ID, Detail: detail})
	}
	if err := t.ForceUnlock(ctx, s.env, id); err != nil {
		return FailedText("force-unlock of the %s state (lock `%s`) failed: %s\nRetry re-plans, which shows the lock again if it is still there.", s.env.Name, Escape(id), Escape(err.Error()))
	}
	x.Set("lock_id", "")
	r := Wait(fmt.Sprintf("The %s state lock `%s` is released. Re-plan makes a fresh plan from the state as it is now, for a fresh approval; the old plan is never applied.", s.env.Name, Escape(id)), replan)
	r.Note = fmt.Sprintf("state lock `%s` released by <@%s>", Escape(id), a.User)
	r.Say = fmt.Sprintf(":unlock: <@%s> force-unlocked the %s state (%s).", a.User, s.env.Name, Escape(x.Get("lock")))
	return r
}
