package github

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/integrations/github/githubtest"
)

const (
	monorepo  = "WordPress/openverse"
	infraRepo = "WordPress/openverse-infrastructure"
	buildWF   = "tag_docker_image_and_trigger_deployment.yml"
	deployWF  = "deploy-production-ingestion-server.yml"
	testToken = "test-token-do-not-leak-3f9a"
)

// fakeClock is shared by the client and the server: the client's waits move
// it forward instantly, so the server sees them pass.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	slept []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2024, 9, 9, 5, 40, 20, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.slept = append(c.slept, d)
	return nil
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeClock) Slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.slept...)
}

func (c *fakeClock) TotalSlept() time.Duration {
	var sum time.Duration
	for _, d := range c.Slept() {
		sum += d
	}
	return sum
}

type fixture struct {
	c     *Client
	srv   *githubtest.Server
	clock *fakeClock
}

// newFixture starts a fake GitHub that requires testToken and a client for
// it sharing one fake clock.
func newFixture(t *testing.T, opts ...Option) *fixture {
	t.Helper()
	srv := githubtest.NewServer()
	t.Cleanup(srv.Close)
	clock := newFakeClock()
	srv.SetClock(clock.Now)
	srv.SetToken(testToken)
	srv.AddRepo(monorepo)
	srv.AddRepo(infraRepo)
	c, err := New(srv.URL(), Auth{Token: testToken}, append([]Option{WithClock(clock)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{c: c, srv: srv, clock: clock}
}

// ctxT has no deadline on purpose: the client compares deadlines with the
// wall clock, and the fake clock's waits take no wall time.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}
