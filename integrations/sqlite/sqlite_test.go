package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/steps"
)

var ctx = context.Background()

func openTest(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "deploybot.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

var t0 = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)

// newRun is a deploy with steps in every shape the engine produces: nil and
// empty maps and button lists, set and zero times.
func newRun(service string) *steps.Run {
	return &steps.Run{
		Kind:      steps.KindDeploy,
		Service:   service,
		Version:   "v1.2.3",
		Requester: "U1",
		Channel:   "C1",
		Summary:   "ship it",
		State:     steps.RunActive,
		CreatedAt: t0,
		Data:      map[string]string{"previous": "v1.2.2"},
		Steps: []steps.StepState{
			{Index: 0, ID: "check", Title: "Check", Status: steps.StepDone, Seq: 2, Attempt: 1, Note: "green",
				StartedAt: t0, EndedAt: t0.Add(time.Second), Data: map[string]string{}},
			{Index: 1, ID: "approve", Title: "Approve", Status: steps.StepWaiting, Seq: 1, Attempt: 1,
				Prompt: "Approve?", WaitingOn: "approvers", StartedAt: t0.Add(2 * time.Second),
				Buttons: []steps.Button{{Verb: steps.VerbApprove, Label: "Approve", Style: "primary"}, {Verb: steps.VerbReject, Label: "Reject", Style: "danger"}},
				Comp:    steps.CompNeeded, Data: map[string]string{"plan": "abc"}},
			{Index: 2, ID: "deploy", Title: "Deploy", Status: steps.StepPending, Buttons: []steps.Button{}},
		},
	}
}

func mustCreate(t testing.TB, db *DB, r *steps.Run, events ...steps.AuditEvent) {
	t.Helper()
	if err := db.CreateRun(ctx, r, steps.Changes{Events: events}); err != nil {
		t.Fatalf("CreateRun(%s): %v", r.Service, err)
	}
}

func mustLoad(t testing.TB, db *DB, id string) *steps.Run {
	t.Helper()
	r, err := db.Run(ctx, id)
	if err != nil {
		t.Fatalf("Run(%s): %v", id, err)
	}
	return r
}

// equalRuns compares as reflect.DeepEqual after putting every time in UTC
// without a monotonic reading: the store keeps instants, not locations.
func equalRuns(t *testing.T, got, want *steps.Run) {
	t.Helper()
	n := func(r *steps.Run) *steps.Run {
		c := r.Clone()
		c.CreatedAt, c.UpdatedAt, c.EndedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC(), c.EndedAt.UTC()
		for i := range c.Steps {
			c.Steps[i].StartedAt, c.Steps[i].EndedAt = c.Steps[i].StartedAt.UTC(), c.Steps[i].EndedAt.UTC()
		}
		return c
	}
	if g, w := n(got), n(want); !reflect.DeepEqual(g, w) {
		t.Errorf("run differs\n got: %+v\nwant: %+v", g, w)
	}
}

func TestRoundTrip(t *testing.T) {
	db, _ := openTest(t)
	r := newRun("api")
	mustCreate(t, db, r, steps.AuditEvent{Actor: "U1", Action: "run.started", RunID: "ignored"})
	if r.ID != "run-1" {
		t.Fatalf("ID = %q, want run-1", r.ID)
	}
	if !r.UpdatedAt.Equal(t0) {
		t.Errorf("UpdatedAt = %v, want CreatedAt %v", r.UpdatedAt, t0)
	}
	got := mustLoad(t, db, r.ID)
	equalRuns(t, got, r)
	// nil and empty stay apart.
	if got.Steps[0].Data == nil || got.Steps[0].Buttons != nil || got.Steps[2].Data != nil || got.Steps[2].Buttons == nil {
		t.Errorf("nil/empty not preserved: %#v", got.Steps)
	}

	// A transition: finish the approval, start deploying, end the run.
	r.Steps[1].Status, r.Steps[1].Seq, r.Steps[1].Actor = steps.StepDone, 2, "U2"
	r.Steps[1].Buttons, r.Steps[1].Prompt = nil, ""
	r.Steps[1].EndedAt = t0.Add(time.Minute).In(time.FixedZone("CET", 3600))
	r.Steps[2].Data = map[string]string{"image": "api:v1.2.3"}
	r.Data["commit"] = "deadbeef"
	r.MessageTS = "1700000000.000100"
	r.State, r.Outcome, r.EndedAt = steps.RunSucceeded, "deployed", t0.Add(time.Hour)
	before := r.UpdatedAt
	err := db.SaveRun(ctx, r, steps.Changes{
		Events: []steps.AuditEvent{
			{Actor: "U2", Action: "step.approved", StepID: "approve", Detail: "plan abc"},
			{RunID: "run-77", At: t0, Actor: "deploybot", Action: "other"},
		},
		Approvals: []steps.Approval{{StepIndex: 1, StepID: "approve", Approver: "U2", Decision: "approve",
			At: t0.Add(time.Minute), PlanSHA256: "abc", Commit: "deadbeef"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !r.UpdatedAt.After(before) {
		t.Errorf("SaveRun left UpdatedAt at %v", r.UpdatedAt)
	}
	got = mustLoad(t, db, r.ID)
	equalRuns(t, got, r)
	if !got.Steps[1].EndedAt.Equal(r.Steps[1].EndedAt) {
		t.Errorf("EndedAt %v, want %v", got.Steps[1].EndedAt, r.Steps[1].EndedAt)
	}

	// Steps can shrink (a rebuilt runbook) and come back.
	r.Steps = r.Steps[:1]
	if err := db.SaveRun(ctx, r, steps.Changes{}); err != nil {
		t.Fatal(err)
	}
	equalRuns(t, mustLoad(t, db, r.ID), r)

	events, err := db.Audit(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Action != "run.started" || events[1].Action != "step.approved" {
		t.Fatalf("Audit(%s) = %+v", r.ID, events)
	}
	if events[0].RunID != r.ID || events[1].RunID != r.ID || events[0].At.IsZero() || events[1].StepID != "approve" {
		t.Errorf("events not defaulted: %+v", events)
	}
	all, err := db.Audit(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[2].RunID != "run-77" || !all[2].At.Equal(t0) {
		t.Errorf("Audit(\"\") = %+v", all)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq {
			t.Errorf("audit out of order: %+v", all)
		}
	}

	aps, err := db.Approvals(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []steps.Approval{{RunID: r.ID, StepIndex: 1, StepID: "approve", Approver: "U2", Decision: "approve",
		At: t0.Add(time.Minute), PlanSHA256: "abc", Commit: "deadbeef"}}
	if !reflect.DeepEqual(aps, want) {
		t.Errorf("Approvals = %+v, want %+v", aps, want)
	}
}

func TestEmptyRunRoundTrip(t *testing.T) {
	db, _ := openTest(t)
	r := &steps.Run{Kind: steps.KindIncident, Service: "api", State: steps.RunActive}
	mustCreate(t, db, r)
	if r.CreatedAt.IsZero() || !r.UpdatedAt.Equal(r.CreatedAt) {
		t.Errorf("times not defaulted: %v %v", r.CreatedAt, r.UpdatedAt)
	}
	got := mustLoad(t, db, r.ID)
	equalRuns(t, got, r)
	if got.Data != nil || got.Steps != nil {
		t.Errorf("nil Data/Steps came back as %#v %#v", got.Data, got.Steps)
	}
}

func TestNotFound(t *testing.T) {
	db, _ := openTest(t)
	mustCreate(t, db, newRun("api"))
	for _, id := range []string{"run-2", "run-01", "run-0", "run-", "1", "", "run-x"} {
		if _, err := db.Run(ctx, id); err != steps.ErrNotFound {
			t.Errorf("Run(%q) = %v, want ErrNotFound", id, err)
		}
	}
	r := newRun("web")
	r.ID = "run-9"
	if err := db.SaveRun(ctx, r, steps.Changes{Events: []steps.AuditEvent{{Action: "x"}}}); err != steps.ErrNotFound {
		t.Errorf("SaveRun(unknown) = %v, want ErrNotFound", err)
	}
	if ev, _ := db.Audit(ctx, "run-9"); len(ev) != 0 {
		t.Errorf("failed SaveRun appended %+v", ev)
	}
	if aps, err := db.Approvals(ctx, "run-9"); err != nil || len(aps) != 0 {
		t.Errorf("Approvals(unknown) = %v, %v", aps, err)
	}
}

func TestStepIndexMustMatchPosition(t *testing.T) {
	db, _ := openTest(t)
	r := newRun("api")
	r.Steps[2].Index = 5
	if err := db.CreateRun(ctx, r, steps.Changes{}); err == nil {
		t.Fatal("CreateRun accepted a step whose Index is not its position")
	}
}

func TestLock(t *testing.T) {
	for _, end := range []steps.RunState{steps.RunSucceeded, steps.RunFailed, steps.RunCancelled} {
		t.Run(string(end), func(t *testing.T) {
			db, _ := openTest(t)
			a := newRun("api")
			mustCreate(t, db, a)

			// Neither a deploy nor a rollback may start; nothing is stored.
			for _, kind := range []steps.RunKind{steps.KindDeploy, steps.KindRollback} {
				b := newRun("api")
				b.Kind, b.Requester = kind, "U9"
				err := db.CreateRun(ctx, b, steps.Changes{Events: []steps.AuditEvent{{Action: "run.started"}}})
				var le *steps.LockedError
				if !errors.As(err, &le) {
					t.Fatalf("second %s: err = %v, want *LockedError", kind, err)
				}
				want := steps.LockedError{Service: "api", RunID: a.ID, Requester: "U1", Since: t0}
				if *le != want {
					t.Errorf("LockedError = %+v, want %+v", *le, want)
				}
				if b.ID != "" {
					t.Errorf("refused run got ID %q", b.ID)
				}
			}
			if runs, _ := db.Runs(ctx, "", 0); len(runs) != 1 {
				t.Errorf("refused runs were stored: %d runs", len(runs))
			}
			if ev, _ := db.Audit(ctx, ""); len(ev) != 0 {
				t.Errorf("refused runs left events: %+v", ev)
			}

			// Other services, and incidents on this one, are not held up.
			mustCreate(t, db, newRun("web"))
			inc := &steps.Run{Kind: steps.KindIncident, Service: "api", State: steps.RunActive}
			mustCreate(t, db, inc)

			// Compensating still holds the lock.
			a.State = steps.RunEnding
			if err := db.SaveRun(ctx, a, steps.Changes{}); err != nil {
				t.Fatal(err)
			}
			if err := db.CreateRun(ctx, newRun("api"), steps.Changes{}); !isLocked(err) {
				t.Fatalf("while ending: err = %v, want *LockedError", err)
			}

			a.State = end
			if err := db.SaveRun(ctx, a, steps.Changes{}); err != nil {
				t.Fatal(err)
			}
			c := newRun("api")
			mustCreate(t, db, c)

			// The ended run cannot reopen while c holds the service.
			a.State = steps.RunActive
			err := db.SaveRun(ctx, a, steps.Changes{Events: []steps.AuditEvent{{Action: "run.retried"}}})
			var le *steps.LockedError
			if !errors.As(err, &le) || le.RunID != c.ID {
				t.Fatalf("reopening: err = %v, want *LockedError held by %s", err, c.ID)
			}
			if got := mustLoad(t, db, a.ID); got.State != end {
				t.Errorf("refused SaveRun changed state to %s", got.State)
			}
			if ev, _ := db.Audit(ctx, a.ID); len(ev) != 0 {
				t.Errorf("refused SaveRun appended %+v", ev)
			}
		})
	}
}

func isLocked(err error) bool {
	var le *steps.LockedError
	return errors.As(err, &le)
}

// TestConcurrentCreateRun races many deploys of one service, from two handles
// on the file as well as from goroutines, as two bot processes would.
func TestConcurrentCreateRun(t *testing.T) {
	db, path := openTest(t)
	db2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()

	const n = 16
	for round, service := range []string{"api", "web", "worker"} {
		start := make(chan struct{})
		errs := make([]error, n)
		runs := make([]*steps.Run, n)
		var wg sync.WaitGroup
		for i := range n {
			runs[i] = newRun(service)
			runs[i].Requester = fmt.Sprintf("U%d", i)
			h := db
			if i%2 == 1 {
				h = db2
			}
			wg.Go(func() {
				<-start
				errs[i] = h.CreateRun(ctx, runs[i], steps.Changes{Events: []steps.AuditEvent{{Action: "run.started"}}})
			})
		}
		close(start)
		wg.Wait()

		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("round %d: both %d and %d won", round, winner, i)
				}
				winner = i
			case !isLocked(err):
				t.Fatalf("round %d: goroutine %d: %v", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody won", round)
		}
		for i, err := range errs {
			var le *steps.LockedError
			if errors.As(err, &le) && (le.RunID != runs[winner].ID || le.Requester != runs[winner].Requester) {
				t.Errorf("round %d: loser %d told %+v, winner is %s", round, i, le, runs[winner].ID)
			}
		}
		open, err := db.OpenRuns(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(open) != round+1 {
			t.Errorf("round %d: %d open runs", round, len(open))
		}
		if ev, _ := db.Audit(ctx, ""); len(ev) != round+1 {
			t.Errorf("round %d: %d events, want one per winner", round, len(ev))
		}
	}
}

// TestConcurrentWrites mixes every kind of write with reads; under -race, and
// with no retry anywhere, none may fail with "database is locked".
func TestConcurrentWrites(t *testing.T) {
	db, _ := openTest(t)
	const workers, rounds = 8, 20
	var wg sync.WaitGroup
	errc := make(chan error, workers*rounds*4)
	for w := range workers {
		wg.Go(func() {
			r := newRun(fmt.Sprintf("svc-%d", w))
			if err := db.CreateRun(ctx, r, steps.Changes{}); err != nil {
				errc <- err
				return
			}
			for i := range rounds {
				r.Steps[2].Seq = i
				if err := db.SaveRun(ctx, r, steps.Changes{Events: []steps.AuditEvent{{Action: "step.tick"}}}); err != nil {
					errc <- err
				}
				if err := db.AppendAudit(ctx, steps.AuditEvent{Action: "click.refused"}); err != nil {
					errc <- err
				}
				if _, err := db.FirstDelivery(ctx, fmt.Sprintf("env-%d-%d", w, i)); err != nil {
					errc <- err
				}
				if _, err := db.OpenRuns(ctx); err != nil {
					errc <- err
				}
				if got, err := db.Run(ctx, r.ID); err != nil {
					errc <- err
				} else if got.Steps[2].Seq != i {
					errc <- fmt.Errorf("%s: read seq %d after writing %d", r.ID, got.Steps[2].Seq, i)
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	ev, err := db.Audit(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 2*workers*rounds {
		t.Errorf("%d events, want %d", len(ev), 2*workers*rounds)
	}
}

func TestAppendOnly(t *testing.T) {
	db, _ := openTest(t)
	r := newRun("api")
	mustCreate(t, db, r, steps.AuditEvent{Actor: "U1", Action: "run.started"})
	if err := db.SaveRun(ctx, r, steps.Changes{Approvals: []steps.Approval{{StepIndex: 1, Approver: "U2", Decision: "approve"}}}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE audit SET actor = 'U666'`,
		`DELETE FROM audit`,
		`UPDATE approvals SET approver = 'U666'`,
		`DELETE FROM approvals`,
	} {
		_, err := db.w.ExecContext(ctx, q)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want the append-only trigger", q, err)
		}
	}
	ev, _ := db.Audit(ctx, r.ID)
	aps, _ := db.Approvals(ctx, r.ID)
	if len(ev) != 1 || ev[0].Actor != "U1" || len(aps) != 1 || aps[0].Approver != "U2" || aps[0].RunID != r.ID || aps[0].At.IsZero() {
		t.Errorf("log changed: %+v %+v", ev, aps)
	}
}

func TestSurvivesReopen(t *testing.T) {
	db, path := openTest(t)
	open := newRun("api")
	mustCreate(t, db, open, steps.AuditEvent{Action: "run.started"})
	done := newRun("web")
	mustCreate(t, db, done)
	done.State = steps.RunSucceeded
	if err := db.SaveRun(ctx, done, steps.Changes{Approvals: []steps.Approval{{StepIndex: 1, Approver: "U2", Decision: "approve", At: t0}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FirstDelivery(ctx, "env-1"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	runs, err := db.OpenRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 {
		t.Fatalf("OpenRuns after reopen = %d runs", len(runs))
	}
	equalRuns(t, runs[0], open)
	equalRuns(t, mustLoad(t, db, done.ID), done)
	if ev, _ := db.Audit(ctx, open.ID); len(ev) != 1 {
		t.Errorf("audit lost: %+v", ev)
	}
	if aps, _ := db.Approvals(ctx, done.ID); len(aps) != 1 {
		t.Errorf("approvals lost: %+v", aps)
	}
	if fresh, _ := db.FirstDelivery(ctx, "env-1"); fresh {
		t.Error("delivery forgotten across restart")
	}
	// The lock survives too, and ids keep counting.
	if err := db.CreateRun(ctx, newRun("api"), steps.Changes{}); !isLocked(err) {
		t.Errorf("lock lost across restart: %v", err)
	}
	next := newRun("worker")
	mustCreate(t, db, next)
	if next.ID != "run-3" {
		t.Errorf("next id = %s, want run-3", next.ID)
	}
}

func TestListing(t *testing.T) {
	db, _ := openTest(t)
	var ids []string
	for i, svc := range []string{"api", "web", "api", "api", "web"} {
		r := newRun(svc)
		r.Kind = steps.KindIncident // no lock, so one service can have several
		r.CreatedAt = t0.Add(time.Duration(i) * time.Minute)
		mustCreate(t, db, r)
		ids = append(ids, r.ID)
		if i == 1 || i == 2 {
			r.State = steps.RunFailed
			if err := db.SaveRun(ctx, r, steps.Changes{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	idsOf := func(runs []*steps.Run, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range runs {
			if len(r.Steps) != 3 {
				t.Errorf("%s loaded with %d steps", r.ID, len(r.Steps))
			}
			out = append(out, r.ID)
		}
		return out
	}
	for _, c := range []struct {
		name      string
		got, want []string
	}{
		{"OpenRuns", idsOf(db.OpenRuns(ctx)), []string{ids[0], ids[3], ids[4]}},
		{"Runs(api, 2)", idsOf(db.Runs(ctx, "api", 2)), []string{ids[3], ids[2]}},
		{"Runs(api, 0)", idsOf(db.Runs(ctx, "api", 0)), []string{ids[3], ids[2], ids[0]}},
		{"Runs(\"\", 10)", idsOf(db.Runs(ctx, "", 10)), []string{ids[4], ids[3], ids[2], ids[1], ids[0]}},
		{"Runs(db, 10)", idsOf(db.Runs(ctx, "db", 10)), nil},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestFirstDelivery(t *testing.T) {
	db, _ := openTest(t)
	now := t0
	db.now = func() time.Time { return now }
	check := func(id string, want bool) {
		t.Helper()
		got, err := db.FirstDelivery(ctx, id)
		if err != nil || got != want {
			t.Errorf("FirstDelivery(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
	check("env-1", true)
	check("env-1", false)
	check("env-2", true)
	now = now.Add(23 * time.Hour)
	check("env-1", false) // still remembered within the day
	now = now.Add(2 * time.Hour)
	check("env-3", true) // prunes env-1 and env-2
	var n int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM deliveries`).Scan(&n); err != nil || n != 1 {
		t.Errorf("after pruning %d deliveries (%v), want 1", n, err)
	}
	check("env-3", false)
	if _, err := db.FirstDelivery(ctx, ""); err == nil {
		t.Error("FirstDelivery accepted an empty id")
	}
}

func TestFileMode(t *testing.T) {
	db, path := openTest(t)
	mustCreate(t, db, newRun("api"), steps.AuditEvent{Action: "run.started"})
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s: mode %o, want 600", filepath.Base(p), m)
		}
	}
}

func TestOpenRefusesMemory(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro"} {
		if db, err := Open(p); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

// TestSurvivesCrash opens a copy of the files as a killed process leaves
// them: never closed, the latest commits only in the WAL.
func TestSurvivesCrash(t *testing.T) {
	db, path := openTest(t)
	r := newRun("api")
	mustCreate(t, db, r, steps.AuditEvent{Action: "run.started"})
	r.Steps[1].Status = steps.StepDone
	if err := db.SaveRun(ctx, r, steps.Changes{Events: []steps.AuditEvent{{Action: "step.done"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Fatalf("no WAL to recover from: %v", err)
	}
	crashed := filepath.Join(t.TempDir(), "deploybot.db")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crashed+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	db2, err := Open(crashed)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	runs, err := db2.OpenRuns(ctx)
	if err != nil || len(runs) != 1 {
		t.Fatalf("OpenRuns after crash = %d runs, %v", len(runs), err)
	}
	equalRuns(t, runs[0], r)
	if ev, _ := db2.Audit(ctx, r.ID); len(ev) != 2 {
		t.Errorf("audit after crash: %+v", ev)
	}
}
