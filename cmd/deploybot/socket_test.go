package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/bot/slacktest"
)

func TestReconnectsAfterDisconnectAndDroppedConnection(t *testing.T) {
	h := newHarness(t)
	h.start()
	for _, breakIt := range []struct {
		name string
		do   func()
	}{
		{"disconnect refresh_requested", func() { h.srv.Disconnect("refresh_requested") }},
		{"dropped TCP connection", h.srv.DropConnections},
	} {
		opened := h.srv.ConnectionsOpened()
		breakIt.do()
		h.srv.WaitFor(t, wait, "a new connection after "+breakIt.name, func() bool {
			return h.srv.ConnectionsOpened() > opened && h.srv.Connections() > 0
		})
		if r := h.reply(h.command(carol, random, "/deploy", "help")); !strings.Contains(r, "/deploy status") {
			t.Errorf("after %s, help answered %q", breakIt.name, r)
		}
	}
	if lat := h.srv.AckLatencies(); len(lat) < 2 {
		t.Errorf("ack latencies recorded: %v", lat)
	}
}

func TestSecondServiceWithItsOwnRunbook(t *testing.T) {
	h := newHarness(t)
	writeConfig(t, h.cfgPath, h.srv.APIURL(), `  frontend:
    steps:
      - {id: build, title: Build the frontend, instruction: "Run the frontend build workflow."}
      - {id: approve-prod, title: Approve production, instruction: "Check staging, then approve.", approval: true}
`)
	h.start()
	h.reply(h.command(alice, deploys, "/deploy", "frontend rel-2024.09.09.05.40.20"))
	msg := h.runMessage(0)
	h.waitText(msg.TS, "Deploy frontend")
	if strings.Contains(h.text(msg.TS), "Check Airflow") {
		t.Error("the frontend got the ingestion-server runbook")
	}
	h.step(msg.TS, "Build the frontend", "done", alice)
	h.step(msg.TS, "Approve production", "approve", bob)
	h.waitText(msg.TS, "succeeded")
	// Deploying the frontend did not lock the ingestion server.
	if r := h.reply(h.command(alice, deploys, "/rollback", "ingestion-server rel-2023.07.03.17.52.00")); !strings.Contains(r, "Started run-2") {
		t.Errorf("rollback answered %q", r)
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeConfig(t, good, "https://slack.com/api/", "")
	var out bytes.Buffer
	m := NewMain()
	m.Stdout, m.Stderr = &out, &out
	if err := m.ParseArgs([]string{"check-config", "--config", good}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(t.Context()); err != nil || out.String() != good+": ok (1 service)\n" {
		t.Fatalf("good config: %v %q", err, out.String())
	}
	// A credential too short to be masked is pointed out, never shown.
	out.Reset()
	m = NewMain()
	m.Stdout, m.Stderr = &out, &out
	m.Getenv = func(k string) string {
		return map[string]string{"AIRFLOW_USERNAME": "deploybot", "AIRFLOW_PASSWORD": "pw1"}[k]
	}
	if err := m.ParseArgs([]string{"check-config", "--config", good}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(t.Context()); err != nil || !strings.Contains(out.String(), "note: AIRFLOW_PASSWORD is shorter than 6 characters, too short to be masked") || strings.Contains(out.String(), "pw1") {
		t.Errorf("short password: %v %q", err, out.String())
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("slack:\n  deploy_channels: [\"#deploys\"]\n  deployerz: [U0ALICE]\nservices: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m = NewMain()
	if err := m.ParseArgs([]string{"check-config", "--config", bad}); err != nil {
		t.Fatal(err)
	}
	err := m.Run(t.Context())
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"slack.deploy_channels[0]", "slack.deployerz", "slack.approvers"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %q:\n%v", want, err)
		}
	}
}

func TestBotNeedsSlackTokensAndNeverPrintsThem(t *testing.T) {
	h := newHarness(t)
	m := NewMain()
	m.Getenv = func(k string) string {
		if k == "SLACK_BOT_TOKEN" {
			return "xoxb-secret-value-123"
		}
		return ""
	}
	if err := m.ParseArgs([]string{"--config", h.cfgPath}); err != nil {
		t.Fatal(err)
	}
	err := m.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "SLACK_APP_TOKEN") {
		t.Fatalf("err = %v, want it to name SLACK_APP_TOKEN", err)
	}
	if strings.Contains(err.Error(), "secret-value") {
		t.Errorf("the error shows a token: %v", err)
	}
}

func TestArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"console", "--config", "x.yaml"}, "--as USER_ID"},
		{[]string{}, "no configuration"},
		{[]string{"--config", "x.yaml", "extra"}, "unexpected argument"},
	} {
		m := NewMain()
		m.Getenv = func(string) string { return "" }
		if err := m.ParseArgs(c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want %q", c.args, err, c.want)
		}
	}
	m := NewMain()
	m.Getenv = func(k string) string { return map[string]string{"DEPLOYBOT_CONFIG": "from-env.yaml"}[k] }
	if err := m.ParseArgs(nil); err != nil || m.ConfigPath != "from-env.yaml" {
		t.Errorf("DEPLOYBOT_CONFIG not used: %v %q", err, m.ConfigPath)
	}
}

// Nothing delays an ack: with Slack's usergroups.users.list hanging (the
// bot needs it to know whether Dave may approve), his click and everyone
// else's commands are still acknowledged, and answered once Slack answers.
func TestAcksNeverWaitOnSlowWork(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	msg := h.runMessage(0)
	id, val := h.waitButton(msg.TS, "Check Airflow", "done")

	release := h.srv.Hold("usergroups.users.list")
	defer release()
	click := h.click(dave, msg.TS, id, val) // acked while the bot waits on Slack
	help := h.command(carol, random, "/deploy", "help")
	if r := h.reply(help); !strings.Contains(r, "/deploy status") {
		t.Errorf("help answered %q while a click waited on Slack", r)
	}
	if len(h.srv.Responses(click)) != 0 {
		t.Fatal("the click was answered before Slack told who Dave is")
	}
	release()
	h.waitButton(msg.TS, "Publish the release", "done")
	if !strings.Contains(h.text(msg.TS), "done by <@U0DAVE>") {
		t.Error("Dave's click did not count once his group was known")
	}
}

// An envelope for another app or workspace (misrouted or forged) is acked,
// ignored and logged: nothing starts and nobody is answered.
func TestEnvelopesForAnotherAppOrTeamAreIgnored(t *testing.T) {
	h := newHarness(t)
	h.start()
	for _, c := range []struct{ app, team string }{{"A0SOMEONEELSE", slacktest.DefaultTeamID}, {slacktest.DefaultAppID, "T0ELSEWHERE"}} {
		e := h.srv.SlashCommandFrom(c.app, c.team, alice, deploys, "/deploy", "ingestion-server "+tag)
		if _, err := h.srv.WaitAck(e, wait); err != nil {
			t.Fatalf("no ack: %v", err)
		}
	}
	h.srv.WaitFor(t, wait, "both envelopes to be ignored and audited", func() bool {
		n := 0
		for _, ev := range h.audit("") {
			if ev.Action == "envelope.ignored" {
				n++
			}
		}
		return n == 2
	})
	if !h.m.Bot.Flush(wait) {
		t.Fatal("outbox did not drain")
	}
	if n := len(h.srv.Messages(deploys)); n != 0 {
		t.Errorf("%d run messages, want none from foreign envelopes", n)
	}
	if runs := h.m.Engine.OpenRuns(); len(runs) != 0 {
		t.Errorf("foreign envelopes started %d runs", len(runs))
	}
}
