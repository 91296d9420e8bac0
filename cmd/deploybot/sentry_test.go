package main

import (
	"strings"
	"testing"

	"github.com/getsentry/sentry-go"
)

func TestOwnErrorsGoToSentryWhenDSNIsSet(t *testing.T) {
	h := newHarness(t)
	mock := &sentry.MockTransport{}
	m := NewMain()
	m.Stdout, m.Stderr = testWriter{t}, testWriter{t}
	m.SentryTransport = mock
	env := map[string]string{"SENTRY_DSN": "https://public@sentry.example.com/1"}
	for k, v := range testEnv {
		env[k] = v
	}
	m.Getenv = func(k string) string { return env[k] }
	if err := m.ParseArgs([]string{"check-config", "--config", h.cfgPath}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := m.setupLog(); err != nil {
		t.Fatal(err)
	}
	m.Log.Info("routine")
	m.Log.Error("committing step result failed")
	sentry.Flush(0)
	evs := mock.Events()
	if len(evs) != 1 || !strings.Contains(evs[0].Message, "committing step result failed") {
		t.Fatalf("sentry got %d events: %+v", len(evs), evs)
	}
}
