package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack/socketmode"

	"github.com/deploybot/deploybot/bot/slacktest"
	"github.com/deploybot/deploybot/integrations/sqlite"
	"github.com/deploybot/deploybot/steps"
)

// Test users: Alice deploys and approves, Bob approves, Carol has no role,
// Dave approves through the S0APPROVERS user group.
const (
	alice   = "U0ALICE"
	bob     = "U0BOB"
	carol   = "U0CAROL"
	dave    = "U0DAVE"
	deploys = "C0DEPLOYS"
	random  = "C0RANDOM"
	alerts  = "C0ALERTS"
	tag     = "rel-2024.09.09.05.40.20"
	wait    = 90 * time.Second
)

var testEnv = map[string]string{
	"SLACK_BOT_TOKEN": "xoxb-test-bot-token",
	"SLACK_APP_TOKEN": "xapp-test-app-token",
}

// harness runs the real bot (Main) against the Slack test server.
type harness struct {
	t       testing.TB
	srv     *slacktest.Server
	dir     string
	cfgPath string
	m       *Main
	cancel  context.CancelFunc
	done    chan error
	env     map[string]string
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	// Triggers live longer than Slack's 3 s: this machine is shared and
	// slow, and a form opening late is not what these tests are about
	// (TestFormExpiredTrigger expires them on purpose).
	srv := slacktest.NewServer(slacktest.Options{BotToken: testEnv["SLACK_BOT_TOKEN"], AppToken: testEnv["SLACK_APP_TOKEN"], PingInterval: 200 * time.Millisecond,
		TriggerTTL: wait})
	t.Cleanup(srv.Close)
	srv.AddChannel(deploys, "deploys")
	srv.AddChannel(random, "random")
	srv.AddChannel(alerts, "openverse-alerts")
	for _, u := range []string{alice, bob, carol, dave} {
		srv.AddUser(u, strings.ToLower(u[2:]))
	}
	srv.AddUserGroup("S0APPROVERS", dave)
	h := &harness{t: t, srv: srv, dir: t.TempDir(), env: map[string]string{}}
	for k, v := range testEnv {
		h.env[k] = v
	}
	h.cfgPath = filepath.Join(h.dir, "deploybot.yaml")
	writeConfig(t, h.cfgPath, srv.APIURL(), "")
	return h
}

// baseConfig is what every test config starts with; %s is the Slack API
// URL of the test server.
const baseConfig = `state_path: ./state.db
http_addr: 127.0.0.1:0
log: {level: warn, format: console}
slack:
  api_url: %s
  deploy_channels: [C0DEPLOYS]
  alerts_channel: C0ALERTS
  team_group: S0MAINTAINERS
  deployers: [U0ALICE]
  approvers: [U0ALICE, U0BOB, S0APPROVERS]
`

func writeConfig(t testing.TB, path, apiURL, extra string) {
	t.Helper()
	cfg := fmt.Sprintf(baseConfig+`services:
  ingestion-server:
    release_tag_prefix: ingestion_server-
    image_tag_prefix: rel-
    environments:
      - {name: dev, dir: environments/dev, file: environments/dev/ingestion-server.tf, module: ingestion-server, version_attribute: image_tag, target: module.ingestion-server}
      - {name: prod, dir: environments/prod, file: environments/prod/ingestion-server.tf, module: ingestion-server, version_attribute: image_tag, target: module.ingestion-server, clear_flag: data_refresh_cleared, four_eyes: true}
    rollback: {workflow: deploy-production-ingestion-server.yml, ref: main}
%s`, apiURL, extra)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs the bot in-process and waits for its Socket Mode connection.
func (h *harness) start() {
	h.t.Helper()
	m := NewMain()
	m.Stdout, m.Stderr = testWriter{h.t}, testWriter{h.t}
	m.Getenv = func(k string) string { return h.env[k] }
	if err := m.ParseArgs([]string{"--config", h.cfgPath}); err != nil {
		h.t.Fatal(err)
	}
	m.SocketOptions = []socketmode.Option{socketmode.OptionPingInterval(2 * time.Second)}
	before := h.srv.ConnectionsOpened()
	ctx, cancel := context.WithCancel(context.Background())
	h.m, h.cancel, h.done = m, cancel, make(chan error, 1)
	go func() { h.done <- m.Run(ctx) }()
	h.srv.WaitFor(h.t, wait, "the bot to connect", func() bool { return h.srv.ConnectionsOpened() > before && h.srv.Connections() > 0 })
	h.t.Cleanup(h.stop)
}

// stop ends the bot like a shutdown; the state stays on disk.
func (h *harness) stop() {
	if h.m == nil {
		return
	}
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("bot stopped with %v", err)
		}
	case <-time.After(wait):
		h.t.Errorf("bot did not stop")
	}
	if err := h.m.Close(); err != nil {
		h.t.Errorf("close: %v", err)
	}
	h.m = nil
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// command sends a slash command, waits for its ack and returns the envelope.
func (h *harness) command(user, channel, cmd, text string) *slacktest.Envelope {
	h.t.Helper()
	e := h.srv.SlashCommand(user, channel, cmd, text)
	if _, err := h.srv.WaitAck(e, wait); err != nil {
		h.t.Fatalf("%s %s: no ack: %v", cmd, text, err)
	}
	return e
}

// reply waits for the bot's ephemeral answer to an envelope.
func (h *harness) reply(e *slacktest.Envelope) string {
	h.t.Helper()
	var text string
	h.srv.WaitFor(h.t, wait, "an ephemeral reply", func() bool {
		rs := h.srv.Responses(e)
		if len(rs) == 0 {
			return false
		}
		text = rs[len(rs)-1].Text + " " + string(rs[len(rs)-1].Blocks)
		return true
	})
	return text
}

// runMessage waits for the run's parent message (the n-th top-level message
// in the deploy channel) and returns it.
func (h *harness) runMessage(n int) slacktest.Message {
	h.t.Helper()
	var m slacktest.Message
	h.srv.WaitFor(h.t, wait, "the run's message", func() bool {
		ms := h.srv.Messages(deploys)
		if len(ms) <= n {
			return false
		}
		m = ms[n]
		return true
	})
	return m
}

func (h *harness) message(ts string) slacktest.Message {
	m, ok := h.srv.Message(deploys, ts)
	if !ok {
		h.t.Fatalf("message %s is gone", ts)
	}
	return m
}

type block struct {
	Type    string `json:"type"`
	BlockID string `json:"block_id"`
	Text    *struct {
		Text string `json:"text"`
	} `json:"text"`
	Elements []element `json:"elements"`
}

// element is a button (text is an object) or a context text object (text
// is a string).
type element struct {
	ActionID string          `json:"action_id"`
	Value    string          `json:"value"`
	Type     string          `json:"type"`
	Style    string          `json:"style"`
	RawText  json.RawMessage `json:"text"`
}

func (e element) text() string {
	var s string
	if json.Unmarshal(e.RawText, &s) == nil {
		return s
	}
	var o struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(e.RawText, &o)
	return o.Text
}

func blocksOf(t testing.TB, m slacktest.Message) []block {
	var bs []block
	if err := json.Unmarshal(m.Blocks, &bs); err != nil {
		t.Fatalf("blocks of %s: %v", m.TS, err)
	}
	return bs
}

// text is everything a person reads in the message.
func (h *harness) text(ts string) string {
	m := h.message(ts)
	var parts []string
	for _, b := range blocksOf(h.t, m) {
		if b.Text != nil {
			parts = append(parts, b.Text.Text)
		}
		for _, e := range b.Elements {
			if e.Type != "button" && e.text() != "" {
				parts = append(parts, e.text())
			}
		}
	}
	return strings.Join(parts, "\n")
}

// button finds the button with this verb in the message, if any.
func (h *harness) button(ts, verb string) (actionID, value string, ok bool) {
	for _, b := range blocksOf(h.t, h.message(ts)) {
		for _, e := range b.Elements {
			if e.Type == "button" && strings.HasPrefix(e.ActionID, verb+":") {
				return e.ActionID, e.Value, true
			}
		}
	}
	return "", "", false
}

// waitFor waits until the run message's text contains want.
func (h *harness) waitText(ts, want string) {
	h.t.Helper()
	h.srv.WaitFor(h.t, wait, fmt.Sprintf("message to say %q", want), func() bool {
		return strings.Contains(h.text(ts), want)
	})
}

// waitButton waits until the message offers a button with this verb on the
// step with this title, and returns it.
func (h *harness) waitButton(ts, stepTitle, verb string) (string, string) {
	h.t.Helper()
	var id, val string
	h.srv.WaitFor(h.t, wait, fmt.Sprintf("a %q button on %q", verb, stepTitle), func() bool {
		if !strings.Contains(h.text(ts), stepTitle+"*\n") {
			return false
		}
		var ok bool
		id, val, ok = h.button(ts, verb)
		return ok
	})
	return id, val
}

// click presses a button and waits for the ack. A button that asks for a
// reason first (Reject, Incident, and the danger Confirm and Skip) opens a
// form unless the click is refused: the reason is given as a person would.
func (h *harness) click(user, ts, actionID, value string) *slacktest.Envelope {
	h.t.Helper()
	before, _ := h.srv.Modal(user)
	asks := h.asksReason(ts, actionID, value)
	e := h.srv.Click(user, deploys, ts, actionID, value)
	if _, err := h.srv.WaitAck(e, wait); err != nil {
		h.t.Fatalf("click %s: no ack: %v", actionID, err)
	}
	if !asks {
		return e
	}
	var form slacktest.View
	h.srv.WaitFor(h.t, wait, "the reason form or a refusal", func() bool {
		if len(h.srv.Responses(e)) > 0 {
			return true
		}
		var ok bool
		form, ok = h.srv.Modal(user)
		return ok && form.ID != before.ID && form.CallbackID == "reason"
	})
	if form.ID != "" && form.ID != before.ID {
		h.submit(user, map[string]string{"reason": "reason given by " + user})
	}
	return e
}

// submit sends the user's open form and returns the ack's payload.
func (h *harness) submit(user string, inputs map[string]string) json.RawMessage {
	h.t.Helper()
	e := h.srv.Submit(user, inputs)
	p, err := h.srv.WaitAck(e, wait)
	if err != nil {
		h.t.Fatalf("submitting %v: %v", inputs, err)
	}
	return p
}

// asksReason reports whether the button shown in the message asks for a
// reason before it acts.
func (h *harness) asksReason(ts, actionID, value string) bool {
	for _, b := range blocksOf(h.t, h.message(ts)) {
		for _, e := range b.Elements {
			if e.Type != "button" || value != "" && e.Value != value || e.ActionID != actionID && !strings.HasPrefix(e.ActionID, actionID+":") {
				continue
			}
			verb, _, _ := strings.Cut(e.ActionID, ":")
			switch verb {
			case "reject", "incident":
				return true
			case "confirm", "skip":
				return e.Style == "danger"
			}
			return false
		}
	}
	return false
}

// step clicks verb on the step titled title, as user, and waits until the
// step is no longer waiting on that button.
func (h *harness) step(ts, title, verb, user string) {
	h.t.Helper()
	id, val := h.waitButton(ts, title, verb)
	h.click(user, ts, id, val)
	h.srv.WaitFor(h.t, wait, fmt.Sprintf("%q to move on after %s", title, verb), func() bool {
		_, v, ok := h.button(ts, verb)
		return !ok || v != val
	})
}

// store opens the bot's database (read-only use while the bot is stopped or
// running: SQLite allows concurrent readers).
func (h *harness) store() *sqlite.DB {
	h.t.Helper()
	db, err := sqlite.Open(filepath.Join(h.dir, "state.db"))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { db.Close() })
	return db
}

func (h *harness) audit(runID string) []steps.AuditEvent {
	h.t.Helper()
	evs, err := h.store().Audit(context.Background(), runID)
	if err != nil {
		h.t.Fatal(err)
	}
	return evs
}

func (h *harness) assertNoRejections() {
	h.t.Helper()
	if r := h.srv.Rejected(); len(r) > 0 {
		h.t.Errorf("Slack rejected calls: %+v", r)
	}
}
