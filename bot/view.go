package bot

import (
	"context"
	"time"

	"github.com/deploybot/deploybot/steps"
)

// View is a message as the bot composes it, before an adapter turns it into
// Slack Block Kit or console text. Keeping the two apart is what lets the
// console walk the very same runbook as Slack.
type View struct {
	Text   string // the notification/fallback text
	Blocks []Block
	// Key, when set, is carried with the message (Slack message metadata)
	// so that the message can be found again: the outbox entry it delivers.
	Key string

	// run is the run a run's message shows (RenderRun), so the console can
	// print what changed in it instead of the whole message.
	run *steps.Run
}

// BlockKind is the kind of a View block.
type BlockKind int

const (
	Header BlockKind = iota
	Section
	Context
	Actions
	Divider
)

// Block is one part of a View. Text is Slack mrkdwn (plain text for headers).
type Block struct {
	Kind    BlockKind
	Text    string
	Buttons []Button
}

// Button is a clickable choice. ActionID starts with a verb from the
// vocabulary in FACTS.md; Value says which run, step and state it belongs to.
type Button struct {
	Label    string
	ActionID string
	Value    string
	Style    string
}

// Chat is what the bot needs from a chat system to show runs.
type Chat interface {
	// Post sends a message to a channel, in a thread when threadTS is set,
	// and returns its ts.
	Post(ctx context.Context, channel, threadTS string, v View) (string, error)
	// Update replaces a message the bot posted.
	Update(ctx context.Context, channel, ts string, v View) error
	// Permalink returns a link to a message.
	Permalink(ctx context.Context, channel, ts string) (string, error)
	// Upload shares a file in a thread.
	Upload(ctx context.Context, channel, threadTS, name, title string, content []byte) error
	// Find looks for a message carrying key: in the thread of threadTS, or
	// among the channel's messages since a time when threadTS is "". It is
	// how a delivery that may have reached Slack before a crash or a lost
	// answer is recognised instead of posted twice.
	Find(ctx context.Context, channel, threadTS, key string, since time.Time) (ts string, found bool, err error)
	// FindFile reports whether a file of that name and title is shared in
	// the thread.
	FindFile(ctx context.Context, channel, threadTS, name, title string) (bool, error)
}

// Reply answers one user privately (a Slack ephemeral message).
type Reply func(ctx context.Context, v View) error

// textView is a View with a single section.
func textView(text string) View {
	return View{Text: text, Blocks: []Block{{Kind: Section, Text: text}}}
}
