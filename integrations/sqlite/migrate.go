package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"time"

	"github.com/deploybot/deploybot/internal/storecodec"
)

// Migrations are plain SQL files, named NNNN_what.sql, so that a schema
// change is reviewed as SQL and the binary carries every step needed to
// bring any older database up to date. Never edit one that has shipped:
// add the next.
//
//go:embed migrations/*.sql
var embedded embed.FS

var migrationFS = storecodec.Sub(embedded, "migrations")

// migrate applies the migrations the database lacks, each with its record
// in schema_migrations in one transaction, so a crash mid-way leaves the
// schema at a version some binary knows. Each transaction re-reads what is
// applied: another process opening the same file may have got there first.
func migrate(ctx context.Context, w *sql.DB, fsys fs.FS, now func() time.Time) error {
	ms, err := storecodec.LoadMigrations(fsys)
	if err != nil {
		return err
	}
	if _, err := w.ExecContext(ctx, storecodec.MigrationsTable); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, m := range ms {
		tx, err := w.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		err = func() error {
			applied, err := appliedVersions(ctx, tx)
			if err != nil {
				return err
			}
			if need, err := storecodec.Needed(ms, applied, m); !need {
				return err
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.Version, m.Name, storecodec.FormatTime(now()))
			return err
		}()
		if err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	return nil
}

func appliedVersions(ctx context.Context, tx *sql.Tx) ([]int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return storecodec.Collect(rows, func(sc storecodec.Scanner) (int, error) {
		var v int
		err := sc.Scan(&v)
		return v, err
	})
}
