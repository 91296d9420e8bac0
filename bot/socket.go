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

	"github.com/deploybot/deploybot/steps"
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

	// BeforeHandle, when set, is called at the start of each envelope's
	// handler goroutine with the envelope's type ("slash_commands",
	// "interactive", "events_api"). It exists so end-to-end tests can make
	// a handler panic and see the bot survive it; set it before Run.
	BeforeHandle func(kind string)
	// Observer, when set, hears of acks and reconnects (metrics); set it
	// before Run.
	Observer SocketObserver

	mu        sync.Mutex
	recent    map[string]bool // envelope ids seen by this process
	connected bool
	// appID (from Socket Mode's hello) and teamID (from auth.test) are
	// who envelopes must be for.
	appID, teamID string
	wg            sync.WaitGroup
	connects      int // connections made, counted by dispatch alone
}

// SocketObserver hears what the Socket Mode adapter does, for metrics.
// Calls are made on the dispatch path and must return at once.
type SocketObserver interface {
	// Acked: an envelope was acknowledged, d after dispatch received it.
	Acked(d time.Duration)
	// Reconnected: a connection was made after the first.
	Reconnected()
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
			s.mu.Lock()
			s.teamID = who.TeamID
			s.mu.Unlock()
		} else {
			s.log.Warn("auth.test failed", zap.Error(redact.Scrub(err)))
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A panic in dispatch must not leave envelopes unread (and
		// unacked): it is reported and reading starts again.
		for !s.dispatchSafely(ctx) {
		}
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

// dispatchSafely runs dispatch and reports whether it returned normally
// (false: it panicked and was reported).
func (s *Socket) dispatchSafely(ctx context.Context) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("socket dispatch panicked", zap.Error(steps.PanicError(p)), zap.Stack("stack"))
		}
	}()
	s.dispatch(ctx)
	return true
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
			if evt.Type == socketmode.EventTypeHello && evt.Request != nil && evt.Request.ConnectionInfo.AppID != "" {
				s.mu.Lock()
				s.appID = evt.Request.ConnectionInfo.AppID
				s.mu.Unlock()
			}
			s.setConnected(true)
			if evt.Type == socketmode.EventTypeConnected {
				s.connects++
				if s.connects > 1 && s.Observer != nil {
					s.Observer.Reconnected()
				}
			}
		case socketmode.EventTypeConnecting, socketmode.EventTypeConnectionError, socketmode.EventTypeDisconnect:
			s.setConnected(false)
		case socketmode.EventTypeErrorBadMessage:
			s.badMessage(ctx, evt)
		case socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive, socketmode.EventTypeEventsAPI:
			if evt.Request == nil {
				continue
			}
			// A form's submission is acked with its answer (submission),
			// from its handler; everything else is acked here, first.
			received := time.Now()
			answer := s.answerOnce(evt)
			if answer == nil {
				if err := s.sm.Ack(*evt.Request); err != nil {
					s.log.Warn("ack failed", zap.Error(redact.Scrub(err)))
				}
				if s.Observer != nil {
					s.Observer.Acked(time.Since(received))
				}
			}
			s.wg.Add(1)
			go func(evt socketmode.Event) {
				defer s.wg.Done()
				defer s.recoverHandler(ctx, evt)
				hctx := ctx
				if answer != nil {
					hctx = context.WithValue(ctx, answerKey{}, answer)
					defer answer(nil) // acked whatever happens
				}
				if s.BeforeHandle != nil {
					s.BeforeHandle(string(evt.Type))
				}
				s.handle(hctx, evt)
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
	ok, err := s.record(ctx, id)
	if err != nil {
		s.unrecorded(ctx, err)
		return false
	}
	return ok
}

// record is first without telling anyone: err says the envelope could not
// be recorded, so it must not be acted on.
func (s *Socket) record(ctx context.Context, id string) (bool, error) {
	s.mu.Lock()
	if s.recent[id] {
		s.mu.Unlock()
		return false, nil
	}
	if len(s.recent) > 10000 {
		s.recent = map[string]bool{}
	}
	s.recent[id] = true
	s.mu.Unlock()
	if s.seen == nil {
		return true, nil
	}
	ok, err := s.seen.FirstDelivery(ctx, id)
	if err != nil {
		// Acting twice is worse than a user having to repeat a click.
		s.log.Error("recording delivery failed; ignoring envelope", zap.String("envelope", id), zap.Error(redact.Scrub(err)))
		s.mu.Lock()
		delete(s.recent, id) // a redelivery may be recorded once the store answers
		s.mu.Unlock()
		return false, err
	}
	return ok, nil
}

// unrecorded tells the person whose request could not be recorded (so was
// not acted on) what happened, through the request's response_url.
func (s *Socket) unrecorded(ctx context.Context, err error) {
	url, _ := ctx.Value(responseURLKey{}).(string)
	if url == "" {
		return
	}
	s.bot.reply(ctx, Respond(url), ":x: deploybot could not record your request ("+escape(redact.ScrubString(err.Error()))+"), so it did nothing with it. If nothing happened, try again in a moment.")
}

// responseURLKey carries an envelope's response_url to unrecorded.
type responseURLKey struct{}

// origin says which app and workspace an envelope was sent for.
func origin(evt socketmode.Event) (app, team string) {
	switch d := evt.Data.(type) {
	case slack.SlashCommand:
		return d.APIAppID, d.TeamID
	case slack.InteractionCallback:
		return d.APIAppID, d.Team.ID
	case slackevents.EventsAPIEvent:
		return d.APIAppID, d.TeamID
	}
	return "", ""
}

// foreign reports an envelope for another app or workspace than the one
// this connection belongs to (learned from hello and auth.test): a
// misrouted or forged envelope is never acted on.
func (s *Socket) foreign(app, team string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appID != "" && app != s.appID || s.teamID != "" && team != s.teamID
}

func (s *Socket) handle(ctx context.Context, evt socketmode.Event) {
	req := evt.Request
	if app, team := origin(evt); s.foreign(app, team) {
		s.log.Warn("ignoring an envelope for another app or workspace", zap.String("envelope", req.EnvelopeID), zap.String("api_app_id", app), zap.String("team_id", team))
		s.bot.audit(ctx, "", "envelope.ignored", fmt.Sprintf("%s for app %q, team %q", evt.Type, app, team))
		return
	}
	if d, ok := evt.Data.(slack.InteractionCallback); ok && d.Type == slack.InteractionTypeViewSubmission {
		s.submission(ctx, req, d)
		return
	}
	switch d := evt.Data.(type) {
	case slack.SlashCommand:
		ctx = context.WithValue(ctx, responseURLKey{}, d.ResponseURL)
	case slack.InteractionCallback:
		ctx = context.WithValue(ctx, responseURLKey{}, d.ResponseURL)
	}
	if !s.first(ctx, req.EnvelopeID) {
		s.log.Info("not acting on envelope", zap.String("envelope", req.EnvelopeID), zap.Int("retry_attempt", req.RetryAttempt))
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
		if data.Container.Type == "view" {
			reply = s.bot.homeNotice(data.User.ID) // views have no response_url
		}
		for _, a := range data.ActionCallback.BlockActions {
			s.bot.HandleClick(ctx, Click{User: data.User.ID, Channel: data.Channel.ID, MessageTS: data.Container.MessageTs, ActionID: a.ActionID, Value: a.Value, Reply: reply,
				TriggerID: data.TriggerID, Label: a.Text.Text})
		}
	case slackevents.EventsAPIEvent:
		if h, ok := data.InnerEvent.Data.(*slackevents.AppHomeOpenedEvent); ok && h.Tab == "home" {
			s.bot.HomeOpened(ctx, h.User)
		}
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

// recoverHandler keeps a panicking envelope handler from taking the bot
// down: the envelope was acked before the handler started, the panic goes to
// the log (and so to Sentry, with the panicking goroutine's stack, because
// this runs inside the deferred call), and the user who asked hears that
// something went wrong instead of nothing.
func (s *Socket) recoverHandler(ctx context.Context, evt socketmode.Event) {
	p := recover()
	if p == nil {
		return
	}
	fields := []zap.Field{zap.String("kind", string(evt.Type)), zap.Error(steps.PanicError(p)), zap.Stack("stack")}
	if evt.Request != nil {
		fields = append(fields, zap.String("envelope", evt.Request.EnvelopeID))
	}
	var reply Reply
	switch data := evt.Data.(type) {
	case slack.SlashCommand:
		fields = append(fields, zap.String("user", data.UserID), zap.String("command", data.Command))
		reply = Respond(data.ResponseURL)
	case slack.InteractionCallback:
		fields = append(fields, zap.String("user", data.User.ID))
		if len(data.ActionCallback.BlockActions) > 0 {
			fields = append(fields, zap.String("action", data.ActionCallback.BlockActions[0].ActionID))
		}
		reply = Respond(data.ResponseURL)
	}
	s.log.Error("socket handler panicked", fields...)
	if reply != nil {
		// Best effort: the handler may have panicked halfway, but a reply
		// through the response_url needs nothing it could have broken.
		func() {
			defer func() { _ = recover() }()
			s.bot.reply(context.WithoutCancel(ctx), reply, ":warning: Something went wrong inside deploybot while handling that; it has been reported. Check the run's thread before trying again.")
		}()
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
			defer s.recoverHandler(ctx, socketmode.Event{Type: evt.Type})
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
