// Package storetest is the conformance suite every steps.Store passes, so
// that the SQLite and PostgreSQL backends behave the same way to the engine.
// Test code only.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/steps"
)

// Backend is one fresh, empty database seen through a store.
type Backend struct {
	Store steps.Store
	// Again opens another store on the same database, as a second process
	// or replica would (and as a restart does once Store is closed).
	Again func(t *testing.T) steps.Store
	// Exec runs one SQL statement as any other client of the database
	// would (the sqlite3 shell, psql): not through the store.
	Exec func(ctx context.Context, sql string) error
	// Scalar runs a query that returns one value, as text.
	Scalar func(ctx context.Context, sql string) (string, error)
}

// Run runs the suite; open makes a fresh backend for each test and cleans
// it up with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) Backend) {
	for _, c := range []struct {
		name string
		f    func(*testing.T, Backend)
	}{
		{"RoundTrip", roundTrip},
		{"EmptyRun", emptyRun},
		{"NotFound", notFound},
		{"StepIndexMustMatchPosition", stepIndex},
		{"Lock", lock},
		{"ConcurrentCreateRun", concurrentCreate},
		{"ConcurrentWrites", concurrentWrites},
		{"StaleWriteRefused", staleWrite},
		{"ConcurrentWritersLoseNoUpdate", concurrentSameRun},
		{"AppendOnly", appendOnly},
		{"SurvivesReopen", survivesReopen},
		{"Listing", listing},
		{"FirstDelivery", firstDelivery},
		{"Outbox", outbox},
		{"OutboxDepth", outboxDepth},
		{"Leases", leases},
		{"LeaseHolderStopsBeforeTakeover", leaseHolder},
		{"Mailbox", mailbox},
	} {
		t.Run(c.name, func(t *testing.T) { c.f(t, open(t)) })
	}
}

var ctx = context.Background()

// T0 has nanoseconds: a store must keep them.
var T0 = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)

// NewRun is a deploy with steps in every shape the engine produces: nil and
// empty maps and button lists, set and zero times.
func NewRun(service string) *steps.Run {
	return &steps.Run{
		Kind:      steps.KindDeploy,
		Service:   service,
		Version:   "v1.2.3",
		Requester: "U1",
		Channel:   "C1",
		Summary:   "ship it",
		State:     steps.RunActive,
		CreatedAt: T0,
		Data:      map[string]string{"previous": "v1.2.2"},
		Steps: []steps.StepState{
			{Index: 0, ID: "check", Title: "Check", Status: steps.StepDone, Seq: 2, Attempt: 1, Note: "green",
				StartedAt: T0, EndedAt: T0.Add(time.Second), Data: map[string]string{}},
			{Index: 1, ID: "approve", Title: "Approve", Status: steps.StepWaiting, Seq: 1, Attempt: 1,
				Prompt: "Approve?", WaitingOn: "approvers", StartedAt: T0.Add(2 * time.Second),
				Buttons: []steps.Button{{Verb: steps.VerbApprove, Label: "Approve", Style: "primary"}, {Verb: steps.VerbReject, Label: "Reject", Style: "danger"}},
				Comp:    steps.CompNeeded, Data: map[string]string{"plan": "abc"}},
			{Index: 2, ID: "deploy", Title: "Deploy", Status: steps.StepPending, Buttons: []steps.Button{}},
		},
	}
}

func mustCreate(t testing.TB, db steps.Store, r *steps.Run, events ...steps.AuditEvent) {
	t.Helper()
	if err := db.CreateRun(ctx, r, steps.Changes{Events: events}); err != nil {
		t.Fatalf("CreateRun(%s): %v", r.Service, err)
	}
}

func mustLoad(t testing.TB, db steps.Store, id string) *steps.Run {
	t.Helper()
	r, err := db.Run(ctx, id)
	if err != nil {
		t.Fatalf("Run(%s): %v", id, err)
	}
	return r
}

// EqualRuns compares as reflect.DeepEqual after putting every time in UTC
// without a monotonic reading: a store keeps instants, not locations.
func EqualRuns(t *testing.T, got, want *steps.Run) {
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

func isLocked(err error) bool {
	var le *steps.LockedError
	return errors.As(err, &le)
}

func roundTrip(t *testing.T, b Backend) {
	db := b.Store
	r := NewRun("api")
	mustCreate(t, db, r, steps.AuditEvent{Actor: "U1", Action: "run.started", RunID: "ignored"})
	if r.ID != "run-1" {
		t.Fatalf("ID = %q, want run-1", r.ID)
	}
	if r.Rev != 1 {
		t.Errorf("Rev = %d after CreateRun, want 1", r.Rev)
	}
	if !r.UpdatedAt.Equal(T0) {
		t.Errorf("UpdatedAt = %v, want CreatedAt %v", r.UpdatedAt, T0)
	}
	got := mustLoad(t, db, r.ID)
	EqualRuns(t, got, r)
	// nil and empty stay apart.
	if got.Steps[0].Data == nil || got.Steps[0].Buttons != nil || got.Steps[2].Data != nil || got.Steps[2].Buttons == nil {
		t.Errorf("nil/empty not preserved: %#v", got.Steps)
	}

	// A transition: finish the approval, start deploying, end the run.
	r.Steps[1].Status, r.Steps[1].Seq, r.Steps[1].Actor = steps.StepDone, 2, "U2"
	r.Steps[1].Buttons, r.Steps[1].Prompt = nil, ""
	r.Steps[1].EndedAt = T0.Add(time.Minute).In(time.FixedZone("CET", 3600))
	r.Steps[2].Data = map[string]string{"image": "api:v1.2.3", "quote": `it's "fine" \ ünïcode`}
	r.Data["commit"] = "deadbeef"
	r.MessageTS = "1700000000.000100"
	r.State, r.Outcome, r.EndedAt = steps.RunSucceeded, "deployed", T0.Add(time.Hour)
	before := r.UpdatedAt
	err := db.SaveRun(ctx, r, steps.Changes{
		Events: []steps.AuditEvent{
			{Actor: "U2", Action: "step.approved", StepID: "approve", Detail: "plan abc"},
			{RunID: "run-77", At: T0, Actor: "deploybot", Action: "other"},
		},
		Approvals: []steps.Approval{{StepIndex: 1, StepID: "approve", Approver: "U2", Decision: "approve",
			At: T0.Add(time.Minute), PlanSHA256: "abc", Commit: "deadbeef"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !r.UpdatedAt.After(before) {
		t.Errorf("SaveRun left UpdatedAt at %v", r.UpdatedAt)
	}
	if r.Rev != 2 {
		t.Errorf("Rev = %d after one SaveRun, want 2", r.Rev)
	}
	got = mustLoad(t, db, r.ID)
	EqualRuns(t, got, r)

	// Steps can shrink (a rebuilt runbook) and come back.
	r.Steps = r.Steps[:1]
	if err := db.SaveRun(ctx, r, steps.Changes{}); err != nil {
		t.Fatal(err)
	}
	EqualRuns(t, mustLoad(t, db, r.ID), r)

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
	if len(all) != 3 || all[2].RunID != "run-77" || !all[2].At.Equal(T0) {
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
		At: T0.Add(time.Minute), PlanSHA256: "abc", Commit: "deadbeef"}}
	if !reflect.DeepEqual(aps, want) {
		t.Errorf("Approvals = %+v, want %+v", aps, want)
	}
}

func emptyRun(t *testing.T, b Backend) {
	db := b.Store
	r := &steps.Run{Kind: steps.KindIncident, Service: "api", State: steps.RunActive}
	mustCreate(t, db, r)
	if r.CreatedAt.IsZero() || !r.UpdatedAt.Equal(r.CreatedAt) {
		t.Errorf("times not defaulted: %v %v", r.CreatedAt, r.UpdatedAt)
	}
	got := mustLoad(t, db, r.ID)
	EqualRuns(t, got, r)
	if got.Data != nil || got.Steps != nil {
		t.Errorf("nil Data/Steps came back as %#v %#v", got.Data, got.Steps)
	}
}

func notFound(t *testing.T, b Backend) {
	db := b.Store
	mustCreate(t, db, NewRun("api"))
	for _, id := range []string{"run-2", "run-01", "run-0", "run-", "1", "", "run-x", "run-99999999999999999999"} {
		if _, err := db.Run(ctx, id); err != steps.ErrNotFound {
			t.Errorf("Run(%q) = %v, want ErrNotFound", id, err)
		}
	}
	r := NewRun("web")
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

func stepIndex(t *testing.T, b Backend) {
	r := NewRun("api")
	r.Steps[2].Index = 5
	if err := b.Store.CreateRun(ctx, r, steps.Changes{}); err == nil {
		t.Fatal("CreateRun accepted a step whose Index is not its position")
	}
}

func lock(t *testing.T, b Backend) {
	db := b.Store
	a := NewRun("api")
	mustCreate(t, db, a)

	// Neither a deploy nor a rollback may start; nothing is stored.
	for _, kind := range []steps.RunKind{steps.KindDeploy, steps.KindRollback} {
		r := NewRun("api")
		r.Kind, r.Requester = kind, "U9"
		err := db.CreateRun(ctx, r, steps.Changes{Events: []steps.AuditEvent{{Action: "run.started"}},
			Outbox: []steps.OutboxEntry{{Kind: steps.OutboxParent}}})
		var le *steps.LockedError
		if !errors.As(err, &le) {
			t.Fatalf("second %s: err = %v, want *LockedError", kind, err)
		}
		want := steps.LockedError{Service: "api", RunID: a.ID, Requester: "U1", Since: T0}
		if *le != want {
			t.Errorf("LockedError = %+v, want %+v", *le, want)
		}
		if r.ID != "" {
			t.Errorf("refused run got ID %q", r.ID)
		}
	}
	if runs, _ := db.Runs(ctx, "", 0); len(runs) != 1 {
		t.Errorf("refused runs were stored: %d runs", len(runs))
	}
	if ev, _ := db.Audit(ctx, ""); len(ev) != 0 {
		t.Errorf("refused runs left events: %+v", ev)
	}
	if owed, _ := db.PendingOutbox(ctx, ""); len(owed) != 0 {
		t.Errorf("refused runs left messages: %+v", owed)
	}

	// Other services, and incidents on this one, are not held up.
	mustCreate(t, db, NewRun("web"))
	mustCreate(t, db, &steps.Run{Kind: steps.KindIncident, Service: "api", State: steps.RunActive})

	// Compensating still holds the lock.
	a.State = steps.RunEnding
	if err := db.SaveRun(ctx, a, steps.Changes{}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateRun(ctx, NewRun("api"), steps.Changes{}); !isLocked(err) {
		t.Fatalf("while ending: err = %v, want *LockedError", err)
	}

	a.State = steps.RunCancelled
	if err := db.SaveRun(ctx, a, steps.Changes{}); err != nil {
		t.Fatal(err)
	}
	c := NewRun("api")
	mustCreate(t, db, c)

	// The ended run cannot reopen while c holds the service.
	a.State = steps.RunActive
	err := db.SaveRun(ctx, a, steps.Changes{Events: []steps.AuditEvent{{Action: "run.retried"}}})
	var le *steps.LockedError
	if !errors.As(err, &le) || le.RunID != c.ID {
		t.Fatalf("reopening: err = %v, want *LockedError held by %s", err, c.ID)
	}
	if got := mustLoad(t, db, a.ID); got.State != steps.RunCancelled {
		t.Errorf("refused SaveRun changed state to %s", got.State)
	}
	if ev, _ := db.Audit(ctx, a.ID); len(ev) != 0 {
		t.Errorf("refused SaveRun appended %+v", ev)
	}
}

// concurrentCreate races many deploys of one service from two stores on the
// database, as two processes or replicas would.
func concurrentCreate(t *testing.T, b Backend) {
	db, db2 := b.Store, b.Again(t)
	const n = 16
	for round, service := range []string{"api", "web", "worker"} {
		start := make(chan struct{})
		errs := make([]error, n)
		runs := make([]*steps.Run, n)
		var wg sync.WaitGroup
		for i := range n {
			runs[i] = NewRun(service)
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

// concurrentWrites mixes every kind of write with reads, each worker on its
// own run; none may fail.
func concurrentWrites(t *testing.T, b Backend) {
	db := b.Store
	const workers, rounds = 8, 20
	var wg sync.WaitGroup
	errc := make(chan error, workers*rounds*4)
	for w := range workers {
		wg.Go(func() {
			r := NewRun(fmt.Sprintf("svc-%d", w))
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

// staleWrite: a copy loaded before another writer committed is refused
// with ErrStale, and nothing it carried is written.
func staleWrite(t *testing.T, b Backend) {
	db := b.Store
	r := NewRun("api")
	mustCreate(t, db, r, steps.AuditEvent{Action: "run.started"})
	mine, theirs := mustLoad(t, db, r.ID), mustLoad(t, b.Again(t), r.ID)

	theirs.Steps[1].Status, theirs.Steps[1].Actor = steps.StepDone, "U2"
	if err := b.Again(t).SaveRun(ctx, theirs, steps.Changes{Events: []steps.AuditEvent{{Actor: "U2", Action: "step.done"}}}); err != nil {
		t.Fatal(err)
	}
	mine.Steps[1].Status, mine.Steps[1].Actor = steps.StepFailed, "U3"
	mine.State = steps.RunEnding
	rev := mine.Rev
	err := db.SaveRun(ctx, mine, steps.Changes{
		Events:    []steps.AuditEvent{{Actor: "U3", Action: "step.failed"}},
		Approvals: []steps.Approval{{StepIndex: 1, Approver: "U3", Decision: "reject"}},
		Outbox:    []steps.OutboxEntry{{Kind: steps.OutboxSay, Text: "rejected"}},
	})
	if !errors.Is(err, steps.ErrStale) {
		t.Fatalf("stale SaveRun = %v, want ErrStale", err)
	}
	if mine.Rev != rev {
		t.Errorf("refused SaveRun moved Rev from %d to %d", rev, mine.Rev)
	}
	got := mustLoad(t, db, r.ID)
	if got.State != steps.RunActive || got.Steps[1].Actor != "U2" || got.Rev != theirs.Rev {
		t.Errorf("after the refused write: state %s, actor %s, rev %d; want active, U2, %d", got.State, got.Steps[1].Actor, got.Rev, theirs.Rev)
	}
	ev, _ := db.Audit(ctx, r.ID)
	aps, _ := db.Approvals(ctx, r.ID)
	owed, _ := db.PendingOutbox(ctx, r.ID)
	if len(ev) != 2 || len(aps) != 0 || len(owed) != 0 {
		t.Errorf("refused write left %d events (want 2), %d approvals, %d messages", len(ev), len(aps), len(owed))
	}
	// Reloaded, the same change goes through.
	got.Steps[1].Status = steps.StepFailed
	if err := db.SaveRun(ctx, got, steps.Changes{}); err != nil {
		t.Fatalf("SaveRun of the reloaded run: %v", err)
	}
}

// concurrentSameRun: writers on two stores increment a counter in one run,
// each reloading and trying again when refused as stale. No increment may
// be lost, which a write that overwrote another would do.
func concurrentSameRun(t *testing.T, b Backend) {
	stores := []steps.Store{b.Store, b.Again(t)}
	r := NewRun("api")
	r.Data["n"] = "0"
	mustCreate(t, b.Store, r)
	const workers, each = 6, 10
	var stale sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	errc := make(chan error, workers)
	for w := range workers {
		stale.Go(func() {
			db := stores[w%2]
			for range each {
				for {
					cur, err := db.Run(ctx, r.ID)
					if err != nil {
						errc <- err
						return
					}
					n, _ := strconv.Atoi(cur.Data["n"])
					cur.Data["n"] = strconv.Itoa(n + 1)
					err = db.SaveRun(ctx, cur, steps.Changes{Events: []steps.AuditEvent{{Action: "tick"}}})
					if errors.Is(err, steps.ErrStale) {
						mu.Lock()
						refused++
						mu.Unlock()
						continue
					}
					if err != nil {
						errc <- err
						return
					}
					break
				}
			}
		})
	}
	stale.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	got := mustLoad(t, b.Store, r.ID)
	if got.Data["n"] != strconv.Itoa(workers*each) || got.Rev != 1+workers*each {
		t.Errorf("counter %s at rev %d, want %d at %d (%d writes refused as stale)", got.Data["n"], got.Rev, workers*each, 1+workers*each, refused)
	}
	if ev, _ := b.Store.Audit(ctx, r.ID); len(ev) != workers*each {
		t.Errorf("%d events, want one per committed write (%d)", len(ev), workers*each)
	}
	t.Logf("%d writes refused as stale and retried", refused)
}

// appendOnly: approvals and the audit log refuse changes from any client of
// the database, not only from the store.
func appendOnly(t *testing.T, b Backend) {
	db := b.Store
	r := NewRun("api")
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
		err := b.Exec(ctx, q)
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

func survivesReopen(t *testing.T, b Backend) {
	db := b.Store
	open := NewRun("api")
	mustCreate(t, db, open, steps.AuditEvent{Action: "run.started"})
	done := NewRun("web")
	mustCreate(t, db, done)
	done.State = steps.RunSucceeded
	if err := db.SaveRun(ctx, done, steps.Changes{Approvals: []steps.Approval{{StepIndex: 1, Approver: "U2", Decision: "approve", At: T0}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FirstDelivery(ctx, "env-1"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = b.Again(t)
	runs, err := db.OpenRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 {
		t.Fatalf("OpenRuns after reopen = %d runs", len(runs))
	}
	EqualRuns(t, runs[0], open)
	EqualRuns(t, mustLoad(t, db, done.ID), done)
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
	if err := db.CreateRun(ctx, NewRun("api"), steps.Changes{}); !isLocked(err) {
		t.Errorf("lock lost across restart: %v", err)
	}
	next := NewRun("worker")
	mustCreate(t, db, next)
	if next.ID != "run-4" && next.ID != "run-3" {
		// run-3 went to the refused CreateRun on a backend whose ids
		// come from a sequence (PostgreSQL): a gap, never a reuse.
		t.Errorf("next id = %s, want run-3 or run-4", next.ID)
	}
}

func listing(t *testing.T, b Backend) {
	db := b.Store
	var ids []string
	for i, svc := range []string{"api", "web", "api", "api", "web"} {
		r := NewRun(svc)
		r.Kind = steps.KindIncident // no lock, so one service can have several
		r.CreatedAt = T0.Add(time.Duration(i) * time.Minute)
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

// firstDelivery: an envelope id is new exactly once, across stores on the
// same database racing for it too.
func firstDelivery(t *testing.T, b Backend) {
	db, db2 := b.Store, b.Again(t)
	check := func(s steps.Store, id string, want bool) {
		t.Helper()
		got, err := s.FirstDelivery(ctx, id)
		if err != nil || got != want {
			t.Errorf("FirstDelivery(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
	check(db, "env-1", true)
	check(db, "env-1", false)
	check(db2, "env-1", false)
	check(db2, "env-2", true)
	if _, err := db.FirstDelivery(ctx, ""); err == nil {
		t.Error("FirstDelivery accepted an empty id")
	}
	const racers = 8
	for round := range 5 {
		id := fmt.Sprintf("race-%d", round)
		var wg sync.WaitGroup
		var mu sync.Mutex
		fresh := 0
		start := make(chan struct{})
		for i := range racers {
			wg.Go(func() {
				<-start
				s := db
				if i%2 == 1 {
					s = db2
				}
				ok, err := s.FirstDelivery(ctx, id)
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					fresh++
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		if fresh != 1 {
			t.Errorf("%s: %d of %d racers were told it was new, want 1", id, fresh, racers)
		}
	}
}

// outbox: messages a transition causes are committed with it, listed in
// order until delivered, and a follow-up (the announcement's link) is owed
// from the same commit that records the announcement delivered.
func outbox(t *testing.T, b Backend) {
	db := b.Store
	r := NewRun("api")
	if err := db.CreateRun(ctx, r, steps.Changes{Outbox: []steps.OutboxEntry{{Kind: steps.OutboxParent}}}); err != nil {
		t.Fatal(err)
	}
	plan := []byte("+ terraform_data.x\x00\xff")
	if err := db.SaveRun(ctx, r, steps.Changes{Outbox: []steps.OutboxEntry{
		{Kind: steps.OutboxSay, Text: "one", Buttons: []steps.Button{{Verb: steps.VerbRollback, Label: "Roll back"}}},
		{Kind: steps.OutboxFile, Name: "plan.txt", Title: "Plan", Content: plan},
		{Kind: steps.OutboxAnnounce, Channel: "C0ALERTS", Text: "incident"},
	}}); err != nil {
		t.Fatal(err)
	}
	// A transition that fails to commit leaves no message behind.
	other := NewRun("api")
	if err := db.CreateRun(ctx, other, steps.Changes{Outbox: []steps.OutboxEntry{{Kind: steps.OutboxParent}}}); !isLocked(err) {
		t.Fatalf("second open run of api: %v, want the service lock", err)
	}

	db.Close()
	db = b.Again(t) // what a restart sees
	owed, err := db.PendingOutbox(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []steps.OutboxKind
	for _, e := range owed {
		if e.RunID != r.ID {
			t.Errorf("entry %d belongs to %q, want %s", e.ID, e.RunID, r.ID)
		}
		kinds = append(kinds, e.Kind)
	}
	want := []steps.OutboxKind{steps.OutboxParent, steps.OutboxSay, steps.OutboxFile, steps.OutboxAnnounce}
	if !reflect.DeepEqual(kinds, want) {
		t.Fatalf("owed %v, want %v in that order", kinds, want)
	}
	if owed[1].Buttons[0].Verb != steps.VerbRollback || string(owed[2].Content) != string(plan) || owed[3].Channel != "C0ALERTS" {
		t.Errorf("entries did not round-trip: %+v", owed)
	}

	if err := db.MarkDelivered(ctx, []steps.Delivery{{ID: owed[0].ID, TS: "1.0"}, {ID: owed[3].ID, TS: "2.0"}},
		steps.OutboxEntry{RunID: r.ID, Kind: steps.OutboxSay, Text: "Announced: link"}); err != nil {
		t.Fatal(err)
	}
	left, err := db.PendingOutbox(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 3 || left[0].Text != "one" || left[2].Text != "Announced: link" {
		t.Fatalf("after delivery owed %+v, want the say, the file and the follow-up", left)
	}
	// Delivering twice is harmless: the record keeps the first answer.
	if err := db.MarkDelivered(ctx, []steps.Delivery{{ID: owed[0].ID, TS: "9.9"}}); err != nil {
		t.Fatal(err)
	}
	ts, err := b.Scalar(ctx, fmt.Sprintf(`SELECT ts FROM outbox WHERE id = %d`, owed[0].ID))
	if err != nil || ts != "1.0" {
		t.Errorf("parent ts %q (%v), want the first delivery's 1.0", ts, err)
	}
	// Updates carry nothing once delivered and are dropped; a file keeps
	// its name but not its bytes.
	if err := db.SaveRun(ctx, r, steps.Changes{Outbox: []steps.OutboxEntry{{Kind: steps.OutboxUpdate}}}); err != nil {
		t.Fatal(err)
	}
	owed, _ = db.PendingOutbox(ctx, r.ID)
	var ds []steps.Delivery
	for _, e := range owed {
		ds = append(ds, steps.Delivery{ID: e.ID})
	}
	if err := db.MarkDelivered(ctx, ds); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Scalar(ctx, `SELECT count(*) FROM outbox WHERE kind = 'update'`); err != nil || n != "0" {
		t.Errorf("%s delivered updates kept (%v), want 0", n, err)
	}
	if n, err := b.Scalar(ctx, `SELECT count(*) FROM outbox WHERE kind = 'file' AND content IS NULL AND name = 'plan.txt'`); err != nil || n != "1" {
		t.Errorf("delivered file: %s rows named and emptied (%v), want 1", n, err)
	}
}

// outboxDepth: the /metrics gauge counts owed messages without loading
// them (a plan file may be megabytes, and the outbox grows exactly when
// Slack is down).
func outboxDepth(t *testing.T, b Backend) {
	d, ok := b.Store.(interface {
		OutboxDepth(ctx context.Context) (int, error)
	})
	if !ok {
		t.Fatalf("%T has no OutboxDepth: /metrics would load every owed message to count them", b.Store)
	}
	r := NewRun("api")
	if err := b.Store.CreateRun(ctx, r, steps.Changes{Outbox: []steps.OutboxEntry{{Kind: steps.OutboxParent}, {Kind: steps.OutboxSay, Text: "one"}}}); err != nil {
		t.Fatal(err)
	}
	if n, err := d.OutboxDepth(ctx); err != nil || n != 2 {
		t.Fatalf("outbox depth = %d, %v; want 2", n, err)
	}
	owed, err := b.Store.PendingOutbox(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Store.MarkDelivered(ctx, []steps.Delivery{{ID: owed[0].ID, TS: "1.0"}}); err != nil {
		t.Fatal(err)
	}
	if n, err := d.OutboxDepth(ctx); err != nil || n != 1 {
		t.Fatalf("outbox depth after a delivery = %d, %v; want 1", n, err)
	}
}
