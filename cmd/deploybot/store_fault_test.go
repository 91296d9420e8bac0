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

// A form submitted while the store cannot record its envelope does nothing,
// and the form stops saying "working" and says so: a form has no
// response_url, so the form itself is the only place to tell the person.
func TestFormNotRecordedSaysNothingWasDone(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.srv.WaitAck(h.srv.OpenHome(alice), wait)
	h.waitHome(alice, "*Open run* none")
	h.openForm(alice, "Deploy…", "deploy")

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
	h.submit(alice, map[string]string{"service": "ingestion-server", "version": tag})
	h.modalSays(alice, "could not record this request")
	if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if runs, _ := h.store().Runs(context.Background(), "", 10); len(runs) != 0 {
		t.Fatalf("a form that could not be recorded started %d runs", len(runs))
	}
	if ms := h.srv.Messages(deploys); len(ms) != 0 {
		t.Fatalf("a form that could not be recorded posted %d messages", len(ms))
	}
}
