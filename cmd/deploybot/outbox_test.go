package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/deploybot/deploybot/bot/slacktest"
)

// outboxKeys counts deploybot's messages by the idempotency key they carry
// (Slack message metadata), in the deploy channel and the run's thread.
func outboxKeys(t testing.TB, srv *slacktest.Server, parentTS string) (keys map[string]int, unkeyed []string) {
	t.Helper()
	keys = map[string]int{}
	msgs := append(srv.Messages(deploys), srv.Thread(deploys, parentTS)...)
	for _, m := range msgs {
		if m.User != srv.BotUserID() || len(m.Files) > 0 && m.TS != parentTS {
			// Files are shared without metadata; they are counted by name.
			continue
		}
		var md struct {
			EventType    string         `json:"event_type"`
			EventPayload map[string]any `json:"event_payload"`
		}
		if m.Metadata == nil || json.Unmarshal(m.Metadata, &md) != nil || md.EventType != "deploybot_outbox" {
			unkeyed = append(unkeyed, m.Text)
			continue
		}
		keys[md.EventPayload["key"].(string)]++
	}
	return keys, unkeyed
}

// assertEachMessageOnce: every message the store records as delivered to
// the deploy channel is in Slack (nothing lost), and none is there twice.
func (h *harness) assertEachMessageOnce(parentTS string) int {
	t := h.t
	t.Helper()
	keys, unkeyed := outboxKeys(t, h.srv, parentTS)
	for k, n := range keys {
		if n != 1 {
			t.Errorf("message %s is in Slack %d times, want once", k, n)
		}
	}
	for _, u := range unkeyed {
		t.Errorf("a message without its outbox key: %q", u)
	}
	if n := len(h.srv.Messages(deploys)); n != 1 {
		t.Errorf("%d run messages in the channel, want 1", n)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(h.dir, "state.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT run_id, id FROM outbox WHERE kind IN ('parent', 'say') AND delivered_at != '' AND failure = ''`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var run string
		var id int64
		if err := rows.Scan(&run, &id); err != nil {
			t.Fatal(err)
		}
		if key := fmt.Sprintf("%s/%d", run, id); keys[key] == 0 {
			t.Errorf("message %s is recorded as delivered but is not in Slack", key)
		}
	}
	return len(keys)
}

// Slack performs a post but its answer never arrives (a 504 from a proxy, a
// dropped connection): deploybot looks for the message by its key before
// sending again, so nothing is doubled, and nothing is lost.
func TestLostSlackAnswersNeverDoubleAMessage(t *testing.T) {
	h := newHarness(t)
	h.start()

	h.srv.LoseResponses("chat.postMessage", 1, slacktest.Answer504) // the run's parent message
	h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	msg := h.runMessage(0)
	for i, s := range runbook {
		switch i % 3 {
		case 0:
			h.srv.LoseResponses("chat.postMessage", 1, slacktest.Answer504)
		case 1:
			h.srv.LoseResponses("chat.postMessage", 1, slacktest.DropConnection)
		}
		h.step(msg.TS, s.title, s.verb, s.user)
	}
	h.waitText(msg.TS, "succeeded")
	if !h.m.Bot.Flush(wait) {
		t.Fatal("the outbox did not drain")
	}
	lost := 0
	for _, f := range h.srv.Faults() {
		if f.Performed {
			lost++
		}
	}
	if lost < len(runbook)/2 {
		t.Fatalf("only %d answers were lost; the test did not exercise the outbox", lost)
	}
	n := h.assertEachMessageOnce(msg.TS)
	assertEachClickOnce(t, h.srv, msg.TS, runbook)
	t.Logf("%d answers lost, %d messages each delivered once", lost, n)
	h.assertNoRejections()
}

// A crash after a transition commits and before its messages reach Slack
// loses none of them; a crash after Slack took a message and before
// deploybot recorded it doubles none.
func TestCrashNeitherLosesNorDoublesAMessage(t *testing.T) {
	bin := buildBot(t)
	h := newHarness(t)
	p := h.process(bin)
	h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	msg := h.runMessage(0)
	h.step(msg.TS, runbook[0].title, runbook[0].verb, runbook[0].user)

	// 1. Slack is slow: the click's transition commits, its thread lines
	// are still owed when the process dies.
	release := h.srv.Hold("chat.postMessage")
	id, val := h.waitButton(msg.TS, runbook[1].title, runbook[1].verb)
	before := h.srv.Calls("chat.postMessage")
	h.click(alice, msg.TS, id, val)
	h.srv.WaitFor(t, wait, "a thread post to be held", func() bool { return h.srv.Calls("chat.postMessage") > before })
	db := h.store()
	h.srv.WaitFor(t, wait, "the click to commit", func() bool {
		r, err := db.Run(t.Context(), "run-1")
		return err == nil && r.Steps[1].Status == "done"
	})
	_ = p.Process.Signal(syscall.SIGKILL)
	_ = p.Wait()
	release()
	h.srv.WaitFor(t, wait, "the connection to drop", func() bool { return h.srv.Connections() == 0 })

	// 2. Slack takes the next message but its answer is lost, and the
	// process dies before it could look.
	h.srv.LoseResponses("chat.postMessage", 1, slacktest.DropConnection)
	faults := len(h.srv.Faults())
	p = h.process(bin)
	h.srv.WaitFor(t, wait, "Slack to take a message whose answer is lost", func() bool { return len(h.srv.Faults()) > faults })
	_ = p.Process.Signal(syscall.SIGKILL)
	_ = p.Wait()
	h.srv.WaitFor(t, wait, "the connection to drop", func() bool { return h.srv.Connections() == 0 })

	h.process(bin)
	h.srv.WaitFor(t, wait, "the click on the release to be in the thread", func() bool {
		for _, m := range h.srv.Thread(deploys, msg.TS) {
			if strings.Contains(m.Text, "clicked *Done* on “"+runbook[1].title+"”") {
				return true
			}
		}
		return false
	})
	for _, s := range runbook[2:] {
		h.step(msg.TS, s.title, s.verb, s.user)
	}
	h.waitText(msg.TS, "succeeded")
	h.srv.WaitFor(t, wait, "the outbox to drain", func() bool {
		owed, err := db.PendingOutbox(t.Context(), "")
		return err == nil && len(owed) == 0
	})
	n := h.assertEachMessageOnce(msg.TS)
	t.Logf("%d messages, each delivered once across two crashes", n)
	h.assertNoRejections()
}

// assertEachClickOnce: every click of the runbook is in the thread exactly
// once.
func assertEachClickOnce(t *testing.T, srv *slacktest.Server, parentTS string, clicked []struct{ title, verb, user string }) {
	t.Helper()
	thread := srv.Thread(deploys, parentTS)
	for _, s := range clicked {
		c := 0
		for _, m := range thread {
			if strings.Contains(m.Text, "“"+s.title+"”") && strings.Contains(m.Text, "clicked") {
				c++
			}
		}
		if c != 1 {
			t.Errorf("the click on %q is in the thread %d times, want once", s.title, c)
		}
	}
}
