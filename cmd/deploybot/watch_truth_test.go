package main

import (
	"strings"
	"testing"
)

// Sentry stops answering in the middle of the watch: the thread says so
// once, and once when it answers again; the last answer checked the whole
// window (the query asks for everything since the apply), so the watch may
// say "no new issues".
func TestSentryOutageIsSaidOnceAndTheGapIsChecked(t *testing.T) {
	w := newWorld(t, all)
	w.watch = "20s"
	w.writeConfig(all)
	w.start()
	w.deployToWatch()
	// Two windows (staging, production), four requests per failed poll
	// with the client's retries: two polls fail.
	w.sn.FailNext(8, 503)
	w.waitThread("Sentry does not answer")
	w.waitThread("Sentry answers again")
	w.waitThread("Sentry watch over: no new issues in 20s")
	if n := w.countThread("Sentry does not answer"); n != 1 {
		t.Errorf("the outage was said %d times, want once", n)
	}
	if n := w.countThread("Sentry answers again"); n != 1 {
		t.Errorf("the recovery was said %d times, want once", n)
	}
}

// A watch in which Sentry never answered checked nothing: it never says
// "no new issues". It waits for Retry or for an approver to Skip, accepting
// the risk; a person without the role is refused, and the Skip is audited.
func TestSentryNeverAnsweringFailsTheWatchWithRetryAndSkip(t *testing.T) {
	w := newWorld(t, all)
	w.watch = "3s"
	w.writeConfig(all)
	w.start()
	ts := w.deploy()
	w.step(ts, "Publish the release", "publish", alice)
	w.step(ts, "Staging (dev): verify the plan", "approve", alice)
	w.sn.FailNext(1_000_000, 503)
	w.step(ts, "Production (prod): verify the plan", "approve", bob)
	w.waitThread("The Sentry watch could not check anything")
	if w.thread("no new issues") || w.thread("Sentry watch over") {
		t.Fatal("the watch claimed a result it never checked")
	}
	w.waitButton(ts, "Check Sentry", "retry")
	id, val := w.waitButton(ts, "Check Sentry", "skip")
	if r := w.reply(w.click(carol, ts, id, val)); !strings.Contains(r, "only approvers") {
		t.Errorf("carol's skip answered %q, want a refusal naming approvers", r)
	}
	w.step(ts, "Check Sentry", "skip", bob)
	w.waitText(ts, "accepted the risk")
	w.waitThread("skipped the Sentry check that could not run")
	found := false
	for _, ev := range w.audit("run-1") {
		found = found || ev.Action == "click.skip" && ev.Actor == bob && ev.StepID == "sentry"
	}
	if !found {
		t.Error("the skip is not in the audit log")
	}
}
