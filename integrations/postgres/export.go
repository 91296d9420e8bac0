package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Source is a store being copied in (the SQLite store): the rows of one of
// its tables, with the given columns.
type Source interface {
	Rows(ctx context.Context, table string, cols []string, fn func(row []any) error) error
}

// Table is one table Import copies, and how many rows it copied.
type Table struct {
	Name string
	Rows int
}

// importTables are the tables with state, parents before children, each
// with every column: both stores have the same schema.
var importTables = []struct {
	name, identity string
	cols           []string
}{
	{"runs", "id", []string{"id", "kind", "service", "version", "requester", "channel", "message_ts", "summary", "state", "outcome", "created_at", "updated_at", "ended_at", "data", "lock_key", "rev"}},
	{"steps", "", []string{"run_id", "idx", "id", "title", "status", "seq", "attempt", "note", "prompt", "buttons", "waiting_on", "actor", "started_at", "ended_at", "comp", "data"}},
	{"approvals", "seq", []string{"seq", "run_id", "step_idx", "step_id", "approver", "decision", "at", "plan_sha256", "commit_sha"}},
	{"audit", "seq", []string{"seq", "run_id", "at", "actor", "action", "step_id", "detail"}},
	{"outbox", "id", []string{"id", "run_id", "kind", "channel", "text", "buttons", "name", "title", "content", "created_at", "delivered_at", "ts", "failure"}},
	{"deliveries", "", []string{"id", "at"}},
}

// NotEmptyError is Import refusing a database that already holds state.
type NotEmptyError struct{ Counts []Table }

func (e *NotEmptyError) Error() string {
	var parts []string
	for _, c := range e.Counts {
		if c.Rows > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.Rows, c.Name))
		}
	}
	return "the target database already holds deploybot state (" + strings.Join(parts, ", ") + "); export copies into an empty database only: create a new database, or drop this one if its contents are not needed"
}

// Import copies every row of src into this database, keeping ids (run-12
// stays run-12, the audit log keeps its order, outbox keys stay the keys
// Slack messages carry), in one transaction: all or nothing. It refuses a
// database that holds any state, and locks the tables meanwhile so that no
// replica writes in between.
func (db *DB) Import(ctx context.Context, src Source) ([]Table, error) {
	var out []Table
	err := db.write(ctx, func(tx pgx.Tx) error {
		names := make([]string, len(importTables))
		for i, t := range importTables {
			names[i] = t.name
		}
		if _, err := tx.Exec(ctx, `LOCK TABLE `+strings.Join(names, ", ")+` IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		var counts []Table
		nonEmpty := false
		for _, t := range importTables {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+t.name).Scan(&n); err != nil {
				return err
			}
			counts = append(counts, Table{Name: t.name, Rows: n})
			nonEmpty = nonEmpty || n > 0
		}
		if nonEmpty {
			return &NotEmptyError{Counts: counts}
		}
		for _, t := range importTables {
			var rows [][]any
			if err := src.Rows(ctx, t.name, t.cols, func(row []any) error {
				rows = append(rows, row)
				return nil
			}); err != nil {
				return err
			}
			n, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, t.cols, pgx.CopyFromRows(rows))
			if err != nil {
				return fmt.Errorf("copying %s: %w", t.name, err)
			}
			out = append(out, Table{Name: t.name, Rows: int(n)})
			// Explicit ids leave the identity behind; new rows must
			// continue after the copied ones, never reuse them.
			if t.identity != "" && n > 0 {
				if _, err := tx.Exec(ctx, fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%s', '%s'), (SELECT max(%s) FROM %s))`,
					t.name, t.identity, t.identity, t.name)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		var ne *NotEmptyError
		if errors.As(err, &ne) {
			return nil, err
		}
		return nil, fmt.Errorf("postgres: import: %w", err)
	}
	return out, nil
}

// SchemaVersion is the newest migration applied.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}
