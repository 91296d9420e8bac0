package bot_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/integrations/sqlite"
	"github.com/deploybot/deploybot/steps"
)

// panickyChat panics on its first Post, like a rendering bug hit once, and
// records the posts after that.
type panickyChat struct {
	mu       sync.Mutex
	panicked bool
	posted   chan struct{} // closed by the first post that succeeds
}

func (c *panickyChat) Post(ctx context.Context, channel, threadTS string, v bot.View) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.panicked {
		c.panicked = true
		panic("post bug")
	}
	select {
	case <-c.posted:
	default:
		close(c.posted)
	}
	return time.Now().Format("1504.000000000"), nil
}
func (c *panickyChat) Update(ctx context.Context, channel, ts string, v bot.View) error { return nil }
func (c *panickyChat) Permalink(ctx context.Context, channel, ts string) (string, error) {
	return "", nil
}
func (c *panickyChat) Upload(ctx context.Context, channel, threadTS, name, title string, content []byte) error {
	return nil
}
func (c *panickyChat) Find(ctx context.Context, channel, threadTS, key string, since time.Time) (string, bool, error) {
	return "", false, nil
}
func (c *panickyChat) FindFile(ctx context.Context, channel, threadTS, name, title string) (bool, error) {
	return false, nil
}

// A panic while the outbox publisher delivers neither kills the process
// nor leaves the run's messages owed forever: it is logged with the run_id
// and the delivery is retried.
func TestPublisherPanicIsReportedAndRetried(t *testing.T) {
	cfg, err := config.Parse([]byte(`
slack:
  deploy_channels: [C0DEPLOYS]
  deployers: [U0A]
  approvers: [U0A]
services:
  svc:
    steps:
      - {id: confirm, title: Confirm, instruction: look, approval: true}
`), filepath.Join(t.TempDir(), "c.yaml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.ErrorLevel)
	log := zap.New(core)
	chat := &panickyChat{posted: make(chan struct{})}
	b := bot.New(cfg, chat, log, bot.Options{})
	eng := steps.NewEngine(db, b, bot.NewRoles(cfg.Slack.Deployers, cfg.Slack.Approvers, nil, 0), steps.NewRunbooks(cfg), log)
	b.SetEngine(eng)
	t.Cleanup(func() { eng.Close(); b.Close(); db.Close() })
	r, err := eng.Start(context.Background(), steps.StartRequest{Kind: steps.KindDeploy, Service: "svc", Version: "rel-2024.01.01.00.00.00", Requester: "U0A", Channel: "C0DEPLOYS"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-chat.posted:
	case <-time.After(30 * time.Second):
		t.Fatal("the run's message was never posted after the publisher panicked")
	}
	entries := logs.FilterMessage("outbox publisher panicked").All()
	if len(entries) != 1 || entries[0].ContextMap()["run_id"] != r.ID {
		t.Errorf("panic log entries: %+v", entries)
	}
}
