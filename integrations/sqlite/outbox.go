package sqlite

import (
	"context"
	"database/sql"

	"github.com/deploybot/deploybot/internal/storecodec"
	"github.com/deploybot/deploybot/steps"
)

// putOutbox appends entries in the caller's transaction. runID fills in
// entries that do not name their run.
func (db *DB) putOutbox(ctx context.Context, tx *sql.Tx, runID string, es []steps.OutboxEntry, now string) error {
	for _, e := range es {
		args, err := storecodec.OutboxArgs(e, runID, now)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (run_id, kind, channel, text, buttons, name, title, content, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...); err != nil {
			return err
		}
	}
	return nil
}

// markDelivered records deliveries in the caller's transaction. Updates
// are deleted rather than kept: they carry nothing but "render again".
// A delivered file keeps its name but drops its bytes.
func (db *DB) markDelivered(ctx context.Context, tx *sql.Tx, ds []steps.Delivery, now string) error {
	for _, d := range ds {
		if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE id = ? AND kind = 'update'`, d.ID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET delivered_at = ?, ts = ?, failure = ?, content = NULL
			WHERE id = ? AND delivered_at = ''`, now, d.TS, d.Failure, d.ID); err != nil {
			return err
		}
	}
	return nil
}

// MarkDelivered implements steps.Store.
func (db *DB) MarkDelivered(ctx context.Context, ds []steps.Delivery, follow ...steps.OutboxEntry) error {
	now := storecodec.FormatTime(db.now().UTC())
	return wrap("mark delivered", db.write(ctx, func(tx *sql.Tx) error {
		if err := db.markDelivered(ctx, tx, ds, now); err != nil {
			return err
		}
		return db.putOutbox(ctx, tx, "", follow, now)
	}))
}

// PendingOutbox implements steps.Store.
func (db *DB) PendingOutbox(ctx context.Context, runID string) ([]steps.OutboxEntry, error) {
	var out []steps.OutboxEntry
	err := db.read(ctx, func(tx *sql.Tx) error {
		q := `SELECT id, run_id, kind, channel, text, buttons, name, title, content, created_at FROM outbox WHERE delivered_at = ''`
		var args []any
		if runID != "" {
			q += ` AND run_id = ?`
			args = append(args, runID)
		}
		rows, err := tx.QueryContext(ctx, q+` ORDER BY id`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		out, err = storecodec.Collect(rows, storecodec.ScanOutbox)
		return err
	})
	return out, wrap("pending outbox", err)
}
