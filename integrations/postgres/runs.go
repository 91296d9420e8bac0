package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/deploybot/deploybot/internal/storecodec"
	"github.com/deploybot/deploybot/steps"
)

// CreateRun fills in r.ID and r.Rev, and CreatedAt and UpdatedAt when they
// are zero, once the run is committed; on error r is left as it was.
func (db *DB) CreateRun(ctx context.Context, r *steps.Run, c steps.Changes) error {
	if err := storecodec.CheckIndexes(r); err != nil {
		return fmt.Errorf("postgres: create run: %w", err)
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
		return fmt.Errorf("postgres: create run: %w", err)
	}

	var id int64
	err = db.write(ctx, func(tx pgx.Tx) error {
		err := lockSafe(ctx, tx, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `INSERT INTO runs (kind, service, version, requester, channel, message_ts, summary, state, outcome, created_at, updated_at, ended_at, data, lock_key, rev)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 1) RETURNING id`,
				string(r.Kind), r.Service, r.Version, r.Requester, r.Channel, r.MessageTS, r.Summary,
				string(r.State), r.Outcome, storecodec.FormatTime(created), storecodec.FormatTime(updated), storecodec.FormatTime(r.EndedAt), data, r.Lock()).Scan(&id)
		})
		if isLockConflict(err) {
			return lockHolder(ctx, tx, r.Service, r.Lock(), 0)
		}
		if err != nil {
			return err
		}
		runID := storecodec.FormatID(id)
		b := &pgx.Batch{}
		if err := putSteps(b, id, r.Steps); err != nil {
			return err
		}
		for _, e := range c.Events {
			e.RunID = runID
			appendEvent(b, e, now)
		}
		if err := putOutbox(b, runID, c.Outbox, storecodec.FormatTime(now)); err != nil {
			return err
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return wrap("create run", err)
	}
	r.ID = storecodec.FormatID(id)
	r.CreatedAt, r.UpdatedAt = created, updated
	r.Rev = 1
	return nil
}

// SaveRun sets r.UpdatedAt to the commit's time, and increments r.Rev, once
// committed. It writes only over the revision r was loaded at: otherwise it
// returns steps.ErrStale and writes nothing. A run that reopens while
// another run holds its service gets a *steps.LockedError, like CreateRun.
func (db *DB) SaveRun(ctx context.Context, r *steps.Run, c steps.Changes) error {
	id, ok := storecodec.ParseID(r.ID)
	if !ok {
		return steps.ErrNotFound
	}
	if err := storecodec.CheckIndexes(r); err != nil {
		return fmt.Errorf("postgres: save %s: %w", r.ID, err)
	}
	for _, a := range c.Approvals {
		if a.RunID != "" && a.RunID != r.ID {
			return fmt.Errorf("postgres: save %s: approval for %s", r.ID, a.RunID)
		}
	}
	now := db.now().UTC()
	data, err := storecodec.EncodeMap(r.Data)
	if err != nil {
		return fmt.Errorf("postgres: save %s: %w", r.ID, err)
	}

	err = db.write(ctx, func(tx pgx.Tx) error {
		// The UPDATE takes the run's row lock until commit: a replica
		// writing the same run waits here, then finds the revision moved
		// and is refused. Outbox ids for the run are assigned under the
		// same lock, so they are in commit order.
		var n int64
		err := lockSafe(ctx, tx, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `UPDATE runs SET kind = $1, service = $2, version = $3, requester = $4, channel = $5, message_ts = $6, summary = $7,
				state = $8, outcome = $9, updated_at = $10, ended_at = $11, data = $12, lock_key = $13, rev = rev + 1
				WHERE id = $14 AND rev = $15`,
				string(r.Kind), r.Service, r.Version, r.Requester, r.Channel, r.MessageTS, r.Summary,
				string(r.State), r.Outcome, storecodec.FormatTime(now), storecodec.FormatTime(r.EndedAt), data, r.Lock(), id, r.Rev)
			n = tag.RowsAffected()
			return err
		})
		if isLockConflict(err) {
			return lockHolder(ctx, tx, r.Service, r.Lock(), id)
		}
		if err != nil {
			return err
		}
		if n == 0 {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM runs WHERE id = $1)`, id).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return steps.ErrNotFound
			}
			return steps.ErrStale
		}
		b := &pgx.Batch{}
		if err := putSteps(b, id, r.Steps); err != nil {
			return err
		}
		for _, e := range c.Events {
			if e.RunID == "" {
				e.RunID = r.ID
			}
			appendEvent(b, e, now)
		}
		for _, a := range c.Approvals {
			at := a.At
			if at.IsZero() {
				at = now
			}
			b.Queue(`INSERT INTO approvals (run_id, step_idx, step_id, approver, decision, at, plan_sha256, commit_sha)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, id, a.StepIndex, a.StepID, a.Approver, a.Decision,
				storecodec.FormatTime(at), a.PlanSHA256, a.Commit)
		}
		markDelivered(b, c.Delivered, storecodec.FormatTime(now))
		if err := putOutbox(b, r.ID, c.Outbox, storecodec.FormatTime(now)); err != nil {
			return err
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return wrap("save "+r.ID, err)
	}
	r.UpdatedAt = now
	r.Rev++
	return nil
}

// lockSafe runs fn in a savepoint: in PostgreSQL a failed statement aborts
// its transaction, and the service lock's refusal must leave it usable to
// find who holds the lock.
func lockSafe(ctx context.Context, tx pgx.Tx, fn func(pgx.Tx) error) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(sp); err != nil {
		_ = sp.Rollback(ctx)
		return err
	}
	return sp.Commit(ctx)
}

// putSteps queues every step of the run and drops rows past its end, so the
// table always mirrors r.Steps exactly.
func putSteps(b *pgx.Batch, runID int64, ss []steps.StepState) error {
	for i := range ss {
		args, err := storecodec.StepArgs(runID, i, &ss[i])
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO steps (run_id, idx, id, title, status, seq, attempt, note, prompt, buttons, waiting_on, actor, started_at, ended_at, comp, data)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
			ON CONFLICT (run_id, idx) DO UPDATE SET id = excluded.id, title = excluded.title, status = excluded.status,
				seq = excluded.seq, attempt = excluded.attempt, note = excluded.note, prompt = excluded.prompt,
				buttons = excluded.buttons, waiting_on = excluded.waiting_on, actor = excluded.actor,
				started_at = excluded.started_at, ended_at = excluded.ended_at, comp = excluded.comp, data = excluded.data`,
			args...)
	}
	b.Queue(`DELETE FROM steps WHERE run_id = $1 AND idx >= $2`, runID, len(ss))
	return nil
}

// lockHolder builds the LockedError for a refused write, inside the refused
// transaction: the holder's row is committed (the index waited for that),
// so this statement's snapshot sees it.
func lockHolder(ctx context.Context, tx pgx.Tx, service, key string, self int64) error {
	var (
		id                   int64
		requester, createdAt string
	)
	err := tx.QueryRow(ctx, `SELECT id, requester, created_at FROM runs
		WHERE lock_key = $1 AND state IN ('active', 'ending') AND id <> $2 ORDER BY id LIMIT 1`, key, self).
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
	err := db.read(ctx, func(tx pgx.Tx) (err error) {
		runs, err = loadRuns(ctx, tx, `WHERE id = $1`, n)
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
	err := db.read(ctx, func(tx pgx.Tx) (err error) {
		runs, err = loadRuns(ctx, tx, `WHERE state IN ('active', 'ending') ORDER BY id`)
		return err
	})
	return runs, wrap("open runs", err)
}

// Runs treats a limit of zero or less as no limit.
func (db *DB) Runs(ctx context.Context, service string, limit int) ([]*steps.Run, error) {
	var lim any // NULL: LIMIT ALL
	if limit > 0 {
		lim = limit
	}
	var runs []*steps.Run
	err := db.read(ctx, func(tx pgx.Tx) (err error) {
		if service == "" {
			runs, err = loadRuns(ctx, tx, `ORDER BY id DESC LIMIT $1`, lim)
		} else {
			runs, err = loadRuns(ctx, tx, `WHERE service = $1 ORDER BY id DESC LIMIT $2`, service, lim)
		}
		return err
	})
	return runs, wrap("runs", err)
}

// loadRuns reads the runs that tail selects, in its order, then all their
// steps in one query rather than one per run.
func loadRuns(ctx context.Context, tx pgx.Tx, tail string, args ...any) ([]*steps.Run, error) {
	rows, err := tx.Query(ctx, `SELECT `+storecodec.RunColumns+` FROM runs `+tail, args...)
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
	srows, err := tx.Query(ctx, `SELECT `+storecodec.StepColumns+` FROM steps
		WHERE run_id = ANY($1) ORDER BY run_id, idx`, set.IDs())
	if err != nil {
		return nil, err
	}
	defer srows.Close()
	return set.AddSteps(srows)
}
