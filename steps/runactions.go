package steps

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// runAction handles run-level buttons: they stay valid whatever step the run
// is at, and even after it ended (a Sentry issue can show up late).
func (e *Engine) runAction(ctx context.Context, req ActionRequest) error {
	r, err := e.Run(ctx, req.RunID)
	if err != nil {
		return e.refused(ctx, req, "run %s does not exist.", req.RunID)
	}
	switch req.Verb {
	case VerbIncident:
		e.audit(ctx, AuditEvent{RunID: r.ID, Actor: req.User, Action: "click.incident", Detail: req.Reason})
		summary := req.Reason
		if summary == "" {
			summary = fmt.Sprintf("Problems after %s (%s %s)", r.ID, r.Service, r.Version)
		}
		_, err := e.Start(ctx, StartRequest{Kind: KindIncident, Service: r.Service, Requester: req.User, Channel: r.Channel, Summary: summary, Data: map[string]string{"from_run": r.ID}})
		return err
	case VerbRollback:
		good, err := e.LastGoodVersion(ctx, r)
		if err != nil {
			return err
		}
		if good == "" {
			return e.refused(ctx, req, "deploybot knows no earlier good version of %s. Roll back by hand with `/rollback %s <tag>`.", r.Service, r.Service)
		}
		ok, err := e.policy.IsDeployer(ctx, req.User)
		if err != nil {
			return e.refused(ctx, req, "%s", roleUnknown(err).Msg)
		}
		if !ok {
			return e.refused(ctx, req, "only deployers may start a rollback. Ask one of them.")
		}
		if r.State.Open() && e.liveRun(r.ID) == nil {
			// Superseding needs the deploy: another replica's is passed on
			// to it, and a run no one holds is taken over first.
			if done, err := e.elsewhere(ctx, actionAct, req); done {
				return err
			}
		}
		if l := e.liveRun(r.ID); l != nil && r.Lock() != "" && req.User != r.Requester {
			// Superseding ends the deploy: the same people who may cancel it.
			approver, err := e.policy.IsApprover(ctx, req.User)
			if err != nil {
				return e.refused(ctx, req, "%s", roleUnknown(err).Msg)
			}
			if !approver {
				return e.refused(ctx, req, "%s is still open: only <@%s>, who started it, or an approver may replace it with a rollback.", r.ID, r.Requester)
			}
		}
		e.audit(ctx, AuditEvent{RunID: r.ID, Actor: req.User, Action: "click.rollback", Detail: "to " + good})
		// The deploy still holds the service: it is superseded by the
		// rollback, ending (and undoing what it must) first.
		if l := e.liveRun(r.ID); l != nil && r.Lock() != "" {
			done := l.done
			if _, err := e.end(r.ID, RunFailed, fmt.Sprintf("superseded by a rollback to %s, started by <@%s>", good, req.User), ""); err != nil {
				return err
			}
			select {
			case <-done:
			case <-time.After(2 * time.Minute):
				return e.refused(ctx, req, "%s is still ending; try Roll back again in a minute.", r.ID)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		_, err = e.Start(ctx, StartRequest{Kind: KindRollback, Service: r.Service, Version: good, Requester: req.User, Channel: r.Channel,
			Summary: fmt.Sprintf("Rollback after %s (%s)", r.ID, r.Version), Data: map[string]string{"from_run": r.ID}})
		return err
	}
	return e.refused(ctx, req, "that button does not act on a whole run.")
}

// LastGoodVersion is the version the service ran before r, from deploybot's
// own history: the newest succeeded deploy or rollback other than r with
// another version; failing that, what r's bump replaced.
func (e *Engine) LastGoodVersion(ctx context.Context, r *Run) (string, error) {
	runs, err := e.store.Runs(ctx, r.Service, 200)
	if err != nil {
		return "", err
	}
	for _, o := range runs {
		if o.ID == r.ID || o.State != RunSucceeded || o.Version == "" || o.Version == r.Version {
			continue
		}
		if o.Kind == KindDeploy || o.Kind == KindRollback {
			if o.CreatedAt.After(r.CreatedAt) {
				continue
			}
			return o.Version, nil
		}
	}
	for i := len(r.Steps) - 1; i >= 0; i-- {
		if v := r.Data["previous:"+envOf(r.Steps[i].ID)]; v != "" && v != r.Version {
			return v, nil
		}
	}
	return "", nil
}

func envOf(stepID string) string {
	_, env, _ := strings.Cut(stepID, ":")
	return env
}
