package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/deploybot/deploybot/internal/storecodec"
)

// Migrations are plain SQL files with the SQLite store's numbers and
// meaning, so a database of either kind at version N holds the same data.
// Never edit one that has shipped: add the next, in both stores.
//
//go:embed migrations/*.sql
var embedded embed.FS

type fsys = fs.FS

var migrationFS = storecodec.Sub(embedded, "migrations")

// migrateLock is the advisory lock key under which migrations run: the
// first 8 bytes of "deploybt" read as a number, unlikely to meet another
// application's key in a shared database.
const migrateLock int64 = 0x6465706c6f796274

// migrate applies the migrations the database lacks while holding a
// session advisory lock: a second replica starting at the same moment
// waits, then finds everything applied. Each migration commits with its
// schema_migrations row (DDL is transactional in PostgreSQL), so a crash
// mid-way leaves the schema at a version some binary knows.
func migrate(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS, now func() time.Time) error {
	ms, err := storecodec.LoadMigrations(fsys)
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
	if _, err := conn.Exec(ctx, storecodec.MigrationsTable); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	rows, _ := conn.Query(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return err
	}
	for _, m := range ms {
		if need, err := storecodec.Needed(ms, applied, m); !need {
			if err != nil {
				return err
			}
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.Version, m.Name, storecodec.FormatTime(now()))
			return err
		})
		if err != nil {
			return err
		}
		applied = append(applied, m.Version)
	}
	return nil
}
