package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/deploybot/deploybot/internal/storecodec"
	"github.com/deploybot/deploybot/steps"
)

var (
	_ steps.Mailbox     = (*DB)(nil)
	_ steps.ActionWaker = (*DB)(nil)
)

// actionsChannel is notified, in the recording transaction, whenever a
// request is recorded for another replica.
const actionsChannel = "deploybot_actions"

// AddPendingAction implements steps.Mailbox. The notification is sent on
// commit, so the holder never wakes before the request is readable.
func (db *DB) AddPendingAction(ctx context.Context, a *steps.PendingAction) error {
	return wrap("record a request for "+a.RunID, db.write(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO pending_actions (run_id, body, created_at) VALUES ($1, $2, $3) RETURNING id`,
			a.RunID, a.Body, storecodec.FormatTime(a.CreatedAt.UTC())).Scan(&a.ID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, actionsChannel, a.RunID)
		return err
	}))
}

// PendingActions implements steps.Mailbox.
func (db *DB) PendingActions(ctx context.Context) ([]steps.PendingAction, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, run_id, body, created_at FROM pending_actions WHERE taken_at = '' ORDER BY id`)
	if err != nil {
		return nil, wrap("read pending requests", err)
	}
	defer rows.Close()
	out, err := storecodec.Collect(rows, storecodec.ScanAction)
	return out, wrap("read pending requests", err)
}

// MarkActionTaken implements steps.Mailbox.
func (db *DB) MarkActionTaken(ctx context.Context, id int64) error {
	_, err := db.pool.Exec(ctx, `UPDATE pending_actions SET taken_at = $1 WHERE id = $2 AND taken_at = ''`, storecodec.FormatTime(db.now().UTC()), id)
	return wrap("mark a request taken", err)
}

// WaitActions implements steps.ActionWaker with LISTEN on a connection of
// its own, held until ctx ends or the connection fails (the caller polls
// meanwhile and calls again).
func (db *DB) WaitActions(ctx context.Context, woken func()) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return wrap("listen for requests", err)
	}
	// The connection has a LISTEN on it: it does not go back to the pool.
	pc := conn.Hijack()
	defer pc.Close(context.Background())
	if _, err := pc.Exec(ctx, "LISTEN "+actionsChannel); err != nil {
		return wrap("listen for requests", err)
	}
	// A request recorded before the LISTEN took effect is found by this
	// first look.
	woken()
	for {
		if _, err := pc.WaitForNotification(ctx); err != nil {
			return wrap("listen for requests", err)
		}
		woken()
	}
}
