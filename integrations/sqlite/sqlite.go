// Package sqlite keeps deploybot's runs, approvals and audit log in one SQLite
// file, so that a single binary on a single host needs no database server and
// a restart (or a crash) resumes every open run from where it was committed.
//
// It uses modernc.org/sqlite, the pure Go port, to keep the build free of cgo.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/deploybot/deploybot/internal/crashpoint"
	"github.com/deploybot/deploybot/steps"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

var _ steps.Store = (*DB)(nil)

// busyTimeout is how long a write waits for another process holding the
// file's write lock (a second bot by mistake, an operator in the sqlite3
// shell) before failing. Within one process writes never wait on SQLite:
// they queue for the single writer connection instead.
const busyTimeout = 5 * time.Second

// readers bounds the read pool. WAL lets readers run beside the writer, and a
// handful is plenty for a chat bot's queries.
const readers = 4

// DB is a steps.Store on one SQLite file. It is safe for concurrent use.
type DB struct {
	// w has exactly one connection. SQLite admits one writer at a time; when
	// goroutines queue in database/sql instead of racing for the file lock,
	// a write never fails with "database is locked", and BEGIN IMMEDIATE
	// (the _txlock below) keeps other processes from deadlocking with us.
	w *sql.DB
	// r serves reads from WAL snapshots, so listing runs never waits for a
	// transition and never sees half of one. Its connections are query-only.
	r *sql.DB

	// now is the clock for defaults (event times, updated_at, delivery
	// pruning); tests replace it to age deliveries without sleeping.
	now func() time.Time

	stmts statements
}

// Open opens (creating when missing) the database at path, and brings its
// schema up to date. A database written by a newer deploybot is refused,
// rather than run with a schema this code does not understand.
//
// path must be a file: the writer and the readers are separate connections,
// so an in-memory database would split in two.
func Open(path string) (*DB, error) {
	return open(path, migrationFS)
}

func open(path string, migrations fs.FS) (*DB, error) {
	if path == "" || strings.HasPrefix(path, ":memory:") || strings.HasPrefix(path, "file:") || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("sqlite: %q: want the path of a database file", path)
	}
	if err := createPrivate(path); err != nil {
		return nil, err
	}

	pragmas := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)", busyTimeout.Milliseconds())
	// synchronous(FULL): the engine announces a transition in Slack once
	// SaveRun returns, so a commit must survive a power cut, not only a
	// crash of the process.
	w, err := sql.Open("sqlite", path+"?"+pragmas+"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	db := &DB{w: w, now: time.Now}
	ctx := context.Background()
	// The writer connects first: it switches the file to WAL, which the
	// query-only readers could not do.
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := migrate(ctx, w, migrations, db.now); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}

	r, err := sql.Open("sqlite", path+"?"+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	db.r = r

	if err := db.stmts.prepare(ctx, w); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	return db, nil
}

// createPrivate creates the file with mode 0600 before SQLite sees it: the
// audit log names people and what they did, and SQLite would create it with
// 0644. SQLite gives the -wal and -shm files the main file's mode, so they
// are private too. An existing file keeps the mode its operator chose.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	// Closed before SQLite opens the file: closing another descriptor of it
	// later would drop SQLite's POSIX locks.
	if err := f.Close(); err != nil {
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	return nil
}

// Close releases the connections. The writer closes last so that, as the
// final connection, it checkpoints the WAL back into the main file.
func (db *DB) Close() error {
	err := db.stmts.close()
	if db.r != nil {
		err = errors.Join(err, db.r.Close())
	}
	return errors.Join(err, db.w.Close())
}

// write runs fn in one write transaction: every Store method commits all of
// its changes or none.
func (db *DB) write(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	crashpoint.Hit("write")
	return tx.Commit()
}

// read runs fn in one read transaction, so a run and its steps come from
// the same snapshot even while a transition commits.
func (db *DB) read(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

// statements are prepared once on the writer: a transition runs a dozen
// statements, and parsing them anew each time would dominate its cost.
type statements struct {
	insertRun, updateRun, upsertStep, trimSteps *sql.Stmt
	insertAudit, insertApproval                 *sql.Stmt
	insertDelivery, pruneDeliveries             *sql.Stmt
}

func (s *statements) prepare(ctx context.Context, w *sql.DB) error {
	for _, p := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&s.insertRun, `INSERT INTO runs (kind, service, version, requester, channel, message_ts, summary, state, outcome, created_at, updated_at, ended_at, data, lock_key, rev)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`},
		{&s.updateRun, `UPDATE runs SET kind = ?, service = ?, version = ?, requester = ?, channel = ?, message_ts = ?, summary = ?,
			state = ?, outcome = ?, updated_at = ?, ended_at = ?, data = ?, lock_key = ?, rev = rev + 1 WHERE id = ? AND rev = ?`},
		{&s.upsertStep, `INSERT INTO steps (run_id, idx, id, title, status, seq, attempt, note, prompt, buttons, waiting_on, actor, started_at, ended_at, comp, data)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (run_id, idx) DO UPDATE SET id = excluded.id, title = excluded.title, status = excluded.status,
				seq = excluded.seq, attempt = excluded.attempt, note = excluded.note, prompt = excluded.prompt,
				buttons = excluded.buttons, waiting_on = excluded.waiting_on, actor = excluded.actor,
				started_at = excluded.started_at, ended_at = excluded.ended_at, comp = excluded.comp, data = excluded.data`},
		{&s.trimSteps, `DELETE FROM steps WHERE run_id = ? AND idx >= ?`},
		{&s.insertAudit, `INSERT INTO audit (run_id, at, actor, action, step_id, detail) VALUES (?, ?, ?, ?, ?, ?)`},
		{&s.insertApproval, `INSERT INTO approvals (run_id, step_idx, step_id, approver, decision, at, plan_sha256, commit_sha)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.insertDelivery, `INSERT OR IGNORE INTO deliveries (id, at) VALUES (?, ?)`},
		{&s.pruneDeliveries, `DELETE FROM deliveries WHERE at < ?`},
	} {
		st, err := w.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", p.sql, err)
		}
		*p.dst = st
	}
	return nil
}

func (s *statements) close() error {
	var err error
	for _, st := range []*sql.Stmt{s.insertRun, s.updateRun, s.upsertStep, s.trimSteps, s.insertAudit, s.insertApproval, s.insertDelivery, s.pruneDeliveries} {
		if st != nil {
			err = errors.Join(err, st.Close())
		}
	}
	return err
}

// Ping reports whether the database answers a query, through both the
// writer and a reader (for /readyz). A closed DB answers with an error.
func (db *DB) Ping(ctx context.Context) error {
	for _, c := range []*sql.DB{db.w, db.r} {
		var one int
		if err := c.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
			return wrap("ping", err)
		}
	}
	return nil
}

// OutboxDepth counts the outbox entries not yet delivered (for metrics).
func (db *DB) OutboxDepth(ctx context.Context) (int, error) {
	var n int
	err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE delivered_at = ''`).Scan(&n)
	return n, wrap("outbox depth", err)
}
