package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Migrations are plain SQL files, named NNNN_what.sql, so that a schema
// change is reviewed as SQL and the binary carries every step needed to
// bring any older database up to date. Never edit one that has shipped:
// add the next.
//
//go:embed migrations/*.sql
var embedded embed.FS

var migrationFS = mustSub(embedded, "migrations")

func mustSub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return s
}

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the migrations in version order, refusing names
// that would make the order ambiguous.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		num, _, ok := strings.Cut(path.Base(name), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", name)
		}
		text, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(text)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s have the same version", ms[i-1].name, ms[i].name)
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations")
	}
	return ms, nil
}

// migrate applies the migrations the database lacks, each with its record
// in schema_migrations in one transaction, so a crash mid-way leaves the
// schema at a version some binary knows. Each transaction re-reads what is
// applied: another process opening the same file may have got there first.
func migrate(ctx context.Context, w *sql.DB, fsys fs.FS, now func() time.Time) error {
	ms, err := loadMigrations(fsys)
	if err != nil {
		return err
	}
	if _, err := w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	known := make(map[int]bool, len(ms))
	for _, m := range ms {
		known[m.version] = true
	}
	latest := ms[len(ms)-1].version

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
			for _, v := range applied {
				if !known[v] {
					return fmt.Errorf("database schema has migration %d, which this deploybot does not know (it knows up to %d): it was written by a newer deploybot; run that version or restore a backup", v, latest)
				}
			}
			if slices.Contains(applied, m.version) {
				return nil
			}
			if len(applied) > 0 && applied[len(applied)-1] > m.version {
				return fmt.Errorf("database schema has migration %d but lacks %d; refusing to apply migrations out of order", applied[len(applied)-1], m.version)
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, formatTime(now()))
			return err
		}()
		if err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
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
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return vs, rows.Err()
}
