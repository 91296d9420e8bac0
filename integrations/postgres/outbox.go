package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/deploybot/deploybot/internal/storecodec"
	"github.com/deploybot/deploybot/steps"
)

// putOutbox queues entries for the caller's transaction. runID fills in
// entries that do not name their run. Callers hold the run's row lock, so a
// run's entries get their ids in commit order and are delivered in it.
func putOutbox(b *pgx.Batch, runID string, es []steps.OutboxEntry, now string) error {
	for _, e := range es {
		args, err := storecodec.OutboxArgs(e, runID, now)
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO outbox (run_id, kind, channel, text, buttons, name, title, content, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, args...)
	}
	return nil
}

// markDelivered queues deliveries for the caller's transaction. Updates are
// deleted rather than kept: they carry nothing but "render again". A
// delivered file keeps its name but drops its bytes.
func markDelivered(b *pgx.Batch, ds []steps.Delivery, now string) {
	for _, d := range ds {
		b.Queue(`DELETE FROM outbox WHERE id = $1 AND kind = 'update'`, d.ID)
		b.Queue(`UPDATE outbox SET delivered_at = $1, ts = $2, failure = $3, content = NULL
			WHERE id = $4 AND delivered_at = ''`, now, d.TS, d.Failure, d.ID)
	}
}

// MarkDelivered implements steps.Store.
func (db *DB) MarkDelivered(ctx context.Context, ds []steps.Delivery, follow ...steps.OutboxEntry) error {
	now := storecodec.FormatTime(db.now().UTC())
	return wrap("mark delivered", db.write(ctx, func(tx pgx.Tx) error {
		// Follow-ups join their run's outbox under its row lock, like a
		// transition's entries (see putOutbox).
		var ids []int64
		for _, e := range follow {
			if n, ok := storecodec.ParseID(e.RunID); ok {
				ids = append(ids, n)
			}
		}
		if len(ids) > 0 {
			if _, err := tx.Exec(ctx, `SELECT 1 FROM runs WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids); err != nil {
				return err
			}
		}
		b := &pgx.Batch{}
		markDelivered(b, ds, now)
		if err := putOutbox(b, "", follow, now); err != nil {
			return err
		}
		return tx.SendBatch(ctx, b).Close()
	}))
}

// PendingOutbox implements steps.Store.
func (db *DB) PendingOutbox(ctx context.Context, runID string) ([]steps.OutboxEntry, error) {
	var out []steps.OutboxEntry
	err := db.read(ctx, func(tx pgx.Tx) error {
		q := `SELECT id, run_id, kind, channel, text, buttons, name, title, content, created_at FROM outbox WHERE delivered_at = ''`
		var args []any
		if runID != "" {
			q += ` AND run_id = $1`
			args = append(args, runID)
		}
		rows, err := tx.Query(ctx, q+` ORDER BY id`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		out, err = storecodec.Collect(rows, storecodec.ScanOutbox)
		return err
	})
	return out, wrap("pending outbox", err)
}

// OutboxDepth counts the messages owed to Slack (the /metrics gauge)
// without loading them.
func (db *DB) OutboxDepth(ctx context.Context) (int, error) {
	var n int
	err := db.read(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE delivered_at = ''`).Scan(&n)
	})
	return n, err
}
