package slacktest

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
)

func decode(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("decoding %s response: %v", resp.Request.URL, err)
	}
	return m
}

func TestHelloAndSlashCommand(t *testing.T) {
	srv := newServer(t, Options{})
	var got atomic.Value
	bot := startBot(t, srv, func(b *testBot, ev socketmode.Event) {
		if ev.Type != socketmode.EventTypeSlashCommand {
			return
		}
		cmd := ev.Data.(slack.SlashCommand)
		got.Store(cmd)
		switch cmd.Text {
		case "with payload":
			_ = b.sm.Ack(*ev.Request, map[string]any{"text": "on it"})
			return
		case "empty ack":
			_ = b.sm.Ack(*ev.Request, map[string]any{}) // shows nothing, refuses nothing
			return
		}
		_ = b.sm.Ack(*ev.Request)
		_, _, _, err := b.api.SendMessage("", slack.MsgOptionResponseURL(cmd.ResponseURL, slack.ResponseTypeEphemeral),
			slack.MsgOptionText("deploying "+cmd.Text, false))
		if err != nil {
			panic(err)
		}
	})
	waitConnected(t, srv, 1)
	srv.WaitFor(t, wait, "hello", func() bool { return len(bot.seen(socketmode.EventTypeHello)) == 1 })
	hello := bot.seen(socketmode.EventTypeHello)[0].Request
	if hello.NumConnections != 1 || hello.ConnectionInfo.AppID != DefaultAppID || hello.DebugInfo.Host == "" {
		t.Errorf("hello = %+v", hello)
	}

	e := srv.SlashCommand("U1", "C1", "/deploy", "ingestion-server")
	if e.Type != "slash_commands" || e.RetryAttempt != 0 || !strings.HasPrefix(e.ResponseURL, srv.URL()+"/hooks/commands/") {
		t.Errorf("envelope = %+v", e)
	}
	payload, err := srv.WaitAck(e, wait)
	if err != nil || payload != nil {
		t.Fatalf("WaitAck = %s, %v", payload, err)
	}
	cmd := got.Load().(slack.SlashCommand)
	if cmd.Command != "/deploy" || cmd.Text != "ingestion-server" || cmd.UserID != "U1" || cmd.UserName != "alice" ||
		cmd.ChannelID != "C1" || cmd.ChannelName != "deploys" || cmd.TeamID != DefaultTeamID ||
		cmd.APIAppID != DefaultAppID || cmd.TriggerID == "" || cmd.ResponseURL != e.ResponseURL {
		t.Errorf("slash command = %+v", cmd)
	}
	srv.WaitFor(t, wait, "ephemeral response", func() bool { return len(srv.Responses(e)) == 1 })
	r := srv.Responses(e)[0]
	if r.Text != "deploying ingestion-server" || !r.Ephemeral || r.Channel != "C1" {
		t.Errorf("response = %+v", r)
	}

	e2 := srv.SlashCommand("U1", "C1", "/deploy", "with payload")
	payload, err = srv.WaitAck(e2, wait)
	if err != nil || string(payload) != `{"text":"on it"}` {
		t.Fatalf("WaitAck = %s, %v", payload, err)
	}
	if rs := srv.Responses(e2); len(rs) != 1 || rs[0].Text != "on it" {
		t.Errorf("ack payload responses = %+v", rs)
	}
	e3 := srv.SlashCommand("U1", "C1", "/deploy", "empty ack")
	if _, err := srv.WaitAck(e3, wait); err != nil {
		t.Fatal(err)
	}
	if l := srv.AckLatencies(); len(l) != 3 || l[0] <= 0 || l[0] > time.Second {
		t.Errorf("ack latencies = %v", l)
	}
	if len(srv.Unacked()) != 0 || srv.ConnectionsOpened() != 1 {
		t.Errorf("unacked %v, opened %d", srv.Unacked(), srv.ConnectionsOpened())
	}
	requireNoRejections(t, srv)
}

func TestEnvelopesQueuedUntilConnected(t *testing.T) {
	srv := newServer(t, Options{})
	e := srv.SlashCommand("U1", "C1", "/deploy", "early")
	startBot(t, srv, ackAll)
	if _, err := srv.WaitAck(e, wait); err != nil {
		t.Fatal(err)
	}
}

func TestRedeliveryWhenUnacked(t *testing.T) {
	srv := newServer(t, Options{AckTimeout: 150 * time.Millisecond})
	bot := startBot(t, srv, func(b *testBot, ev socketmode.Event) {
		if ev.Type == socketmode.EventTypeSlashCommand && ev.Request.RetryAttempt >= 1 {
			_ = b.sm.Ack(*ev.Request)
		}
	})
	waitConnected(t, srv, 1)
	e := srv.SlashCommand("U1", "C1", "/deploy", "x")
	if _, err := srv.WaitAck(e, wait); err != nil {
		t.Fatal(err)
	}
	ds := srv.Deliveries(e)
	if len(ds) != 2 || ds[1].ID != e.ID || ds[1].RetryAttempt != 1 || ds[1].RetryReason != "timeout" {
		t.Fatalf("deliveries = %+v", ds)
	}
	cmds := bot.seen(socketmode.EventTypeSlashCommand)
	if len(cmds) != 2 || cmds[1].Request.RetryAttempt != 1 || cmds[1].Request.RetryReason != "timeout" ||
		cmds[1].Request.EnvelopeID != e.ID {
		t.Fatalf("client saw %+v", cmds)
	}

	// A manual redelivery of an acked envelope needs its own ack.
	r := srv.Redeliver(e)
	if r.ID != e.ID || r.RetryAttempt != 1 {
		t.Fatalf("redelivered = %+v", r)
	}
	if _, err := srv.WaitAck(r, wait); err != nil {
		t.Fatal(err)
	}
	if len(srv.AckLatencies()) != 2 {
		t.Errorf("latencies = %v", srv.AckLatencies())
	}
}

func TestRedeliveryGivesUpAfterMaxRetries(t *testing.T) {
	srv := newServer(t, Options{AckTimeout: 50 * time.Millisecond})
	startBot(t, srv, nil) // never acks
	waitConnected(t, srv, 1)
	e := srv.PostUserMessage("U1", "C1", "hi", "")
	srv.WaitFor(t, wait, "4 deliveries", func() bool { return len(srv.Deliveries(e)) == 4 })
	// A later envelope retried twice proves the first one's last timer fired.
	e2 := srv.PostUserMessage("U1", "C1", "again", "")
	srv.WaitFor(t, wait, "3 deliveries of the second", func() bool { return len(srv.Deliveries(e2)) >= 3 })
	if n := len(srv.Deliveries(e)); n != 4 {
		t.Errorf("deliveries after giving up = %d, want 4", n)
	}
	if _, err := srv.WaitAck(e, 10*time.Millisecond); err == nil {
		t.Error("WaitAck succeeded without an ack")
	}
}

func TestDisconnectReconnects(t *testing.T) {
	srv := newServer(t, Options{DisconnectGrace: time.Minute})
	startBot(t, srv, ackAll)
	waitConnected(t, srv, 1)
	srv.Disconnect("refresh_requested")
	// The client must drop the old link itself and open a new one.
	srv.WaitFor(t, wait, "reconnection", func() bool { return srv.ConnectionsOpened() == 2 && srv.Connections() == 1 })
	e := srv.SlashCommand("U1", "C1", "/deploy", "after")
	if _, err := srv.WaitAck(e, wait); err != nil {
		t.Fatal(err)
	}
	requireNoRejections(t, srv)
}

func TestDroppedConnectionReconnects(t *testing.T) {
	srv := newServer(t, Options{})
	startBot(t, srv, ackAll)
	waitConnected(t, srv, 1)
	srv.DropConnections()
	srv.WaitFor(t, wait, "reconnection", func() bool { return srv.ConnectionsOpened() == 2 && srv.Connections() == 1 })
	e := srv.Click("U1", "C1", postButtons(t, srv), "approve", "")
	if _, err := srv.WaitAck(e, wait); err != nil {
		t.Fatal(err)
	}
}

func TestPingFramesKeepClientAlive(t *testing.T) {
	srv := newServer(t, Options{PingInterval: 25 * time.Millisecond})
	startBot(t, srv, ackAll, socketmode.OptionPingInterval(400*time.Millisecond))
	waitConnected(t, srv, 1)
	srv.WaitFor(t, wait, "pongs over two client ping intervals", func() bool { return srv.PongsReceived() >= 40 })
	if srv.ConnectionsOpened() != 1 || srv.PingsSent() < 40 {
		t.Errorf("opened %d connections, sent %d pings", srv.ConnectionsOpened(), srv.PingsSent())
	}

	// Without pings slack-go gives the link up and reconnects.
	quiet := newServer(t, Options{PingInterval: time.Hour})
	startBot(t, quiet, ackAll, socketmode.OptionPingInterval(100*time.Millisecond))
	quiet.WaitFor(t, wait, "reconnection after ping timeout", func() bool { return quiet.ConnectionsOpened() >= 2 })
}

func TestAuth(t *testing.T) {
	srv := newServer(t, Options{})
	at, err := apiClient(srv).AuthTest()
	if err != nil || at.UserID != DefaultBotUserID || at.BotID != DefaultBotID || at.TeamID != DefaultTeamID {
		t.Fatalf("auth.test = %+v, %v", at, err)
	}
	for _, tc := range []struct {
		token, method, want string
	}{
		{"xoxb-wrong", "auth.test", "invalid_auth"},
		{"", "auth.test", "not_authed"},
		{"xapp-test", "chat.postMessage", "not_allowed_token_type"},
		{"xoxb-test", "apps.connections.open", "not_allowed_token_type"},
		{"xoxb-test", "chat.noSuchMethod", "unknown_method"},
	} {
		got := postForm(t, srv, tc.method, map[string][]string{"token": {tc.token}, "channel": {"C1"}, "text": {"x"}})
		if got["ok"] != false || got["error"] != tc.want {
			t.Errorf("%s with %q = %v, want %s", tc.method, tc.token, got, tc.want)
		}
		if r := lastRejection(t, srv); r.Method != tc.method || r.Error != tc.want {
			t.Errorf("rejection = %+v", r)
		}
	}
	sm := socketmode.New(slack.New("xoxb-test", slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken("xapp-wrong")))
	if _, _, err := sm.Open(); slackErr(err) != "invalid_auth" {
		t.Errorf("open with a wrong app token: %v", err)
	}
	if srv.ConnectionsOpened() != 0 {
		t.Error("refused opens counted")
	}
}

var tsPattern = regexp.MustCompile(`^\d{10}\.\d{6}$`)

func TestPostUpdateThreadEphemeral(t *testing.T) {
	srv := newServer(t, Options{})
	api := apiClient(srv)
	ch, ts, err := api.PostMessage("C1", slack.MsgOptionText("deploy started", false))
	if err != nil || ch != "C1" || !tsPattern.MatchString(ts) {
		t.Fatalf("post = %s %s %v", ch, ts, err)
	}
	_, reply1, err := api.PostMessage("C1", slack.MsgOptionText("step 1", false), slack.MsgOptionTS(ts))
	if err != nil {
		t.Fatal(err)
	}
	_, reply2, err := api.PostMessage("C1", slack.MsgOptionText("step 2", false), slack.MsgOptionTS(reply1))
	if err != nil || !(reply1 > ts && reply2 > reply1) {
		t.Fatalf("replies %s %s after %s: %v", reply1, reply2, ts, err)
	}
	if ms := srv.Messages("C1"); len(ms) != 1 || ms[0].TS != ts || ms[0].User != DefaultBotUserID {
		t.Fatalf("messages = %+v", ms)
	}
	th := srv.Thread("C1", ts)
	if len(th) != 2 || th[0].Text != "step 1" || th[1].TS != reply2 || th[1].ThreadTS != ts {
		t.Fatalf("thread = %+v", th)
	}

	blocks := slack.MsgOptionBlocks(slack.NewSectionBlock(slack.NewTextBlockObject("mrkdwn", "*done*", false, false), nil, nil))
	if _, _, _, err := api.UpdateMessage("C1", ts, slack.MsgOptionText("deploy done", false), blocks); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := api.UpdateMessage("C1", ts, slack.MsgOptionText("deploy done", false)); err != nil {
		t.Fatal(err) // unchanged: keeps blocks, does not count
	}
	m, ok := srv.Message("C1", ts)
	if !ok || m.Text != "deploy done" || m.Edits != 1 || !strings.Contains(string(m.Blocks), `"*done*"`) ||
		!strings.Contains(string(m.Blocks), `"block_id"`) {
		t.Fatalf("updated = %+v (blocks %s)", m, m.Blocks)
	}

	link, err := api.GetPermalink(&slack.PermalinkParameters{Channel: "C1", Ts: reply1})
	want := "https://example.slack.com/archives/C1/p" + strings.ReplaceAll(reply1, ".", "") + "?thread_ts=" + ts + "&cid=C1"
	if err != nil || link != want {
		t.Errorf("permalink = %q, %v; want %q", link, err, want)
	}

	ets, err := api.PostEphemeral("C1", "U1", slack.MsgOptionText("only you", false))
	if err != nil || !tsPattern.MatchString(ets) {
		t.Fatal(ets, err)
	}
	if es := srv.Ephemerals("U1"); len(es) != 1 || es[0].Text != "only you" || !es[0].Ephemeral {
		t.Errorf("ephemerals = %+v", es)
	}

	// JSON bodies work like form bodies.
	if got := postJSON(t, srv, "chat.postMessage", "", `{"token":"xoxb-test","channel":"C1","text":"x"}`); got["error"] != "not_authed" {
		t.Errorf("token in a JSON body: %v", got)
	}
	srv.ClearRejected()
	got := postJSON(t, srv, "chat.postMessage", "xoxb-test",
		`{"channel":"C1","thread_ts":"`+ts+`","blocks":[{"type":"divider"}],"text":"json","unfurl_links":false}`)
	if got["ok"] != true {
		t.Fatalf("JSON post = %v", got)
	}
	if th := srv.Thread("C1", ts); len(th) != 3 || th[2].Text != "json" {
		t.Errorf("thread after JSON post = %+v", th)
	}
	requireNoRejections(t, srv)

	user := srv.PostUserMessage("U1", "C1", "hello", "")
	for _, tc := range []struct {
		ts, want string
	}{
		{"1.000001", "message_not_found"},
		{user.messageTS(t, srv), "cant_update_message"},
	} {
		_, _, _, err := api.UpdateMessage("C1", tc.ts, slack.MsgOptionText("x", false))
		if slackErr(err) != tc.want {
			t.Errorf("update %s: %v, want %s", tc.ts, err, tc.want)
		}
	}
	if _, _, err := api.PostMessage("C1", slack.MsgOptionText("x", false), slack.MsgOptionTS("1.000001")); slackErr(err) != "thread_not_found" {
		t.Errorf("reply to nothing: %v", err)
	}
	if srv.Calls("chat.update") != 4 || srv.Calls("chat.postMessage") != 6 {
		t.Errorf("calls: update %d, post %d", srv.Calls("chat.update"), srv.Calls("chat.postMessage"))
	}
}

// messageTS finds the ts of the message an events_api envelope announced.
func (e *Envelope) messageTS(t *testing.T, _ *Server) string {
	t.Helper()
	var p struct {
		Event struct {
			TS string `json:"ts"`
		} `json:"event"`
	}
	if err := json.Unmarshal(e.Payload, &p); err != nil || p.Event.TS == "" {
		t.Fatalf("no ts in %s: %v", e.Payload, err)
	}
	return p.Event.TS
}

func TestUserMessagesAndEvents(t *testing.T) {
	srv := newServer(t, Options{EchoBotMessages: true})
	bot := startBot(t, srv, ackAll)
	waitConnected(t, srv, 1)
	e := srv.PostUserMessage("U1", "C1", "deploy please", "")
	b := srv.PostUserMessage("", "C1", "alert!", "BSENTRY")
	r := srv.PostUserReply("U1", "C1", e.messageTS(t, srv), "in thread")
	for _, x := range []*Envelope{e, b, r} {
		if _, err := srv.WaitAck(x, wait); err != nil {
			t.Fatal(err)
		}
	}
	evs := bot.seen(socketmode.EventTypeEventsAPI)
	if len(evs) != 3 {
		t.Fatalf("events = %d", len(evs))
	}
	var msgs []*slackevents.MessageEvent
	for _, ev := range evs {
		api := ev.Data.(slackevents.EventsAPIEvent)
		if api.Type != slackevents.CallbackEvent {
			t.Fatalf("outer type %q", api.Type)
		}
		msgs = append(msgs, api.InnerEvent.Data.(*slackevents.MessageEvent))
	}
	if m := msgs[0]; m.User != "U1" || m.Text != "deploy please" || m.Channel != "C1" || m.BotID != "" || m.SubType != "" {
		t.Errorf("user message = %+v", m)
	}
	if m := msgs[1]; m.BotID != "BSENTRY" || m.SubType != "bot_message" || m.Text != "alert!" {
		t.Errorf("bot message = %+v", m)
	}
	if m := msgs[2]; m.ThreadTimeStamp != msgs[0].TimeStamp {
		t.Errorf("reply = %+v", m)
	}
	if ms := srv.Messages("C1"); len(ms) != 2 || ms[1].BotID != "BSENTRY" || len(srv.Thread("C1", ms[0].TS)) != 1 {
		t.Errorf("stored = %+v", ms)
	}

	// With EchoBotMessages the bot hears its own posts.
	if _, _, err := bot.api.PostMessage("C1", slack.MsgOptionText("mine", false)); err != nil {
		t.Fatal(err)
	}
	srv.WaitFor(t, wait, "echo", func() bool { return len(bot.seen(socketmode.EventTypeEventsAPI)) == 4 })
	echo := bot.seen(socketmode.EventTypeEventsAPI)[3].Data.(slackevents.EventsAPIEvent).InnerEvent.Data.(*slackevents.MessageEvent)
	if echo.User != DefaultBotUserID || echo.BotID != DefaultBotID || echo.Text != "mine" {
		t.Errorf("echo = %+v", echo)
	}
}

// postButtons posts a message with two buttons and returns its ts.
func postButtons(t *testing.T, srv *Server) string {
	t.Helper()
	approve := slack.NewButtonBlockElement("approve", "run-1:step-2", slack.NewTextBlockObject("plain_text", "Approve", true, false))
	approve.Style = slack.StylePrimary
	reject := slack.NewButtonBlockElement("reject:x", "run-1:step-2", slack.NewTextBlockObject("plain_text", "Reject", true, false))
	_, ts, err := apiClient(srv).PostMessage("C1", slack.MsgOptionText("Apply to prod?", false),
		slack.MsgOptionBlocks(
			slack.NewSectionBlock(slack.NewTextBlockObject("mrkdwn", "Apply to *prod*?", false, false), nil, nil),
			slack.NewActionBlock("", approve, reject)))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestClick(t *testing.T) {
	srv := newServer(t, Options{})
	var cb atomic.Value
	startBot(t, srv, func(b *testBot, ev socketmode.Event) {
		if ev.Type != socketmode.EventTypeInteractive {
			return
		}
		// Stored before the ack: the test reads it once the ack arrives.
		c := ev.Data.(slack.InteractionCallback)
		cb.Store(c)
		_ = b.sm.Ack(*ev.Request)
		_, _, _, _ = b.api.SendMessage("", slack.MsgOptionResponseURL(c.ResponseURL, slack.ResponseTypeEphemeral),
			slack.MsgOptionText("approved by "+c.User.ID, false))
		_, _, _, _ = b.api.UpdateMessage(c.Channel.ID, c.Container.MessageTs, slack.MsgOptionText("approved", false),
			slack.MsgOptionBlocks())
	})
	waitConnected(t, srv, 1)
	ts := postButtons(t, srv)
	e := srv.Click("U1", "C1", ts, "approve", "")
	if _, err := srv.WaitAck(e, wait); err != nil {
		t.Fatal(err)
	}
	srv.WaitFor(t, wait, "response and edit", func() bool {
		m, _ := srv.Message("C1", ts)
		return len(srv.Responses(e)) == 1 && m.Edits == 1
	})
	c := cb.Load().(slack.InteractionCallback)
	if c.Type != slack.InteractionTypeBlockActions || c.User.ID != "U1" || c.User.Name != "alice" ||
		c.Channel.ID != "C1" || c.Channel.Name != "deploys" || c.Container.Type != "message" ||
		c.Container.MessageTs != ts || c.Container.ChannelID != "C1" || c.Message.Timestamp != ts ||
		c.Message.Text != "Apply to prod?" || len(c.Message.Blocks.BlockSet) != 2 || c.Team.ID != DefaultTeamID ||
		c.APIAppID != DefaultAppID || c.TriggerID == "" || c.ResponseURL != e.ResponseURL {
		t.Errorf("callback = %+v", c)
	}
	acts := c.ActionCallback.BlockActions
	if len(acts) != 1 || acts[0].ActionID != "approve" || acts[0].Value != "run-1:step-2" || acts[0].BlockID == "" ||
		acts[0].Type != "button" || acts[0].Text.Text != "Approve" || acts[0].ActionTs == "" {
		t.Errorf("actions = %+v", acts)
	}
	if m, _ := srv.Message("C1", ts); m.Text != "approved" || len(m.Blocks) != 0 {
		t.Errorf("after edit: %+v", m)
	}
	requireNoRejections(t, srv)

	// A bare verb finds "verb:…" action ids.
	ts2 := postButtons(t, srv)
	e2 := srv.Click("U1", "C1", ts2, "reject", "run-1:step-2")
	if _, err := srv.WaitAck(e2, wait); err != nil {
		t.Fatal(err)
	}
	if c := cb.Load().(slack.InteractionCallback); c.ActionCallback.BlockActions[0].ActionID != "reject:x" {
		t.Errorf("verb click = %+v", c.ActionCallback.BlockActions[0])
	}
	if m, _ := srv.Message("C1", ts); m.Text != "approved" || len(m.Blocks) != 0 {
		t.Errorf("after edit: %+v", m)
	}
	requireNoRejections(t, srv)

	// A stale view still shows the buttons the edit removed.
	stale := srv.Click("U1", "C1", ts, "approve", "")
	if _, err := srv.WaitAck(stale, wait); err != nil {
		t.Fatal(err)
	}
	if c := cb.Load().(slack.InteractionCallback); c.ActionCallback.BlockActions[0].ActionID != "approve" ||
		len(c.Message.Blocks.BlockSet) != 0 {
		t.Errorf("stale click = %+v", c)
	}
	requireNoRejections(t, srv)

	// Buttons that never were there cannot be clicked.
	for _, bad := range []*Envelope{
		srv.Click("U1", "C1", ts, "deploy", ""),
		srv.Click("U1", "C1", ts2, "approve", "other-value"),
		srv.Click("U1", "C1", "1.000001", "approve", ""),
	} {
		if _, err := srv.WaitAck(bad, time.Millisecond); err == nil {
			t.Error("click on a missing button was delivered")
		}
	}
	if n := len(srv.Rejected()); n != 3 {
		t.Errorf("rejections = %+v", srv.Rejected())
	}
}

func TestClickOnEphemeralAndReplaceOriginal(t *testing.T) {
	srv := newServer(t, Options{})
	var cb atomic.Value
	startBot(t, srv, func(b *testBot, ev socketmode.Event) {
		if ev.Type == socketmode.EventTypeInteractive {
			c := ev.Data.(slack.InteractionCallback)
			cb.Store(c)
			_ = b.sm.Ack(*ev.Request)
			_, _, _, _ = b.api.SendMessage("", slack.MsgOptionReplaceOriginal(c.ResponseURL), slack.MsgOptionText("confirmed", false))
		}
	})
	waitConnected(t, srv, 1)
	confirm := slack.NewButtonBlockElement("confirm", "v", slack.NewTextBlockObject("plain_text", "Confirm", false, false))
	ets, err := apiClient(srv).PostEphemeral("C1", "U1", slack.MsgOptionText("sure?", false),
		slack.MsgOptionBlocks(slack.NewActionBlock("b1", confirm)))
	if err != nil {
		t.Fatal(err)
	}
	e := srv.Click("U1", "C1", ets, "confirm", "v")
	if _, err := srv.WaitAck(e, wait); err != nil {
		t.Fatal(err)
	}
	srv.WaitFor(t, wait, "replaced ephemeral", func() bool { return len(srv.Responses(e)) == 1 })
	c := cb.Load().(slack.InteractionCallback)
	if !c.Container.IsEphemeral || c.ActionCallback.BlockActions[0].BlockID != "b1" {
		t.Errorf("callback = %+v", c)
	}
	if es := srv.Ephemerals("U1"); len(es) != 1 || es[0].Text != "confirmed" || es[0].Edits != 1 || len(es[0].Blocks) != 0 {
		t.Errorf("ephemerals = %+v", es)
	}
	requireNoRejections(t, srv)
}

func TestResponseURLUseLimit(t *testing.T) {
	srv := newServer(t, Options{})
	e := srv.SlashCommand("U1", "C1", "/deploy", "x") // no bot needed to use its response_url
	api := apiClient(srv)
	send := func(text string) error {
		_, _, _, err := api.SendMessage("", slack.MsgOptionResponseURL(e.ResponseURL, slack.ResponseTypeEphemeral),
			slack.MsgOptionText(text, false))
		return err
	}
	for i := range 5 {
		if err := send("update"); err != nil {
			t.Fatalf("use %d: %v", i+1, err)
		}
	}
	err := send("one too many")
	var sce slack.StatusCodeError
	if !asStatus(err, &sce) || sce.Code != http.StatusNotFound {
		t.Fatalf("sixth use: %v", err)
	}
	if r := lastRejection(t, srv); r.Method != "response_url" || r.Error != "used_url" {
		t.Errorf("rejection = %+v", r)
	}
	if len(srv.Responses(e)) != 5 || srv.ResponseURLUses(e) != 5 {
		t.Errorf("responses = %d", len(srv.Responses(e)))
	}

	expired := newServer(t, Options{ResponseURLTTL: time.Nanosecond})
	e2 := expired.SlashCommand("U1", "C1", "/deploy", "x")
	_, _, _, err = apiClient(expired).SendMessage("", slack.MsgOptionResponseURL(e2.ResponseURL, slack.ResponseTypeInChannel),
		slack.MsgOptionText("late", false))
	if !asStatus(err, &sce) || lastRejection(t, expired).Error != "expired_url" {
		t.Errorf("expired url: %v", err)
	}
}

func asStatus(err error, target *slack.StatusCodeError) bool {
	se, ok := err.(slack.StatusCodeError)
	if ok {
		*target = se
	}
	return ok
}

func TestInChannelResponse(t *testing.T) {
	srv := newServer(t, Options{})
	e := srv.SlashCommand("U1", "C1", "/deploy", "x")
	_, _, _, err := apiClient(srv).SendMessage("", slack.MsgOptionResponseURL(e.ResponseURL, slack.ResponseTypeInChannel),
		slack.MsgOptionText("everyone sees this", false))
	if err != nil {
		t.Fatal(err)
	}
	if ms := srv.Messages("C1"); len(ms) != 1 || ms[0].Text != "everyone sees this" || ms[0].Ephemeral {
		t.Errorf("messages = %+v", ms)
	}
}
