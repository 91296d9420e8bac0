package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/steps"
)

// leakyAirflow fails the way an outside system can leak a credential: its
// error quotes the request that carried it.
type leakyAirflow struct{ spec steps.Spec }

func (p leakyAirflow) Spec() steps.Spec { return p.spec }

// airflowPassword has every character Slack or JSON escapes.
const airflowPassword = `p&ss"w<rd>1`

func (p leakyAirflow) Start(ctx context.Context, x *steps.Exec) steps.Result {
	basic := base64.StdEncoding.EncodeToString([]byte("deploybot:" + airflowPassword))
	r := steps.Failed(fmt.Errorf("Airflow answered 401 to a request with Authorization: Bearer %s (password %s, header Basic %s)", testEnv["SLACK_BOT_TOKEN"], airflowPassword, basic))
	r.Say = "The proxy said: token " + testEnv["SLACK_BOT_TOKEN"] + " refused"
	return r
}

func (p leakyAirflow) Act(ctx context.Context, x *steps.Exec, a steps.Action) steps.Result {
	return steps.Done("")
}

// A configured secret quoted by an outside system's answer is masked
// before it is stored, posted or logged: the thread, the run's message,
// the audit log and the log lines read [redacted] instead.
func TestSecretsQuotedByAnOutsideSystemAreMasked(t *testing.T) {
	h := newHarness(t)
	h.env["AIRFLOW_USERNAME"], h.env["AIRFLOW_PASSWORD"] = "deploybot", airflowPassword
	logs := newSyncBuffer()
	startCustomized(h, func(m *Main) {
		m.Stderr = logs
		m.Customize = func(rb *steps.Runbooks) {
			rb.Automate("airflow", func(spec steps.Spec, _ *config.Service, _ *steps.Manual) steps.Step {
				return leakyAirflow{spec: spec}
			})
		}
	})
	if r := h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag)); !strings.Contains(r, "Started run-1") {
		t.Fatalf("deploy answered %q", r)
	}
	msg := h.runMessage(0)
	h.waitText(msg.TS, "Airflow answered 401 to a request with Authorization: Bearer [redacted] (password [redacted], header Basic [redacted])")
	h.waitButton(msg.TS, "Check Airflow", "retry")
	h.srv.WaitFor(t, wait, "the step's line in the thread", func() bool {
		for _, m := range h.srv.Thread(deploys, msg.TS) {
			if strings.Contains(string(m.Blocks)+m.Text, "The proxy said: token [redacted] refused") {
				return true
			}
		}
		return false
	})
	// What would give a secret away, in any form a reader could decode:
	// Slack shows &amp; as &, a JSON reader unquotes \u0026.
	leaks := func(s string) bool {
		s = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", `\u0026`, "&", `\u003c`, "<", `\u003e`, ">", `\"`, `"`).Replace(s)
		return strings.Contains(s, testEnv["SLACK_BOT_TOKEN"]) || strings.Contains(s, airflowPassword) || strings.Contains(s, "ss\"w<rd") ||
			strings.Contains(s, base64.StdEncoding.EncodeToString([]byte("deploybot:"+airflowPassword)))
	}
	for _, m := range append(h.srv.Thread(deploys, msg.TS), h.message(msg.TS)) {
		if leaks(string(m.Blocks) + m.Text) {
			t.Errorf("a message in Slack carries a secret: %s %s", m.Text, m.Blocks)
		}
	}
	failed := false
	for _, ev := range h.audit("run-1") {
		if leaks(ev.Detail) {
			t.Errorf("the audit log carries a secret: %+v", ev)
		}
		failed = failed || ev.Action == "step.failed" && strings.Contains(ev.Detail, "[redacted]")
	}
	if !failed {
		t.Errorf("no step.failed event with the masked error in the audit log: %+v", h.audit("run-1"))
	}
	h.stop()
	if out := logs.String(); leaks(out) {
		t.Errorf("the log carries a secret:\n%s", out)
	}
}
