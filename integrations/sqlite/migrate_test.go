package sqlite

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/deploybot/deploybot/internal/storecodec"
)

type applied struct {
	Version int
	Name    string
	At      string
}

func appliedMigrations(t *testing.T, db *DB) []applied {
	t.Helper()
	rows, err := db.r.QueryContext(ctx, `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []applied
	for rows.Next() {
		var a applied
		if err := rows.Scan(&a.Version, &a.Name, &a.At); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func TestMigrationsIdempotent(t *testing.T) {
	db, path := openTest(t)
	first := appliedMigrations(t, db)
	if len(first) == 0 || first[0].Version != 1 || first[0].Name != "0001_init.sql" {
		t.Fatalf("schema_migrations = %+v", first)
	}
	db.Close()
	for range 2 {
		db, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := appliedMigrations(t, db); !reflect.DeepEqual(got, first) {
			t.Errorf("reopen changed schema_migrations: %+v, was %+v", got, first)
		}
		db.Close()
	}
}

// withExtra is the embedded migrations plus more, as a later release ships.
func withExtra(t *testing.T, extra fstest.MapFS) fstest.MapFS {
	t.Helper()
	ms, err := storecodec.LoadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	for _, m := range ms {
		fsys[m.Name] = &fstest.MapFile{Data: []byte(m.SQL)}
	}
	for k, v := range extra {
		fsys[k] = v
	}
	return fsys
}

func TestMigrationAppliesOnlyNew(t *testing.T) {
	db, path := openTest(t)
	r := newRun("api")
	mustCreate(t, db, r)
	before := appliedMigrations(t, db)
	db.Close()

	next := withExtra(t, fstest.MapFS{
		"9000_note.sql": {Data: []byte(`ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT '';
			UPDATE runs SET note = 'migrated';`)},
	})
	for range 2 { // the second open must not run the ALTER again
		db, err := open(path, next)
		if err != nil {
			t.Fatal(err)
		}
		got := appliedMigrations(t, db)
		if len(got) != len(before)+1 || !reflect.DeepEqual(got[:len(before)], before) || got[len(before)].Version != 9000 {
			t.Errorf("schema_migrations = %+v", got)
		}
		var note string
		if err := db.r.QueryRowContext(ctx, `SELECT note FROM runs WHERE id = 1`).Scan(&note); err != nil || note != "migrated" {
			t.Errorf("note = %q, %v", note, err)
		}
		equalRuns(t, mustLoad(t, db, r.ID), r)
		db.Close()
	}
}

func TestFailedMigrationRollsBack(t *testing.T) {
	db, path := openTest(t)
	before := appliedMigrations(t, db)
	db.Close()
	bad := withExtra(t, fstest.MapFS{
		"9000_bad.sql": {Data: []byte(`CREATE TABLE half (x); SELECT no_such_function();`)},
	})
	if db, err := open(path, bad); err == nil {
		db.Close()
		t.Fatal("open with a failing migration succeeded")
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := appliedMigrations(t, db); !reflect.DeepEqual(got, before) {
		t.Errorf("schema_migrations = %+v, want %+v", got, before)
	}
	var n int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE name = 'half'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("half-applied migration left its table (%d, %v)", n, err)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	db, path := openTest(t)
	if _, err := db.w.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', ?)`,
		storecodec.FormatTime(time.Now())); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), "newer deploybot") || !strings.Contains(err.Error(), "9999") {
		t.Fatalf("Open = %v, want a refusal naming migration 9999", err)
	}
}

func TestRefusesOutOfOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	later := withExtra(t, fstest.MapFS{"9001_b.sql": {Data: []byte(`SELECT 1;`)}})
	db, err := open(path, later)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	// A release that slots 9000 in before the already applied 9001.
	both := withExtra(t, fstest.MapFS{
		"9000_a.sql": {Data: []byte(`SELECT 1;`)},
		"9001_b.sql": {Data: []byte(`SELECT 1;`)},
	})
	if db, err := open(path, both); err == nil || !strings.Contains(err.Error(), "out of order") {
		if err == nil {
			db.Close()
		}
		t.Fatalf("open = %v, want an out-of-order refusal", err)
	}
}
