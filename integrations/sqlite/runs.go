package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/deploybot/deploybot/steps"
)

// CreateRun fills in r.ID, and CreatedAt and UpdatedAt when they are zero,
// once the run is committed; on error r is left as it was.
func (db *DB) CreateRun(ctx context.Context, r *steps.Run, c steps.Changes) error {
	if err := checkIndexes(r); err != nil {
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
	data, err := encodeMap(r.Data)
	if err != nil {
		return fmt.Errorf("sqlite: create run: %w", err)
	}

	var id int64
	err = db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, db.stmts.insertRun).ExecContext(ctx,
			string(r.Kind), r.Service, r.Version, r.Requester, r.Channel, r.MessageTS, r.Summary,
			string(r.State), r.Outcome, formatTime(created), formatTime(updated), formatTime(r.EndedAt), data, r.Lock())
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
		runID := formatID(id)
		for _, e := range c.Events {
			e.RunID = runID
			if err := db.appendEvent(ctx, tx, e, now); err != nil {
				return err
			}
		}
		return db.putOutbox(ctx, tx, runID, c.Outbox, formatTime(now))
	})
	if err != nil {
		return wrap("create run", err)
	}
	r.ID = formatID(id)
	r.CreatedAt, r.UpdatedAt = created, updated
	r.Rev = 1
	return nil
}

// SaveRun sets r.UpdatedAt to the commit's time once committed. A run that
// reopens (say, a retry after it failed) while another run holds its
// service gets a *steps.LockedError, like CreateRun.
func (db *DB) SaveRun(ctx context.Context, r *steps.Run, c steps.Changes) error {
	id, ok := parseID(r.ID)
	if !ok {
		return steps.ErrNotFound
	}
	if err := checkIndexes(r); err != nil {
		return fmt.Errorf("sqlite: save %s: %w", r.ID, err)
	}
	for _, a := range c.Approvals {
		if a.RunID != "" && a.RunID != r.ID {
			return fmt.Errorf("sqlite: save %s: approval for %s", r.ID, a.RunID)
		}
	}
	now := db.now().UTC()
	data, err := encodeMap(r.Data)
	if err != nil {
		return fmt.Errorf("sqlite: save %s: %w", r.ID, err)
	}

	err = db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, db.stmts.updateRun).ExecContext(ctx,
			string(r.Kind), r.Service, r.Version, r.Requester, r.Channel, r.MessageTS, r.Summary,
			string(r.State), r.Outcome, formatTime(now), formatTime(r.EndedAt), data, r.Lock(), id, r.Rev)
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
				formatTime(at), a.PlanSHA256, a.Commit); err != nil {
				return err
			}
		}
		if err := db.markDelivered(ctx, tx, c.Delivered, formatTime(now)); err != nil {
			return err
		}
		return db.putOutbox(ctx, tx, r.ID, c.Outbox, formatTime(now))
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
		s := &ss[i]
		buttons, err := encodeButtons(s.Buttons)
		if err != nil {
			return err
		}
		data, err := encodeMap(s.Data)
		if err != nil {
			return err
		}
		if _, err := up.ExecContext(ctx, runID, i, s.ID, s.Title, string(s.Status), s.Seq, s.Attempt, s.Note,
			s.Prompt, buttons, s.WaitingOn, s.Actor, formatTime(s.StartedAt), formatTime(s.EndedAt),
			string(s.Comp), data); err != nil {
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
	since, err := parseTime(createdAt)
	if err != nil {
		return err
	}
	return &steps.LockedError{Service: service, RunID: formatID(id), Requester: requester, Since: since}
}

// Run returns ErrNotFound for ids this store could never have issued, too.
func (db *DB) Run(ctx context.Context, id string) (*steps.Run, error) {
	n, ok := parseID(id)
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
	rows, err := tx.QueryContext(ctx, `SELECT id, kind, service, version, requester, channel, message_ts, summary,
		state, outcome, created_at, updated_at, ended_at, data, rev FROM runs `+tail, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		runs []*steps.Run
		byID = map[int64]*steps.Run{}
		ids  []int64
	)
	for rows.Next() {
		var (
			id                                int64
			r                                 steps.Run
			kind, state                       string
			created, updated, ended, dataJSON string
		)
		if err := rows.Scan(&id, &kind, &r.Service, &r.Version, &r.Requester, &r.Channel, &r.MessageTS, &r.Summary,
			&state, &r.Outcome, &created, &updated, &ended, &dataJSON, &r.Rev); err != nil {
			return nil, err
		}
		r.ID, r.Kind, r.State = formatID(id), steps.RunKind(kind), steps.RunState(state)
		if r.CreatedAt, err = parseTime(created); err != nil {
			return nil, err
		}
		if r.UpdatedAt, err = parseTime(updated); err != nil {
			return nil, err
		}
		if r.EndedAt, err = parseTime(ended); err != nil {
			return nil, err
		}
		if r.Data, err = decodeMap(dataJSON); err != nil {
			return nil, fmt.Errorf("%s data: %w", r.ID, err)
		}
		runs = append(runs, &r)
		byID[id] = &r
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(ids) == 0 {
		return nil, nil
	}
	// One parameter however many runs: SQLite caps the number of variables.
	idList, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	srows, err := tx.QueryContext(ctx, `SELECT run_id, idx, id, title, status, seq, attempt, note, prompt, buttons,
		waiting_on, actor, started_at, ended_at, comp, data FROM steps
		WHERE run_id IN (SELECT value FROM json_each(?)) ORDER BY run_id, idx`, string(idList))
	if err != nil {
		return nil, err
	}
	defer srows.Close()
	for srows.Next() {
		var (
			runID                             int64
			s                                 steps.StepState
			status, comp                      string
			buttons, started, ended, dataJSON string
		)
		if err := srows.Scan(&runID, &s.Index, &s.ID, &s.Title, &status, &s.Seq, &s.Attempt, &s.Note, &s.Prompt,
			&buttons, &s.WaitingOn, &s.Actor, &started, &ended, &comp, &dataJSON); err != nil {
			return nil, err
		}
		s.Status, s.Comp = steps.StepStatus(status), steps.CompState(comp)
		if s.StartedAt, err = parseTime(started); err != nil {
			return nil, err
		}
		if s.EndedAt, err = parseTime(ended); err != nil {
			return nil, err
		}
		if s.Buttons, err = decodeButtons(buttons); err != nil {
			return nil, fmt.Errorf("%s step %d buttons: %w", formatID(runID), s.Index, err)
		}
		if s.Data, err = decodeMap(dataJSON); err != nil {
			return nil, fmt.Errorf("%s step %d data: %w", formatID(runID), s.Index, err)
		}
		r := byID[runID]
		if s.Index != len(r.Steps) {
			return nil, fmt.Errorf("%s: step %d missing", r.ID, len(r.Steps))
		}
		r.Steps = append(r.Steps, s)
	}
	return runs, srows.Err()
}
