package sqlite

import (
	"testing"

	"github.com/deploybot/deploybot/steps"
)

// Messages a transition causes are committed with it, listed in order until
// delivered, and a follow-up (the announcement's link) is owed from the same
// commit that records the announcement delivered.
func TestOutboxIsCommittedWithTheTransitionAndDeliveredInOrder(t *testing.T) {
	db, path := openTest(t)
	r := newRun("api")
	if err := db.CreateRun(ctx, r, steps.Changes{Outbox: []steps.OutboxEntry{{Kind: steps.OutboxParent}}}); err != nil {
		t.Fatal(err)
	}
	plan := []byte("+ terraform_data.x")
	if err := db.SaveRun(ctx, r, steps.Changes{Outbox: []steps.OutboxEntry{
		{Kind: steps.OutboxSay, Text: "one", Buttons: []steps.Button{{Verb: steps.VerbRollback, Label: "Roll back"}}},
		{Kind: steps.OutboxFile, Name: "plan.txt", Title: "Plan", Content: plan},
		{Kind: steps.OutboxAnnounce, Channel: "C0ALERTS", Text: "incident"},
	}}); err != nil {
		t.Fatal(err)
	}
	// A transition that fails to commit leaves no message behind.
	other := newRun("api")
	if err := db.CreateRun(ctx, other, steps.Changes{Outbox: []steps.OutboxEntry{{Kind: steps.OutboxParent}}}); !isLocked(err) {
		t.Fatalf("second open run of api: %v, want the service lock", err)
	}

	db.Close()
	db, err := Open(path) // what a restart sees
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	owed, err := db.PendingOutbox(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []steps.OutboxKind
	for _, e := range owed {
		if e.RunID != r.ID {
			t.Errorf("entry %d belongs to %q, want %s", e.ID, e.RunID, r.ID)
		}
		kinds = append(kinds, e.Kind)
	}
	want := []steps.OutboxKind{steps.OutboxParent, steps.OutboxSay, steps.OutboxFile, steps.OutboxAnnounce}
	if len(kinds) != len(want) {
		t.Fatalf("owed %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("owed %v, want %v in that order", kinds, want)
		}
	}
	if owed[1].Buttons[0].Verb != steps.VerbRollback || string(owed[2].Content) != string(plan) || owed[3].Channel != "C0ALERTS" {
		t.Errorf("entries did not round-trip: %+v", owed)
	}

	if err := db.MarkDelivered(ctx, []steps.Delivery{{ID: owed[0].ID, TS: "1.0"}, {ID: owed[3].ID, TS: "2.0"}},
		steps.OutboxEntry{RunID: r.ID, Kind: steps.OutboxSay, Text: "Announced: link"}); err != nil {
		t.Fatal(err)
	}
	left, err := db.PendingOutbox(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 3 || left[0].Text != "one" || left[2].Text != "Announced: link" {
		t.Fatalf("after delivery owed %+v, want the say, the file and the follow-up", left)
	}
	// Delivering twice is harmless: the record keeps the first answer.
	if err := db.MarkDelivered(ctx, []steps.Delivery{{ID: owed[0].ID, TS: "9.9"}}); err != nil {
		t.Fatal(err)
	}
	var ts string
	if err := db.r.QueryRowContext(ctx, `SELECT ts FROM outbox WHERE id = ?`, owed[0].ID).Scan(&ts); err != nil || ts != "1.0" {
		t.Errorf("parent ts %q (%v), want the first delivery's 1.0", ts, err)
	}
}
