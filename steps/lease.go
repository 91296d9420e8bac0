package steps

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Leases let replicas sharing a store agree on who executes a run: a lease
// is a row with an owner and an expiry, by the store's clock.
type Leases interface {
	// TakeLease gives owner the run's lease for ttl from now when it is
	// free, expired or already owner's (then it is renewed), and reports
	// whether owner holds it.
	TakeLease(ctx context.Context, runID, owner string, ttl time.Duration) (bool, error)
	// DropLease frees the run's lease if owner holds it.
	DropLease(ctx context.Context, runID, owner string) error
}

// ErrLeaseHeld is Hold finding the run's lease held by another owner.
var ErrLeaseHeld = errors.New("the run's lease is held by another replica")

// A holder gives up the end of its lease, leaseMargin percent of the ttl
// but at least leaseMinMargin, to cover the time a renewal takes to reach
// the store.
const (
	leaseMargin    = 5
	leaseMinMargin = 200 * time.Millisecond
)

// Lease is a run's lease held and renewed in the background.
type Lease struct {
	l          Leases
	run, owner string
	ttl        time.Duration
	lost       chan struct{}
	lostOnce   sync.Once
	stop       context.CancelFunc
	done       chan struct{}
	validUntil time.Time // by the local monotonic clock: when the last confirmed renewal runs out
}

// Hold takes the run's lease for owner and renews it every ttl/3. Lost is
// closed as soon as the holder cannot be sure it still holds the lease: a
// renewal refused (someone took it) or not confirmed in time (the store is
// unreachable, the process was paused). That happens before the store
// would let another owner take it, because the holder counts the ttl from
// before it sent the renewal, by its own monotonic clock, less a margin:
// the holder stops acting before anyone else can start.
func Hold(ctx context.Context, l Leases, runID, owner string, ttl time.Duration) (*Lease, error) {
	sent := time.Now()
	ok, err := l.TakeLease(ctx, runID, owner, ttl)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrLeaseHeld
	}
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	h := &Lease{l: l, run: runID, owner: owner, ttl: ttl, lost: make(chan struct{}), stop: stop, done: make(chan struct{})}
	h.validUntil = sent.Add(ttl - h.margin())
	go h.keep(rctx)
	return h, nil
}

func (h *Lease) margin() time.Duration {
	return max(h.ttl*leaseMargin/100, leaseMinMargin)
}

// Lost is closed when the lease may no longer be held.
func (h *Lease) Lost() <-chan struct{} { return h.lost }

func (h *Lease) markLost() { h.lostOnce.Do(func() { close(h.lost) }) }

type renewal struct {
	sent time.Time
	ok   bool
	err  error
}

// keep renews every ttl/3 and watches the deadline. The deadline does not
// wait for a renewal that hangs (a network cut): the lease is lost when it
// passes, whatever is in flight.
func (h *Lease) keep(ctx context.Context) {
	defer close(h.done)
	tick := time.NewTicker(h.ttl / 3)
	defer tick.Stop()
	expire := time.NewTimer(time.Until(h.validUntil))
	defer expire.Stop()
	var inFlight chan renewal
	for {
		select {
		case <-ctx.Done():
			return
		case <-expire.C:
			h.markLost()
			return
		case <-tick.C:
			if inFlight != nil {
				continue
			}
			inFlight = make(chan renewal, 1)
			go func(ch chan renewal, until time.Time) {
				sent := time.Now()
				rctx, cancel := context.WithDeadline(ctx, until)
				defer cancel()
				ok, err := h.l.TakeLease(rctx, h.run, h.owner, h.ttl)
				ch <- renewal{sent, ok, err}
			}(inFlight, h.validUntil)
		case r := <-inFlight:
			inFlight = nil
			switch {
			case r.err == nil && !r.ok:
				h.markLost() // taken by someone else
				return
			case r.err == nil:
				h.validUntil = r.sent.Add(h.ttl - h.margin())
				expire.Reset(time.Until(h.validUntil))
			}
			// A failed renewal is tried again on the next tick; the
			// deadline decides when it is too late.
		}
	}
}

// Release stops renewing and frees the lease, so another replica need not
// wait for it to expire.
func (h *Lease) Release(ctx context.Context) error {
	h.stop()
	<-h.done
	h.markLost()
	return h.l.DropLease(ctx, h.run, h.owner)
}
