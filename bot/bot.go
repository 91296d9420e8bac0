// Package bot is deploybot's conversation: slash commands, button clicks,
// authorization and the rendering of runs. Adapters (Slack Socket Mode, the
// console) deliver commands and clicks and display Views; the steps engine
// does the deciding.
package bot

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/internal/redact"
	"github.com/deploybot/deploybot/steps"
)

// Options tune the bot.
type Options struct {
	// BareDeploy: `/deploy <service>` without a tag is allowed because the
	// release step can find the version (GitHub is configured).
	BareDeploy bool
}

// Bot handles commands and clicks and keeps every run's message current.
type Bot struct {
	cfg  *config.Config
	chat Chat // masked (mask.go)
	mask redact.Values
	log  *zap.Logger
	opts Options
	eng  *steps.Engine

	selfBotID string

	mu     sync.Mutex
	pubs   map[string]*publisher
	timers map[*publisher]*time.Timer // pending retries
	// suspect holds outbox entries that may have reached Slack without
	// their record: looked for before they are sent (again).
	suspect map[int64]bool
	closed  bool
	wg      sync.WaitGroup
	// idle is signalled when a publisher drains, for Flush.
	idle *sync.Cond
	// home is the App Home tab's state (home.go).
	home homeState
}

// New makes a bot. Attach an engine before handling anything.
func New(cfg *config.Config, chat Chat, log *zap.Logger, opts Options) *Bot {
	if log == nil {
		log = zap.NewNop()
	}
	mask := redact.NewValues(cfg.Secrets.Values()...)
	b := &Bot{cfg: cfg, chat: maskedChat{chat, mask}, mask: mask, log: log, opts: opts, pubs: map[string]*publisher{}, timers: map[*publisher]*time.Timer{}, suspect: map[int64]bool{}}
	b.idle = sync.NewCond(&b.mu)
	if v, ok := chat.(Views); ok {
		b.home.views = maskedViews{v, mask}
	}
	return b
}

// SetEngine wires the engine (which in turn notifies the bot).
func (b *Bot) SetEngine(e *steps.Engine) { b.eng = e }

func escape(s string) string { return steps.Escape(s) }

// HandleCommand answers a slash command. It is called after the adapter has
// acknowledged the envelope, so it may take its time.
func (b *Bot) HandleCommand(ctx context.Context, c Command) {
	req, err := b.parse(c)
	if err != nil {
		b.audit(ctx, c.User, "command.refused", fmt.Sprintf("%s %s: %s", c.Name, c.Text, err))
		b.reply(ctx, c.Reply, ":warning: "+err.Error())
		return
	}
	switch req.op {
	case "help":
		b.replyView(ctx, c.Reply, b.helpView())
	case "status":
		b.replyView(ctx, c.Reply, b.statusView(ctx))
	case "history":
		b.replyView(ctx, c.Reply, b.historyView(ctx, req.service, req.n))
	case "override":
		if err := b.eng.Override(ctx, req.runID, c.User, req.text); err != nil {
			b.answerErr(ctx, c.Reply, err, req.runID)
			return
		}
		b.reply(ctx, c.Reply, fmt.Sprintf("Overrode the block on %s; the reason is in the thread and the audit log.", req.runID))
	case "cancel":
		if err := b.eng.Cancel(ctx, req.runID, c.User); err != nil {
			b.answerErr(ctx, c.Reply, err, req.runID)
			return
		}
		b.reply(ctx, c.Reply, fmt.Sprintf("Cancelling %s: its changes are being undone; the thread has the details.", req.runID))
	case "deploy", "rollback", "incident":
		kind := map[string]steps.RunKind{"deploy": steps.KindDeploy, "rollback": steps.KindRollback, "incident": steps.KindIncident}[req.op]
		ch := c.Channel
		r, err := b.eng.Start(ctx, steps.StartRequest{Kind: kind, Service: req.service, Version: req.tag, Requester: c.User, Channel: ch, Summary: req.text})
		if err != nil {
			b.answerErr(ctx, c.Reply, err)
			return
		}
		b.reply(ctx, c.Reply, fmt.Sprintf("Started %s: %s. Follow it in the channel message and its thread.", r.ID, r.Title()))
	}
}

// Click is a button press as the adapters hand it over.
type Click struct {
	User      string
	Channel   string
	MessageTS string
	ActionID  string
	Value     string
	Reply     Reply
	// TriggerID (Slack) lets a click open a form; Label is the button's
	// text, as the click reports it.
	TriggerID string
	Label     string
}

// HandleClick acts on a button. A malformed or stale click, or one by
// someone without permission, gets a private explanation and changes
// nothing.
func (b *Bot) HandleClick(ctx context.Context, c Click) {
	if c.ActionID == deployFormAction {
		b.openDeployForm(ctx, c)
		return
	}
	req, ok := parseButton(c.ActionID, c.Value)
	if !ok {
		b.audit(ctx, c.User, "click.refused", fmt.Sprintf("malformed button %q/%q", c.ActionID, c.Value))
		b.reply(ctx, c.Reply, ":warning: deploybot does not recognise that button; it may come from an old version of the bot. `/deploy status` shows the runs and their current buttons.")
		return
	}
	req.User = c.User
	if b.viaForm(ctx, c, req) {
		return
	}
	if err := b.eng.Act(ctx, req); err != nil {
		b.answerErr(ctx, c.Reply, err, req.RunID)
	}
}

// answerErr answers a request that failed; runID, when the request was
// about a run, labels the log entry.
func (b *Bot) answerErr(ctx context.Context, reply Reply, err error, runID ...string) {
	if errors.Is(err, steps.ErrForwarded) {
		b.reply(ctx, reply, ":inbox_tray: Received. Another deploybot replica is running this run and acts on it in a moment; its thread shows the result.")
		return
	}
	var rf *steps.Refused
	if errors.As(err, &rf) {
		b.reply(ctx, reply, ":no_entry: "+rf.Msg)
		return
	}
	if errors.Is(err, steps.ErrLeaseLost) {
		// Not a failure of the request: the run is changing hands between
		// replicas, and the new holder answers the next click.
		b.reply(ctx, reply, ":hourglass_flowing_sand: Another deploybot replica is taking this run over (this one lost it a moment ago), so your click was not recorded and nothing was done. Click again in a few seconds: the replica that runs it then will answer.")
		return
	}
	log := b.log
	if len(runID) > 0 && runID[0] != "" {
		log = b.runLog(runID[0])
	}
	log.Error("request failed", zap.Error(redact.Scrub(err)))
	b.reply(ctx, reply, ":x: deploybot could not do that: "+escape(redact.ScrubString(err.Error()))+". Nothing was recorded and the run is as it was; try again in a moment (anything already done is checked before it is done again), and tell the maintainers if it persists.")
}

func (b *Bot) reply(ctx context.Context, reply Reply, text string) {
	b.replyView(ctx, reply, textView(text))
}

func (b *Bot) replyView(ctx context.Context, reply Reply, v View) {
	if reply == nil {
		return
	}
	if err := reply(ctx, maskView(b.mask, v)); err != nil {
		b.log.Warn("reply failed", zap.Error(redact.Scrub(err)))
	}
}

func (b *Bot) audit(ctx context.Context, user, action, detail string) {
	if b.eng != nil {
		b.eng.Audit(ctx, steps.AuditEvent{Actor: user, Action: action, Detail: detail})
	}
}

// statusView lists open runs, the services they lock, and who each waits on.
func (b *Bot) statusView(ctx context.Context) View {
	runs := b.eng.SharedOpenRuns(ctx)
	if len(runs) == 0 {
		return textView("No runs are open; every service is free. Start one with `/deploy <service> <tag>`.")
	}
	var lines []string
	locks := map[string]string{}
	for _, r := range runs {
		line := fmt.Sprintf("• `%s` %s, by <@%s> since %s", r.ID, r.Title(), r.Requester, clock(r.CreatedAt))
		if cur := r.Current(); cur != nil {
			line += fmt.Sprintf(": step %d/%d “%s” %s", cur.Index+1, len(r.Steps), cur.Title, statusWord[cur.Status])
			if cur.WaitingOn != "" {
				line += ", waiting for " + cur.WaitingOn
			}
		}
		lines = append(lines, line)
		if l := r.Lock(); l != "" {
			locks[l] = r.ID
		}
	}
	text := "*Open runs*\n" + strings.Join(lines, "\n")
	var incidents []Block
	for _, r := range runs {
		if r.Kind != steps.KindIncident {
			continue
		}
		incidents = append(incidents, Block{Kind: Section, Text: truncate(fmt.Sprintf("*Open incident* `%s`: %s (declared by <@%s>)", r.ID, escape(r.Summary), r.Requester), maxSectionText)})
		if cur := r.Current(); cur != nil && cur.Status == steps.StepWaiting {
			var bs []Button
			for _, bt := range cur.Buttons {
				if bt.Verb == steps.VerbDone {
					bs = append(bs, Button{Label: bt.Label, Style: bt.Style, ActionID: ActionID(bt.Verb, r.ID, cur.Index), Value: ButtonValue(r.ID, cur.Index, cur.Seq)})
				}
			}
			if len(bs) > 0 {
				incidents = append(incidents, Block{Kind: Actions, Buttons: bs})
			}
		}
		if len(incidents) > maxBlocks-3 {
			break
		}
	}
	if len(locks) > 0 {
		var ls []string
		for svc, id := range locks {
			ls = append(ls, fmt.Sprintf("• %s is locked by `%s`", svc, id))
		}
		sort.Strings(ls)
		text += "\n*Locks*\n" + strings.Join(ls, "\n")
	}
	return View{Text: "deploybot status", Blocks: append([]Block{{Kind: Section, Text: truncate(text, maxSectionText)}}, incidents...)}
}
