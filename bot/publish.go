package bot

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"go.uber.org/zap"

	"github.com/deploybot/deploybot/internal/redact"
	"github.com/deploybot/deploybot/steps"
)

// The outbox: every message a transition causes (the run's parent message
// and its edits, thread lines, files, the incident announcement) is an
// entry committed with the transition. A publisher per run delivers the
// run's entries in order once they are committed, and marks each delivered.
//
// Exactly once as people see it: every message carries its entry's id as
// Slack message metadata (event type deploybot_outbox). An entry that may
// already have reached Slack — it was pending when deploybot started, or a
// send failed after it may have arrived (a 504, a dropped connection) — is
// first looked for in Slack (conversations.replies / .history with
// include_all_metadata) and only posted when it is not there.

// outboxEventType is the metadata event type of deploybot's messages.
const outboxEventType = "deploybot_outbox"

// outboxKey is the idempotency key an entry's message carries.
func outboxKey(e steps.OutboxEntry) string { return e.RunID + "/" + strconv.FormatInt(e.ID, 10) }

// publisher delivers one run's outbox. One goroutine per run at most,
// started on demand, so a slow Slack never holds up the engine.
type publisher struct {
	runID string
	// seen: with replicas, the run's entries pending when this process
	// first delivers them may have been sent by the replica that held the
	// run before, and are looked for in Slack first.
	seen bool

	mu       sync.Mutex
	running  bool
	wake     bool              // entries may have been committed since the last read
	retryAt  time.Time         // after a failure, not before
	failures int               // sends of the current entry failed in a row
	live     map[string]string // live key → thread message ts
	lives    []liveOp          // live texts to show, newest per key
}

// liveOp is a progress message: best effort, in memory (see steps.Notifier).
type liveOp struct{ key, text string }

func (b *Bot) publisher(runID string) *publisher {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.pubs[runID]
	if p == nil {
		p = &publisher{runID: runID, live: map[string]string{}}
		b.pubs[runID] = p
	}
	return p
}

// RunChanged implements steps.Notifier: the run's outbox is delivered in
// the background.
func (b *Bot) RunChanged(r *steps.Run) {
	p := b.publisher(r.ID)
	p.mu.Lock()
	p.wake = true
	p.mu.Unlock()
	b.pump(p)
	b.homeChanged()
}

// Live implements steps.Notifier: one thread message edited as it grows.
func (b *Bot) Live(r *steps.Run, key, text string) {
	p := b.publisher(r.ID)
	p.mu.Lock()
	replaced := false
	for i := range p.lives {
		if p.lives[i].key == key {
			p.lives[i].text = text // only the newest text matters
			replaced = true
		}
	}
	if !replaced {
		p.lives = append(p.lives, liveOp{key: key, text: text})
	}
	p.mu.Unlock()
	b.pump(p)
}

// DeliverPending starts delivering what an earlier process left owed. Call
// it once at start-up, before the engine resumes: every entry pending now
// may have reached Slack before the crash, so each is looked for first.
func (b *Bot) DeliverPending(ctx context.Context) error {
	es, err := b.eng.Store().PendingOutbox(ctx, "")
	if err != nil {
		return fmt.Errorf("reading the outbox: %w", err)
	}
	runs := map[string]bool{}
	b.mu.Lock()
	for _, e := range es {
		b.suspect[e.ID] = true
		runs[e.RunID] = true
	}
	b.mu.Unlock()
	for id := range runs {
		p := b.publisher(id)
		p.mu.Lock()
		p.wake = true
		p.mu.Unlock()
		b.pump(p)
	}
	return nil
}

func (b *Bot) pump(p *publisher) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return
	}
	p.mu.Lock()
	if p.running || time.Now().Before(p.retryAt) {
		p.mu.Unlock()
		return
	}
	p.running = true
	p.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer func() {
			if v := recover(); v != nil {
				// A panic while delivering (rendering a run, say) must
				// neither end the process nor leave this run's publisher
				// marked running, owing its messages forever: it is
				// reported and retried later, like a failed send.
				err := steps.PanicError(v)
				b.runLog(p.runID).Error("outbox publisher panicked", zap.Error(err), zap.Stack("stack"))
				b.retryLater(p, 0, err)
			}
		}()
		b.drain(p)
	}()
}

// sendTimeout bounds one Slack call including its rate-limit retries;
// postRetry is the first pause after a failed send, doubled up to
// maxRetryWait. An entry Slack refuses outright (ok:false, not a rate
// limit) maxFailures times in a row is given up, loudly, so that it cannot
// block the thread; anything else (Slack unreachable, 5xx) is retried until
// Slack recovers, and the thread catches up in order.
const (
	sendTimeout  = 30 * time.Second
	postRetry    = 2 * time.Second
	maxRetryWait = 30 * time.Second
	maxFailures  = 8
)

// drain delivers the run's pending entries in order, then its live
// messages, until nothing is owed.
func (b *Bot) drain(p *publisher) {
	for {
		p.mu.Lock()
		p.wake = false
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
		failed, err := b.deliver(ctx, p)
		cancel()
		if err != nil {
			b.retryLater(p, failed, err)
			return
		}
		p.mu.Lock()
		p.failures = 0
		if p.wake {
			p.mu.Unlock()
			continue
		}
		p.running = false
		p.mu.Unlock()
		b.idleCheck(p)
		return
	}
}

// deliver sends what is owed now. On failure it returns the entry that
// failed (0 for a live message or a read) and the error.
func (b *Bot) deliver(ctx context.Context, p *publisher) (int64, error) {
	store := b.eng.Store()
	es, err := store.PendingOutbox(ctx, p.runID)
	if err != nil {
		return 0, err
	}
	run, err := b.eng.Run(ctx, p.runID)
	if err != nil {
		return 0, fmt.Errorf("loading %s: %w", p.runID, err)
	}
	if !b.eng.MayDeliver(run) {
		// Another replica executes the run and delivers its messages.
		return 0, nil
	}
	p.mu.Lock()
	first := !p.seen
	p.seen = true
	p.mu.Unlock()
	if first && b.eng.Replicated() {
		b.mu.Lock()
		for _, e := range es {
			b.suspect[e.ID] = true
		}
		b.mu.Unlock()
	}
	updated := false
	for i, e := range es {
		if !b.eng.MayDeliver(run) {
			return 0, nil // the lease was lost meanwhile
		}
		if e.Kind != steps.OutboxParent && e.Kind != steps.OutboxAnnounce && run.MessageTS == "" {
			// Thread messages need the parent; it comes first in the
			// outbox, so it failed or was given up.
			return e.ID, fmt.Errorf("%s has no message to thread under yet", run.ID)
		}
		switch e.Kind {
		case steps.OutboxParent:
			err = b.deliverParent(ctx, run, e)
			if err == nil {
				run, err = b.eng.Run(ctx, p.runID)
			}
		case steps.OutboxUpdate:
			if updated {
				continue
			}
			// Edits are idempotent and show the latest state: one edit
			// settles every pending update read so far.
			var ids []steps.Delivery
			for _, u := range es[i:] {
				if u.Kind == steps.OutboxUpdate {
					ids = append(ids, steps.Delivery{ID: u.ID})
				}
			}
			// The run as committed, not the engine's copy: the engine
			// takes in a commit just after it, and an edit rendered from
			// its copy in between would show the run one transition
			// behind and settle the update that was to show the rest
			// (TestRunMessageShowsTheEndWhenDeliveredRightAfterCommit).
			// The entries were read first, so this is at least as new as
			// every update settled here.
			latest, lerr := store.Run(ctx, p.runID)
			if lerr != nil {
				return e.ID, lerr
			}
			if err = b.chat.Update(ctx, run.Channel, run.MessageTS, RenderRun(latest)); err == nil {
				err = store.MarkDelivered(ctx, ids)
			}
			updated = true
		case steps.OutboxSay:
			err = b.deliverSay(ctx, run, e)
		case steps.OutboxFile:
			err = b.deliverFile(ctx, run, e)
		case steps.OutboxAnnounce:
			err = b.deliverAnnounce(ctx, run, e)
		default:
			err = store.MarkDelivered(ctx, []steps.Delivery{{ID: e.ID, Failure: "unknown kind " + string(e.Kind)}})
		}
		if err != nil {
			return e.ID, err
		}
		b.settled(e.ID)
	}
	if run.MessageTS == "" {
		return 0, nil
	}
	return 0, b.deliverLive(ctx, p, run)
}

// mayHaveArrived reports whether an entry may already be in Slack, and
// marks it so from now on: a send about to start may arrive and its answer
// be lost.
func (b *Bot) mayHaveArrived(id int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	was := b.suspect[id]
	b.suspect[id] = true
	return was
}

func (b *Bot) settled(id int64) {
	b.mu.Lock()
	delete(b.suspect, id)
	b.mu.Unlock()
}

// postOnce posts the entry's message unless it may already be in Slack and
// is found there by its key (in threadTS's thread, or in the channel since
// the entry was made when threadTS is ""). It returns the message's ts.
func (b *Bot) postOnce(ctx context.Context, e steps.OutboxEntry, channel, threadTS string, v View) (string, error) {
	v.Key = outboxKey(e)
	if b.mayHaveArrived(e.ID) {
		since := time.Time{}
		if threadTS == "" {
			since = e.At.Add(-time.Minute)
		}
		ts, found, err := b.chat.Find(ctx, channel, threadTS, v.Key, since)
		if err != nil || found {
			return ts, err
		}
	}
	return b.chat.Post(ctx, channel, threadTS, v)
}

func (b *Bot) deliverParent(ctx context.Context, run *steps.Run, e steps.OutboxEntry) error {
	if run.MessageTS != "" {
		return b.eng.Store().MarkDelivered(ctx, []steps.Delivery{{ID: e.ID, TS: run.MessageTS}})
	}
	ts, err := b.postOnce(ctx, e, run.Channel, "", RenderRun(run))
	if err != nil {
		return err
	}
	link, err := b.chat.Permalink(ctx, run.Channel, ts)
	if err != nil {
		b.runLog(run.ID).Warn("no permalink for the run message", zap.Error(redact.Scrub(err)))
	}
	return b.eng.SetMessage(ctx, run.ID, ts, link, steps.Delivery{ID: e.ID, TS: ts})
}

func (b *Bot) deliverSay(ctx context.Context, run *steps.Run, e steps.OutboxEntry) error {
	v := textView(truncate(e.Text, maxSectionText))
	if len(e.Buttons) > 0 {
		var bs []Button
		for _, bt := range e.Buttons {
			bs = append(bs, Button{Label: bt.Label, Style: bt.Style, ActionID: ActionID(bt.Verb, run.ID, steps.RunLevel), Value: ButtonValue(run.ID, steps.RunLevel, 0)})
		}
		v.Blocks = append(v.Blocks, Block{Kind: Actions, Buttons: bs})
	}
	ts, err := b.postOnce(ctx, e, run.Channel, run.MessageTS, v)
	if err != nil {
		return err
	}
	return b.eng.Store().MarkDelivered(ctx, []steps.Delivery{{ID: e.ID, TS: ts}})
}

func (b *Bot) deliverFile(ctx context.Context, run *steps.Run, e steps.OutboxEntry) error {
	// Files carry no metadata in Slack: the file's name and title, which
	// name the run and environment, identify it in the thread.
	if b.mayHaveArrived(e.ID) {
		found, err := b.chat.FindFile(ctx, run.Channel, run.MessageTS, e.Name, e.Title)
		if err != nil {
			return err
		}
		if found {
			return b.eng.Store().MarkDelivered(ctx, []steps.Delivery{{ID: e.ID}})
		}
	}
	if err := b.chat.Upload(ctx, run.Channel, run.MessageTS, e.Name, e.Title, e.Content); err != nil {
		return err
	}
	return b.eng.Store().MarkDelivered(ctx, []steps.Delivery{{ID: e.ID}})
}

func (b *Bot) deliverAnnounce(ctx context.Context, run *steps.Run, e steps.OutboxEntry) error {
	ts, err := b.postOnce(ctx, e, e.Channel, "", textView(truncate(e.Text, maxSectionText)))
	if err != nil {
		return err
	}
	line := fmt.Sprintf(":mega: Announced in <#%s>.", e.Channel)
	if link, err := b.chat.Permalink(ctx, e.Channel, ts); err == nil && link != "" {
		line = fmt.Sprintf(":mega: Announced in <#%s>: %s", e.Channel, link)
	}
	// The thread line is owed from the moment the announcement is
	// recorded as delivered: one transaction.
	return b.eng.Store().MarkDelivered(ctx, []steps.Delivery{{ID: e.ID, TS: ts}},
		steps.OutboxEntry{RunID: run.ID, Kind: steps.OutboxSay, Text: line, At: time.Now().UTC()})
}

func (b *Bot) deliverLive(ctx context.Context, p *publisher, run *steps.Run) error {
	for {
		p.mu.Lock()
		if len(p.lives) == 0 {
			p.mu.Unlock()
			return nil
		}
		op := p.lives[0]
		ts, known := p.live[op.key]
		p.mu.Unlock()
		key := run.ID + "/live/" + op.key
		if !known {
			// After a restart the progress message is edited where it is,
			// not posted again.
			found := false
			var err error
			if ts, found, err = b.chat.Find(ctx, run.Channel, run.MessageTS, key, time.Time{}); err != nil {
				return err
			}
			if !found {
				ts = ""
			}
		}
		v := textView(truncate(op.text, maxSectionText))
		v.Key = key
		if ts != "" {
			if err := b.chat.Update(ctx, run.Channel, ts, v); err != nil {
				return err
			}
		} else {
			newTS, err := b.chat.Post(ctx, run.Channel, run.MessageTS, v)
			if err != nil {
				return err
			}
			ts = newTS
		}
		p.mu.Lock()
		p.live[op.key] = ts
		if len(p.lives) > 0 && p.lives[0].key == op.key && p.lives[0].text == op.text {
			p.lives = p.lives[1:]
		}
		p.mu.Unlock()
	}
}

// permanent reports whether Slack refused a call for good (ok:false with
// an error code other than a rate limit), as opposed to not answering.
func permanent(err error) bool {
	var se slack.SlackErrorResponse
	return errors.As(err, &se) && se.Err != "ratelimited"
}

// retryLater schedules the next attempt after a growing pause. An entry
// refused for good maxFailures times in a row is given up, with the reason
// recorded in the outbox and logged, so the rest of the thread goes on.
func (b *Bot) retryLater(p *publisher, id int64, err error) {
	p.mu.Lock()
	p.failures++
	n := p.failures
	p.mu.Unlock()
	if id != 0 && permanent(err) && n >= maxFailures {
		b.runLog(p.runID).Error("giving up on a Slack message", zap.Int64("outbox_id", id), zap.Error(redact.Scrub(err)))
		ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
		if merr := b.eng.Store().MarkDelivered(ctx, []steps.Delivery{{ID: id, Failure: err.Error()}}); merr == nil {
			n = 0
		}
		cancel()
	} else {
		b.runLog(p.runID).Warn("slack send failed; retrying", zap.Int("attempt", n), zap.Error(redact.Scrub(err)))
	}
	wait := min(postRetry<<min(max(n-1, 0), 5), maxRetryWait)
	p.mu.Lock()
	if n == 0 {
		p.failures = 0
		wait = 0
	}
	p.retryAt = time.Now().Add(wait)
	p.running = false
	p.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if t := b.timers[p]; t != nil {
		t.Stop()
	}
	b.timers[p] = time.AfterFunc(wait, func() {
		b.mu.Lock()
		delete(b.timers, p)
		b.mu.Unlock()
		b.pump(p)
	})
	b.idle.Broadcast()
}

// idleCheck forgets the publisher of an ended run once nothing is owed,
// and wakes Flush.
func (b *Bot) idleCheck(p *publisher) {
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	ended := false
	if r, err := b.eng.Run(ctx, p.runID); err == nil && !r.State.Open() {
		ended = true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if ended {
		p.mu.Lock()
		if !p.running && !p.wake && len(p.lives) == 0 {
			delete(b.pubs, p.runID)
		}
		p.mu.Unlock()
	}
	b.idle.Broadcast()
}

// Flush waits until every committed message has been delivered (tests,
// shutdown). Entries stay in the store either way: what Flush does not see
// delivered, the next start delivers.
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

// busy reports whether anything is still to be sent: a drain running or
// owed, a retry pending, a live message queued, or an entry in the store.
func (b *Bot) busy() bool {
	if len(b.timers) > 0 {
		return true
	}
	for _, p := range b.pubs {
		p.mu.Lock()
		busy := p.running || p.wake || len(p.lives) > 0
		p.mu.Unlock()
		if busy {
			return true
		}
	}
	if b.eng == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	es, err := b.eng.Store().PendingOutbox(ctx, "")
	return err != nil || len(es) > 0
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

// runLog is the bot's logger for entries about a run: with its id, service
// and current step, like the engine's.
func (b *Bot) runLog(runID string) *zap.Logger {
	if b.eng == nil {
		return b.log.With(zap.String("run_id", runID), zap.String("service", ""), zap.String("step", ""))
	}
	return b.eng.RunLog(b.log, runID)
}
