package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/integrations/postgres"
	"github.com/deploybot/deploybot/integrations/sqlite"
	"github.com/deploybot/deploybot/internal/testtool"
	"github.com/deploybot/deploybot/steps"
	"github.com/deploybot/deploybot/steps/storetest"
)

// storeConfig writes a configuration with manual steps only; storeURL, when
// set, puts the state in PostgreSQL.
func storeConfig(t *testing.T, storeURL string) (path, statePath string) {
	t.Helper()
	dir := t.TempDir()
	src := `
state_path: ./state.db
http_addr: 127.0.0.1:0
slack:
  deploy_channels: [C0DEPLOYS]
  deployers: [U0ALICE]
  approvers: [U0ALICE, U0BOB]
services:
  svc:
    steps:
      - {id: check, title: Check the dashboards, instruction: look at them}
      - {id: confirm, title: Confirm, instruction: say so, approval: true}
`
	if storeURL != "" {
		src += "store:\n  url: " + storeURL + "\n"
	}
	path = filepath.Join(dir, "deploybot.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, filepath.Join(dir, "state.db")
}

// runCommand runs deploybot with args and returns its output.
func runCommand(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	m := NewMain()
	m.Stdin, m.Stdout, m.Stderr = strings.NewReader(""), &out, testWriter{t}
	m.Getenv = func(k string) string { return env[k] }
	if err := m.ParseArgs(args); err != nil {
		return "", err
	}
	err := m.Run(context.Background())
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	return out.String(), err
}

func TestMigrateAppliesTheStoresSchemaAndExits(t *testing.T) {
	dsn := testtool.Postgres(t)
	path, _ := storeConfig(t, dsn)
	for range 2 { // the second finds nothing to do
		out, err := runCommand(t, nil, "migrate", "--config", path)
		if err != nil {
			t.Fatal(err)
		}
		if want := postgres.Redact(dsn) + ": schema up to date (migration 5)"; !strings.Contains(out, want) {
			t.Errorf("migrate said %q, want %q", out, want)
		}
	}
	db, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, err := db.SchemaVersion(context.Background()); err != nil || v != 5 {
		t.Errorf("schema version %d (%v), want 4", v, err)
	}

	// Without store.url it is the SQLite file's schema.
	path, statePath := storeConfig(t, "")
	out, err := runCommand(t, nil, "migrate", "--config", path)
	if err != nil || !strings.Contains(out, statePath+": schema up to date (migration 5)") {
		t.Errorf("migrate on SQLite: %q, %v", out, err)
	}
}

// sqliteState writes state in every shape export must carry: an ended run
// with approvals, an open run holding its service, audit events (one about
// no run), delivered and owed messages, a file, and envelope ids.
func sqliteState(t *testing.T, statePath string) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(statePath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	done := storetest.NewRun("svc")
	if err := db.CreateRun(ctx, done, steps.Changes{Events: []steps.AuditEvent{{Actor: "U0ALICE", Action: "run.started"}},
		Outbox: []steps.OutboxEntry{{Kind: steps.OutboxParent}}}); err != nil {
		t.Fatal(err)
	}
	done.State = steps.RunSucceeded
	if err := db.SaveRun(ctx, done, steps.Changes{
		Approvals: []steps.Approval{{StepIndex: 1, StepID: "approve", Approver: "U0BOB", Decision: "approve", PlanSHA256: "abc", Commit: "deadbeef"}},
		Events:    []steps.AuditEvent{{Actor: "U0BOB", Action: "step.done", StepID: "approve"}},
		Outbox:    []steps.OutboxEntry{{Kind: steps.OutboxFile, Name: "plan.txt", Title: "Plan", Content: []byte("+ x\x00")}, {Kind: steps.OutboxSay, Text: "owed"}},
	}); err != nil {
		t.Fatal(err)
	}
	owed, _ := db.PendingOutbox(ctx, done.ID)
	if err := db.MarkDelivered(ctx, []steps.Delivery{{ID: owed[0].ID, TS: "1700000000.000100"}}); err != nil {
		t.Fatal(err)
	}
	open := storetest.NewRun("svc")
	if err := db.CreateRun(ctx, open, steps.Changes{}); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendAudit(ctx, steps.AuditEvent{Actor: "U0EVE", Action: "click.refused", RunID: "run-999"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"env-1", "env-2"} {
		if _, err := db.FirstDelivery(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}

// export copies an SQLite store into PostgreSQL with ids, order, the lock
// and the envelope ids kept, and refuses a target that holds state.
func TestExportCopiesSQLiteStateIntoPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := testtool.Postgres(t)
	path, statePath := storeConfig(t, "")
	sqliteState(t, statePath)

	out, err := runCommand(t, nil, "export", "--config", path, "--to", dsn)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "exported "+statePath+" to "+postgres.Redact(dsn)+": 2 runs 6 steps 1 approvals 3 audit 3 outbox 2 deliveries") {
		t.Errorf("export said %q", out)
	}

	src, err := sqlite.Open(statePath)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	same := func(what string, get func(steps.Store) (any, error)) {
		t.Helper()
		a, err := get(src)
		if err != nil {
			t.Fatal(err)
		}
		b, err := get(dst)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s differ:\nsqlite:   %+v\npostgres: %+v", what, a, b)
		}
	}
	same("runs", func(s steps.Store) (any, error) { return s.Runs(ctx, "", 0) })
	same("audit", func(s steps.Store) (any, error) { return s.Audit(ctx, "") })
	same("approvals", func(s steps.Store) (any, error) { return s.Approvals(ctx, "run-1") })
	same("owed messages", func(s steps.Store) (any, error) { return s.PendingOutbox(ctx, "") })

	// The open run still holds its service; envelopes already seen stay
	// seen; new ids continue after the copied ones.
	var le *steps.LockedError
	if err := dst.CreateRun(ctx, storetest.NewRun("svc"), steps.Changes{}); !errors.As(err, &le) || le.RunID != "run-2" {
		t.Errorf("a new run of svc on the copy: %v, want the lock held by run-2", err)
	}
	if fresh, err := dst.FirstDelivery(ctx, "env-1"); err != nil || fresh {
		t.Errorf("envelope env-1 on the copy: new=%v, %v; want already seen", fresh, err)
	}
	next := storetest.NewRun("other")
	if err := dst.CreateRun(ctx, next, steps.Changes{Events: []steps.AuditEvent{{Action: "run.started"}}}); err != nil {
		t.Fatal(err)
	}
	if next.ID != "run-3" && next.ID != "run-4" { // run-3 may have gone to the refused run
		t.Errorf("next run on the copy is %s, want an id after run-2", next.ID)
	}
	if ev, _ := dst.Audit(ctx, ""); ev[len(ev)-1].Seq <= 3 {
		t.Errorf("new audit event got seq %d, reusing a copied one", ev[len(ev)-1].Seq)
	}

	// A target with state is refused, and keeps what it had.
	before, _ := dst.Runs(ctx, "", 0)
	_, err = runCommand(t, nil, "export", "--config", path, "--to", dsn)
	if err == nil || !strings.Contains(err.Error(), "already holds deploybot state (3 runs") {
		t.Fatalf("second export: %v, want a refusal naming what the target holds", err)
	}
	if after, _ := dst.Runs(ctx, "", 0); len(after) != len(before) {
		t.Errorf("the refused export changed the target: %d runs, had %d", len(after), len(before))
	}
}

func TestExportRefusesBadTargets(t *testing.T) {
	path, statePath := storeConfig(t, "")
	sqliteState(t, statePath)
	for _, c := range []struct{ to, want string }{
		{"postgres://bot:hunter2@127.0.0.1/x", "set DEPLOYBOT_DATABASE_PASSWORD"},
		{"mysql://bot@127.0.0.1/x", "want postgres://"},
	} {
		_, err := runCommand(t, nil, "export", "--config", path, "--to", c.to)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("export --to %s: %v, want a refusal saying %q", postgres.Redact(c.to), err, c.want)
		}
	}
	_, err := runCommand(t, nil, "export", "--config", path)
	if err == nil || !strings.Contains(err.Error(), "--to postgres://") {
		t.Errorf("export without a target: %v", err)
	}
	if _, err := runCommand(t, nil, "console", "--config", path, "--as", "U0ALICE", "--to", "postgres://h/x"); err == nil {
		t.Error("--to accepted outside export")
	}
}

// The console runs on PostgreSQL like on SQLite, and a restart continues
// from the state there.
func TestConsoleRunsOnPostgres(t *testing.T) {
	dsn := testtool.Postgres(t)
	path, statePath := storeConfig(t, dsn)
	start := func() (say func(string), out *syncBuffer, stop func()) {
		inR, inW := io.Pipe()
		out = newSyncBuffer()
		m := NewMain()
		m.Stdin, m.Stdout, m.Stderr = inR, out, testWriter{t}
		m.Getenv = func(string) string { return "" }
		if err := m.ParseArgs([]string{"console", "--config", path, "--as", "U0ALICE"}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		return func(line string) {
				if _, err := fmt.Fprintln(inW, line); err != nil {
					t.Fatal(err)
				}
			}, out, func() {
				cancel()
				inW.Close()
				<-done
				m.Close()
			}
	}
	say, out, stop := start()
	pos := waitOutput(t, out, 0, "Type /deploy help")
	say("/deploy svc " + tag)
	pos = waitOutput(t, out, pos, "Started run-1")
	pos = waitOutput(t, out, pos, "[1] ")
	say("1") // Check the dashboards: done
	waitOutput(t, out, pos, "2/2 Confirm")
	stop()

	say, out, stop = start()
	defer stop()
	pos = waitOutput(t, out, 0, "picked this run up again")
	pos = waitOutput(t, out, pos, "[1] ")
	say(":as U0BOB")
	say("1")
	waitOutput(t, out, pos, "succeeded")

	if _, err := os.Stat(statePath); err == nil {
		t.Errorf("an SQLite file was made at %s although the state is in PostgreSQL", statePath)
	}
	db, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r, err := db.Run(context.Background(), "run-1")
	if err != nil || r.State != steps.RunSucceeded {
		t.Fatalf("run-1 in PostgreSQL: %+v, %v; want succeeded", r, err)
	}
}
