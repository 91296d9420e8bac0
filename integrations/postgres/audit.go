package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/deploybot/deploybot/internal/storecodec"
	"github.com/deploybot/deploybot/steps"
)

// deliveryTTL is how long an envelope id is remembered. Slack redelivers an
// unacknowledged envelope within minutes; a day is ample.
const deliveryTTL = 24 * time.Hour

func appendEvent(b *pgx.Batch, e steps.AuditEvent, now time.Time) {
	if e.At.IsZero() {
		e.At = now
	}
	b.Queue(`INSERT INTO audit (run_id, at, actor, action, step_id, detail) VALUES ($1, $2, $3, $4, $5, $6)`,
		e.RunID, storecodec.FormatTime(e.At), e.Actor, e.Action, e.StepID, e.Detail)
}

func (db *DB) AppendAudit(ctx context.Context, events ...steps.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	now := db.now().UTC()
	return wrap("append audit", db.write(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, e := range events {
			appendEvent(b, e, now)
		}
		return tx.SendBatch(ctx, b).Close()
	}))
}

func (db *DB) Audit(ctx context.Context, runID string) ([]steps.AuditEvent, error) {
	q, args := `SELECT seq, run_id, at, actor, action, step_id, detail FROM audit ORDER BY seq`, []any(nil)
	if runID != "" {
		q, args = `SELECT seq, run_id, at, actor, action, step_id, detail FROM audit WHERE run_id = $1 ORDER BY seq`, []any{runID}
	}
	var events []steps.AuditEvent
	err := db.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, q, args...)
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
	err := db.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT step_idx, step_id, approver, decision, at, plan_sha256, commit_sha
			FROM approvals WHERE run_id = $1 ORDER BY seq`, id)
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

// FirstDelivery is a unique insert every replica shares: whichever replica
// Slack hands an envelope (or its redelivery) to, exactly one is told it is
// new. Expired ids are pruned in the same transaction.
func (db *DB) FirstDelivery(ctx context.Context, id string) (bool, error) {
	if id == "" {
		return false, errors.New("postgres: first delivery: empty envelope id")
	}
	now := db.now().UTC()
	var fresh bool
	err := db.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM deliveries WHERE at < $1`, storecodec.FormatTime(now.Add(-deliveryTTL))); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO deliveries (id, at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, id, storecodec.FormatTime(now))
		fresh = tag.RowsAffected() == 1
		return err
	})
	return fresh, wrap("first delivery", err)
}
