package main

import (
	"strings"
	"testing"
)

// Slack misbehaves all through a run: 429 with Retry-After on
// chat.postMessage, chat.update and both upload calls, a 503, a link cut in
// the middle of an envelope, and a disconnect (refresh_requested). Every
// request that is safe to repeat is repeated after the wait Slack asks for;
// the thread catches up; the run finishes with every message, file and
// click exactly once.
func TestSlackFaultsAreRetriedAndNothingDoubles(t *testing.T) {
	w := largePlanWorld(t)
	h := w.harness
	h.start()

	h.srv.FailNext("chat.postMessage", 2, 429)
	h.srv.FailNext("chat.update", 2, 429)
	h.srv.FailNext("files.getUploadURLExternal", 1, 429)
	h.srv.FailNext("files.completeUploadExternal", 1, 429)
	h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	msg := h.runMessage(0)
	for i, s := range infraRunbook {
		switch i {
		case 1:
			h.srv.FailNext("chat.postMessage", 1, 503)
		case 2:
			// The click's envelope is cut off mid-frame: Slack redelivers
			// it on the next connection.
			h.srv.DropMidEnvelope(1)
		case 4:
			h.srv.Disconnect("refresh_requested")
		case 5:
			h.srv.FailNext("chat.update", 1, 500)
		}
		h.step(msg.TS, s.title, s.verb, s.user)
	}
	h.waitText(msg.TS, "succeeded")
	if !h.m.Bot.Flush(wait) {
		t.Fatal("the outbox did not drain")
	}

	if h.srv.CutOff() != 1 {
		t.Errorf("%d envelopes cut off, want 1", h.srv.CutOff())
	}
	statuses := map[string]int{}
	for _, f := range h.srv.Faults() {
		statuses[f.Method]++
	}
	for _, m := range []string{"chat.postMessage", "chat.update", "files.getUploadURLExternal", "files.completeUploadExternal"} {
		if statuses[m] == 0 {
			t.Errorf("no fault was injected into %s", m)
		}
	}
	if n := len(h.srv.Files()); n != 2 {
		t.Errorf("%d plan files in the thread, want one per environment", n)
	}
	h.assertEachMessageOnce(msg.TS)
	assertEachClickOnce(t, h.srv, msg.TS, infraRunbook)
	clicks := 0
	for _, ev := range h.audit("run-1") {
		if strings.HasPrefix(ev.Action, "click.") {
			clicks++
		}
	}
	if clicks != len(infraRunbook) {
		t.Errorf("%d clicks in the audit log, want %d (a redelivered envelope acted twice?)", clicks, len(infraRunbook))
	}
	// Rendering caught up: the run's message shows the end.
	if !strings.Contains(h.text(msg.TS), "succeeded") {
		t.Error("the run message never caught up")
	}
	h.assertNoRejections()
}
