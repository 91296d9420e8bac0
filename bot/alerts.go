package bot

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"go.uber.org/zap"

	"github.com/deploybot/deploybot/internal/redact"
	"github.com/deploybot/deploybot/steps"
)

// Message is a channel message event as the adapters hand it over.
type Message struct {
	Channel, User, BotID, Username, Text, TS string
	// SubType is Slack's message subtype ("bot_message" for apps' posts).
	SubType string
	// Content holds every text of the message's blocks and legacy
	// attachments (titles, links, context elements, footers) in order:
	// where apps such as Sentry put what they say. Text is only the
	// notification fallback.
	Content []string
}

// HandleMessage links Sentry alerts posted in the alerts channel into the
// thread of every run whose Sentry watch is running, when they are about
// the watched project. Messages from people (anyone but a bot) and from
// deploybot itself are never alerts.
func (b *Bot) HandleMessage(ctx context.Context, m Message) {
	if b.cfg.Sentry == nil || m.Channel != b.cfg.Slack.AlertsChannel {
		return
	}
	if (m.BotID == "" && m.SubType != "bot_message") || (b.selfBotID != "" && m.BotID == b.selfBotID) {
		return
	}
	a, ok := parseSentryAlert(m, b.cfg.Sentry.Org, b.cfg.Sentry.Project)
	if !ok {
		return
	}
	runs := b.eng.Watching()
	if len(runs) == 0 {
		return
	}
	link, err := b.chat.Permalink(ctx, m.Channel, m.TS)
	if err != nil {
		b.log.Warn("no permalink for an alert", zap.Error(redact.Scrub(err)))
		link = ""
	}
	where := fmt.Sprintf("<#%s>", m.Channel)
	if link != "" {
		where = fmt.Sprintf("<%s|an alert> in <#%s>", link, m.Channel)
	}
	issue := escape(a.ShortID)
	if issue == "" {
		issue = "issue " + a.IssueID
	}
	line := fmt.Sprintf(":link: Sentry raised %s during the watch: <%s|%s>", where, a.Link, issue)
	if a.Title != "" {
		line += " " + escape(oneLine(a.Title, 200))
	}
	for _, r := range runs {
		if _, err := b.eng.LinkAlert(ctx, r.ID, a.IssueID, line,
			steps.Button{Verb: steps.VerbRollback, Label: "Roll back", Style: "danger"},
			steps.Button{Verb: steps.VerbIncident, Label: "Declare incident", Style: "danger"}); err != nil {
			b.runLog(r.ID).Warn("linking an alert failed", zap.Error(redact.Scrub(err)))
		}
	}
}

// sentryAlert is what an alert message says about its issue.
type sentryAlert struct{ IssueID, Org, ShortID, Title, Link string }

var (
	// https://<org>.sentry.io/issues/<id>/?referrer=… (current installs)
	subdomainIssue = regexp.MustCompile(`https://([a-z0-9][a-z0-9-]*)\.sentry\.io/issues/(\d+)/?(?:\?[^\s|>"]*)?`)
	// https://sentry.io/organizations/<org>/issues/<id>/ (older installs,
	// self-hosted Sentry)
	pathIssue = regexp.MustCompile(`https?://[^\s/|>"]+/organizations/([\w.-]+)/issues/(\d+)/?(?:\?[^\s|>"]*)?`)
	shortID   = regexp.MustCompile(`\b[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+\b`)
)

// parseSentryAlert reads a Sentry issue alert in either shape Sentry posts
// (blocks, or legacy attachments with title, title_link and footer). It is
// an alert about project when its issue link is of the configured org and
// the project's slug, or its short id, appears in the message's context or
// footer.
func parseSentryAlert(m Message, org, project string) (sentryAlert, bool) {
	var a sentryAlert
	texts := append(append([]string(nil), m.Content...), m.Text)
	for _, t := range texts {
		if sm := subdomainIssue.FindStringSubmatch(t); sm != nil {
			a.Org, a.IssueID, a.Link = sm[1], sm[2], sm[0]
			break
		}
		if sm := pathIssue.FindStringSubmatch(t); sm != nil {
			a.Org, a.IssueID, a.Link = sm[1], sm[2], sm[0]
			break
		}
	}
	if a.IssueID == "" || (org != "" && !strings.EqualFold(a.Org, org)) {
		return a, false
	}
	slug := strings.ToLower(project)
	prefix := strings.ToUpper(project) + "-"
	about := false
	for _, t := range m.Content {
		for _, id := range shortID.FindAllString(t, -1) {
			if strings.HasPrefix(id, prefix) && a.ShortID == "" {
				a.ShortID, about = id, true
			}
		}
		if hasWord(strings.ToLower(t), slug) {
			about = true
		}
	}
	if !about {
		return a, false
	}
	for _, t := range m.Content {
		// The title is the first text that is neither a link nor the
		// context: the section or attachment title.
		if t != "" && !strings.Contains(t, "://") && !shortID.MatchString(t) && !hasWord(strings.ToLower(t), slug) {
			a.Title = t
			break
		}
	}
	return a, true
}

// hasWord reports whether w occurs in s between characters that cannot be
// part of a project slug.
func hasWord(s, w string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		j += i
		before := j == 0 || !slugChar(s[j-1])
		after := j+len(w) == len(s) || !slugChar(s[j+len(w)])
		if before && after {
			return true
		}
		i = j + 1
	}
}

func slugChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
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
