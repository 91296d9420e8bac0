package bot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"go.uber.org/zap"
)

// SlackChat shows Views in Slack through the Web API.
type SlackChat struct {
	api *slack.Client
	log *zap.Logger
}

// NewSlackChat wraps a Web API client.
func NewSlackChat(api *slack.Client, log *zap.Logger) *SlackChat {
	return &SlackChat{api: api, log: log}
}

// Post implements Chat.
func (s *SlackChat) Post(ctx context.Context, channel, threadTS string, v View) (string, error) {
	opts := []slack.MsgOption{slack.MsgOptionText(v.Text, false), slack.MsgOptionBlocks(toBlocks(v)...)}
	if threadTS != "" {
		opts = append(opts, slack.MsgOptionTS(threadTS))
	}
	if v.Key != "" {
		opts = append(opts, slack.MsgOptionMetadata(slack.SlackMetadata{EventType: outboxEventType, EventPayload: map[string]any{"key": v.Key}}))
	}
	var ts string
	err := s.retry(ctx, func() error {
		var err error
		_, ts, err = s.api.PostMessageContext(ctx, channel, opts...)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("chat.postMessage to %s: %w", channel, err)
	}
	return ts, nil
}

// Update implements Chat.
func (s *SlackChat) Update(ctx context.Context, channel, ts string, v View) error {
	err := s.retry(ctx, func() error {
		_, _, _, err := s.api.UpdateMessageContext(ctx, channel, ts, slack.MsgOptionText(v.Text, false), slack.MsgOptionBlocks(toBlocks(v)...))
		return err
	})
	if err != nil {
		return fmt.Errorf("chat.update of %s/%s: %w", channel, ts, err)
	}
	return nil
}

// Upload implements Chat with the files.getUploadURLExternal flow
// (files.upload is retired).
func (s *SlackChat) Upload(ctx context.Context, channel, threadTS, name, title string, content []byte) error {
	err := s.retry(ctx, func() error {
		_, err := s.api.UploadFileContext(ctx, slack.UploadFileParameters{
			Reader: bytes.NewReader(content), FileSize: len(content), Filename: name, Title: title,
			Channel: channel, ThreadTimestamp: threadTS,
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("uploading %s: %w", name, err)
	}
	return nil
}

// Find implements Chat: conversations.replies of the thread, or
// conversations.history of the channel since a time, with metadata.
func (s *SlackChat) Find(ctx context.Context, channel, threadTS, key string, since time.Time) (string, bool, error) {
	ts, found := "", false
	err := s.scan(ctx, channel, threadTS, since, func(m slack.Message) bool {
		if m.Metadata.EventType == outboxEventType && fmt.Sprint(m.Metadata.EventPayload["key"]) == key {
			ts, found = m.Timestamp, true
		}
		return found
	})
	return ts, found, err
}

// FindFile implements Chat with conversations.replies.
func (s *SlackChat) FindFile(ctx context.Context, channel, threadTS, name, title string) (bool, error) {
	found := false
	err := s.scan(ctx, channel, threadTS, time.Time{}, func(m slack.Message) bool {
		for _, f := range m.Files {
			if f.Name == name && f.Title == title {
				found = true
			}
		}
		return found
	})
	return found, err
}

// scan pages through a thread (or a channel's history since a time) until
// stop returns true.
func (s *SlackChat) scan(ctx context.Context, channel, threadTS string, since time.Time, stop func(slack.Message) bool) error {
	cursor := ""
	for {
		var msgs []slack.Message
		var more bool
		var next string
		err := s.retry(ctx, func() error {
			var err error
			if threadTS != "" {
				msgs, more, next, err = s.api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
					ChannelID: channel, Timestamp: threadTS, Cursor: cursor, Limit: 200, IncludeAllMetadata: true})
				return err
			}
			p := &slack.GetConversationHistoryParameters{ChannelID: channel, Cursor: cursor, Limit: 200, IncludeAllMetadata: true}
			if !since.IsZero() {
				p.Oldest = fmt.Sprintf("%d.000000", since.Unix())
			}
			var h *slack.GetConversationHistoryResponse
			if h, err = s.api.GetConversationHistoryContext(ctx, p); err == nil {
				msgs, more, next = h.Messages, h.HasMore, h.ResponseMetaData.NextCursor
			}
			return err
		})
		if err != nil {
			what := "conversations.history of " + channel
			if threadTS != "" {
				what = "conversations.replies of " + channel + "/" + threadTS
			}
			return fmt.Errorf("%s: %w", what, err)
		}
		for _, m := range msgs {
			if stop(m) {
				return nil
			}
		}
		if !more || next == "" {
			return nil
		}
		cursor = next
	}
}

// Permalink implements Chat with chat.getPermalink.
func (s *SlackChat) Permalink(ctx context.Context, channel, ts string) (string, error) {
	var link string
	err := s.retry(ctx, func() error {
		var err error
		link, err = s.api.GetPermalinkContext(ctx, &slack.PermalinkParameters{Channel: channel, Ts: ts})
		return err
	})
	return link, err
}

// UserName implements steps.Directory with users.info: the real name, else
// the handle.
func (s *SlackChat) UserName(ctx context.Context, id string) (string, error) {
	var u *slack.User
	err := s.retry(ctx, func() error {
		var err error
		u, err = s.api.GetUserInfoContext(ctx, id)
		return err
	})
	if err != nil {
		return "", err
	}
	if u.Name != "" {
		return u.Name, nil
	}
	return u.RealName, nil
}

// CreateChannel implements Channels with conversations.create; a taken
// name gets a numeric suffix.
func (s *SlackChat) CreateChannel(ctx context.Context, name string) (string, error) {
	for i := 1; i <= 20; i++ {
		n := name
		if i > 1 {
			n = fmt.Sprintf("%s-%d", name, i)
		}
		var ch *slack.Channel
		err := s.retry(ctx, func() error {
			var err error
			ch, err = s.api.CreateConversationContext(ctx, slack.CreateConversationParams{ChannelName: n})
			return err
		})
		if err != nil && strings.Contains(err.Error(), "name_taken") {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("conversations.create %s: %w", n, err)
		}
		return ch.ID, nil
	}
	return "", fmt.Errorf("conversations.create: every name like %s is taken", name)
}

// Invite implements Channels with conversations.invite.
func (s *SlackChat) Invite(ctx context.Context, channel string, users []string) error {
	return s.retry(ctx, func() error {
		_, err := s.api.InviteUsersToConversationContext(ctx, channel, users...)
		return err
	})
}

// GroupMembers implements Groups with usergroups.users.list.
func (s *SlackChat) GroupMembers(ctx context.Context, group string) ([]string, error) {
	var ids []string
	err := s.retry(ctx, func() error {
		var err error
		ids, err = s.api.GetUserGroupMembersContext(ctx, group)
		return err
	})
	return ids, err
}

// retry repeats a call that Slack rate-limited, after the Retry-After it
// asked for, until ctx ends.
func (s *SlackChat) retry(ctx context.Context, call func() error) error {
	for {
		err := call()
		var rl *slack.RateLimitedError
		if !errors.As(err, &rl) {
			return err
		}
		wait := rl.RetryAfter
		if wait <= 0 {
			wait = time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// HTTPClient is the client for every call to Slack: the Web API (through
// slack.OptionHTTPClient) and response_url answers. slack-go's defaults use
// http.DefaultClient, which has no timeout, so a stalled Slack would hang a
// reply, and with it the handler, for ever. A minute covers file uploads of
// plan text; API calls answer in well under a second.
var HTTPClient = &http.Client{Timeout: time.Minute}

// Respond answers privately through a response_url, which works in any
// channel, even one the bot is not a member of.
func Respond(responseURL string) Reply {
	return func(ctx context.Context, v View) error {
		if responseURL == "" {
			return errors.New("no response_url to answer on")
		}
		blocks := slack.Blocks{BlockSet: toBlocks(v)}
		return slack.PostWebhookCustomHTTPContext(ctx, responseURL, HTTPClient, &slack.WebhookMessage{
			Text: v.Text, Blocks: &blocks, ResponseType: slack.ResponseTypeEphemeral,
		})
	}
}

// toBlocks turns a View into Block Kit within Slack's limits.
func toBlocks(v View) []slack.Block { return toBlocksN(v, maxBlocks) }

// toBlocksN is toBlocks for at most max blocks (views take 100).
func toBlocksN(v View, max int) []slack.Block {
	var out []slack.Block
	for i, b := range v.Blocks {
		if len(out) == max {
			break
		}
		id := fmt.Sprintf("b%d", i)
		switch b.Kind {
		case Header:
			out = append(out, slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, truncate(b.Text, maxHeaderText), false, false), slack.HeaderBlockOptionBlockID(id)))
		case Section:
			out = append(out, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, truncate(b.Text, maxSectionText), false, false), nil, nil, slack.SectionBlockOptionBlockID(id)))
		case Context:
			out = append(out, slack.NewContextBlock(id, slack.NewTextBlockObject(slack.MarkdownType, truncate(b.Text, maxSectionText), false, false)))
		case Divider:
			d := slack.NewDividerBlock()
			d.BlockID = id
			out = append(out, d)
		case Actions:
			var els []slack.BlockElement
			for _, bt := range b.Buttons {
				if len(els) == maxButtons {
					break
				}
				e := slack.NewButtonBlockElement(bt.ActionID, bt.Value, slack.NewTextBlockObject(slack.PlainTextType, truncate(bt.Label, 75), false, false))
				if bt.Style != "" {
					e.Style = slack.Style(bt.Style)
				}
				els = append(els, e)
			}
			if len(els) > 0 {
				out = append(out, slack.NewActionBlock(id, els...))
			}
		}
	}
	return out
}
