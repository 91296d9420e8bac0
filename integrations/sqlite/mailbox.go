package sqlite

import (
	"context"
	"database/sql"

	"github.com/deploybot/deploybot/internal/storecodec"
	"github.com/deploybot/deploybot/steps"
)

var _ steps.Mailbox = (*DB)(nil)

// AddPendingAction implements steps.Mailbox.
func (db *DB) AddPendingAction(ctx context.Context, a *steps.PendingAction) error {
	return wrap("record a request for "+a.RunID, db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO pending_actions (run_id, body, created_at) VALUES (?, ?, ?)`,
			a.RunID, a.Body, storecodec.FormatTime(a.CreatedAt.UTC()))
		if err != nil {
			return err
		}
		a.ID, err = res.LastInsertId()
		return err
	}))
}

// PendingActions implements steps.Mailbox.
func (db *DB) PendingActions(ctx context.Context) ([]steps.PendingAction, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, run_id, body, created_at FROM pending_actions WHERE taken_at = '' ORDER BY id`)
	if err != nil {
		return nil, wrap("read pending requests", err)
	}
	defer rows.Close()
	out, err := storecodec.Collect(rows, storecodec.ScanAction)
	return out, wrap("read pending requests", err)
}

// MarkActionTaken implements steps.Mailbox.
func (db *DB) MarkActionTaken(ctx context.Context, id int64) error {
	return wrap("mark a request taken", db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE pending_actions SET taken_at = ? WHERE id = ? AND taken_at = ''`, storecodec.FormatTime(db.now().UTC()), id)
		return err
	}))
}
