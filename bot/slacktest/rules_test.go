package slacktest

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject("plain_text", s, false, false)
}
func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject("mrkdwn", s, false, false)
}
func section(s string) slack.Block { return slack.NewSectionBlock(mrkdwn(s), nil, nil) }
func btnEl(id, value, text string) *slack.ButtonBlockElement {
	return slack.NewButtonBlockElement(id, value, plain(text))
}

func sections(n int) []slack.Block {
	bs := make([]slack.Block, n)
	for i := range bs {
		bs[i] = section(fmt.Sprint(i))
	}
	return bs
}

func buttons(n int) []slack.BlockElement {
	es := make([]slack.BlockElement, n)
	for i := range es {
		es[i] = btnEl(fmt.Sprintf("approve:%d", i), "v", "Go")
	}
	return es
}

func TestMessageRules(t *testing.T) {
	long := func(n int) string { return strings.Repeat("é", n) } // characters, not bytes
	withID := func(b *slack.SectionBlock, id string) *slack.SectionBlock { b.BlockID = id; return b }
	for _, tc := range []struct {
		name    string
		channel string
		opts    []slack.MsgOption
		want    string // "" accepted
		detail  string
	}{
		{"unknown channel", "C404", []slack.MsgOption{slack.MsgOptionText("x", false)}, "channel_not_found", ""},
		{"channel by name", "#deploys", []slack.MsgOption{slack.MsgOptionText("x", false)}, "", ""},
		{"no text", "", nil, "no_text", ""},
		{"50 blocks", "", []slack.MsgOption{slack.MsgOptionBlocks(sections(50)...)}, "", ""},
		{"51 blocks", "", []slack.MsgOption{slack.MsgOptionBlocks(sections(51)...)}, "invalid_blocks", "too_many_blocks"},
		{"section 3000", "", []slack.MsgOption{slack.MsgOptionBlocks(section(long(3000)))}, "", ""},
		{"section 3001", "", []slack.MsgOption{slack.MsgOptionBlocks(section(long(3001)))}, "invalid_blocks", "/blocks/0/text/text"},
		{"header 150", "", []slack.MsgOption{slack.MsgOptionBlocks(slack.NewHeaderBlock(plain(long(150))))}, "", ""},
		{"header 151", "", []slack.MsgOption{slack.MsgOptionBlocks(slack.NewHeaderBlock(plain(long(151))))}, "invalid_blocks", "less than 151"},
		{"mrkdwn header", "", []slack.MsgOption{slack.MsgOptionBlocks(slack.NewHeaderBlock(mrkdwn("x")))}, "invalid_blocks", "/blocks/0/text/type"},
		{"25 elements", "", []slack.MsgOption{slack.MsgOptionBlocks(slack.NewActionBlock("", buttons(25)...))}, "", ""},
		{"26 elements", "", []slack.MsgOption{slack.MsgOptionBlocks(slack.NewActionBlock("", buttons(26)...))}, "invalid_blocks", "/blocks/0/elements"},
		{"block_id 255", "", []slack.MsgOption{slack.MsgOptionBlocks(withID(slack.NewSectionBlock(mrkdwn("x"), nil, nil), long(255)))}, "", ""},
		{"block_id 256", "", []slack.MsgOption{slack.MsgOptionBlocks(withID(slack.NewSectionBlock(mrkdwn("x"), nil, nil), long(256)))}, "invalid_blocks", "block_id"},
		{"duplicate block_id", "", []slack.MsgOption{slack.MsgOptionBlocks(
			withID(slack.NewSectionBlock(mrkdwn("x"), nil, nil), "a"), slack.NewActionBlock("a", btnEl("ok", "", "OK")))}, "invalid_blocks", "duplicate"},
		{"button text 76", "", []slack.MsgOption{slack.MsgOptionBlocks(slack.NewActionBlock("", btnEl("a", "", long(76))))}, "invalid_blocks", "/blocks/0/elements/0/text/text"},
		{"action_id 256", "", []slack.MsgOption{slack.MsgOptionBlocks(slack.NewActionBlock("", btnEl(long(256), "", "x")))}, "invalid_blocks", "action_id"},
		{"value 2001", "", []slack.MsgOption{slack.MsgOptionBlocks(slack.NewActionBlock("", btnEl("a", long(2001), "x")))}, "invalid_blocks", "value"},
		{"button without text", "", []slack.MsgOption{slack.MsgOptionBlocks(slack.NewActionBlock("", &slack.ButtonBlockElement{Type: "button", ActionID: "a"}))}, "invalid_blocks", "text"},
		{"section without text", "", []slack.MsgOption{slack.MsgOptionBlocks(slack.NewSectionBlock(nil, nil, nil))}, "invalid_blocks", "missing required field: text"},
		{"empty section text", "", []slack.MsgOption{slack.MsgOptionBlocks(section(""))}, "invalid_blocks", "more than 0"},
		{"section with fields", "", []slack.MsgOption{slack.MsgOptionBlocks(slack.NewSectionBlock(nil, []*slack.TextBlockObject{mrkdwn("a"), mrkdwn("b")}, nil))}, "", ""},
		{"text 40000", "", []slack.MsgOption{slack.MsgOptionText(long(40000), false)}, "", ""},
		{"text 40001", "", []slack.MsgOption{slack.MsgOptionText(long(40001), false)}, "msg_too_long", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, Options{})
			ch := tc.channel
			if ch == "" {
				ch = "C1"
			}
			_, _, err := apiClient(srv).PostMessage(ch, tc.opts...)
			if got := slackErr(err); got != tc.want {
				t.Fatalf("error = %q, want %q", got, tc.want)
			}
			if tc.want == "" {
				requireNoRejections(t, srv)
				return
			}
			r := lastRejection(t, srv)
			if r.Method != "chat.postMessage" || r.Error != tc.want || !strings.Contains(r.Detail, tc.detail) {
				t.Errorf("rejection = %+v, want detail containing %q", r, tc.detail)
			}
			if tc.want == "invalid_blocks" {
				var se slack.SlackErrorResponse
				if !errors.As(err, &se) || len(se.ResponseMetadata.Messages) == 0 || len(se.Errors) == 0 {
					t.Errorf("no Slack-style error details in %#v", err)
				}
			}
		})
	}
}

func TestRawBlockRules(t *testing.T) {
	srv := newServer(t, Options{})
	for blocks, want := range map[string]string{
		`[{"type":"carousel_of_doom"}]`: "invalid_blocks",
		`[{"type":"actions","elements":[{"type":"button","text":{"type":"plain_text","text":"x"},"style":"green"}]}]`: "invalid_blocks",
		`[{"type":"section","text":{"type":"mrkdwn","text":"x","emoji":true}}]`:                                       "invalid_blocks",
		`{"type":"divider"}`:   "invalid_blocks_format",
		`[{"type":"divider"}]`: "",
	} {
		got := postForm(t, srv, "chat.postMessage", url.Values{"token": {"xoxb-test"}, "channel": {"C1"}, "blocks": {blocks}})
		if want == "" {
			if got["ok"] != true {
				t.Errorf("%s: %v", blocks, got)
			}
			continue
		}
		if got["ok"] != false || got["error"] != want {
			t.Errorf("%s: %v, want %s", blocks, got, want)
		}
	}
}

func TestUpdateAndEphemeralRules(t *testing.T) {
	srv := newServer(t, Options{})
	api := apiClient(srv)
	_, ts, err := api.PostMessage("C1", slack.MsgOptionText("x", false))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := api.UpdateMessage("C1", ts, slack.MsgOptionBlocks(sections(51)...)); slackErr(err) != "invalid_blocks" {
		t.Errorf("update with 51 blocks: %v", err)
	}
	if _, _, _, err := api.UpdateMessage("C404", ts, slack.MsgOptionText("y", false)); slackErr(err) != "channel_not_found" {
		t.Errorf("update in unknown channel: %v", err)
	}
	if _, err := api.PostEphemeral("C1", "U404", slack.MsgOptionText("x", false)); slackErr(err) != "user_not_found" {
		t.Errorf("ephemeral to unknown user: %v", err)
	}
	if _, err := api.PostEphemeral("C1", "U1", slack.MsgOptionText(strings.Repeat("x", 40001), false)); slackErr(err) != "msg_too_long" {
		t.Errorf("long ephemeral: %v", err)
	}
	if m, _ := srv.Message("C1", ts); m.Edits != 0 || m.Text != "x" {
		t.Errorf("refused updates changed the message: %+v", m)
	}
}

func TestRateLimit(t *testing.T) {
	srv := newServer(t, Options{})
	srv.SetRateLimit(2, 1)
	api := apiClient(srv)
	for range 2 {
		if _, _, err := api.PostMessage("C1", slack.MsgOptionText("x", false)); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := api.PostMessage("C1", slack.MsgOptionText("x", false))
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != time.Second {
		t.Fatalf("third post: %v", err)
	}
	if r := lastRejection(t, srv); r.Error != "ratelimited" {
		t.Errorf("rejection = %+v", r)
	}
	// Other channels have their own bucket.
	srv.AddChannel("C2", "other")
	if _, _, err := api.PostMessage("C2", slack.MsgOptionText("x", false)); err != nil {
		t.Fatal(err)
	}
	// slack-go's retry path honours Retry-After.
	retrying := apiClient(srv, slack.OptionRetry(3))
	if _, _, err := retrying.PostMessage("C1", slack.MsgOptionText("x", false)); err != nil {
		t.Fatalf("retried post: %v", err)
	}
	if n := len(srv.Messages("C1")); n != 3 {
		t.Errorf("messages = %d", n)
	}
}

func TestFileUpload(t *testing.T) {
	srv := newServer(t, Options{})
	api := apiClient(srv)
	_, ts, err := api.PostMessage("C1", slack.MsgOptionText("plan", false))
	if err != nil {
		t.Fatal(err)
	}
	content := "Plan: 1 to change.\n" + strings.Repeat("~ tag\n", 1000)
	f, err := api.UploadFile(slack.UploadFileParameters{
		Filename: "plan.txt", Title: "terraform plan", Content: content, FileSize: len(content),
		Channel: "C1", ThreadTimestamp: ts,
	})
	if err != nil {
		t.Fatal(err)
	}
	if f.ID == "" || f.Title != "terraform plan" {
		t.Errorf("summary = %+v", f)
	}
	th := srv.Thread("C1", ts)
	if len(th) != 1 || len(th[0].Files) != 1 || string(th[0].Files[0].Content) != content || th[0].Files[0].Name != "plan.txt" {
		t.Fatalf("thread = %+v", th)
	}
	if m, _ := srv.Message("C1", ts); len(m.Files) != 1 || m.Files[0].ID != f.ID || m.Files[0].ThreadTS != ts {
		t.Errorf("parent files = %+v", m.Files)
	}
	requireNoRejections(t, srv)

	_, err = api.UploadFile(slack.UploadFileParameters{Filename: "x.txt", Content: "abc", FileSize: 4, Channel: "C1"})
	if err == nil || lastRejection(t, srv).Error != "length_mismatch" {
		t.Errorf("wrong length: %v, %+v", err, srv.Rejected())
	}
	_, err = api.UploadFile(slack.UploadFileParameters{Filename: "x.txt", Content: "abc", FileSize: 3, Channel: "C1", ThreadTimestamp: "1.000001"})
	if slackErrIn(err) != "thread_not_found" {
		t.Errorf("unknown thread: %v", err)
	}
	_, err = api.CompleteUploadExternalContext(t.Context(), slack.CompleteUploadExternalParameters{
		Files: []slack.FileSummary{{ID: "F404"}}, Channel: "C1"})
	if slackErr(err) != "file_not_found" {
		t.Errorf("unknown file: %v", err)
	}
	if len(srv.Files()) != 1 {
		t.Errorf("files = %+v", srv.Files())
	}
}

// slackErrIn digs Slack's error code out of a wrapped slack-go error.
func slackErrIn(err error) string {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	return fmt.Sprint(err)
}

func TestUserGroupsUsersConversations(t *testing.T) {
	srv := newServer(t, Options{})
	api := apiClient(srv)
	srv.AddUser("U2", "bob")
	srv.AddUserGroup("S1", "U1", "U2")
	if got, err := api.GetUserGroupMembers("S1"); err != nil || strings.Join(got, ",") != "U1,U2" {
		t.Fatalf("members = %v, %v", got, err)
	}
	srv.SetUserGroupUsers("S1", "U2")
	if got, err := api.GetUserGroupMembers("S1"); err != nil || strings.Join(got, ",") != "U2" {
		t.Fatalf("members after change = %v, %v", got, err)
	}
	if _, err := api.GetUserGroupMembers("S404"); slackErr(err) != "no_such_subteam" {
		t.Errorf("unknown group: %v", err)
	}

	if u, err := api.GetUserInfo("U2"); err != nil || u.ID != "U2" || u.Name != "bob" || u.IsBot {
		t.Errorf("user = %+v, %v", u, err)
	}
	if _, err := api.GetUserInfo("U404"); slackErr(err) != "user_not_found" {
		t.Errorf("unknown user: %v", err)
	}

	if c, err := api.GetConversationInfo(&slack.GetConversationInfoInput{ChannelID: "C1"}); err != nil || c.Name != "deploys" || !c.IsMember {
		t.Errorf("channel = %+v, %v", c, err)
	}
	if _, err := api.GetConversationInfo(&slack.GetConversationInfoInput{ChannelID: "C404"}); slackErr(err) != "channel_not_found" {
		t.Errorf("unknown channel: %v", err)
	}
	c, err := api.CreateConversation(slack.CreateConversationParams{ChannelName: "incident-2024"})
	if err != nil || c.ID == "" || c.Name != "incident-2024" {
		t.Fatalf("created = %+v, %v", c, err)
	}
	if id, ok := srv.ChannelByName("incident-2024"); !ok || id != c.ID {
		t.Errorf("ChannelByName = %s %v", id, ok)
	}
	if _, err := api.CreateConversation(slack.CreateConversationParams{ChannelName: "incident-2024"}); slackErr(err) != "name_taken" {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := api.CreateConversation(slack.CreateConversationParams{ChannelName: "Bad Name"}); slackErr(err) != "invalid_name_specials" {
		t.Errorf("bad name: %v", err)
	}
	if _, err := api.InviteUsersToConversation(c.ID, "U1", "U2"); err != nil {
		t.Fatal(err)
	}
	if m := srv.Members(c.ID); strings.Join(m, ",") != DefaultBotUserID+",U1,U2" {
		t.Errorf("members = %v", m)
	}
	if _, err := api.InviteUsersToConversation(c.ID, "U1"); !strings.Contains(fmt.Sprint(err), "already_in_channel") {
		t.Errorf("re-invite: %v", err)
	}
	if _, _, err := api.PostMessage(c.ID, slack.MsgOptionText("incident declared", false)); err != nil {
		t.Error(err)
	}
}
