package slacktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

func postText(t *testing.T, api *slack.Client, channel, text string, opts ...slack.MsgOption) string {
	t.Helper()
	_, ts, err := api.PostMessage(channel, append([]slack.MsgOption{slack.MsgOptionText(text, false)}, opts...)...)
	if err != nil {
		t.Fatalf("posting %q: %v", text, err)
	}
	return ts
}

func texts(msgs []slack.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Text
	}
	return out
}

func TestMessageMetadataRoundTrip(t *testing.T) {
	srv := newServer(t, Options{})
	api := apiClient(srv)
	ctx := context.Background()
	parentTS := postText(t, api, "C1", "deploying", slack.MsgOptionMetadata(slack.SlackMetadata{
		EventType: "deploy_started", EventPayload: map[string]any{"key": "dep-42", "attempt": 1}}))
	postText(t, api, "C1", "step 1", slack.MsgOptionTS(parentTS), slack.MsgOptionMetadata(slack.SlackMetadata{
		EventType: "deploy-step", EventPayload: map[string]any{"key": "dep-42/1", "nested": map[string]any{"ok": true}}}))
	postText(t, api, "C1", "a plain note", slack.MsgOptionTS(parentTS))

	if m, _ := srv.Message("C1", parentTS); string(m.Metadata) != `{"event_type":"deploy_started","event_payload":{"attempt":1,"key":"dep-42"}}` {
		t.Errorf("stored metadata = %s", m.Metadata)
	}
	msgs, hasMore, next, err := api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
		ChannelID: "C1", Timestamp: parentTS, IncludeAllMetadata: true})
	if err != nil || hasMore || next != "" || len(msgs) != 3 {
		t.Fatalf("replies = %v, %v, %q, %v", texts(msgs), hasMore, next, err)
	}
	if md := msgs[0].Metadata; md.EventType != "deploy_started" || md.EventPayload["key"] != "dep-42" || md.EventPayload["attempt"] != float64(1) {
		t.Errorf("parent metadata = %+v", md)
	}
	if md := msgs[1].Metadata; md.EventType != "deploy-step" || md.EventPayload["key"] != "dep-42/1" ||
		md.EventPayload["nested"].(map[string]any)["ok"] != true {
		t.Errorf("reply metadata = %+v", md)
	}
	if md := msgs[2].Metadata; md.EventType != "" || md.EventPayload != nil {
		t.Errorf("plain reply has metadata %+v", md)
	}
	if msgs[0].ReplyCount != 2 || msgs[1].ThreadTimestamp != parentTS || msgs[0].BotID != DefaultBotID {
		t.Errorf("thread fields: %+v", msgs[:2])
	}

	// Without include_all_metadata, Slack leaves metadata out.
	msgs, _, _, err = api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
		ChannelID: "C1", Timestamp: parentTS})
	if err != nil || len(msgs) != 3 {
		t.Fatalf("replies = %v, %v", texts(msgs), err)
	}
	for _, m := range msgs {
		if m.Metadata.EventType != "" || m.Metadata.EventPayload != nil {
			t.Errorf("metadata without include_all_metadata: %+v", m.Metadata)
		}
	}
	h, err := api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: "C1", IncludeAllMetadata: true})
	if err != nil || len(h.Messages) != 1 || h.Messages[0].Metadata.EventType != "deploy_started" {
		t.Fatalf("history = %+v, %v", h, err)
	}
	h, err = api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: "C1"})
	if err != nil || len(h.Messages) != 1 || h.Messages[0].Metadata.EventType != "" {
		t.Fatalf("history without metadata = %+v, %v", h, err)
	}

	// A JSON body carries metadata as an object.
	r := postJSON(t, srv, "chat.postMessage", srv.BotToken(),
		`{"channel":"C1","text":"json","metadata":{"event_type":"via_json","event_payload":{"n":2}}}`)
	if r["ok"] != true {
		t.Fatalf("JSON post = %v", r)
	}
	jsonTS := r["ts"].(string)
	if m, _ := srv.Message("C1", jsonTS); string(m.Metadata) != `{"event_type":"via_json","event_payload":{"n":2}}` {
		t.Errorf("JSON metadata = %s", m.Metadata)
	}
	if md, _ := r["message"].(map[string]any)["metadata"].(map[string]any); md["event_type"] != "via_json" {
		t.Errorf("chat.postMessage answer's message = %v", r["message"])
	}

	// chat.update keeps metadata it does not mention, and replaces it when it does.
	if _, _, _, err := api.UpdateMessage("C1", parentTS, slack.MsgOptionText("deployed", false)); err != nil {
		t.Fatal(err)
	}
	if m, _ := srv.Message("C1", parentTS); !strings.Contains(string(m.Metadata), "dep-42") {
		t.Errorf("metadata after chat.update = %s", m.Metadata)
	}
	if _, _, _, err := api.UpdateMessage("C1", parentTS, slack.MsgOptionText("deployed", false),
		slack.MsgOptionMetadata(slack.SlackMetadata{EventType: "deploy_done", EventPayload: map[string]any{}})); err != nil {
		t.Fatal(err)
	}
	if m, _ := srv.Message("C1", parentTS); string(m.Metadata) != `{"event_type":"deploy_done","event_payload":{}}` {
		t.Errorf("metadata after chat.update with metadata = %s", m.Metadata)
	}
	if r := postForm(t, srv, "chat.update", url.Values{"token": {srv.BotToken()}, "channel": {"C1"}, "ts": {parentTS},
		"text": {"deployed"}, "metadata": {"{}"}}); r["ok"] != true {
		t.Fatalf("chat.update removing metadata = %v", r)
	}
	if m, _ := srv.Message("C1", parentTS); m.Metadata != nil {
		t.Errorf("metadata after chat.update with {} = %s", m.Metadata)
	}
	if m, _ := srv.Message("C1", postText(t, api, "C1", "no metadata")); m.Metadata != nil {
		t.Errorf("message without metadata has %s", m.Metadata)
	}
	requireNoRejections(t, srv)
}

func TestInvalidMetadataRefused(t *testing.T) {
	srv := newServer(t, Options{})
	for _, meta := range []string{
		`not json`,
		`[]`,
		`"deploy"`,
		`null`,
		`{"event_payload":{"k":1}}`,
		`{"event_type":"","event_payload":{}}`,
		`{"event_type":7,"event_payload":{}}`,
		`{"event_type":null,"event_payload":{}}`,
		`{"event_type":"deploy"}`,
		`{"event_type":"deploy","event_payload":null}`,
		`{"event_type":"deploy","event_payload":"k=1"}`,
		`{"event_type":"deploy","event_payload":[1]}`,
	} {
		r := postForm(t, srv, "chat.postMessage", url.Values{"token": {srv.BotToken()}, "channel": {"C1"},
			"text": {"x"}, "metadata": {meta}})
		if r["ok"] != false || r["error"] != "invalid_metadata_format" {
			t.Errorf("metadata %s: %v", meta, r)
		}
		if rej := lastRejection(t, srv); rej.Method != "chat.postMessage" || rej.Error != "invalid_metadata_format" {
			t.Errorf("metadata %s: rejection %+v", meta, rej)
		}
	}
	// slack-go sends an empty SlackMetadata as {"event_type":"","event_payload":null}.
	_, _, err := apiClient(srv).PostMessage("C1", slack.MsgOptionText("x", false), slack.MsgOptionMetadata(slack.SlackMetadata{}))
	if slackErr(err) != "invalid_metadata_format" {
		t.Errorf("empty SlackMetadata: %v", err)
	}
	if n := len(srv.Messages("C1")); n != 0 {
		t.Fatalf("%d refused messages were stored", n)
	}

	// An event_type outside letters, digits, _ and - is not refused: Slack
	// posts the message, drops the metadata and only warns.
	srv.ClearRejected()
	for _, et := range []string{"deploy.started", "deploy started", strings.Repeat("a", 256)} {
		meta, _ := json.Marshal(map[string]any{"event_type": et, "event_payload": map[string]any{"k": 1}})
		r := postForm(t, srv, "chat.postMessage", url.Values{"token": {srv.BotToken()}, "channel": {"C1"},
			"text": {"x"}, "metadata": {string(meta)}})
		if r["ok"] != true || r["warning"] != "invalid_metadata_schema" {
			t.Errorf("event_type %q: %v", et, r)
			continue
		}
		if m, ok := srv.Message("C1", r["ts"].(string)); !ok || m.Metadata != nil {
			t.Errorf("event_type %q: stored %+v", et, m)
		}
		if rej := lastRejection(t, srv); rej.Error != "invalid_metadata_schema" {
			t.Errorf("event_type %q: rejection %+v", et, rej)
		}
	}
	if n := len(srv.Rejected()); n != 3 {
		t.Errorf("%d rejections, want 3", n)
	}
}

func TestRepliesPaging(t *testing.T) {
	srv := newServer(t, Options{})
	srv.SetRateLimit(100, 100) // dozens of posts in a moment; not what is tested here
	api := apiClient(srv)
	ctx := context.Background()
	parentTS := postText(t, api, "C1", "parent")
	var replyTS []string
	for i := range 25 {
		replyTS = append(replyTS, postText(t, api, "C1", fmt.Sprintf("reply %02d", i), slack.MsgOptionTS(parentTS)))
	}
	postText(t, api, "C1", "another thread") // not part of it

	want := []string{"parent"}
	for i := range 25 {
		want = append(want, fmt.Sprintf("reply %02d", i))
	}
	for _, tc := range []struct {
		limit int
		pages []int
	}{
		{0, []int{15, 11}},     // Slack's default (Options.PageLimit)
		{10, []int{10, 10, 6}}, // asked for
		{100, []int{15, 11}},   // capped: fewer than asked, with a cursor
		{1, nil},               // the parent alone, then one reply a page
	} {
		var got []string
		var sizes []int
		cursor := ""
		for page := 0; ; page++ {
			if page > 30 {
				t.Fatalf("limit %d: paging does not end", tc.limit)
			}
			msgs, hasMore, next, err := api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
				ChannelID: "C1", Timestamp: parentTS, Limit: tc.limit, Cursor: cursor})
			if err != nil {
				t.Fatalf("limit %d page %d: %v", tc.limit, page, err)
			}
			got = append(got, texts(msgs)...)
			sizes = append(sizes, len(msgs))
			if hasMore != (next != "") {
				t.Fatalf("limit %d page %d: has_more %v with next_cursor %q", tc.limit, page, hasMore, next)
			}
			if !hasMore {
				break
			}
			cursor = next
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("limit %d: got %v", tc.limit, got)
		}
		if tc.limit == 1 {
			for range 26 {
				tc.pages = append(tc.pages, 1)
			}
		}
		if fmt.Sprint(sizes) != fmt.Sprint(tc.pages) {
			t.Errorf("limit %d: pages of %v, want %v", tc.limit, sizes, tc.pages)
		}
	}

	// A reply's ts stands for its thread; oldest and inclusive filter the replies.
	msgs, _, _, err := api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
		ChannelID: "C1", Timestamp: replyTS[3], Oldest: replyTS[20], Inclusive: true})
	if err != nil || strings.Join(texts(msgs), "|") != "parent|reply 20|reply 21|reply 22|reply 23|reply 24" {
		t.Errorf("replies from reply 20 = %v, %v", texts(msgs), err)
	}
	msgs, _, _, err = api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
		ChannelID: "C1", Timestamp: parentTS, Oldest: replyTS[20], Latest: replyTS[23]})
	if err != nil || strings.Join(texts(msgs), "|") != "parent|reply 21|reply 22" {
		t.Errorf("replies between 20 and 23 = %v, %v", texts(msgs), err)
	}
	// An unthreaded message is a thread of one.
	lone := postText(t, api, "C1", "lone")
	if msgs, more, _, err := api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
		ChannelID: "C1", Timestamp: lone}); err != nil || more || len(msgs) != 1 || msgs[0].Text != "lone" {
		t.Errorf("lone message replies = %v, %v, %v", texts(msgs), more, err)
	}
	requireNoRejections(t, srv)

	for _, tc := range []struct {
		p    slack.GetConversationRepliesParameters
		code string
	}{
		{slack.GetConversationRepliesParameters{ChannelID: "C1", Timestamp: "1500000000.000001"}, "thread_not_found"},
		{slack.GetConversationRepliesParameters{ChannelID: "C404", Timestamp: parentTS}, "channel_not_found"},
		{slack.GetConversationRepliesParameters{ChannelID: "C1"}, "invalid_arguments"},
		{slack.GetConversationRepliesParameters{ChannelID: "C1", Timestamp: parentTS, Cursor: "not-a-cursor"}, "invalid_cursor"},
		{slack.GetConversationRepliesParameters{ChannelID: "C1", Timestamp: parentTS, Oldest: "yesterday"}, "invalid_ts_oldest"},
	} {
		_, _, _, err := api.GetConversationRepliesContext(ctx, &tc.p)
		if slackErr(err) != tc.code {
			t.Errorf("%+v: %v, want %s", tc.p, err, tc.code)
		}
		if rej := lastRejection(t, srv); rej.Method != "conversations.replies" || rej.Error != tc.code {
			t.Errorf("%+v: rejection %+v", tc.p, rej)
		}
	}
}

func TestHistoryNewestFirst(t *testing.T) {
	srv := newServer(t, Options{})
	srv.SetRateLimit(100, 100) // dozens of posts in a moment; not what is tested here
	api := apiClient(srv)
	ctx := context.Background()
	var ts []string
	for i := range 5 {
		ts = append(ts, postText(t, api, "C1", fmt.Sprintf("m%d", i)))
	}
	postText(t, api, "C1", "in thread only", slack.MsgOptionTS(ts[0]))
	postText(t, api, "C1", "broadcast", slack.MsgOptionTS(ts[0]), slack.MsgOptionBroadcast())
	srv.PostUserMessage("U1", "C1", "from alice", "")

	history := func(p slack.GetConversationHistoryParameters) (*slack.GetConversationHistoryResponse, string) {
		t.Helper()
		p.ChannelID = "C1"
		h, err := api.GetConversationHistoryContext(ctx, &p)
		if err != nil {
			t.Fatalf("history %+v: %v", p, err)
		}
		return h, strings.Join(texts(h.Messages), "|")
	}
	h, got := history(slack.GetConversationHistoryParameters{})
	if got != "from alice|broadcast|m4|m3|m2|m1|m0" || h.HasMore {
		t.Errorf("history = %s (has_more %v)", got, h.HasMore)
	}
	if m0 := h.Messages[len(h.Messages)-1]; m0.ReplyCount != 2 || m0.ThreadTimestamp != ts[0] {
		t.Errorf("thread parent in history = %+v", m0.Msg)
	}
	if _, got := history(slack.GetConversationHistoryParameters{Oldest: ts[2]}); got != "from alice|broadcast|m4|m3" {
		t.Errorf("oldest m2 = %s", got)
	}
	if _, got := history(slack.GetConversationHistoryParameters{Oldest: ts[2], Inclusive: true}); got != "from alice|broadcast|m4|m3|m2" {
		t.Errorf("oldest m2 inclusive = %s", got)
	}
	if _, got := history(slack.GetConversationHistoryParameters{Oldest: ts[1], Latest: ts[3]}); got != "m2" {
		t.Errorf("between m1 and m3 = %s", got)
	}
	if _, got := history(slack.GetConversationHistoryParameters{Latest: ts[1], Inclusive: true}); got != "m1|m0" {
		t.Errorf("latest m1 inclusive = %s", got)
	}

	var pages []string
	cursor := ""
	for {
		h, got := history(slack.GetConversationHistoryParameters{Limit: 3, Cursor: cursor})
		pages = append(pages, got)
		if !h.HasMore {
			if h.ResponseMetaData.NextCursor != "" {
				t.Errorf("last page has next_cursor %q", h.ResponseMetaData.NextCursor)
			}
			break
		}
		cursor = h.ResponseMetaData.NextCursor
	}
	if strings.Join(pages, " / ") != "from alice|broadcast|m4 / m3|m2|m1 / m0" {
		t.Errorf("pages = %q", pages)
	}
	// The default page is Options.PageLimit.
	for i := range 20 {
		postText(t, api, "C1", fmt.Sprintf("n%d", i))
	}
	if h, _ := history(slack.GetConversationHistoryParameters{}); len(h.Messages) != 15 || !h.HasMore ||
		h.Messages[0].Text != "n19" {
		t.Errorf("default page: %d messages, has_more %v", len(h.Messages), h.HasMore)
	}
	requireNoRejections(t, srv)

	for p, code := range map[slack.GetConversationHistoryParameters]string{
		{ChannelID: "C404"}:                   "channel_not_found",
		{ChannelID: "C1", Oldest: "abc"}:      "invalid_ts_oldest",
		{ChannelID: "C1", Latest: "-1"}:       "invalid_ts_latest",
		{ChannelID: "C1", Cursor: "bm9wZQ=="}: "invalid_cursor",
	} {
		if _, err := api.GetConversationHistoryContext(ctx, &p); slackErr(err) != code {
			t.Errorf("%+v: %v, want %s", p, err, code)
		}
	}
}

func TestLoseResponsesPerformsTheCall(t *testing.T) {
	for _, mode := range []LossMode{Answer504, DropConnection} {
		t.Run(mode.String(), func(t *testing.T) {
			srv := newServer(t, Options{})
			api := apiClient(srv)
			srv.LoseResponses("chat.postMessage", 1, mode)
			_, _, err := api.PostMessage("C1", slack.MsgOptionText("deploying dep-42", false),
				slack.MsgOptionMetadata(slack.SlackMetadata{EventType: "deploy", EventPayload: map[string]any{"key": "dep-42"}}))
			if err == nil {
				t.Fatal("the lost answer reached slack-go")
			}
			switch mode {
			case Answer504:
				var sce slack.StatusCodeError
				if !asStatus(err, &sce) || sce.Code != 504 {
					t.Errorf("error = %#v", err)
				}
			case DropConnection:
				if !strings.Contains(err.Error(), "EOF") {
					t.Errorf("error = %v", err)
				}
			}
			msgs := srv.Messages("C1")
			if len(msgs) != 1 || msgs[0].Text != "deploying dep-42" {
				t.Fatalf("messages = %+v", msgs)
			}
			f := srv.Faults()
			if len(f) != 1 || f[0].Method != "chat.postMessage" || f[0].Mode != mode || !f[0].Performed {
				t.Fatalf("faults = %+v", f)
			}
			if want := map[LossMode]int{Answer504: 504, DropConnection: 0}[mode]; f[0].Status != want {
				t.Errorf("fault status %d, want %d", f[0].Status, want)
			}
			var lost struct {
				OK bool   `json:"ok"`
				TS string `json:"ts"`
			}
			if err := json.Unmarshal(f[0].Lost, &lost); err != nil || !lost.OK || lost.TS != msgs[0].TS {
				t.Errorf("lost answer %s (%v)", f[0].Lost, err)
			}
			// The bot can find out what happened: its message carries its key.
			h, err := api.GetConversationHistoryContext(context.Background(), &slack.GetConversationHistoryParameters{
				ChannelID: "C1", IncludeAllMetadata: true})
			if err != nil || len(h.Messages) != 1 || h.Messages[0].Metadata.EventPayload["key"] != "dep-42" {
				t.Errorf("history after the lost answer = %+v, %v", h, err)
			}
			// Only the next call was affected.
			postText(t, api, "C1", "next")
			if len(srv.Messages("C1")) != 2 || len(srv.Faults()) != 1 || srv.Calls("chat.postMessage") != 2 {
				t.Errorf("after the fault: %d messages, %d faults", len(srv.Messages("C1")), len(srv.Faults()))
			}
			requireNoRejections(t, srv)
		})
	}

	// slack-go's connection retry handler resends after a dropped
	// connection: the same message twice, which is what an idempotency key
	// must prevent.
	srv := newServer(t, Options{})
	srv.LoseResponses("chat.postMessage", 1, DropConnection)
	api := apiClient(srv, slack.OptionRetryConfig(slack.RetryConfig{MaxRetries: 1,
		BackoffInitial: time.Millisecond, Handlers: slack.ConnectionOnlyRetryHandlers()}))
	if _, _, err := api.PostMessage("C1", slack.MsgOptionText("once?", false)); err != nil {
		t.Fatal(err)
	}
	if msgs := srv.Messages("C1"); len(msgs) != 2 {
		t.Errorf("with OptionRetry: %d messages", len(msgs))
	}
}

func TestFailNextDoesNotPerform(t *testing.T) {
	srv := newServer(t, Options{})
	api := apiClient(srv)
	srv.FailNext("chat.postMessage", 2, 503)
	for range 2 {
		_, _, err := api.PostMessage("C1", slack.MsgOptionText("x", false))
		var sce slack.StatusCodeError
		if !asStatus(err, &sce) || sce.Code != 503 {
			t.Errorf("error = %#v", err)
		}
	}
	if n := len(srv.Messages("C1")); n != 0 {
		t.Fatalf("%d messages stored by failed calls", n)
	}
	postText(t, api, "C1", "third")
	if n := len(srv.Messages("C1")); n != 1 || srv.Calls("chat.postMessage") != 3 {
		t.Errorf("%d messages after %d calls", n, srv.Calls("chat.postMessage"))
	}

	srv.FailNext("chat.postMessage", 1, 429)
	_, _, err := api.PostMessage("C1", slack.MsgOptionText("x", false))
	var rle *slack.RateLimitedError
	if !errors.As(err, &rle) || rle.RetryAfter != time.Second {
		t.Errorf("429: %#v", err)
	}

	// Faults queue in order: a lost answer, then an outage.
	srv.LoseResponses("chat.postMessage", 1, Answer504)
	srv.FailNext("chat.postMessage", 1, 500)
	for range 2 {
		if _, _, err := api.PostMessage("C1", slack.MsgOptionText("queued", false)); err == nil {
			t.Error("no error")
		}
	}
	if n := len(srv.Messages("C1")); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
	srv.FailNext("conversations.replies", 1, 502)
	if _, _, _, err := api.GetConversationReplies(&slack.GetConversationRepliesParameters{ChannelID: "C1",
		Timestamp: srv.Messages("C1")[0].TS}); err == nil {
		t.Error("conversations.replies did not fail")
	}
	var got []string
	for _, f := range srv.Faults() {
		got = append(got, fmt.Sprintf("%s:%v:%d:%v", f.Method, f.Mode, f.Status, f.Performed))
	}
	want := "chat.postMessage:none:503:false chat.postMessage:none:503:false " +
		"chat.postMessage:none:429:false chat.postMessage:Answer504:504:true " +
		"chat.postMessage:none:500:false conversations.replies:none:502:false"
	if strings.Join(got, " ") != want {
		t.Errorf("faults = %v", got)
	}
	requireNoRejections(t, srv)
}
