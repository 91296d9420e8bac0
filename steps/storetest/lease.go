package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/steps"
)

func leasesOf(t *testing.T, s steps.Store) steps.Leases {
	t.Helper()
	l, ok := s.(steps.Leases)
	if !ok {
		t.Fatalf("%T does not implement steps.Leases", s)
	}
	return l
}

func take(t *testing.T, l steps.Leases, run, owner string, ttl time.Duration) bool {
	t.Helper()
	ok, err := l.TakeLease(ctx, run, owner, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// leases: one owner at a time, renewed by its owner, freed by its owner
// only, and taken by another once expired.
func leases(t *testing.T, b Backend) {
	a, other := leasesOf(t, b.Store), leasesOf(t, b.Again(t))
	if !take(t, a, "run-1", "A", time.Minute) {
		t.Fatal("a free lease was refused")
	}
	if take(t, other, "run-1", "B", time.Minute) {
		t.Fatal("B took a lease A holds")
	}
	if !take(t, a, "run-1", "A", time.Minute) {
		t.Fatal("A could not renew its own lease")
	}
	if !take(t, other, "run-2", "B", time.Minute) {
		t.Fatal("another run's lease was refused")
	}
	if err := other.DropLease(ctx, "run-1", "B"); err != nil {
		t.Fatal(err)
	}
	if take(t, other, "run-1", "C", time.Minute) {
		t.Fatal("a non-owner's DropLease freed the lease")
	}
	if err := a.DropLease(ctx, "run-1", "A"); err != nil {
		t.Fatal(err)
	}
	if !take(t, other, "run-1", "B", time.Minute) {
		t.Fatal("a dropped lease was not free")
	}

	const ttl = 500 * time.Millisecond
	took := time.Now()
	if !take(t, a, "run-3", "A", ttl) {
		t.Fatal("a free lease was refused")
	}
	deadline := time.Now().Add(20 * time.Second)
	for !take(t, other, "run-3", "B", time.Minute) {
		if time.Now().After(deadline) {
			t.Fatal("an expired lease was never taken over")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if held := time.Since(took); held < ttl-50*time.Millisecond {
		t.Errorf("B took A's lease %v after A took it for %v", held, ttl)
	}
	if take(t, a, "run-3", "A", ttl) {
		t.Error("A renewed a lease B took over")
	}
}

// cutLeases stands between a holder and the store: while cut, a call hangs
// until its context ends, as over a network cut to the database.
type cutLeases struct {
	steps.Leases
	mu  sync.Mutex
	cut chan struct{}
}

func (c *cutLeases) TakeLease(ctx context.Context, run, owner string, ttl time.Duration) (bool, error) {
	c.mu.Lock()
	cut := c.cut
	c.mu.Unlock()
	if cut != nil {
		<-ctx.Done()
		return false, ctx.Err()
	}
	return c.Leases.TakeLease(ctx, run, owner, ttl)
}

// leaseHolder: a holder whose renewals stop arriving gives the lease up
// before another replica can take it; one whose lease was taken stops at
// its next renewal; one that releases frees it at once.
func leaseHolder(t *testing.T, b Backend) {
	const ttl = time.Second
	other := leasesOf(t, b.Again(t))

	// Renewals cut off (a network cut, a long pause).
	cut := &cutLeases{Leases: leasesOf(t, b.Store)}
	h, err := steps.Hold(ctx, cut, "run-1", "A", ttl)
	if err != nil {
		t.Fatal(err)
	}
	// Renewals work for a while: the lease outlives its first ttl.
	select {
	case <-h.Lost():
		t.Fatal("a renewed lease was lost")
	case <-time.After(2 * ttl):
	}
	if take(t, other, "run-1", "B", time.Minute) {
		t.Fatal("B took a lease that A renews")
	}
	cut.mu.Lock()
	cut.cut = make(chan struct{})
	cut.mu.Unlock()
	var lostAt, takenAt time.Time
	lost := h.Lost()
	deadline := time.After(20 * time.Second)
	for takenAt.IsZero() {
		select {
		case <-lost:
			lostAt, lost = time.Now(), nil
		case <-deadline:
			t.Fatalf("after the cut: lost at %v, taken over at %v", lostAt, takenAt)
		case <-time.After(10 * time.Millisecond):
			if take(t, other, "run-1", "B", time.Minute) {
				takenAt = time.Now()
			}
		}
	}
	if lostAt.IsZero() || !lostAt.Before(takenAt) {
		t.Errorf("B took the lease over at %v, but A only gave it up at %v: both could act", takenAt, lostAt)
	}
	t.Logf("renewals cut: A gave the lease up %v before B could take it (ttl %v)", takenAt.Sub(lostAt).Round(time.Millisecond), ttl)
	h.Release(ctx)

	// Taken while held (say, judged expired by a replica whose holder was
	// paused): the holder finds out at its next renewal.
	h, err = steps.Hold(ctx, leasesOf(t, b.Store), "run-2", "A", ttl)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Exec(ctx, `UPDATE leases SET owner = 'B' WHERE run_id = 'run-2'`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Lost():
	case <-time.After(10 * ttl):
		t.Fatal("a holder whose lease was taken did not notice")
	}
	h.Release(ctx)
	if take(t, other, "run-2", "C", time.Minute) {
		t.Error("the old holder's Release freed a lease it no longer held")
	}

	// Released: free at once, not at expiry.
	h, err = steps.Hold(ctx, leasesOf(t, b.Store), "run-3", "A", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := steps.Hold(ctx, other, "run-3", "B", time.Hour); err != steps.ErrLeaseHeld {
		t.Errorf("Hold of a held lease = %v, want ErrLeaseHeld", err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if !take(t, other, "run-3", "B", time.Minute) {
		t.Error("a released lease was not free")
	}
}
