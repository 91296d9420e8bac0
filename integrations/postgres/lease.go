package postgres

import (
	"context"
	"time"

	"github.com/deploybot/deploybot/steps"
)

var _ steps.Leases = (*DB)(nil)

// TakeLease implements steps.Leases: one upsert, by the database's clock,
// so whichever replicas race, one holds the lease.
func (db *DB) TakeLease(ctx context.Context, runID, owner string, ttl time.Duration) (bool, error) {
	tag, err := db.pool.Exec(ctx, `INSERT INTO leases (run_id, owner, expires_at)
		VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
		ON CONFLICT (run_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
		WHERE leases.owner = excluded.owner OR leases.expires_at <= clock_timestamp()`,
		runID, owner, ttl.Seconds())
	if err != nil {
		return false, wrap("take lease of "+runID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// DropLease implements steps.Leases.
func (db *DB) DropLease(ctx context.Context, runID, owner string) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM leases WHERE run_id = $1 AND owner = $2`, runID, owner)
	return wrap("drop lease of "+runID, err)
}
