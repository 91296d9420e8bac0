package steps

import (
	"context"
	"time"
)

// Store persists runs, approvals and the audit log. Every method is one
// transaction: the engine commits each transition before announcing it.
type Store interface {
	// CreateRun inserts a new run and its steps, assigns r.ID and r.Rev, and appends
	// the changes (their RunID set to the new id). When the run takes its
	// service's lock and another open run holds it, CreateRun returns a
	// *LockedError and stores nothing.
	CreateRun(ctx context.Context, r *Run, c Changes) error
	// SaveRun commits the run's fields and all its steps, and appends the
	// events and approvals, in one transaction. It is a compare-and-set on
	// r.Rev: when the stored run is at another revision it returns ErrStale
	// and writes nothing; on success r.Rev is the new revision.
	SaveRun(ctx context.Context, r *Run, c Changes) error
	// Run loads one run with its steps; ErrNotFound when unknown.
	Run(ctx context.Context, id string) (*Run, error)
	// OpenRuns lists runs whose state is open, oldest first.
	OpenRuns(ctx context.Context) ([]*Run, error)
	// Runs lists the most recent runs of a service (all services when
	// service is ""), newest first.
	Runs(ctx context.Context, service string, limit int) ([]*Run, error)
	// AppendAudit appends events that change no run (refusals, for one).
	AppendAudit(ctx context.Context, events ...AuditEvent) error
	// Audit lists a run's events in order (every event when runID is "").
	Audit(ctx context.Context, runID string) ([]AuditEvent, error)
	// Approvals lists a run's approvals in order.
	Approvals(ctx context.Context, runID string) ([]Approval, error)
	// PendingOutbox lists the undelivered outbox entries of a run (of every
	// run when runID is ""), oldest first.
	PendingOutbox(ctx context.Context, runID string) ([]OutboxEntry, error)
	// MarkDelivered records entries as delivered (ts is the message they
	// became, "" for edits and files) and appends follow-up entries, in one
	// transaction. A failure, when set, says why an entry was given up.
	MarkDelivered(ctx context.Context, d []Delivery, follow ...OutboxEntry) error
	// FirstDelivery records a Slack envelope id and reports whether it was
	// new; redelivered envelopes must not act twice, across restarts too.
	FirstDelivery(ctx context.Context, id string) (bool, error)
	Close() error
}

// Changes are what a transition appends besides the run's new state.
type Changes struct {
	Events    []AuditEvent
	Approvals []Approval
	// Outbox holds the messages the transition causes. They are committed
	// with it and delivered after, so a crash can neither announce a
	// transition that was not committed nor lose one that was.
	Outbox []OutboxEntry
	// Delivered marks earlier entries delivered in the same transaction
	// (the run's parent message, whose ts the run records).
	Delivered []Delivery
}

// OutboxKind says what an outbox entry becomes in chat.
type OutboxKind string

const (
	// OutboxParent is the run's parent message; its ts becomes the thread.
	OutboxParent OutboxKind = "parent"
	// OutboxUpdate re-renders the parent message from the run's latest
	// state. Edits are idempotent, so pending updates collapse into one.
	OutboxUpdate OutboxKind = "update"
	// OutboxSay is a line in the run's thread, with buttons when set.
	OutboxSay OutboxKind = "say"
	// OutboxFile is a file shared into the run's thread.
	OutboxFile OutboxKind = "file"
	// OutboxAnnounce is a message in another channel (the alerts channel:
	// the incident announcement); its permalink is then said in the thread.
	OutboxAnnounce OutboxKind = "announce"
)

// OutboxEntry is one message owed to chat, recorded with the transition
// that caused it. Its ID is the idempotency key the message carries, so a
// delivery interrupted between Slack's answer and the record is found in
// Slack rather than sent twice.
type OutboxEntry struct {
	ID      int64
	RunID   string
	Kind    OutboxKind
	Channel string // OutboxAnnounce: where; others go to the run's channel
	Text    string
	Buttons []Button // OutboxSay: run-level buttons under the line
	Name    string   // OutboxFile
	Title   string   // OutboxFile
	Content []byte   // OutboxFile
	At      time.Time
}

// Delivery records that an outbox entry reached chat.
type Delivery struct {
	ID      int64
	TS      string
	Failure string
}
