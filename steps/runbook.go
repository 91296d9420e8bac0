package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/deploybot/deploybot/config"
)

// Runbooks builds the steps of a run. A step's behaviour is chosen by its
// id: an automated implementation when one is registered (because its
// integration is configured), otherwise the manual step with the runbook's
// text. Runs are rebuilt this way after a restart, so step ids are stable.
type Runbooks struct {
	cfg        *config.Config
	builders   map[string]Builder
	prs        PullRequests
	validators []Validator
	sentry     Sentry
	sentryCfg  *config.Sentry
}

// Validator checks a start request against the outside world before a run
// opens (a rollback's release must exist). Its error is shown to the user;
// return a *Refused to say what to do instead.
type Validator func(ctx context.Context, req StartRequest) error

// Validate registers a check run before every run starts.
func (rb *Runbooks) Validate(v Validator) { rb.validators = append(rb.validators, v) }

func (rb *Runbooks) validate(ctx context.Context, req StartRequest) error {
	for _, v := range rb.validators {
		if err := v(ctx, req); err != nil {
			return err
		}
	}
	return nil
}

// Builder makes the automated form of a step from its spec and service. It
// returns nil to fall back to the manual step.
type Builder func(spec Spec, svc *config.Service, m *Manual) Step

// NewRunbooks makes the catalogue for a configuration.
func NewRunbooks(cfg *config.Config) *Runbooks {
	return &Runbooks{cfg: cfg, builders: map[string]Builder{}}
}

// Automate registers the automated form of every step whose id is kind, or
// starts with kind + ":" (environment steps: "plan:dev").
func (rb *Runbooks) Automate(kind string, b Builder) { rb.builders[kind] = b }

// Steps returns the steps of a run, in order.
func (rb *Runbooks) Steps(r *Run) ([]Step, error) {
	svc := rb.cfg.Service(r.Service)
	if svc == nil {
		return nil, fmt.Errorf("service %q is not configured", r.Service)
	}
	var ms []*Manual
	switch r.Kind {
	case KindDeploy:
		ms = deploySteps(rb.cfg, svc)
	case KindRollback:
		ms = rollbackSteps(rb.cfg, svc, r.Version)
	case KindIncident:
		ms = incidentSteps(rb.cfg, svc)
	default:
		return nil, fmt.Errorf("unknown run kind %q", r.Kind)
	}
	out := make([]Step, len(ms))
	for i, m := range ms {
		kind, _, _ := strings.Cut(m.S.ID, ":")
		if b := rb.builders[kind]; b != nil {
			if s := b(m.S, svc, m); s != nil {
				out[i] = s
				continue
			}
		}
		out[i] = m.asStep()
	}
	return out, nil
}

// stepsFor returns the steps of an existing run matched by id, so that a run
// opened under an older configuration keeps working: a step the runbook no
// longer has becomes a manual step, and changed reports that.
func (rb *Runbooks) stepsFor(r *Run) (impl []Step, changed bool) {
	cur, err := rb.Steps(r)
	byID := map[string]Step{}
	for _, s := range cur {
		byID[s.Spec().ID] = s
	}
	changed = err != nil || len(cur) != len(r.Steps)
	impl = make([]Step, len(r.Steps))
	for i, st := range r.Steps {
		if s, ok := byID[st.ID]; ok {
			impl[i] = s
			continue
		}
		changed = true
		m := &Manual{S: Spec{ID: st.ID, Title: st.Title, Idempotent: true,
			Instruction: "This step is no longer in the runbook. Do it by hand and click Done, or cancel the run."},
			Undo: fmt.Sprintf("whatever “%s” changed (deploybot no longer knows this step, so it cannot undo it itself).", st.Title)}
		impl[i] = m.asStep()
	}
	return impl, changed
}

// deploySteps is a service's deploy runbook: its own steps from config, or
// the built-in runbook, which is the Openverse ingestion-server runbook
// generalised over the service's environments.
func deploySteps(cfg *config.Config, svc *config.Service) []*Manual {
	if len(svc.Steps) > 0 {
		var ms []*Manual
		for _, d := range svc.Steps {
			s := Spec{ID: d.ID, Title: d.Title, Instruction: d.Instruction, Environment: d.Environment, Idempotent: true}
			if d.Approval {
				s.Gate = GateApprover
			}
			if env := svc.Environment(d.Environment); env != nil && env.FourEyes {
				s.FourEyes = true
			}
			ms = append(ms, &Manual{S: s, Approval: d.Approval})
		}
		return ms
	}
	name := svc.Name
	manual := func(id, title, text string, gate Gate) *Manual {
		return &Manual{S: Spec{ID: id, Title: title, Instruction: text, Gate: gate, Idempotent: true}}
	}
	ms := []*Manual{
		manual("airflow", "Check Airflow", "Check Airflow to make sure a data refresh isn’t occurring.", GateRequesterOrApprover),
		manual("release", "Publish the release", fmt.Sprintf("Publish the drafted %s release in the GitHub release page of the monorepo%s. Preview the changes included in the release, decide whether a release is necessary, and adjust monitoring during the deployment accordingly.", name, repoSuffix(cfg)), GateApprover),
		manual("build", "Wait for the image build", fmt.Sprintf("Wait until the monorepo workflow %s has built and tagged the image for this release, then click Done.", workflowName(svc)), GateRequesterOrApprover),
	}
	for i, env := range svc.Environments {
		e := env
		label := envLabel(e.Name, i, len(svc.Environments))
		if e.ClearFlag != "" {
			again := manual("airflow:"+e.Name, fmt.Sprintf("%s: check Airflow again", label),
				"Check Airflow again just before this plan: a data refresh may have started while the earlier environments deployed.", GateRequesterOrApprover)
			again.S.Environment = e.Name
			ms = append(ms, again)
			m := manual("flag:"+e.Name, fmt.Sprintf("%s: set %s", label, e.ClearFlag),
				fmt.Sprintf("Update the value of `%s` to `true` in the %s module declaration (`%s`).", e.ClearFlag, e.Name, e.File), GateRequesterOrApprover)
			m.S.Environment = e.Name
			m.Undo = fmt.Sprintf("restore `%s = false` in `%s` and do not push it as `true`.", e.ClearFlag, e.File)
			ms = append(ms, m)
		}
		bump := manual("bump:"+e.Name, fmt.Sprintf("%s: bump %s", label, name),
			fmt.Sprintf("Check out the infrastructure repository and bump the %s version with `just bump %s %s` (sets `%s` in `%s`).", name, e.Name, name, e.VersionAttribute, e.File), GateRequesterOrApprover)
		bump.S.Environment = e.Name
		plan := &Manual{Approval: true, S: Spec{ID: "plan:" + e.Name, Title: fmt.Sprintf("%s: verify the plan", label), Gate: GateApprover, Environment: e.Name, FourEyes: e.FourEyes, Idempotent: true,
			Instruction: fmt.Sprintf("Run `terraform plan` for `%s`%s and verify it: only the %s image tag should change. Approve to go on to the apply.", e.Dir, targetSuffix(e.Target), name)}}
		apply := manual("apply:"+e.Name, fmt.Sprintf("%s: apply", label),
			fmt.Sprintf("`just apply %s %s`: apply exactly the plan that was approved.", e.Name, name), GateRequesterOrApprover)
		apply.S.Environment = e.Name
		ms = append(ms, bump, plan, apply)
		if e.ClearFlag != "" {
			r := manual("restore:"+e.Name, fmt.Sprintf("%s: restore %s", label, e.ClearFlag),
				fmt.Sprintf("Restore the value of `%s` back to `false` in `%s`.", e.ClearFlag, e.File), GateRequesterOrApprover)
			r.S.Environment = e.Name
			ms = append(ms, r)
		}
	}
	ms = append(ms,
		manual("sentry", "Check Sentry", "Check for any Sentry errors in the maintainers’ #openverse-alerts channel, or in the Sentry UI.", GateRequesterOrApprover),
		manual("changelog", "Approve the changelog PR", "Review and approve the automatically-generated changelog pull request in the monorepo.", GateApprover),
		manual("infra-pr", "Open the infrastructure PR", fmt.Sprintf("Push up a PR to the infrastructure repository%s with the Terraform changes (the version bump of %s). Be sure `data_refresh_cleared` is back to `false`.", infraSuffix(cfg), name), GateRequesterOrApprover),
	)
	return ms
}

func rollbackSteps(cfg *config.Config, svc *config.Service, tag string) []*Manual {
	fourEyes := false
	for _, e := range svc.Environments {
		fourEyes = fourEyes || e.FourEyes
	}
	workflow, ref := "the deployment workflow", "main"
	if svc.Rollback != nil {
		workflow, ref = "`"+svc.Rollback.Workflow+"`", svc.Rollback.Ref
	}
	return []*Manual{
		{S: Spec{ID: "rollback-confirm", Title: "Confirm the rollback", Gate: GateApprover, FourEyes: fourEyes, Environment: "production", Idempotent: true,
			Instruction: fmt.Sprintf("Roll %s back to `%s`? Approving runs %s of the infrastructure repository%s on `%s` with tag `%s`, which redeploys that image to production.", svc.Name, tag, workflow, infraSuffix(cfg), ref, tag)}, Approval: true},
		{S: Spec{ID: "rollback", Title: "Run the rollback workflow", Gate: GateRequesterOrApprover, Environment: "production", Idempotent: true,
			Instruction: fmt.Sprintf("Run %s of the infrastructure repository%s on `%s` with input `tag` = `%s`, and wait for it to finish.", workflow, infraSuffix(cfg), ref, tag)}},
		{S: Spec{ID: "rollback-verify", Title: "Verify the service", Gate: GateRequesterOrApprover, Idempotent: true,
			Instruction: fmt.Sprintf("Check that %s runs `%s` and that Sentry is quiet.", svc.Name, tag)}},
	}
}

func incidentSteps(cfg *config.Config, svc *config.Service) []*Manual {
	where := "the team"
	if cfg.Slack.TeamGroup != "" {
		where = fmt.Sprintf("<!subteam^%s>", cfg.Slack.TeamGroup)
	}
	return []*Manual{
		{S: Spec{ID: "incident-notify", Title: "Notify the team", Gate: GateRequesterOrApprover, Idempotent: true,
			Instruction: fmt.Sprintf("Treat this as a production incident: notify %s in the alerts channel with what is wrong and what you see.", where)}},
		{S: Spec{ID: "incident-resolve", Title: "Resolve the incident", Gate: GateRequesterOrApprover, Idempotent: true,
			Instruction: "When service is restored, mark the incident resolved (the declarer or an approver) and write down what happened in the thread."}, Resolve: true},
	}
}

func envLabel(name string, i, n int) string {
	switch {
	case name == "dev" || name == "staging":
		return "Staging (" + name + ")"
	case name == "prod" || name == "production":
		return "Production (" + name + ")"
	}
	return strings.ToUpper(name[:1]) + name[1:]
}

func repoSuffix(cfg *config.Config) string {
	if cfg.GitHub != nil && cfg.GitHub.Monorepo != "" {
		return " (" + cfg.GitHub.Monorepo + ")"
	}
	return ""
}

func infraSuffix(cfg *config.Config) string {
	if cfg.GitHub != nil && cfg.GitHub.InfraRepo != "" {
		return " (" + cfg.GitHub.InfraRepo + ")"
	}
	return ""
}

func targetSuffix(t string) string {
	if t == "" {
		return ""
	}
	return " with `-target=" + t + "`"
}

func workflowName(svc *config.Service) string {
	if svc.BuildWorkflow != "" {
		return "`" + svc.BuildWorkflow + "`"
	}
	return "that builds the image"
}
