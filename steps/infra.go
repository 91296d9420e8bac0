package steps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

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
	// Push pushes the run branch. ErrNoPush when the remote cannot be
	// pushed to without the GitHub integration.
	Push(ctx context.Context) error
	// CommittedAttribute reads a literal attribute from a file as committed
	// on the branch, or as pushed when pushed is true.
	CommittedAttribute(ctx context.Context, file, module, attr string, pushed bool) (string, error)
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
	Full       string // terraform show -no-color, for the attached file
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
	if _, _, err := t.SetAttribute(s.env.File, s.env.Module, s.env.ClearFlag, false); err != nil {
		return err
	}
	x.Say(":leftwards_arrow_with_hook: `%s` restored to `false` in `%s`.", s.env.ClearFlag, s.env.File)
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
