package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/deploybot/deploybot/steps"
)

// Message is a channel message event as the adapters hand it over.
type Message struct {
	Channel, User, BotID, Username, Text, TS string
}

// HandleMessage links Sentry alerts posted in the alerts channel into the
// thread of every run whose Sentry watch is running, when they name the
// watched project. Everything else is ignored.
func (b *Bot) HandleMessage(ctx context.Context, m Message) {
	if b.cfg.Sentry == nil || m.Channel != b.cfg.Slack.AlertsChannel || m.BotID == "" || m.BotID == b.selfBotID {
		return
	}
	text := strings.ToLower(m.Text + " " + m.Username)
	if !strings.Contains(text, "sentry") || !strings.Contains(text, strings.ToLower(b.cfg.Sentry.Project)) {
		return
	}
	runs := b.eng.Watching()
	if len(runs) == 0 {
		return
	}
	link, err := b.chat.Permalink(ctx, m.Channel, m.TS)
	if err != nil {
		b.log.Warn("no permalink for an alert", zap.Error(err))
		link = ""
	}
	for _, r := range runs {
		line := fmt.Sprintf(":link: Sentry alert in <#%s> during the watch: %s", m.Channel, link)
		if link == "" {
			line = fmt.Sprintf(":link: Sentry alert in <#%s> during the watch: %s", m.Channel, escape(oneLine(m.Text, 300)))
		}
		if err := b.eng.Note(ctx, r.ID, line); err != nil {
			b.log.Warn("linking an alert failed", zap.String("run_id", r.ID), zap.Error(err))
		}
	}
}

// SetSelf tells the bot its own bot id, so it never reacts to itself.
func (b *Bot) SetSelf(botID string) { b.selfBotID = botID }

// Channels is what opening an incident channel needs from the chat system.
type Channels interface {
	CreateChannel(ctx context.Context, name string) (string, error)
	Invite(ctx context.Context, channel string, users []string) error
}

// Announcer implements steps.Announcer on the bot's chat.
type Announcer struct {
	Chat     Chat
	Channels Channels // nil: no incident channels (the console)
	Groups   Groups   // expands user groups among invitees
}

var _ steps.Announcer = (*Announcer)(nil)

// OpenChannel creates the incident channel and invites people, expanding
// user groups.
func (a *Announcer) OpenChannel(ctx context.Context, name string, users []string) (string, error) {
	if a.Channels == nil {
		return "", errors.New("incident channels need Slack")
	}
	id, err := a.Channels.CreateChannel(ctx, name)
	if err != nil {
		return "", err
	}
	seen := map[string]bool{}
	var ids []string
	for _, u := range users {
		members := []string{u}
		if strings.HasPrefix(u, "S") && a.Groups != nil {
			if m, err := a.Groups.GroupMembers(ctx, u); err == nil {
				members = m
			}
		}
		for _, m := range members {
			if !seen[m] && !strings.HasPrefix(m, "S") {
				seen[m] = true
				ids = append(ids, m)
			}
		}
	}
	if len(ids) > 0 {
		if err := a.Channels.Invite(ctx, id, ids); err != nil {
			return id, fmt.Errorf("channel created, but inviting people failed: %w", err)
		}
	}
	return id, nil
}
