package slacktest

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

const wait = 5 * time.Second

// newServer starts a server closed at the end of the test.
func newServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.BotToken == "" {
		opts.BotToken = "xoxb-test"
	}
	if opts.AppToken == "" {
		opts.AppToken = "xapp-test"
	}
	srv := NewServer(opts)
	t.Cleanup(srv.Close)
	srv.AddChannel("C1", "deploys")
	srv.AddUser("U1", "alice")
	return srv
}

func apiClient(srv *Server, opts ...slack.Option) *slack.Client {
	opts = append([]slack.Option{slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken(srv.AppToken())}, opts...)
	return slack.New(srv.BotToken(), opts...)
}

// testBot is a real slack-go Socket Mode client with a pluggable handler.
type testBot struct {
	api *slack.Client
	sm  *socketmode.Client

	mu     sync.Mutex
	events []socketmode.Event
}

func (b *testBot) seen(typ socketmode.EventType) []socketmode.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []socketmode.Event
	for _, e := range b.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// startBot runs a socketmode client until the end of the test; handle runs
// on the client's event loop for every event.
func startBot(t *testing.T, srv *Server, handle func(*testBot, socketmode.Event), opts ...socketmode.Option) *testBot {
	t.Helper()
	b := &testBot{api: apiClient(srv)}
	opts = append([]socketmode.Option{socketmode.OptionLog(log.New(io.Discard, "", 0))}, opts...)
	b.sm = socketmode.New(b.api, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.sm.RunContext(ctx)
	}()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-b.sm.Events:
				b.mu.Lock()
				b.events = append(b.events, ev)
				b.mu.Unlock()
				if handle != nil {
					handle(b, ev)
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(wait):
			t.Error("socketmode client did not stop")
		}
	})
	return b
}

// ackAll acks every request-carrying event without a payload.
func ackAll(b *testBot, ev socketmode.Event) {
	if ev.Request != nil && ev.Request.EnvelopeID != "" {
		_ = b.sm.Ack(*ev.Request)
	}
}

func waitConnected(t *testing.T, srv *Server, n int) {
	t.Helper()
	srv.WaitFor(t, wait, "socket connection", func() bool { return srv.Connections() >= n })
}

func requireNoRejections(t *testing.T, srv *Server) {
	t.Helper()
	if r := srv.Rejected(); len(r) > 0 {
		t.Fatalf("unexpected rejections: %+v", r)
	}
}

func lastRejection(t *testing.T, srv *Server) Rejection {
	t.Helper()
	r := srv.Rejected()
	if len(r) == 0 {
		t.Fatal("no rejection recorded")
	}
	return r[len(r)-1]
}

// slackErr extracts Slack's error code from a slack-go error.
func slackErr(err error) string {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

// postForm calls a Web API method the way curl would, for bodies slack-go
// cannot produce.
func postForm(t *testing.T, srv *Server, method string, v url.Values) map[string]any {
	t.Helper()
	resp, err := http.PostForm(srv.APIURL()+method, v)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return decode(t, resp)
}

func postJSON(t *testing.T, srv *Server, method, token, body string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.APIURL()+method, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return decode(t, resp)
}
