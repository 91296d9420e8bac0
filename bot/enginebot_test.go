package bot

import (
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/integrations/sqlite"
	"github.com/deploybot/deploybot/steps"
)

// oneStepBot is a bot and its engine on a fresh SQLite store, for a
// service "svc" whose one step, Check, waits for Done from U0A. wrap, when
// not nil, puts a store between the engine and the database.
func oneStepBot(t *testing.T, chat Chat, wrap func(*sqlite.DB) steps.Store) (*Bot, *steps.Engine, *sqlite.DB) {
	t.Helper()
	cfg, err := config.Parse([]byte(`
slack:
  deploy_channels: [C0DEPLOYS]
  deployers: [U0A]
  approvers: [U0A]
services:
  svc:
    steps:
      - {id: check, title: Check, instruction: look}
`), filepath.Join(t.TempDir(), "c.yaml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	var st steps.Store = db
	if wrap != nil {
		st = wrap(db)
	}
	b := New(cfg, chat, zap.NewNop(), Options{})
	eng := steps.NewEngine(st, b, NewRoles(cfg.Slack.Deployers, cfg.Slack.Approvers, nil, 0), steps.NewRunbooks(cfg), zap.NewNop())
	b.SetEngine(eng)
	t.Cleanup(func() { eng.Close(); b.Close(); db.Close() })
	return b, eng, db
}

// waitUntil waits for cond, polling, and fails the test after 30 seconds
// naming what never happened.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
