package main

import (
	"encoding/json"
	"fmt"
	"sort"
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
	// An issue first seen while Sentry did not answer is found once it
	// does: the gap is checked.
	w.sn.AddIssue("ingestion-server", "production", sentryIssue("9301", "ValueError during the outage", "error", 2, 1))
	w.waitThread("Sentry answers again")
	w.waitThread("ValueError during the outage")
	w.waitThread("Sentry watch over: 1 new issue in 20s")
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
	w.waitThread("Reason: reason given by " + bob) // from the form Skip opened
	found := false
	for _, ev := range w.audit("run-1") {
		found = found || ev.Action == "click.skip" && ev.Actor == bob && ev.StepID == "sentry"
	}
	if !found {
		t.Error("the skip is not in the audit log")
	}
}

// sentryBlocksAlert is an issue alert as current Sentry installs post it:
// the content in blocks, the link to <org>.sentry.io, the short id and the
// project in a context element.
func sentryBlocksAlert(org, id, short, title string) json.RawMessage {
	b, _ := json.Marshal([]any{
		map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn",
			"text": fmt.Sprintf("*<https://%s.sentry.io/issues/%s/?referrer=slack&alert_rule_id=7|%s>*", org, id, title)}},
		map[string]any{"type": "context", "elements": []any{map[string]any{"type": "mrkdwn", "text": short + " | ingestion-server | State: New"}}},
		map[string]any{"type": "actions", "elements": []any{map[string]any{"type": "button", "action_id": "resolve_dialog",
			"text": map[string]any{"type": "plain_text", "text": "Resolve"}}}},
	})
	return b
}

// sentryAttachmentAlert is the older shape: a legacy attachment with
// title, title_link to sentry.io/organizations/<org>/issues/<id>/, footer.
func sentryAttachmentAlert(org, id, project, title string) json.RawMessage {
	b, _ := json.Marshal([]any{map[string]any{"title": title, "title_link": fmt.Sprintf("https://sentry.io/organizations/%s/issues/%s/?referrer=slack", org, id),
		"text": "ingestion_server.api in refresh", "footer": project, "color": "#E03E2F", "fallback": "[" + project + "] " + title}})
	return b
}

// Alerts are read in both shapes Sentry posts; each issue is linked into
// the watching run's thread once, with Roll back and Declare incident; an
// issue the watch already posted, an alert about another project, and a
// person's message with the same link are not.
func TestSentryAlertsInBothShapesAreLinkedOnce(t *testing.T) {
	w := newWorld(t, all)
	w.watch = "20s"
	w.writeConfig(all)
	w.start()
	ts := w.deployToWatch()
	org := w.sn.Org()
	w.sn.AddIssue("ingestion-server", "production", sentryIssue("9001", "KeyError in refresh", "error", 3, 1))
	w.waitThread("New issue in production")

	w.srv.PostBotMessage(alerts, sentryBotID, "Sentry", "KeyError in refresh", sentryBlocksAlert(org, "9001", "INGESTION-SERVER-4F", "KeyError in refresh"), nil)
	w.srv.PostBotMessage(alerts, sentryBotID, "Sentry", "[openverse-api] TypeError", sentryAttachmentAlert(org, "9005", "openverse-api", "TypeError"), nil)
	w.srv.PostUserMessage(carol, alerts, fmt.Sprintf("look: https://%s.sentry.io/issues/9004/ INGESTION-SERVER-4H ingestion-server", org), "")
	w.srv.PostBotMessage(alerts, sentryBotID, "Sentry", "IndexError", sentryBlocksAlert("someone-else", "9006", "INGESTION-SERVER-4J", "IndexError"), nil)
	w.srv.PostBotMessage(alerts, sentryBotID, "Sentry", "IndexError in reindex", sentryBlocksAlert(org, "9002", "INGESTION-SERVER-4G", "IndexError in reindex"), nil)
	w.srv.PostBotMessage(alerts, sentryBotID, "Sentry", "IndexError in reindex", sentryBlocksAlert(org, "9002", "INGESTION-SERVER-4G", "IndexError in reindex"), nil)
	w.srv.PostBotMessage(alerts, sentryBotID, "Sentry", "[ingestion-server] OSError", sentryAttachmentAlert(org, "9003", "ingestion-server", "OSError <!channel>"), nil)
	w.waitThread("INGESTION-SERVER-4G")
	w.waitThread("OSError")
	w.waitThread("Sentry watch over")

	var linked []string
	for _, ev := range w.audit("run-1") {
		if ev.Action == "alert.linked" {
			linked = append(linked, ev.Detail)
		}
	}
	sort.Strings(linked) // alerts are handled concurrently
	if strings.Join(linked, ",") != "sentry issue 9002,sentry issue 9003" {
		t.Errorf("alerts linked: %v, want 9002 and 9003 once each", linked)
	}
	if n := w.countThread("INGESTION-SERVER-4G"); n != 1 {
		t.Errorf("issue 9002 linked %d times", n)
	}
	if w.thread("<!channel>") {
		t.Error("alert text reached the thread unescaped")
	}
	for _, m := range w.srv.Thread(deploys, ts) {
		if strings.Contains(m.Text, "INGESTION-SERVER-4G") {
			b := string(m.Blocks)
			if !strings.Contains(b, "rollback:run-1:-1") || !strings.Contains(b, "incident:run-1:-1") || !strings.Contains(m.Text, "|an alert> in <#C0ALERTS>") {
				t.Errorf("linked alert lacks its permalink or buttons: %s %s", m.Text, b)
			}
		}
	}
}
