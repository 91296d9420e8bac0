package steps

import (
	"context"
	"fmt"
)

// MayStart answers whether user may start a run of this kind, as Start
// would: a form can then refuse before anyone waits for a run that will
// not start. A refusal is audited like Start's.
func (e *Engine) MayStart(ctx context.Context, kind RunKind, service, user string) error {
	ok, err := e.policy.IsDeployer(ctx, user)
	if err != nil {
		e.audit(ctx, AuditEvent{Actor: user, Action: "start.refused", Detail: fmt.Sprintf("%s %s: role unknown: %v", kind, service, err)})
		return roleUnknown(err)
	}
	if ok {
		return nil
	}
	approver, err := e.policy.IsApprover(ctx, user)
	if err != nil {
		e.audit(ctx, AuditEvent{Actor: user, Action: "start.refused", Detail: fmt.Sprintf("%s %s: role unknown: %v", kind, service, err)})
		return roleUnknown(err)
	}
	// Anyone with a role may declare an incident; deploys and rollbacks
	// need the deployer role.
	if kind == KindIncident && approver {
		return nil
	}
	e.audit(ctx, AuditEvent{Actor: user, Action: "start.refused", Detail: fmt.Sprintf("%s %s: not a deployer", kind, service)})
	return refuse("You are not allowed to start a %s: only deployers (listed under `slack.deployers`) may. Ask one of them.", kind)
}

// Check answers whether Act would take req now, without acting: the run is
// open, the button is current, and the user may press it. A form that asks
// for a reason checks first, so nobody explains a click that is refused
// anyway. Act checks again when the reason arrives.
func (e *Engine) Check(ctx context.Context, req ActionRequest) error {
	if rf := e.shuttingDown(); rf != nil {
		return e.refused(ctx, req, "%s", rf.Msg)
	}
	if req.StepIndex == RunLevel {
		return nil // checked when acted on: they need no step
	}
	l := e.liveRun(req.RunID)
	if l == nil {
		r, err := e.store.Run(ctx, req.RunID)
		if err != nil {
			return e.refused(ctx, req, "run %s does not exist. `/deploy status` lists open runs.", req.RunID)
		}
		return e.refused(ctx, req, "%s has already ended (%s). Nothing was changed.", r.ID, r.State)
	}
	approver, roleErr := e.policy.IsApprover(ctx, req.User)
	r := l.snap.Load()
	if r.State != RunActive {
		return e.refused(ctx, req, "%s is ending (%s). Nothing was changed.", r.ID, r.State)
	}
	if req.Verb == VerbCancel { // as Cancel decides
		if req.User == r.Requester || approver {
			return nil
		}
		if roleErr != nil {
			return e.refused(ctx, req, "%s", roleUnknown(roleErr).Msg)
		}
		return e.refused(ctx, req, "only <@%s>, who started %s, or an approver may cancel it.", r.Requester, r.ID)
	}
	st := r.Step(req.StepIndex)
	if st == nil {
		return e.refused(ctx, req, "that button does not belong to a step of %s.", r.ID)
	}
	if st.Seq != req.Seq || (st.Status != StepWaiting && st.Status != StepFailed && st.Status != StepInterrupted) {
		return e.refused(ctx, req, "that button is no longer current: “%s” is now %s. Nothing was changed.", st.Title, st.Status)
	}
	if !hasVerb(st.Buttons, req.Verb) {
		return e.refused(ctx, req, "“%s” does not take %q now.", st.Title, req.Verb)
	}
	if rf := authorize(r, l.steps[st.Index].Spec(), approver, req); rf != nil {
		if roleErr != nil {
			rf = roleUnknown(roleErr)
		}
		return e.refused(ctx, req, "%s", rf.Msg)
	}
	return nil
}
