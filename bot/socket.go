package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/zap"

	"github.com/deploybot/deploybot/internal/redact"
)

// Deliveries remembers which Socket Mode envelopes were handled, so a
// redelivery (retry_attempt > 0, or a second connection receiving the same
// envelope) does not act twice, across restarts too.
type Deliveries interface {
	FirstDelivery(ctx context.Context, envelopeID string) (bool, error)
}

// Socket runs the bot over Slack Socket Mode.
type Socket struct {
	api  *slack.Client
	sm   *socketmode.Client
	bot  *Bot
	seen Deliveries
	log  *zap.Logger

	mu        sync.Mutex
	recent    map[string]bool // envelope ids seen by this process
	connected bool
	wg        sync.WaitGroup
}

// NewSocket makes the Socket Mode adapter. api must carry the app-level
// token (slack.OptionAppLevelToken).
func NewSocket(api *slack.Client, b *Bot, seen Deliveries, log *zap.Logger, opts ...socketmode.Option) *Socket {
	return &Socket{api: api, sm: socketmode.New(api, opts...), bot: b, seen: seen, log: log, recent: map[string]bool{}}
}

// Connected reports whether a Socket Mode connection is up (for /readyz).
func (s *Socket) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connected
}

// Run connects and serves until ctx ends. slack-go reconnects on
// `disconnect` and on dead connections by itself, but gives up when
// apps.connections.open fails for good; Run keeps trying with backoff unless
// the token is rejected, which no retry can fix.
func (s *Socket) Run(ctx context.Context) error {
	if s.api != nil {
		// Who am I: the bot must not react to its own messages.
		if who, err := s.api.AuthTestContext(ctx); err == nil {
			s.bot.SetSelf(who.BotID)
		} else {
			s.log.Warn("auth.test failed", zap.Error(redact.Scrub(err)))
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.dispatch(ctx)
	}()
	backoff := time.Second
	var err error
	for ctx.Err() == nil {
		err = s.sm.RunContext(ctx)
		if ctx.Err() != nil {
			break
		}
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		switch msg {
		case "invalid_auth", "not_authed", "account_inactive", "token_revoked":
			return fmt.Errorf("slack refused the app token (SLACK_APP_TOKEN): %s", msg)
		}
		s.log.Warn("socket mode stopped; reconnecting", zap.Error(redact.Scrub(err)), zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
	<-done
	s.wg.Wait()
	return nil
}

// dispatch reads events. Every envelope is acknowledged first, before any
// lock, disk write or network call, so Slack never waits on deploybot.
func (s *Socket) dispatch(ctx context.Context) {
	for {
		var evt socketmode.Event
		select {
		case <-ctx.Done():
			return
		case evt = <-s.sm.Events:
		}
		switch evt.Type {
		case socketmode.EventTypeConnected, socketmode.EventTypeHello:
			s.setConnected(true)
		case socketmode.EventTypeConnecting, socketmode.EventTypeConnectionError, socketmode.EventTypeDisconnect:
			s.setConnected(false)
		case socketmode.EventTypeErrorBadMessage:
			s.badMessage(ctx, evt)
		case socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive, socketmode.EventTypeEventsAPI:
			if evt.Request == nil {
				continue
			}
			if err := s.sm.Ack(*evt.Request); err != nil {
				s.log.Warn("ack failed", zap.Error(redact.Scrub(err)))
			}
			s.wg.Add(1)
			go func(evt socketmode.Event) {
				defer s.wg.Done()
				s.handle(ctx, evt)
			}(evt)
		}
	}
}

func (s *Socket) setConnected(v bool) {
	s.mu.Lock()
	s.connected = v
	s.mu.Unlock()
}

// first reports whether this envelope is new.
func (s *Socket) first(ctx context.Context, id string) bool {
	s.mu.Lock()
	if s.recent[id] {
		s.mu.Unlock()
		return false
	}
	if len(s.recent) > 10000 {
		s.recent = map[string]bool{}
	}
	s.recent[id] = true
	s.mu.Unlock()
	if s.seen == nil {
		return true
	}
	ok, err := s.seen.FirstDelivery(ctx, id)
	if err != nil {
		// Acting twice is worse than a user having to repeat a click.
		s.log.Error("recording delivery failed; ignoring envelope", zap.String("envelope", id), zap.Error(redact.Scrub(err)))
		return false
	}
	return ok
}

func (s *Socket) handle(ctx context.Context, evt socketmode.Event) {
	req := evt.Request
	if !s.first(ctx, req.EnvelopeID) {
		s.log.Info("ignoring redelivered envelope", zap.String("envelope", req.EnvelopeID), zap.Int("retry_attempt", req.RetryAttempt))
		return
	}
	switch data := evt.Data.(type) {
	case slack.SlashCommand:
		s.bot.HandleCommand(ctx, Command{User: data.UserID, Channel: data.ChannelID, Name: data.Command, Text: data.Text, Reply: Respond(data.ResponseURL)})
	case slack.InteractionCallback:
		reply := Respond(data.ResponseURL)
		if data.Type != slack.InteractionTypeBlockActions || len(data.ActionCallback.BlockActions) == 0 {
			s.bot.reply(ctx, reply, ":warning: deploybot only understands its own buttons here.")
			return
		}
		for _, a := range data.ActionCallback.BlockActions {
			s.bot.HandleClick(ctx, Click{User: data.User.ID, Channel: data.Channel.ID, MessageTS: data.Container.MessageTs, ActionID: a.ActionID, Value: a.Value, Reply: reply})
		}
	case slackevents.EventsAPIEvent:
		if m, ok := data.InnerEvent.Data.(*slackevents.MessageEvent); ok {
			msg := Message{Channel: m.Channel, User: m.User, BotID: m.BotID, Username: m.Username, Text: m.Text, TS: m.TimeStamp, SubType: m.SubType}
			msg.Content = contentOf(m.Blocks)
			if m.Message != nil {
				if len(m.Blocks.BlockSet) == 0 {
					msg.Content = contentOf(m.Message.Blocks)
				}
				msg.Content = append(msg.Content, contentOf(m.Message.Attachments)...)
			}
			s.bot.HandleMessage(ctx, msg)
		}
	}
}

// badMessage handles an envelope slack-go could not parse: it is still
// acknowledged (or Slack would redeliver it forever), and when it carries a
// response_url the user hears that it could not be read.
func (s *Socket) badMessage(ctx context.Context, evt socketmode.Event) {
	bad, ok := evt.Data.(*socketmode.ErrorBadMessage)
	if !ok {
		return
	}
	var env struct {
		EnvelopeID string `json:"envelope_id"`
		Payload    struct {
			ResponseURL string `json:"response_url"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(bad.Message, &env); err != nil || env.EnvelopeID == "" {
		s.log.Warn("unreadable socket message", zap.Error(redact.Scrub(bad.Cause)))
		return
	}
	if err := s.sm.Ack(socketmode.Request{EnvelopeID: env.EnvelopeID}); err != nil {
		s.log.Warn("ack failed", zap.Error(redact.Scrub(err)))
	}
	s.log.Warn("malformed envelope", zap.String("envelope", env.EnvelopeID), zap.Error(redact.Scrub(bad.Cause)))
	if env.Payload.ResponseURL != "" && s.first(ctx, env.EnvelopeID) {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.bot.reply(ctx, Respond(env.Payload.ResponseURL), ":warning: deploybot could not read that request, so it did nothing. Try the command again; `/deploy help` shows the forms.")
		}()
	}
}

// contentOf lists every string inside a message's blocks or attachments,
// in document order: texts, titles, links, footers. Reading them generically
// keeps alert parsing independent of which block types an app uses.
func contentOf(v any) []string {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var tree any
	if json.Unmarshal(raw, &tree) != nil {
		return nil
	}
	var out []string
	var walk func(any)
	walk = func(n any) {
		switch n := n.(type) {
		case string:
			if n != "" {
				out = append(out, n)
			}
		case []any:
			for _, c := range n {
				walk(c)
			}
		case map[string]any:
			keys := make([]string, 0, len(n))
			for k := range n {
				keys = append(keys, k)
			}
			// Titles before their links, then the rest in a stable order.
			sort.Slice(keys, func(i, j int) bool {
				return rank(keys[i]) < rank(keys[j]) || rank(keys[i]) == rank(keys[j]) && keys[i] < keys[j]
			})
			for _, k := range keys {
				switch k {
				case "type", "block_id", "action_id", "style", "color", "image_url", "thumb_url", "author_icon", "footer_icon", "id", "callback_id", "value", "fallback":
					continue
				}
				walk(n[k])
			}
		}
	}
	walk(tree)
	return out
}

func rank(key string) int {
	switch key {
	case "title":
		return 0
	case "text":
		return 1
	case "title_link", "url":
		return 2
	}
	return 3
}
