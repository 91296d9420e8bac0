package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
)

// identRe admits only plain table and column names: Rows builds its query
// from them.
var identRe = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// Rows calls fn with each row of table, the given columns in order, from one
// snapshot: what `deploybot export` copies. Values are as the driver reads
// them (int64, string, []byte, nil).
func (db *DB) Rows(ctx context.Context, table string, cols []string, fn func(row []any) error) error {
	for _, n := range append([]string{table}, cols...) {
		if !identRe.MatchString(n) {
			return fmt.Errorf("sqlite: rows: %q is not a plain name", n)
		}
	}
	return db.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+strings.Join(cols, ", ")+` FROM `+table)
		if err != nil {
			return fmt.Errorf("sqlite: rows of %s: %w", table, err)
		}
		defer rows.Close()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for rows.Next() {
			for i := range vals {
				vals[i] = nil
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			if err := fn(append([]any(nil), vals...)); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// SchemaVersion is the newest migration applied.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.r.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}
