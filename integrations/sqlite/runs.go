package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/deploybot/deploybot/internal/storecodec"
	"github.com/deploybot/deploybot/steps"
)

// CreateRun fills in r.ID, and CreatedAt and UpdatedAt when they are zero,
// once the run is committed; on error r is left as it was.
func (db *DB) CreateRun(ctx context.Context, r *steps.Run, c steps.Changes) error {
	if err := storecodec.CheckIndexes(r); err != nil {
		return fmt.Errorf("sqlite: create run: %w", err)
	}
	now := db.now().UTC()
	created, updated := r.CreatedAt, r.UpdatedAt
	if created.IsZero() {
		created = now
	}
	if updated.IsZero() {
		updated = created
	}
	data, err := storecodec.EncodeMap(r.Data)
	if err != nil {
		return fmt.Errorf("sqlite: create run: %w", err)
	}

	var id int64
	err = db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, db.stmts.insertRun).ExecContext(ctx,
			string(r.Kind), r.Service, r.Version, r.Requester, r.Channel, r.MessageTS, r.Summary,
			string(r.State), r.Outcome, storecodec.FormatTime(created), storecodec.FormatTime(updated), storecodec.FormatTime(r.EndedAt), data, r.Lock())
		if isLockConflict(err) {
			return lockHolder(ctx, tx, r.Service, r.Lock(), 0)
		}
		if err != nil {
			return err
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		if err := db.putSteps(ctx, tx, id, r.Steps); err != nil {
			return err
		}
		runID := storecodec.FormatID(id)
		for _, e := range c.Events {
			e.RunID = runID
			if err := db.appendEvent(ctx, tx, e, now); err != nil {
				return err
			}
		}
		return db.putOutbox(ctx, tx, runID, c.Outbox, storecodec.FormatTime(now))
	})
	if err != nil {
		return wrap("create run", err)
	}
	r.ID = storecodec.FormatID(id)
	r.CreatedAt, r.UpdatedAt = created, updated
	r.Rev = 1
	return nil
}

// SaveRun sets r.UpdatedAt to the commit's time once committed. A run that
// reopens (say, a retry after it failed) while another run holds its
// service gets a *steps.LockedError, like CreateRun.
func (db *DB) SaveRun(ctx context.Context, r *steps.Run, c steps.Changes) error {
	id, ok := storecodec.ParseID(r.ID)
	if !ok {
		return steps.ErrNotFound
	}
	if err := storecodec.CheckIndexes(r); err != nil {
		return fmt.Errorf("sqlite: save %s: %w", r.ID, err)
	}
	for _, a := range c.Approvals {
		if a.RunID != "" && a.RunID != r.ID {
			return fmt.Errorf("sqlite: save %s: approval for %s", r.ID, a.RunID)
		}
	}
	now := db.now().UTC()
	data, err := storecodec.EncodeMap(r.Data)
	if err != nil {
		return fmt.Errorf("sqlite: save %s: %w", r.ID, err)
	}

	err = db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, db.stmts.updateRun).ExecContext(ctx,
			string(r.Kind), r.Service, r.Version, r.Requester, r.Channel, r.MessageTS, r.Summary,
			string(r.State), r.Outcome, storecodec.FormatTime(now), storecodec.FormatTime(r.EndedAt), data, r.Lock(), id, r.Rev)
		if isLockConflict(err) {
			return lockHolder(ctx, tx, r.Service, r.Lock(), id)
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			var rev int64
			if err := tx.QueryRowContext(ctx, `SELECT rev FROM runs WHERE id = ?`, id).Scan(&rev); errors.Is(err, sql.ErrNoRows) {
				return steps.ErrNotFound
			} else if err != nil {
				return err
			}
			return steps.ErrStale
		}
		if err := db.putSteps(ctx, tx, id, r.Steps); err != nil {
			return err
		}
		for _, e := range c.Events {
			if e.RunID == "" {
				e.RunID = r.ID
			}
			if err := db.appendEvent(ctx, tx, e, now); err != nil {
				return err
			}
		}
		ins := tx.StmtContext(ctx, db.stmts.insertApproval)
		for _, a := range c.Approvals {
			at := a.At
			if at.IsZero() {
				at = now
			}
			if _, err := ins.ExecContext(ctx, id, a.StepIndex, a.StepID, a.Approver, a.Decision,
				storecodec.FormatTime(at), a.PlanSHA256, a.Commit); err != nil {
				return err
			}
		}
		if err := db.markDelivered(ctx, tx, c.Delivered, storecodec.FormatTime(now)); err != nil {
			return err
		}
		return db.putOutbox(ctx, tx, r.ID, c.Outbox, storecodec.FormatTime(now))
	})
	if err != nil {
		return wrap("save "+r.ID, err)
	}
	r.UpdatedAt = now
	r.Rev++
	return nil
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
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// putSteps writes every step of the run and drops rows past its end, so the
// table always mirrors r.Steps exactly.
func (db *DB) putSteps(ctx context.Context, tx *sql.Tx, runID int64, ss []steps.StepState) error {
	up := tx.StmtContext(ctx, db.stmts.upsertStep)
	for i := range ss {
		args, err := storecodec.StepArgs(runID, i, &ss[i])
		if err != nil {
			return err
		}
		if _, err := up.ExecContext(ctx, args...); err != nil {
			return err
		}
	}
	_, err := tx.StmtContext(ctx, db.stmts.trimSteps).ExecContext(ctx, runID, len(ss))
	return err
}

// lockHolder builds the LockedError for a refused write. It runs inside the
// refused transaction, which still holds the write lock, so the holder it
// finds is the one that caused the refusal.
func lockHolder(ctx context.Context, tx *sql.Tx, service, key string, self int64) error {
	var (
		id                   int64
		requester, createdAt string
	)
	err := tx.QueryRowContext(ctx, `SELECT id, requester, created_at FROM runs
		WHERE lock_key = ? AND state IN ('active', 'ending') AND id != ? ORDER BY id LIMIT 1`, key, self).
		Scan(&id, &requester, &createdAt)
	if err != nil {
		return fmt.Errorf("service lock of %s refused, holder not found: %w", service, err)
	}
	since, err := storecodec.ParseTime(createdAt)
	if err != nil {
		return err
	}
	return &steps.LockedError{Service: service, RunID: storecodec.FormatID(id), Requester: requester, Since: since}
}

// Run returns ErrNotFound for ids this store could never have issued, too.
func (db *DB) Run(ctx context.Context, id string) (*steps.Run, error) {
	n, ok := storecodec.ParseID(id)
	if !ok {
		return nil, steps.ErrNotFound
	}
	var runs []*steps.Run
	err := db.read(ctx, func(tx *sql.Tx) (err error) {
		runs, err = loadRuns(ctx, tx, `WHERE id = ?`, n)
		return err
	})
	if err != nil {
		return nil, wrap("run "+id, err)
	}
	if len(runs) == 0 {
		return nil, steps.ErrNotFound
	}
	return runs[0], nil
}

func (db *DB) OpenRuns(ctx context.Context) ([]*steps.Run, error) {
	var runs []*steps.Run
	err := db.read(ctx, func(tx *sql.Tx) (err error) {
		runs, err = loadRuns(ctx, tx, `WHERE state IN ('active', 'ending') ORDER BY id`)
		return err
	})
	return runs, wrap("open runs", err)
}

// Runs treats a limit of zero or less as no limit.
func (db *DB) Runs(ctx context.Context, service string, limit int) ([]*steps.Run, error) {
	if limit <= 0 {
		limit = -1
	}
	var runs []*steps.Run
	err := db.read(ctx, func(tx *sql.Tx) (err error) {
		if service == "" {
			runs, err = loadRuns(ctx, tx, `ORDER BY id DESC LIMIT ?`, limit)
		} else {
			runs, err = loadRuns(ctx, tx, `WHERE service = ? ORDER BY id DESC LIMIT ?`, service, limit)
		}
		return err
	})
	return runs, wrap("runs", err)
}

// loadRuns reads the runs that tail selects, in its order, then all their
// steps in one query rather than one per run.
func loadRuns(ctx context.Context, tx *sql.Tx, tail string, args ...any) ([]*steps.Run, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+storecodec.RunColumns+` FROM runs `+tail, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var set storecodec.RunSet
	if err := set.AddRuns(rows); err != nil {
		return nil, err
	}
	rows.Close()
	if len(set.IDs()) == 0 {
		return nil, nil
	}
	// One parameter however many runs: SQLite caps the number of variables.
	idList, err := json.Marshal(set.IDs())
	if err != nil {
		return nil, err
	}
	srows, err := tx.QueryContext(ctx, `SELECT `+storecodec.StepColumns+` FROM steps
		WHERE run_id IN (SELECT value FROM json_each(?)) ORDER BY run_id, idx`, string(idList))
	if err != nil {
		return nil, err
	}
	defer srows.Close()
	return set.AddSteps(srows)
}
