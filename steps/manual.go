package steps

import (
	"context"
	"fmt"
)

// Manual is a step a person carries out: the runbook's instruction and a
// button to confirm it. It is every step's fallback when the integration that
// would automate it is not configured.
type Manual struct {
	S Spec
	// Approval makes it a decision (Approve / Reject) instead of a
	// confirmation: rejecting ends the run.
	Approval bool
	// Undo, when set, is the instruction given if the run ends without
	// success after this step: a manual compensation.
	Undo string
	// Resolve labels the button "Resolve" (incidents).
	Resolve bool
}

func (m *Manual) Spec() Spec { return m.S }

func (m *Manual) Start(ctx context.Context, x *Exec) Result {
	if m.Approval {
		return Wait(m.S.Instruction,
			Button{Verb: VerbApprove, Label: "Approve", Style: "primary"},
			Button{Verb: VerbReject, Label: "Reject", Style: "danger"})
	}
	label := "Done"
	if m.Resolve {
		label = "Resolve"
	}
	return Wait(m.S.Instruction, Button{Verb: VerbDone, Label: label, Style: "primary"})
}

func (m *Manual) Act(ctx context.Context, x *Exec, a Action) Result {
	switch a.Verb {
	case VerbApprove:
		r := Done(fmt.Sprintf("approved by <@%s>", a.User))
		r.Approval = &Approval{Approver: a.User, Decision: VerbApprove}
		return r
	case VerbReject:
		r := FailedText("rejected by <@%s>", a.User)
		r.Approval = &Approval{Approver: a.User, Decision: VerbReject}
		r.EndRun = fmt.Sprintf("%s rejected by <@%s>", m.S.Title, a.User)
		return r
	default:
		if m.Resolve {
			return Done(fmt.Sprintf("resolved by <@%s>", a.User))
		}
		return Done(fmt.Sprintf("confirmed done by <@%s>", a.User))
	}
}

// manualUndo is the compensation of a manual step: the bot cannot undo the
// change itself, so it says exactly what to undo, in the thread.
type manualUndo struct{ *Manual }

func (m manualUndo) Compensate(ctx context.Context, x *Exec) error {
	x.Say(":warning: The run ended before finishing. Undo this now: %s", m.Undo)
	return nil
}

// asStep returns the Manual as a Step, with compensation when it has an Undo.
func (m *Manual) asStep() Step {
	if m.Undo != "" {
		return manualUndo{m}
	}
	return m
}
