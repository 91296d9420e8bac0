package steps

import "context"

// Store persists runs, approvals and the audit log. Every method is one
// transaction: the engine commits each transition before announcing it.
type Store interface {
	// CreateRun inserts a new run and its steps, assigns r.ID, and appends
	// the events (their RunID set to the new id). When the run takes its
	// service's lock and another open run holds it, CreateRun returns a
	// *LockedError and stores nothing.
	CreateRun(ctx context.Context, r *Run, events ...AuditEvent) error
	// SaveRun commits the run's fields and all its steps, and appends the
	// events and approvals, in one transaction.
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
	// FirstDelivery records a Slack envelope id and reports whether it was
	// new; redelivered envelopes must not act twice, across restarts too.
	FirstDelivery(ctx context.Context, id string) (bool, error)
	Close() error
}

// Changes are what a transition appends besides the run's new state.
type Changes struct {
	Events    []AuditEvent
	Approvals []Approval
}
