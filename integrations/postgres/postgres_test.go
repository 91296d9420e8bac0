package postgres

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/storecodec"
	"github.com/deploybot/deploybot/internal/testtool"
	"github.com/deploybot/deploybot/steps"
	"github.com/deploybot/deploybot/steps/storetest"
)

var ctx = context.Background()

func openTest(t *testing.T, dsn string) *DB {
	t.Helper()
	db, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestConformance runs the suite every store passes (steps/storetest)
// against the machine's PostgreSQL, a fresh database per test.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		dsn := testtool.Postgres(t)
		db := openTest(t, dsn)
		// A separate pool for SQL from "another client": the suite may
		// close the store.
		other := openTest(t, dsn)
		return storetest.Backend{
			Store: db,
			Again: func(t *testing.T) steps.Store { return openTest(t, dsn) },
			Exec: func(ctx context.Context, q string) error {
				_, err := other.pool.Exec(ctx, q)
				return err
			},
			Scalar: func(ctx context.Context, q string) (string, error) {
				var v string
				err := other.pool.QueryRow(ctx, `SELECT (`+q+`)::text`).Scan(&v)
				return v, err
			},
		}
	})
}

// Replicas starting together against a new database migrate it once: the
// others wait on the advisory lock and find the schema up to date.
func TestReplicasStartingTogetherMigrateOnce(t *testing.T) {
	dsn := testtool.Postgres(t)
	const replicas = 4
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range replicas {
		wg.Go(func() {
			<-start
			db, err := Open(ctx, dsn)
			if err == nil {
				db.Close()
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	db := openTest(t, dsn)
	rows, err := db.pool.Query(ctx, `SELECT version, count(*) FROM schema_migrations GROUP BY version ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var versions []int
	for rows.Next() {
		var v, n int
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("migration %d recorded %d times", v, n)
		}
		versions = append(versions, v)
	}
	ms, _ := storecodec.LoadMigrations(migrationFS)
	if len(versions) != len(ms) {
		t.Errorf("applied %v, want each of the %d migrations once", versions, len(ms))
	}
}

// A database written by a newer deploybot is refused, not run with a schema
// this binary does not understand.
func TestNewerSchemaIsRefused(t *testing.T) {
	dsn := testtool.Postgres(t)
	db := openTest(t, dsn)
	if _, err := db.pool.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', '')`); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, dsn)
	if err == nil || !strings.Contains(err.Error(), "newer deploybot") {
		t.Fatalf("Open on a newer schema = %v, want a refusal naming a newer deploybot", err)
	}
}

// The audit log also refuses TRUNCATE, which fires no row trigger.
func TestAuditRefusesTruncate(t *testing.T) {
	db := openTest(t, testtool.Postgres(t))
	if err := db.AppendAudit(ctx, steps.AuditEvent{Actor: "U1", Action: "click.refused"}); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"audit", "approvals"} {
		_, err := db.pool.Exec(ctx, `TRUNCATE `+table+` CASCADE`)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("TRUNCATE %s: %v, want the append-only trigger", table, err)
		}
	}
	if ev, _ := db.Audit(ctx, ""); len(ev) != 1 {
		t.Errorf("audit after TRUNCATE: %+v", ev)
	}
}

func TestFirstDeliveryForgetsAfterADay(t *testing.T) {
	db := openTest(t, testtool.Postgres(t))
	now := storetest.T0
	db.now = func() time.Time { return now }
	check := func(id string, want bool) {
		t.Helper()
		got, err := db.FirstDelivery(ctx, id)
		if err != nil || got != want {
			t.Errorf("FirstDelivery(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
	check("env-1", true)
	check("env-2", true)
	now = now.Add(23 * time.Hour)
	check("env-1", false) // still remembered within the day
	now = now.Add(2 * time.Hour)
	check("env-3", true) // prunes env-1 and env-2
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM deliveries`).Scan(&n); err != nil || n != 1 {
		t.Errorf("after pruning %d deliveries (%v), want 1", n, err)
	}
}

// Errors name the database without its password.
func TestOpenErrorsHideThePassword(t *testing.T) {
	for _, dsn := range []string{
		"postgres://deploybot:hunter2-secret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2",
		"postgres://deploybot:hunter2-secret@127.0.0.1:5432/x?sslmode=nonsense",
	} {
		_, err := Open(ctx, dsn)
		if err == nil {
			t.Fatalf("Open(%s) succeeded", Redact(dsn))
		}
		if strings.Contains(err.Error(), "hunter2-secret") {
			t.Errorf("error shows the password: %v", err)
		}
		if !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("error does not say which database: %v", err)
		}
	}
}
