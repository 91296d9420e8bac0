package bot

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/integrations/sqlite"
	"github.com/deploybot/deploybot/steps"
)

// lastViewChat remembers the run each message last showed.
type lastViewChat struct {
	mu    sync.Mutex
	n     int
	shown map[string]*steps.Run
}

func (c *lastViewChat) Post(ctx context.Context, channel, threadTS string, v View) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	ts := time.Unix(int64(c.n), 0).Format("1504.05")
	if v.run != nil {
		c.shown[ts] = v.run
	}
	return ts, nil
}
func (c *lastViewChat) Update(ctx context.Context, channel, ts string, v View) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v.run != nil {
		c.shown[ts] = v.run
	}
	return nil
}
func (c *lastViewChat) Permalink(ctx context.Context, channel, ts string) (string, error) {
	return "", nil
}
func (c *lastViewChat) Upload(ctx context.Context, channel, threadTS, name, title string, content []byte) error {
	return nil
}
func (c *lastViewChat) Find(ctx context.Context, channel, threadTS, key string, since time.Time) (string, bool, error) {
	return "", false, nil
}
func (c *lastViewChat) FindFile(ctx context.Context, channel, threadTS, name, title string) (bool, error) {
	return false, nil
}

// afterCommitStore runs a hook right after a transition is committed and
// before the engine goes on: the moment a publisher may read the outbox
// while the engine's own copy of the run is one transition behind.
type afterCommitStore struct {
	*sqlite.DB
	after func(r *steps.Run)
}

func (s *afterCommitStore) SaveRun(ctx context.Context, r *steps.Run, c steps.Changes) error {
	if err := s.DB.SaveRun(ctx, r, c); err != nil {
		return err
	}
	if s.after != nil {
		s.after(r)
	}
	return nil
}

// The run's message ends showing how the run ended, even when the
// publisher delivers the last update between the commit of the run's end
// and the engine's next look at it. (It once rendered the run as it was one
// transition before, marked the update delivered, and left the message at
// "ending" for good: seen in CI as a console that never printed
// "succeeded".)
func TestRunMessageShowsTheEndWhenDeliveredRightAfterCommit(t *testing.T) {
	st := &afterCommitStore{}
	chat := &lastViewChat{shown: map[string]*steps.Run{}}
	b, eng, db := oneStepBot(t, chat, func(db *sqlite.DB) steps.Store { st.DB = db; return st })

	ctx := context.Background()
	r, err := eng.Start(ctx, steps.StartRequest{Kind: steps.KindDeploy, Service: "svc", Version: "rel-2024.01.01.00.00.00", Requester: "U0A", Channel: "C0DEPLOYS"})
	if err != nil {
		t.Fatal(err)
	}
	var cur *steps.Run
	waitUntil(t, "the step waiting for its Done", func() bool {
		cur, err = eng.Run(ctx, r.ID)
		return err == nil && cur.Steps[0].Status == steps.StepWaiting
	})
	if !b.Flush(30 * time.Second) {
		t.Fatal("the outbox did not drain")
	}
	// Every commit from now on is delivered at once, before the engine
	// has taken in what it committed.
	st.after = func(saved *steps.Run) {
		b.RunChanged(saved)
		b.Flush(30 * time.Second)
	}
	if err := eng.Act(ctx, steps.ActionRequest{RunID: r.ID, StepIndex: 0, Seq: cur.Steps[0].Seq, Verb: steps.VerbDone, User: "U0A"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the run's end", func() bool {
		end, err := db.Run(ctx, r.ID)
		return err == nil && !end.State.Open()
	})
	if !b.Flush(30 * time.Second) {
		t.Fatal("the outbox did not drain")
	}
	chat.mu.Lock()
	defer chat.mu.Unlock()
	if len(chat.shown) != 1 {
		t.Fatalf("%d run messages, want 1", len(chat.shown))
	}
	for _, shown := range chat.shown {
		if shown.State != steps.RunSucceeded {
			t.Errorf("the run's message was left showing %q, want %q", shown.State, steps.RunSucceeded)
		}
	}
}
