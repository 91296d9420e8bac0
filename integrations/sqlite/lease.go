package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/deploybot/deploybot/internal/storecodec"
	"github.com/deploybot/deploybot/steps"
)

var _ steps.Leases = (*DB)(nil)

// TakeLease implements steps.Leases.
func (db *DB) TakeLease(ctx context.Context, runID, owner string, ttl time.Duration) (bool, error) {
	now := db.now().UTC()
	var held bool
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO leases (run_id, owner, expires_at) VALUES (?, ?, ?)
			ON CONFLICT (run_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
			WHERE leases.owner = excluded.owner OR leases.expires_at <= ?`,
			runID, owner, storecodec.FormatTime(now.Add(ttl)), storecodec.FormatTime(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		held = n == 1
		return err
	})
	return held, wrap("take lease of "+runID, err)
}

// DropLease implements steps.Leases.
func (db *DB) DropLease(ctx context.Context, runID, owner string) error {
	return wrap("drop lease of "+runID, db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE run_id = ? AND owner = ?`, runID, owner)
		return err
	}))
}
