package bot

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/deploybot/deploybot/steps"
)

// publisher keeps one run's Slack presence current: it posts the parent
// message once, then edits it with chat.update, and posts thread lines in
// order. One goroutine per run at most, started on demand, so a slow Slack
// never holds up the engine and bursts collapse into one edit.
type publisher struct {
	runID   string
	channel string

	mu      sync.Mutex
	ts      string
	latest  *steps.Run
	dirty   bool
	says    []string
	running bool
}

func (b *Bot) publisher(r *steps.Run) *publisher {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.pubs[r.ID]
	if p == nil {
		p = &publisher{runID: r.ID, channel: r.Channel, ts: r.MessageTS}
		b.pubs[r.ID] = p
	}
	return p
}

func (b *Bot) pump(p *publisher) {
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

// sendTimeout bounds one Slack call including its rate-limit retries.
const sendTimeout = 30 * time.Second

func (b *Bot) drain(p *publisher) {
	for {
		p.mu.Lock()
		if p.ts == "" && p.latest != nil && p.latest.MessageTS != "" {
			p.ts = p.latest.MessageTS
		}
		ts, latest, dirty, says := p.ts, p.latest, p.dirty, p.says
		switch {
		case latest == nil:
		case ts == "":
			p.dirty = false
		case len(says) > 0:
			p.says = nil
		case dirty:
			p.dirty = false
		default:
			p.running = false
			ended := !latest.State.Open()
			p.mu.Unlock()
			b.mu.Lock()
			if ended {
				p.mu.Lock()
				if !p.running && len(p.says) == 0 && !p.dirty {
					delete(b.pubs, p.runID)
				}
				p.mu.Unlock()
			}
			b.idle.Broadcast()
			b.mu.Unlock()
			return
		}
		p.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
		switch {
		case latest == nil:
			cancel()
			p.mu.Lock()
			p.running = false
			p.mu.Unlock()
			return
		case ts == "":
			newTS, err := b.chat.Post(ctx, p.channel, "", RenderRun(latest))
			if err != nil {
				b.log.Error("posting run message failed", zap.String("run", p.runID), zap.Error(err))
				cancel()
				p.mu.Lock()
				p.running = false
				p.says = nil
				p.mu.Unlock()
				return
			}
			p.mu.Lock()
			p.ts = newTS
			p.mu.Unlock()
			if err := b.eng.SetMessage(ctx, p.runID, newTS); err != nil {
				b.log.Error("recording run message failed", zap.String("run", p.runID), zap.Error(err))
			}
		case len(says) > 0:
			for _, s := range says {
				if _, err := b.chat.Post(ctx, p.channel, ts, textView(s)); err != nil {
					b.log.Warn("thread post failed", zap.String("run", p.runID), zap.Error(err))
				}
			}
		default:
			if err := b.chat.Update(ctx, p.channel, ts, RenderRun(latest)); err != nil {
				b.log.Warn("updating run message failed", zap.String("run", p.runID), zap.Error(err))
			}
		}
		cancel()
	}
}
