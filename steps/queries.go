package steps

import (
	"context"
	"sort"
	"strings"

	"go.uber.org/zap"
)

// SetMessage records where the run's parent message is, and its link
// (which the infrastructure PR cites).
// The parent's outbox entry is marked delivered in the same transaction,
// so the message is recorded exactly when its delivery is.
func (e *Engine) SetMessage(ctx context.Context, runID, ts, permalink string, delivered ...Delivery) error {
	set := func(r *Run) {
		r.MessageTS = ts
		if permalink != "" {
			if r.Data == nil {
				r.Data = map[string]string{}
			}
			r.Data["permalink"] = permalink
		}
	}
	l := e.liveRun(runID)
	if l == nil {
		r, err := e.store.Run(ctx, runID)
		if err != nil {
			return err
		}
		set(r)
		return e.store.SaveRun(ctx, r, Changes{Delivered: delivered})
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	set(l.run)
	return e.saveQuiet(ctx, l, Changes{Delivered: delivered})
}

// Run returns a snapshot of a run, open or not.
func (e *Engine) Run(ctx context.Context, id string) (*Run, error) {
	if l := e.liveRun(id); l != nil {
		return l.snap.Load().Clone(), nil
	}
	return e.store.Run(ctx, id)
}

// OpenRuns returns snapshots of the open runs, oldest first. It never waits
// on a run's lock.
func (e *Engine) OpenRuns() []*Run {
	e.mu.Lock()
	out := make([]*Run, 0, len(e.runs))
	for _, l := range e.runs {
		if r := l.snap.Load(); r.State.Open() {
			out = append(out, r.Clone())
		}
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

// Watching lists open runs whose Sentry watch is running.
func (e *Engine) Watching() []*Run {
	var out []*Run
	for _, r := range e.OpenRuns() {
		if cur := r.Current(); cur != nil && cur.ID == watchStepID && cur.Status == StepRunning {
			out = append(out, r)
		}
	}
	return out
}

func (e *Engine) liveRun(id string) *live {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runs[id]
}

func (e *Engine) refused(ctx context.Context, req ActionRequest, format string, args ...any) error {
	rf := refuse(format, args...)
	e.audit(ctx, AuditEvent{RunID: req.RunID, Actor: req.User, Action: "click.refused", Detail: req.Verb + ": " + rf.Msg})
	return rf
}

func (e *Engine) audit(ctx context.Context, ev AuditEvent) {
	if ev.At.IsZero() {
		ev.At = e.now().UTC()
	}
	if e.mask != nil {
		ev.Detail = e.mask(ev.Detail)
	}
	if err := e.store.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		log := e.log
		if ev.RunID != "" {
			service := ""
			if l := e.liveRun(ev.RunID); l != nil {
				service = l.snap.Load().Service
			}
			log = log.With(zap.String("run_id", ev.RunID), zap.String("service", service), zap.String("step", ev.StepID))
		}
		log.Error("audit append failed", zap.String("action", ev.Action), zap.Error(err))
	}
}

// Audit records an event from outside the engine (the bot's refusals of
// malformed commands, for one).
func (e *Engine) Audit(ctx context.Context, ev AuditEvent) { e.audit(ctx, ev) }

// LinkAlert posts a Sentry alert about an issue in a watching run's thread,
// once per issue: not when the watch has already posted the issue, nor a
// second time for a second alert. The record and the post commit together.
func (e *Engine) LinkAlert(ctx context.Context, runID, issueID, text string, buttons ...Button) (bool, error) {
	l := e.liveRun(runID)
	if l == nil {
		return false, ErrNotFound
	}
	l.mu.Lock()
	st := l.run.StepByID(watchStepID)
	if st == nil {
		l.mu.Unlock()
		return false, nil
	}
	for _, id := range strings.Fields(st.Data["posted"] + " " + st.Data["alerted"]) {
		if id == issueID {
			l.mu.Unlock()
			return false, nil
		}
	}
	if st.Data == nil {
		st.Data = map[string]string{}
	}
	st.Data["alerted"] = strings.TrimSpace(st.Data["alerted"] + " " + issueID)
	err := e.saveQuiet(ctx, l, Changes{
		Events: []AuditEvent{{Actor: BotActor, Action: "alert.linked", StepID: st.ID, Detail: "sentry issue " + issueID}},
		Outbox: []OutboxEntry{{Kind: OutboxSay, Text: text, Buttons: buttons}}})
	snap := l.run.Clone()
	l.mu.Unlock()
	if err != nil {
		return false, err
	}
	e.notify.RunChanged(snap)
	return true, nil
}
