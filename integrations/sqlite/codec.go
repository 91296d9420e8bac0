package sqlite

import (
	"errors"
	"strings"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The column encodings are internal/storecodec's, shared with the
// PostgreSQL store; how the driver reports a refusal is this store's own.

// isLockConflict reports whether err is the service-lock index refusing a
// second open run.
func isLockConflict(err error) bool {
	var se *msqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE &&
		strings.Contains(se.Error(), "runs.lock_key")
}
