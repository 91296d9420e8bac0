package storecodec

import (
	"fmt"

	"github.com/deploybot/deploybot/steps"
)

// RunColumns and StepColumns are the columns RunSet reads, in its order: a
// store's SELECT names them from here so the two cannot drift apart.
const (
	RunColumns = `id, kind, service, version, requester, channel, message_ts, summary,
		state, outcome, created_at, updated_at, ended_at, data, rev`
	StepColumns = `run_id, idx, id, title, status, seq, attempt, note, prompt, buttons,
		waiting_on, actor, started_at, ended_at, comp, data`
)

// RunSet assembles runs from a query of runs and then one of all their
// steps, rather than one query per run.
type RunSet struct {
	runs []*steps.Run
	byID map[int64]*steps.Run
	ids  []int64
}

// AddRuns reads every row of rows (RunColumns), in its order.
func (s *RunSet) AddRuns(rows Rows) error {
	if s.byID == nil {
		s.byID = map[int64]*steps.Run{}
	}
	for rows.Next() {
		var (
			id                                int64
			r                                 steps.Run
			kind, state                       string
			created, updated, ended, dataJSON string
		)
		if err := rows.Scan(&id, &kind, &r.Service, &r.Version, &r.Requester, &r.Channel, &r.MessageTS, &r.Summary,
			&state, &r.Outcome, &created, &updated, &ended, &dataJSON, &r.Rev); err != nil {
			return err
		}
		r.ID, r.Kind, r.State = FormatID(id), steps.RunKind(kind), steps.RunState(state)
		var err error
		if r.CreatedAt, err = ParseTime(created); err != nil {
			return err
		}
		if r.UpdatedAt, err = ParseTime(updated); err != nil {
			return err
		}
		if r.EndedAt, err = ParseTime(ended); err != nil {
			return err
		}
		if r.Data, err = DecodeMap(dataJSON); err != nil {
			return fmt.Errorf("%s data: %w", r.ID, err)
		}
		s.runs = append(s.runs, &r)
		s.byID[id] = &r
		s.ids = append(s.ids, id)
	}
	return rows.Err()
}

// IDs are the table keys of the runs read, for the steps query.
func (s *RunSet) IDs() []int64 { return s.ids }

// AddSteps reads every row of rows (StepColumns, ordered by run_id, idx)
// into the runs read, and returns the runs: with a failure of rows itself,
// as far as they were read. A gap in a run's steps is an error, not a
// shorter run.
func (s *RunSet) AddSteps(rows Rows) ([]*steps.Run, error) {
	for rows.Next() {
		var (
			runID                             int64
			st                                steps.StepState
			status, comp                      string
			buttons, started, ended, dataJSON string
		)
		if err := rows.Scan(&runID, &st.Index, &st.ID, &st.Title, &status, &st.Seq, &st.Attempt, &st.Note, &st.Prompt,
			&buttons, &st.WaitingOn, &st.Actor, &started, &ended, &comp, &dataJSON); err != nil {
			return nil, err
		}
		st.Status, st.Comp = steps.StepStatus(status), steps.CompState(comp)
		var err error
		if st.StartedAt, err = ParseTime(started); err != nil {
			return nil, err
		}
		if st.EndedAt, err = ParseTime(ended); err != nil {
			return nil, err
		}
		if st.Buttons, err = DecodeButtons(buttons); err != nil {
			return nil, fmt.Errorf("%s step %d buttons: %w", FormatID(runID), st.Index, err)
		}
		if st.Data, err = DecodeMap(dataJSON); err != nil {
			return nil, fmt.Errorf("%s step %d data: %w", FormatID(runID), st.Index, err)
		}
		r := s.byID[runID]
		if st.Index != len(r.Steps) {
			return nil, fmt.Errorf("%s: step %d missing", r.ID, len(r.Steps))
		}
		r.Steps = append(r.Steps, st)
	}
	return s.runs, rows.Err()
}

// StepArgs are the values of StepColumns for step i of the run with table
// key runID.
func StepArgs(runID int64, i int, st *steps.StepState) ([]any, error) {
	buttons, err := EncodeButtons(st.Buttons)
	if err != nil {
		return nil, err
	}
	data, err := EncodeMap(st.Data)
	if err != nil {
		return nil, err
	}
	return []any{runID, i, st.ID, st.Title, string(st.Status), st.Seq, st.Attempt, st.Note,
		st.Prompt, buttons, st.WaitingOn, st.Actor, FormatTime(st.StartedAt), FormatTime(st.EndedAt),
		string(st.Comp), data}, nil
}
