package bot

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/deploybot/deploybot/integrations/sqlite"
	"github.com/deploybot/deploybot/steps"
)

// quietChat is a Chat that accepts everything and shows nothing.
type quietChat struct{}

func (quietChat) Post(ctx context.Context, channel, threadTS string, v View) (string, error) {
	return "1.0", nil
}
func (quietChat) Update(ctx context.Context, channel, ts string, v View) error { return nil }
func (quietChat) Permalink(ctx context.Context, channel, ts string) (string, error) {
	return "https://example.slack.com/archives/C/p1", nil
}
func (quietChat) Upload(ctx context.Context, channel, threadTS, name, title string, content []byte) error {
	return nil
}
func (quietChat) Find(ctx context.Context, channel, threadTS, key string, since time.Time) (string, bool, error) {
	return "", false, nil
}
func (quietChat) FindFile(ctx context.Context, channel, threadTS, name, title string) (bool, error) {
	return false, nil
}

// Socket Mode envelopes: whatever payload arrives, decoded as slack-go
// decodes it, the bot's handlers do not panic, and every private answer
// fits Slack's limits and pings nobody.
func FuzzEnvelope(f *testing.F) {
	f.Add("slash_commands", `{"command":"/deploy","text":"ingestion-server rel-2023.07.03.17.52.00","user_id":"U0A","channel_id":"C0DEPLOYS","response_url":"https://hooks.slack.com/x"}`)
	f.Add("slash_commands", `{"command":"/rollback","text":"<!channel>","user_id":"U0C","channel_id":"C0DEPLOYS"}`)
	f.Add("interactive", `{"type":"block_actions","user":{"id":"U0B"},"channel":{"id":"C0DEPLOYS"},"container":{"message_ts":"1.0"},"actions":[{"action_id":"approve:run-1:4","value":"run-1|4|2"}]}`)
	f.Add("interactive", `{"type":"view_submission","user":{"id":"U0B"}}`)
	f.Add("events_api", `{"type":"event_callback","event":{"type":"message","subtype":"bot_message","bot_id":"B1","channel":"C0ALERTS","text":"x","attachments":[{"title":"T","title_link":"https://sentry.io/organizations/o/issues/1/","footer":"ingestion-server"}]}}`)
	f.Add("events_api", `{"type":"event_callback","event":{"type":"message","channel":"C0ALERTS","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"<https://o.sentry.io/issues/2/|x>"}}]}}`)

	b := fuzzBot(f)
	db, err := sqlite.Open(filepath.Join(f.TempDir(), "state.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	b.chat = quietChat{}
	eng := steps.NewEngine(db, b, NewRoles(b.cfg.Slack.Deployers, b.cfg.Slack.Approvers, nil, 0), steps.NewRunbooks(b.cfg), nil)
	b.SetEngine(eng)
	f.Cleanup(func() { eng.Close(); b.Close() })
	ctx := context.Background()

	f.Fuzz(func(t *testing.T, kind, payload string) {
		var mu sync.Mutex
		var answers []View
		reply := func(ctx context.Context, v View) error {
			mu.Lock()
			answers = append(answers, v)
			mu.Unlock()
			return nil
		}
		switch kind {
		case "slash_commands":
			var c slack.SlashCommand
			if json.Unmarshal([]byte(payload), &c) != nil {
				return
			}
			b.HandleCommand(ctx, Command{User: c.UserID, Channel: c.ChannelID, Name: c.Command, Text: c.Text, Reply: reply})
		case "interactive":
			var ic slack.InteractionCallback
			if json.Unmarshal([]byte(payload), &ic) != nil {
				return
			}
			for _, a := range ic.ActionCallback.BlockActions {
				b.HandleClick(ctx, Click{User: ic.User.ID, Channel: ic.Channel.ID, MessageTS: ic.Container.MessageTs, ActionID: a.ActionID, Value: a.Value, Reply: reply})
			}
		case "events_api":
			ev, err := slackevents.ParseEvent(json.RawMessage(payload), slackevents.OptionNoVerifyToken())
			if err != nil {
				return
			}
			if m, ok := ev.InnerEvent.Data.(*slackevents.MessageEvent); ok {
				msg := Message{Channel: m.Channel, User: m.User, BotID: m.BotID, Text: m.Text, TS: m.TimeStamp, SubType: m.SubType, Content: contentOf(m.Blocks)}
				if m.Message != nil {
					msg.Content = append(msg.Content, contentOf(m.Message.Attachments)...)
				}
				b.HandleMessage(ctx, msg)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, v := range answers {
			if utf8.RuneCountInString(v.Text) > maxText || len(toBlocks(v)) > maxBlocks {
				t.Fatalf("answer beyond Slack's limits: %d characters, %d blocks", utf8.RuneCountInString(v.Text), len(toBlocks(v)))
			}
			for _, bl := range v.Blocks {
				if utf8.RuneCountInString(bl.Text) > maxSectionText {
					t.Fatalf("answer block of %d characters", utf8.RuneCountInString(bl.Text))
				}
			}
		}
	})
}
