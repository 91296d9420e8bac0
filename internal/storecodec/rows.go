package storecodec

import (
	"fmt"

	"github.com/deploybot/deploybot/steps"
)

// Scanner is one row as both drivers read it (*sql.Rows, pgx.Rows).
type Scanner interface {
	Scan(dest ...any) error
}

// Rows is a result set as both drivers walk it. Closing it stays with the
// caller: the drivers' Close methods differ, and a store may need the
// connection back before it has finished with what it read.
type Rows interface {
	Scanner
	Next() bool
	Err() error
}

// Collect reads every row with scan. On a failure it returns what it read
// before, with the error.
func Collect[T any](rows Rows, scan func(Scanner) (T, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ScanAudit reads a row of seq, run_id, at, actor, action, step_id, detail.
func ScanAudit(sc Scanner) (steps.AuditEvent, error) {
	var (
		e  steps.AuditEvent
		at string
	)
	if err := sc.Scan(&e.Seq, &e.RunID, &at, &e.Actor, &e.Action, &e.StepID, &e.Detail); err != nil {
		return e, err
	}
	var err error
	e.At, err = ParseTime(at)
	return e, err
}

// ScanApproval reads a row of step_idx, step_id, approver, decision, at,
// plan_sha256, commit_sha: the approvals of runID, which the row does not
// repeat.
func ScanApproval(sc Scanner, runID string) (steps.Approval, error) {
	a := steps.Approval{RunID: runID}
	var at string
	if err := sc.Scan(&a.StepIndex, &a.StepID, &a.Approver, &a.Decision, &at, &a.PlanSHA256, &a.Commit); err != nil {
		return a, err
	}
	var err error
	a.At, err = ParseTime(at)
	return a, err
}

// ScanOutbox reads a row of id, run_id, kind, channel, text, buttons, name,
// title, content, created_at.
func ScanOutbox(sc Scanner) (steps.OutboxEntry, error) {
	var e steps.OutboxEntry
	var kind, buttons, at string
	if err := sc.Scan(&e.ID, &e.RunID, &kind, &e.Channel, &e.Text, &buttons, &e.Name, &e.Title, &e.Content, &at); err != nil {
		return e, err
	}
	e.Kind = steps.OutboxKind(kind)
	var err error
	if e.Buttons, err = DecodeButtons(buttons); err != nil {
		return e, fmt.Errorf("outbox %d: %w", e.ID, err)
	}
	if e.At, err = ParseTime(at); err != nil {
		return e, fmt.Errorf("outbox %d: %w", e.ID, err)
	}
	return e, nil
}

// OutboxArgs are the values of run_id, kind, channel, text, buttons, name,
// title, content, created_at for a new entry. runID fills in an entry that
// does not name its run; now, one that has no time of its own.
func OutboxArgs(e steps.OutboxEntry, runID, now string) ([]any, error) {
	if e.RunID == "" {
		e.RunID = runID
	}
	buttons, err := EncodeButtons(e.Buttons)
	if err != nil {
		return nil, err
	}
	at := now
	if !e.At.IsZero() {
		at = FormatTime(e.At.UTC())
	}
	return []any{e.RunID, string(e.Kind), e.Channel, e.Text, buttons, e.Name, e.Title, e.Content, at}, nil
}

// ScanAction reads a row of id, run_id, body, created_at.
func ScanAction(sc Scanner) (steps.PendingAction, error) {
	var a steps.PendingAction
	var at string
	if err := sc.Scan(&a.ID, &a.RunID, &a.Body, &at); err != nil {
		return a, err
	}
	var err error
	a.CreatedAt, err = ParseTime(at)
	return a, err
}
