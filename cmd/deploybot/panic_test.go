package main

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/slack-go/slack/socketmode"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/steps"
)

// panickyAirflow stands in for the Airflow check with a bug: it panics
// while armed, and passes once the bug is "fixed" (disarmed).
type panickyAirflow struct {
	spec  steps.Spec
	armed *atomic.Bool
}

func (p panickyAirflow) Spec() steps.Spec { return p.spec }

func (p panickyAirflow) Start(ctx context.Context, x *steps.Exec) steps.Result {
	if p.armed.Load() {
		airflowCheckWithABug()
	}
	return steps.Done("no data refresh running")
}

func (p panickyAirflow) Act(ctx context.Context, x *steps.Exec, a steps.Action) steps.Result {
	return steps.Done("")
}

func airflowCheckWithABug() {
	var dags map[string]bool
	dags["image_data_refresh"] = true // assignment to entry in nil map
}

// handlerWithABug panics with a value quoting a token, as an error quoting a
// request might: Sentry must get it redacted.
func handlerWithABug() { panic("handler bug near " + testEnv["SLACK_BOT_TOKEN"]) }

// startCustomized is harness.start with a chance to set Main's test seams
// before Run.
func startCustomized(h *harness, customize func(*Main)) {
	h.t.Helper()
	m := NewMain()
	m.Stdout, m.Stderr = testWriter{h.t}, testWriter{h.t}
	m.Getenv = func(k string) string { return h.env[k] }
	if err := m.ParseArgs([]string{"--config", h.cfgPath}); err != nil {
		h.t.Fatal(err)
	}
	m.SocketOptions = []socketmode.Option{socketmode.OptionPingInterval(2 * time.Second)}
	customize(m)
	before := h.srv.ConnectionsOpened()
	ctx, cancel := context.WithCancel(context.Background())
	h.m, h.cancel, h.done = m, cancel, make(chan error, 1)
	go func() { h.done <- m.Run(ctx) }()
	h.srv.WaitFor(h.t, wait, "the bot to connect", func() bool { return h.srv.ConnectionsOpened() > before && h.srv.Connections() > 0 })
	h.t.Cleanup(h.stop)
}

// findEvent returns the first Sentry event whose message is msg.
func findEvent(mock *sentry.MockTransport, msg string) *sentry.Event {
	for _, ev := range mock.Events() {
		if ev.Message == msg {
			return ev
		}
	}
	return nil
}

// hasFrame reports whether the event's exception stack trace holds the
// function fn (a suffix of the frame's function name).
func hasFrame(ev *sentry.Event, fn string) bool {
	for _, x := range ev.Exception {
		if x.Stacktrace == nil {
			continue
		}
		for _, f := range x.Stacktrace.Frames {
			if strings.HasSuffix(f.Function, fn) {
				return true
			}
		}
	}
	return false
}

// A panic in a step and a panic in a Socket Mode handler: the bot lives on
// and answers later commands; the user whose command panicked hears so
// privately; the step fails with "internal error, reported" and a Retry
// that works once the bug is gone; Sentry gets both panics with the
// panicking goroutine's stack, the step's tagged with run_id, service and
// step, and never a token.
func TestPanicsAreReportedAndTheBotLivesOn(t *testing.T) {
	h := newHarness(t)
	mock := &sentry.MockTransport{}
	h.env["SENTRY_DSN"] = "https://public@sentry.example.com/1"
	stepArmed, handlerArmed := &atomic.Bool{}, &atomic.Bool{}
	stepArmed.Store(true)
	startCustomized(h, func(m *Main) {
		m.SentryTransport = mock
		m.Customize = func(rb *steps.Runbooks) {
			rb.Automate("airflow", func(spec steps.Spec, _ *config.Service, _ *steps.Manual) steps.Step {
				return panickyAirflow{spec: spec, armed: stepArmed}
			})
		}
		m.BeforeHandle = func(kind string) {
			if kind == "slash_commands" && handlerArmed.CompareAndSwap(true, false) {
				handlerWithABug()
			}
		}
	})

	// The step panics: it fails, reported, with Retry.
	if r := h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag)); !strings.Contains(r, "Started run-1") {
		t.Fatalf("deploy answered %q", r)
	}
	msg := h.runMessage(0)
	h.waitText(msg.TS, "internal error, reported")
	retryID, retryVal := h.waitButton(msg.TS, "Check Airflow", "retry")

	// A handler panics: the envelope was acked (command waits for the
	// ack), and the user hears that something went wrong.
	handlerArmed.Store(true)
	if r := h.reply(h.command(carol, random, "/deploy", "help")); !strings.Contains(r, "Something went wrong") {
		t.Errorf("the panicking command answered %q", r)
	}
	// The bot lives on: a later command is answered.
	if r := h.reply(h.command(carol, random, "/deploy", "help")); !strings.Contains(r, "/deploy status") {
		t.Errorf("after the handler panic, help answered %q", r)
	}

	// The bug is fixed: Retry runs the step again and the run goes on.
	stepArmed.Store(false)
	h.click(alice, msg.TS, retryID, retryVal)
	h.waitButton(msg.TS, "Publish the release", "done")
	if strings.Contains(h.text(msg.TS), "internal error") {
		t.Errorf("the retried step still shows the failure:\n%s", h.text(msg.TS))
	}

	var stepEv, handlerEv *sentry.Event
	h.srv.WaitFor(t, wait, "both panics in Sentry", func() bool {
		stepEv, handlerEv = findEvent(mock, "step panicked"), findEvent(mock, "socket handler panicked")
		return stepEv != nil && handlerEv != nil
	})
	for k, want := range map[string]string{"run_id": "run-1", "service": "ingestion-server", "step": "airflow"} {
		if stepEv.Tags[k] != want {
			t.Errorf("step panic tag %s = %q, want %q", k, stepEv.Tags[k], want)
		}
	}
	if !hasFrame(stepEv, "airflowCheckWithABug") || !hasFrame(stepEv, "panickyAirflow.Start") {
		t.Errorf("step panic's stack lacks the panicking functions: %+v", stepEv.Exception)
	}
	if !hasFrame(handlerEv, "handlerWithABug") {
		t.Errorf("handler panic's stack lacks the panicking function: %+v", handlerEv.Exception)
	}
	if !strings.Contains(eventText(handlerEv), "handler bug near [redacted]") {
		t.Errorf("handler panic's value not redacted as expected: %s", eventText(handlerEv))
	}
	if handlerEv.Tags["user"] != carol || handlerEv.Tags["kind"] != "slash_commands" {
		t.Errorf("handler panic tags: %v", handlerEv.Tags)
	}
	if len(stepEv.Fingerprint) != 1 || stepEv.Fingerprint[0] != "step panicked" {
		t.Errorf("step panic fingerprint %v", stepEv.Fingerprint)
	}
	for _, ev := range mock.Events() {
		for _, secret := range []string{testEnv["SLACK_BOT_TOKEN"], testEnv["SLACK_APP_TOKEN"], h.env["SENTRY_DSN"], "public@"} {
			if s := eventText(ev); strings.Contains(s, secret) {
				t.Errorf("a Sentry event carries a secret (%q): %s", secret, s)
			}
		}
	}
	h.assertNoRejections()
}

// eventText is what an event tells Sentry, for looking for secrets.
func eventText(ev *sentry.Event) string {
	var b strings.Builder
	b.WriteString(ev.Message)
	for k, v := range ev.Tags {
		b.WriteString(" " + k + "=" + v)
	}
	for _, x := range ev.Exception {
		b.WriteString(" " + x.Type + ": " + x.Value)
	}
	for _, c := range ev.Contexts {
		for k, v := range c {
			b.WriteString(" " + k + "=")
			if s, ok := v.(string); ok {
				b.WriteString(s)
			}
		}
	}
	return b.String()
}
