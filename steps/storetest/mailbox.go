package storetest

import (
	"bytes"
	"testing"

	"github.com/deploybot/deploybot/steps"
)

// mailbox: a request recorded by one replica is listed, in order and
// intact, by another until it is marked taken, and only once taken.
func mailbox(t *testing.T, b Backend) {
	in, ok := b.Store.(steps.Mailbox)
	if !ok {
		t.Fatalf("%T does not implement steps.Mailbox", b.Store)
	}
	out, ok := b.Again(t).(steps.Mailbox)
	if !ok {
		t.Fatal("the second store does not implement steps.Mailbox")
	}
	body := []byte(`{"kind":"act","req":{"RunID":"7","Verb":"approve"}}`)
	a := &steps.PendingAction{RunID: "7", Body: body, CreatedAt: T0}
	if err := in.AddPendingAction(ctx, a); err != nil {
		t.Fatal(err)
	}
	second := &steps.PendingAction{RunID: "8", Body: []byte("{}"), CreatedAt: T0}
	if err := in.AddPendingAction(ctx, second); err != nil {
		t.Fatal(err)
	}
	if a.ID == 0 || second.ID <= a.ID {
		t.Fatalf("ids %d then %d: want increasing, non-zero", a.ID, second.ID)
	}
	got, err := out.PendingActions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != a.ID || got[0].RunID != "7" || !bytes.Equal(got[0].Body, body) || !got[0].CreatedAt.Equal(T0) || got[1].ID != second.ID {
		t.Fatalf("pending = %+v, want the two requests in order", got)
	}
	if err := out.MarkActionTaken(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := out.MarkActionTaken(ctx, a.ID); err != nil {
		t.Fatalf("marking a request taken twice: %v", err)
	}
	got, err = in.PendingActions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != second.ID {
		t.Fatalf("after taking the first, pending = %+v, want only the second", got)
	}
}
