// Package postgres keeps deploybot's runs, approvals and audit log in
// PostgreSQL, for teams that run several replicas or want the state in the
// database they already back up. It has the SQLite store's schema and
// behaviour (steps/storetest holds both to it) on github.com/jackc/pgx/v5.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/deploybot/deploybot/steps"
)

var _ steps.Store = (*DB)(nil)

// opTimeout bounds each store call. The engine commits transitions with
// contexts that are never cancelled (a transition must not be lost to a
// cancelled request), so without it a network cut to the database would
// hold a run's lock until TCP gives up; with it the write fails, and the
// engine's retries take over as for any refused write.
const opTimeout = 30 * time.Second

// connectTimeout bounds dialling when the URL sets no connect_timeout.
const connectTimeout = 10 * time.Second

// DB is a steps.Store on a PostgreSQL database. It is safe for concurrent
// use, by several processes on the same database too.
type DB struct {
	pool *pgxpool.Pool
	// now is the clock for defaults (event times, updated_at, delivery
	// pruning); tests replace it to age deliveries without sleeping.
	now func() time.Time
}

// Open connects to the database at dsn (a postgres:// URL) and brings its
// schema up to date under an advisory lock, so replicas starting together
// migrate once. A database written by a newer deploybot is refused.
func Open(ctx context.Context, dsn string, opts ...Option) (*DB, error) {
	return open(ctx, dsn, migrationFS, opts...)
}

// Option configures Open.
type Option func(*pgxpool.Config)

// WithPassword sets the password apart from the URL, which is then safe to
// show: the configuration reads it from the environment.
func WithPassword(pw string) Option {
	return func(c *pgxpool.Config) {
		if pw != "" {
			c.ConnConfig.Password = pw
		}
	}
}

func open(ctx context.Context, dsn string, migrations fsys, opts ...Option) (*DB, error) {
	where := Redact(dsn)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's own message may quote the DSN; it is not repeated.
		return nil, fmt.Errorf("postgres: %s: not a valid connection URL", where)
	}
	for _, o := range opts {
		o(cfg)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", where, err)
	}
	db := &DB{pool: pool, now: time.Now}
	if err := db.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %s: %w", where, err)
	}
	if err := migrate(ctx, pool, migrations, db.now); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %s: %w", where, err)
	}
	return db, nil
}

// Redact returns dsn with any password replaced, for logs and errors.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable database URL)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// Ping checks that the database answers (readiness).
func (db *DB) Ping(ctx context.Context) error {
	_, err := db.pool.Exec(ctx, `SELECT 1`)
	return err
}

// Close releases the connections.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// write runs fn in one read-committed transaction: every Store method
// commits all of its changes or none. Races between replicas are settled by
// row locks, the unique indexes and the run's revision, not by isolation.
func (db *DB) write(ctx context.Context, fn func(pgx.Tx) error) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	return pgx.BeginFunc(ctx, db.pool, fn)
}

// read runs fn in one repeatable-read transaction, so a run and its steps
// come from the same snapshot even while a transition commits.
func (db *DB) read(ctx context.Context, fn func(pgx.Tx) error) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	return pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

// wrap adds context to storage failures but hands back the domain's errors
// as they are, so callers can still compare and type-switch on them.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var le *steps.LockedError
	if errors.Is(err, steps.ErrNotFound) || errors.Is(err, steps.ErrStale) || errors.As(err, &le) {
		return err
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}
