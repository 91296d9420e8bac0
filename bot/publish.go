package bot

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/deploybot/deploybot/steps"
)

// publisher keeps one run's Slack presence current: it posts the parent
// message once, then edits it with chat.update, and sends thread messages
// (lines, files, live progress) in order. One goroutine per run at most,
// started on demand, so a slow Slack never holds up the engine and bursts
// of changes collapse into one edit.
type publisher struct {
	runID   string
	channel string

	mu       sync.Mutex
	ts       string
	latest   *steps.Run
	dirty    bool
	ops      []threadOp
	live     map[string]string // live key → thread message ts
	running  bool
	failures int // sends failed in a row
}

// threadOp is one thing to send into the run's thread.
type threadOp struct {
	text    string
	file    []byte // with name and title: an upload
	name    string
	title   string
	liveKey string // with text: edit the live message of that key
	buttons []Button
}

func (b *Bot) publisher(r *steps.Run) *publisher {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.pubs[r.ID]
	if p == nil {
		p = &publisher{runID: r.ID, channel: r.Channel, ts: r.MessageTS, live: map[string]string{}}
		b.pubs[r.ID] = p
	}
	return p
}

// RunChanged implements steps.Notifier: the run's message is brought up to
// date in the background.
func (b *Bot) RunChanged(r *steps.Run) {
	p := b.publisher(r)
	p.mu.Lock()
	p.latest = r
	p.dirty = true
	p.mu.Unlock()
	b.pump(p)
}

// Say implements steps.Notifier: a line in the run's thread.
func (b *Bot) Say(r *steps.Run, text string) { b.enqueue(r, threadOp{text: text}) }

// Offer implements steps.Notifier: a thread line with run-level buttons.
func (b *Bot) Offer(r *steps.Run, text string, buttons ...steps.Button) {
	var bs []Button
	for _, bt := range buttons {
		bs = append(bs, Button{Label: bt.Label, Style: bt.Style, ActionID: ActionID(bt.Verb, r.ID, steps.RunLevel), Value: ButtonValue(r.ID, steps.RunLevel, 0)})
	}
	b.enqueue(r, threadOp{text: text, buttons: bs})
}

// Attach implements steps.Notifier: a file in the run's thread.
func (b *Bot) Attach(r *steps.Run, name, title string, content []byte) {
	b.enqueue(r, threadOp{name: name, title: title, file: content})
}

// Live implements steps.Notifier: one thread message edited as it grows.
func (b *Bot) Live(r *steps.Run, key, text string) {
	p := b.publisher(r)
	p.mu.Lock()
	// Only the newest text of a live message matters: replace a queued one.
	for i := range p.ops {
		if p.ops[i].liveKey == key {
			p.ops[i].text = text
			p.mu.Unlock()
			return
		}
	}
	p.mu.Unlock()
	b.enqueue(r, threadOp{liveKey: key, text: text})
}

func (b *Bot) enqueue(r *steps.Run, op threadOp) {
	p := b.publisher(r)
	p.mu.Lock()
	if p.latest == nil {
		p.latest, p.dirty = r, true
	}
	p.ops = append(p.ops, op)
	p.mu.Unlock()
	b.pump(p)
}

func (b *Bot) pump(p *publisher) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return
	}
	p.mu.Lock()
	if p.running {
		p.mu.Unlock()
		return
	}
	p.running = true
	p.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.drain(p)
	}()
}

// sendTimeout bounds one Slack call including its rate-limit retries;
// postRetry is the pause before posting a run's message again after Slack
// refused it.
const (
	sendTimeout = 30 * time.Second
	postRetry   = 2 * time.Second
	maxFailures = 8
)

// drain sends what is queued: the parent message first (thread messages
// need its ts), then thread messages in order, then the latest render.
func (b *Bot) drain(p *publisher) {
	for {
		p.mu.Lock()
		if p.ts == "" && p.latest != nil && p.latest.MessageTS != "" {
			p.ts = p.latest.MessageTS
		}
		ts, latest, dirty := p.ts, p.latest, p.dirty
		var op *threadOp
		switch {
		case latest == nil:
		case ts == "":
			p.dirty = false
		case len(p.ops) > 0:
			o := p.ops[0]
			p.ops = p.ops[1:]
			op = &o
		case dirty:
			p.dirty = false
		default:
			b.idleLocked(p, latest)
			return
		}
		liveTS := ""
		if op != nil && op.liveKey != "" {
			liveTS = p.live[op.liveKey]
		}
		p.mu.Unlock()

		if latest == nil {
			p.mu.Lock()
			p.running = false
			p.mu.Unlock()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
		switch {
		case ts == "":
			newTS, err := b.chat.Post(ctx, p.channel, "", RenderRun(latest))
			if err != nil {
				// Keep everything queued (plan previews, Sentry issues
				// already recorded as posted) and try again shortly.
				cancel()
				b.retryLater(p, nil, err)
				return
			}
			p.mu.Lock()
			p.ts, p.failures = newTS, 0
			p.mu.Unlock()
			link, err := b.chat.Permalink(ctx, p.channel, newTS)
			if err != nil {
				b.log.Warn("no permalink for the run message", zap.String("run", p.runID), zap.Error(err))
			}
			if err := b.eng.SetMessage(ctx, p.runID, newTS, link); err != nil {
				b.log.Error("recording run message failed", zap.String("run", p.runID), zap.Error(err))
			}
		case op != nil:
			if err := b.sendOp(ctx, p, ts, liveTS, *op); err != nil {
				cancel()
				b.retryLater(p, op, err)
				return
			}
		default:
			if err := b.chat.Update(ctx, p.channel, ts, RenderRun(latest)); err != nil {
				cancel()
				b.retryLater(p, nil, err)
				return
			}
		}
		p.mu.Lock()
		p.failures = 0
		p.mu.Unlock()
		cancel()
	}
}

// idleLocked stops the drain; p.mu is held on entry and released.
func (b *Bot) idleLocked(p *publisher, latest *steps.Run) {
	p.running = false
	ended := !latest.State.Open()
	p.mu.Unlock()
	b.mu.Lock()
	if ended {
		p.mu.Lock()
		if !p.running && len(p.ops) == 0 && !p.dirty {
			delete(b.pubs, p.runID)
		}
		p.mu.Unlock()
	}
	b.idle.Broadcast()
	b.mu.Unlock()
}

func (b *Bot) sendOp(ctx context.Context, p *publisher, ts, liveTS string, op threadOp) error {
	switch {
	case op.file != nil:
		if err := b.chat.Upload(ctx, p.channel, ts, op.name, op.title, op.file); err != nil {
			return err
		}
	case op.liveKey != "" && liveTS != "":
		return b.chat.Update(ctx, p.channel, liveTS, textView(truncate(op.text, maxSectionText)))
	default:
		v := textView(truncate(op.text, maxSectionText))
		if len(op.buttons) > 0 {
			v.Blocks = append(v.Blocks, Block{Kind: Actions, Buttons: op.buttons})
		}
		newTS, err := b.chat.Post(ctx, p.channel, ts, v)
		if err != nil {
			return err
		}
		if op.liveKey != "" {
			p.mu.Lock()
			p.live[op.liveKey] = newTS
			p.mu.Unlock()
		}
	}
	return nil
}

// retryLater puts a failed send back (op first in the queue) and drains
// again after a growing pause. After maxFailures in a row the op is given
// up, loudly: Slack refusing it for good must not block the thread.
func (b *Bot) retryLater(p *publisher, op *threadOp, err error) {
	p.mu.Lock()
	p.failures++
	n := p.failures
	if op != nil {
		if n <= maxFailures {
			p.ops = append([]threadOp{*op}, p.ops...)
		} else {
			p.failures = 0
			b.log.Error("giving up on a thread message", zap.String("run", p.runID), zap.Error(err))
		}
	} else {
		p.dirty = true
	}
	p.running = false
	p.mu.Unlock()
	b.log.Warn("slack send failed; retrying", zap.String("run", p.runID), zap.Int("attempt", n), zap.Error(err))
	wait := postRetry << min(n-1, 4)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.timers[p] = time.AfterFunc(wait, func() {
		b.mu.Lock()
		delete(b.timers, p)
		b.mu.Unlock()
		b.pump(p)
	})
	b.idle.Broadcast()
}

// Flush waits until every queued message has been sent (tests, shutdown).
func (b *Bot) Flush(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	t := time.AfterFunc(timeout, func() { b.mu.Lock(); b.idle.Broadcast(); b.mu.Unlock() })
	defer t.Stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.busy() {
		if time.Now().After(deadline) {
			return false
		}
		b.idle.Wait()
	}
	return true
}

// busy reports whether anything is still to be sent: a drain running, a
// queued message, an edit owed, or a run message not posted yet.
func (b *Bot) busy() bool {
	for _, p := range b.pubs {
		p.mu.Lock()
		busy := p.running || len(p.ops) > 0 || p.dirty || (p.ts == "" && p.latest != nil && p.latest.MessageTS == "")
		p.mu.Unlock()
		if busy {
			return true
		}
	}
	return false
}

// Close stops retries and waits for sends in progress. Call Flush first to
// give queued messages their chance.
func (b *Bot) Close() {
	b.mu.Lock()
	b.closed = true
	for p, t := range b.timers {
		t.Stop()
		delete(b.timers, p)
	}
	b.mu.Unlock()
	b.wg.Wait()
}
