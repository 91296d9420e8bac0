package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/testtool"
	"github.com/deploybot/deploybot/steps"
)

// A request recorded by one replica wakes another that listens, at once
// (not at its next poll), and the request is readable when it wakes.
func TestRecordedRequestWakesTheListener(t *testing.T) {
	dsn := testtool.Postgres(t)
	holder, other := openTest(t, dsn), openTest(t, dsn)
	lctx, stop := context.WithCancel(ctx)
	woke := make(chan struct{}, 8)
	done := make(chan error, 1)
	go func() {
		done <- holder.WaitActions(lctx, func() { woke <- struct{}{} })
	}()
	select {
	case <-woke: // the first look, once listening
	case <-time.After(30 * time.Second):
		t.Fatal("the listener never started")
	}
	sent := time.Now()
	if err := other.AddPendingAction(ctx, &steps.PendingAction{RunID: "run-1", Body: []byte("{}"), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-woke:
	case <-time.After(30 * time.Second):
		t.Fatal("recording a request did not wake the listening replica")
	}
	t.Logf("woken %v after the request was recorded", time.Since(sent).Round(time.Millisecond))
	as, err := holder.PendingActions(ctx)
	if err != nil || len(as) != 1 || as[0].RunID != "run-1" {
		t.Fatalf("on waking, pending = %v, %v; want the request", as, err)
	}
	stop()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("WaitActions did not return when its context ended")
	}
}
