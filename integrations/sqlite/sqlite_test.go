package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/deploybot/deploybot/steps"
	"github.com/deploybot/deploybot/steps/storetest"
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

var t0 = storetest.T0

func newRun(service string) *steps.Run { return storetest.NewRun(service) }

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

func equalRuns(t *testing.T, got, want *steps.Run) { t.Helper(); storetest.EqualRuns(t, got, want) }

// TestConformance runs the suite every store passes (steps/storetest).
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		db, path := openTest(t)
		return storetest.Backend{
			Store: db,
			Again: func(t *testing.T) steps.Store {
				db, err := Open(path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				return db
			},
			Exec: func(ctx context.Context, q string) error {
				_, err := db.w.ExecContext(ctx, q)
				return err
			},
			Scalar: func(ctx context.Context, q string) (string, error) {
				var v string
				// A fresh handle: the suite may have closed db.
				h, err := Open(path)
				if err != nil {
					return "", err
				}
				defer h.Close()
				err = h.r.QueryRowContext(ctx, q).Scan(&v)
				return v, err
			},
		}
	})
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
