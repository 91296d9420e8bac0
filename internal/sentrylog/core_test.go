package sentrylog_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/getsentry/sentry-go"
	"go.uber.org/zap"

	"github.com/deploybot/deploybot/internal/sentrylog"
)

func newLog(t *testing.T, opts ...sentrylog.Option) (*zap.Logger, *sentry.MockTransport) {
	t.Helper()
	tr := &sentry.MockTransport{}
	client, err := sentry.NewClient(sentry.ClientOptions{Dsn: "https://key@sentry.example/1", Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	hub := sentry.NewHub(client, sentry.NewScope())
	return zap.New(sentrylog.New(append(opts, sentrylog.Hub(hub))...)), tr
}

func failingCall() error { return errors.New("connection refused to db-7") }

func TestErrorBecomesException(t *testing.T) {
	log, tr := newLog(t)
	log.Error("committing step result failed", zap.String("run_id", "run-3"), zap.String("service", "airflow"),
		zap.String("step", "merge"), zap.Int("attempt", 2), zap.Error(failingCall()))
	evs := tr.Events()
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1", len(evs))
	}
	ev := evs[0]
	if ev.Level != sentry.LevelError || ev.Message != "committing step result failed" {
		t.Errorf("level %q message %q", ev.Level, ev.Message)
	}
	if len(ev.Exception) != 1 {
		t.Fatalf("exceptions: %+v", ev.Exception)
	}
	x := ev.Exception[0]
	if x.Value != "connection refused to db-7" || x.Type != "*errors.errorString" {
		t.Errorf("exception %q %q", x.Type, x.Value)
	}
	if x.Stacktrace == nil || len(x.Stacktrace.Frames) == 0 {
		t.Fatal("no stack trace")
	}
	last := x.Stacktrace.Frames[len(x.Stacktrace.Frames)-1]
	if last.Function != "TestErrorBecomesException" {
		t.Errorf("innermost frame %s.%s, want the logging call (zap frames trimmed)", last.Module, last.Function)
	}
	for k, v := range map[string]string{"run_id": "run-3", "service": "airflow", "step": "merge"} {
		if ev.Tags[k] != v {
			t.Errorf("tag %s = %q, want %q", k, ev.Tags[k], v)
		}
	}
	if got := ev.Contexts["log"]["attempt"]; got != int64(2) {
		t.Errorf("context attempt = %v (%T)", got, got)
	}
	if fmt.Sprint(ev.Fingerprint) != "[committing step result failed]" {
		t.Errorf("fingerprint %v", ev.Fingerprint)
	}
}

// Two occurrences with different errors are one issue: the fingerprint is
// the log message, never the error text.
func TestFingerprintIsTheMessage(t *testing.T) {
	log, tr := newLog(t)
	log.Error("slack send failed", zap.Error(errors.New("timeout after 30s")))
	log.Error("slack send failed", zap.Error(errors.New("503 from slack.com")))
	evs := tr.Events()
	if len(evs) != 2 || fmt.Sprint(evs[0].Fingerprint) != fmt.Sprint(evs[1].Fingerprint) || evs[0].Fingerprint[0] != "slack send failed" {
		t.Fatalf("fingerprints differ or are not the message: %d events", len(evs))
	}
}

func TestWithFieldsCarryOver(t *testing.T) {
	log, tr := newLog(t)
	log = log.With(zap.String("run_id", "run-9")).Named("engine")
	log.With(zap.String("step", "apply")).Error("step panicked", zap.Error(errors.New("boom")))
	evs := tr.Events()
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	if evs[0].Tags["run_id"] != "run-9" || evs[0].Tags["step"] != "apply" || evs[0].Logger != "engine" {
		t.Errorf("tags %v logger %q", evs[0].Tags, evs[0].Logger)
	}
}

func TestBelowErrorNotSent(t *testing.T) {
	log, tr := newLog(t)
	log.Debug("d")
	log.Info("i", zap.Error(errors.New("x")))
	log.Warn("w", zap.Error(errors.New("x")))
	if n := len(tr.Events()); n != 0 {
		t.Fatalf("%d events for entries below error", n)
	}
	log.Error("e")
	if n := len(tr.Events()); n != 1 {
		t.Fatalf("%d events after one error", n)
	}
	// Without an error, the event still says where it was logged.
	th := tr.Events()[0].Threads
	if len(th) != 1 || th[0].Stacktrace == nil || th[0].Stacktrace.Frames[len(th[0].Stacktrace.Frames)-1].Function != "TestBelowErrorNotSent" {
		t.Errorf("threads %+v", th)
	}
}

func TestSecretsRedacted(t *testing.T) {
	log, tr := newLog(t, sentrylog.Redact("xoxb-secret", ""))
	log.Error("post failed", zap.String("url", "https://x/?token=xoxb-secret"), zap.Error(errors.New("bad token xoxb-secret")),
		zap.String("long", strings.Repeat("xoxb-secret ", 30)))
	ev := tr.Events()[0]
	if ev.Exception[0].Value != "bad token [redacted]" || strings.Contains(ev.Tags["url"], "xoxb") || strings.Contains(fmt.Sprint(ev.Contexts), "xoxb") {
		t.Errorf("secret leaked: %q %v %v", ev.Exception[0].Value, ev.Tags, ev.Contexts)
	}
}

// Logged inside a deferred recover, the trace is the panicking goroutine's
// own, down to the function that panicked.
func TestPanicStack(t *testing.T) {
	log, tr := newLog(t)
	func() {
		defer func() {
			if p := recover(); p != nil {
				log.Error("step panicked", zap.Error(fmt.Errorf("panic: %v", p)))
			}
		}()
		panickingStep()
	}()
	ev := tr.Events()[0]
	fr := ev.Exception[len(ev.Exception)-1].Stacktrace.Frames
	if fr[len(fr)-1].Function != "panickingStep" {
		t.Errorf("innermost frame %q, want panickingStep", fr[len(fr)-1].Function)
	}
}

func panickingStep() {
	var m map[string]int
	m["x"] = 1
}
