package bot

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/deploybot/deploybot/steps"
)

// slowHome is a chat whose views.publish can be held, to see refreshes
// overlap.
type slowHome struct {
	lastViewChat
	mu       sync.Mutex
	hold     chan struct{} // when set, publishes wait for it to close
	inFlight int
	most     int
	last     string
	count    int
}

func (h *slowHome) PublishHome(ctx context.Context, user string, v View) error {
	h.mu.Lock()
	h.inFlight++
	h.most = max(h.most, h.inFlight)
	hold := h.hold
	h.mu.Unlock()
	if hold != nil {
		<-hold
	}
	var text []string
	for _, b := range v.Blocks {
		text = append(text, b.Text)
	}
	h.mu.Lock()
	h.inFlight--
	h.last = strings.Join(text, "\n")
	h.count++
	h.mu.Unlock()
	return nil
}

func (h *slowHome) OpenModal(ctx context.Context, triggerID string, m slack.ModalViewRequest) (string, string, error) {
	return "", "", nil
}

func (h *slowHome) UpdateModal(ctx context.Context, viewID, hash string, m slack.ModalViewRequest) error {
	return nil
}

// Refreshes of the Home tab never overlap, so an older render cannot land
// after a newer one, and a change made while one publishes is shown by
// the next. An answer shown atop the tab is not taken away by them.
func TestHomeRefreshesOneAtATimeAndShowTheLastChange(t *testing.T) {
	was := homeDebounce
	homeDebounce = 10 * time.Millisecond
	t.Cleanup(func() { homeDebounce = was })
	chat := &slowHome{lastViewChat: lastViewChat{shown: map[string]*steps.Run{}}}
	b, eng, _ := oneStepBot(t, chat, nil)
	ctx := context.Background()
	b.HomeOpened(ctx, "U0A")

	hold := make(chan struct{})
	chat.mu.Lock()
	chat.hold = hold
	before := chat.count
	chat.mu.Unlock()
	b.homeChanged()
	waitUntil(t, "a refresh publishing", func() bool { chat.mu.Lock(); defer chat.mu.Unlock(); return chat.inFlight == 1 })

	// A run starts while that refresh is held.
	if _, err := eng.Start(ctx, steps.StartRequest{Kind: steps.KindDeploy, Service: "svc", Version: "rel-2024.01.01.00.00.00", Requester: "U0A", Channel: "C0DEPLOYS"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the change noted for the next refresh", func() bool { b.home.mu.Lock(); defer b.home.mu.Unlock(); return b.home.dirty })
	close(hold)
	waitUntil(t, "the refresh after the change", func() bool {
		chat.mu.Lock()
		defer chat.mu.Unlock()
		return chat.count >= before+2 && chat.inFlight == 0 && strings.Contains(chat.last, "run-1")
	})
	chat.mu.Lock()
	if chat.most != 1 {
		t.Errorf("%d refreshes published at once, want 1", chat.most)
	}
	chat.hold = nil
	before = chat.count
	chat.mu.Unlock()

	// The answer to a click in the tab stays atop it through the refreshes
	// that follow, until the person opens the tab again.
	_ = b.homeNotice("U0A")(ctx, textView("Done: run-1 cancelled"))
	b.homeChanged()
	waitUntil(t, "a refresh after the answer", func() bool { chat.mu.Lock(); defer chat.mu.Unlock(); return chat.count >= before+2 })
	chat.mu.Lock()
	if !strings.HasPrefix(chat.last, "Done: run-1 cancelled") {
		t.Errorf("a refresh took the answer away:\n%s", chat.last)
	}
	chat.mu.Unlock()
	b.HomeOpened(ctx, "U0A")
	chat.mu.Lock()
	defer chat.mu.Unlock()
	if strings.Contains(chat.last, "Done: run-1 cancelled") {
		t.Errorf("the answer outlived the next visit:\n%s", chat.last)
	}
}
