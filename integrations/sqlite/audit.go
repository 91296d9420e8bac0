package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/deploybot/deploybot/internal/storecodec"
	"github.com/deploybot/deploybot/steps"
)

// deliveryTTL is how long an envelope id is remembered. Slack redelivers an
// unacknowledged envelope within minutes; a day is ample, and pruning keeps
// the table from growing with every click for ever.
const deliveryTTL = 24 * time.Hour

func (db *DB) appendEvent(ctx context.Context, tx *sql.Tx, e steps.AuditEvent, now time.Time) error {
	if e.At.IsZero() {
		e.At = now
	}
	_, err := tx.StmtContext(ctx, db.stmts.insertAudit).ExecContext(ctx,
		e.RunID, storecodec.FormatTime(e.At), e.Actor, e.Action, e.StepID, e.Detail)
	return err
}

func (db *DB) AppendAudit(ctx context.Context, events ...steps.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	now := db.now().UTC()
	return wrap("append audit", db.write(ctx, func(tx *sql.Tx) error {
		for _, e := range events {
			if err := db.appendEvent(ctx, tx, e, now); err != nil {
				return err
			}
		}
		return nil
	}))
}

func (db *DB) Audit(ctx context.Context, runID string) ([]steps.AuditEvent, error) {
	q, args := `SELECT seq, run_id, at, actor, action, step_id, detail FROM audit ORDER BY seq`, []any(nil)
	if runID != "" {
		q, args = `SELECT seq, run_id, at, actor, action, step_id, detail FROM audit WHERE run_id = ? ORDER BY seq`, []any{runID}
	}
	var events []steps.AuditEvent
	err := db.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		events, err = storecodec.Collect(rows, storecodec.ScanAudit)
		return err
	})
	return events, wrap("audit", err)
}

// Approvals returns none, not ErrNotFound, for an unknown run: it answers
// "what was approved", and for such a run that is nothing.
func (db *DB) Approvals(ctx context.Context, runID string) ([]steps.Approval, error) {
	id, ok := storecodec.ParseID(runID)
	if !ok {
		return nil, nil
	}
	var out []steps.Approval
	err := db.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT step_idx, step_id, approver, decision, at, plan_sha256, commit_sha
			FROM approvals WHERE run_id = ? ORDER BY seq`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		out, err = storecodec.Collect(rows, func(sc storecodec.Scanner) (steps.Approval, error) {
			return storecodec.ScanApproval(sc, runID)
		})
		return err
	})
	return out, wrap("approvals", err)
}

// FirstDelivery prunes expired ids in the same transaction, so the table
// stays small without a background job.
func (db *DB) FirstDelivery(ctx context.Context, id string) (bool, error) {
	if id == "" {
		return false, errors.New("sqlite: first delivery: empty envelope id")
	}
	now := db.now().UTC()
	var fresh bool
	err := db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.StmtContext(ctx, db.stmts.pruneDeliveries).ExecContext(ctx, storecodec.FormatTime(now.Add(-deliveryTTL))); err != nil {
			return err
		}
		res, err := tx.StmtContext(ctx, db.stmts.insertDelivery).ExecContext(ctx, id, storecodec.FormatTime(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		fresh = n == 1
		return err
	})
	return fresh, wrap("first delivery", err)
}
