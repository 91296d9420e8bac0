package sqlite

import (
	"testing"

	"github.com/deploybot/deploybot/steps"
)

// Ping answers while the database does and fails once it is closed (what
// /readyz reports); OutboxDepth counts what is owed to Slack.
func TestPingAndOutboxDepth(t *testing.T) {
	db, _ := openTest(t)
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("ping of an open database: %v", err)
	}
	r := newRun("api")
	if err := db.CreateRun(ctx, r, steps.Changes{Outbox: []steps.OutboxEntry{{Kind: steps.OutboxParent}, {Kind: steps.OutboxSay, Text: "one"}}}); err != nil {
		t.Fatal(err)
	}
	if n, err := db.OutboxDepth(ctx); err != nil || n != 2 {
		t.Fatalf("outbox depth = %d, %v; want 2", n, err)
	}
	owed, err := db.PendingOutbox(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.MarkDelivered(ctx, []steps.Delivery{{ID: owed[0].ID, TS: "1.0"}}); err != nil {
		t.Fatal(err)
	}
	if n, err := db.OutboxDepth(ctx); err != nil || n != 1 {
		t.Fatalf("outbox depth after a delivery = %d, %v; want 1", n, err)
	}
	db.Close()
	if err := db.Ping(ctx); err == nil {
		t.Fatal("a closed database answers ping")
	}
}
