package postgres

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// The column encodings are internal/storecodec's, the SQLite store's byte
// for byte: export copies rows as they are, and a run reads back the same
// from either store. How the driver reports a refusal is this store's own.

// isLockConflict reports whether err is the service-lock index refusing a
// second open run.
func isLockConflict(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "runs_service_lock"
}
