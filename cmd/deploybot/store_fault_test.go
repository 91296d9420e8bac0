package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// Another process holds the database's write lock (an operator in the
// sqlite3 shell, a backup): a click waits for it up to the busy timeout,
// then is answered plainly and changes nothing; clicked again once the
// lock is gone, it works and the run goes on.
func TestBusyDatabaseAnswersAndChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	msg := h.runMessage(0)
	h.step(msg.TS, runbook[0].title, runbook[0].verb, runbook[0].user)

	other, err := sql.Open("sqlite", filepath.Join(h.dir, "state.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	id, val := h.waitButton(msg.TS, runbook[1].title, runbook[1].verb)
	r := h.reply(h.click(alice, msg.TS, id, val))
	if !strings.Contains(r, "could not") || !strings.Contains(r, "locked") || !strings.Contains(r, "try again") {
		t.Errorf("click on a busy database answered %q", r)
	}
	if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := h.button(msg.TS, runbook[1].verb); got != id {
		t.Fatalf("the refused click changed the step's button")
	}
	for _, s := range runbook[1:] {
		h.step(msg.TS, s.title, s.verb, s.user)
	}
	h.waitText(msg.TS, "succeeded")
	clicks := 0
	for _, ev := range h.audit("run-1") {
		if ev.Action == "click.done" && ev.StepID == "release" {
			clicks++
		}
	}
	if clicks != 1 {
		t.Errorf("the release step was clicked %d times in the audit log, want once", clicks)
	}
	h.assertNoRejections()
}
