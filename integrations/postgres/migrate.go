package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Migrations are plain SQL files with the SQLite store's numbers and
// meaning, so a database of either kind at version N holds the same data.
// Never edit one that has shipped: add the next, in both stores.
//
//go:embed migrations/*.sql
var embedded embed.FS

type fsys = fs.FS

var migrationFS = mustSub(embedded, "migrations")

func mustSub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return s
}

// migrateLock is the advisory lock key under which migrations run: the
// first 8 bytes of "deploybt" read as a number, unlikely to meet another
// application's key in a shared database.
const migrateLock int64 = 0x6465706c6f796274

type migration struct {
	version int
	name    string
	sql     string
}

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

// migrate applies the migrations the database lacks while holding a
// session advisory lock: a second replica starting at the same moment
// waits, then finds everything applied. Each migration commits with its
// schema_migrations row (DDL is transactional in PostgreSQL), so a crash
// mid-way leaves the schema at a version some binary knows.
func migrate(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS, now func() time.Time) error {
	ms, err := loadMigrations(fsys)
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLock); err != nil {
		return fmt.Errorf("waiting for the migration lock: %w", err)
	}
	defer func() {
		// A connection whose unlock failed must not go back to the pool
		// still holding the lock.
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLock); err != nil {
			conn.Conn().Close(context.Background())
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
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

	var applied []int
	rows, _ := conn.Query(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	applied, err = pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return err
	}
	for _, v := range applied {
		if !known[v] {
			return fmt.Errorf("database schema has migration %d, which this deploybot does not know (it knows up to %d): it was written by a newer deploybot; run that version or restore a backup", v, latest)
		}
	}
	for _, m := range ms {
		if slices.Contains(applied, m.version) {
			continue
		}
		if len(applied) > 0 && applied[len(applied)-1] > m.version {
			return fmt.Errorf("database schema has migration %d but lacks %d; refusing to apply migrations out of order", applied[len(applied)-1], m.version)
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, formatTime(now()))
			return err
		})
		if err != nil {
			return err
		}
		applied = append(applied, m.version)
	}
	return nil
}
