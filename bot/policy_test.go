package bot

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

type flakyGroups struct {
	members []string
	down    bool
	calls   int
}

func (g *flakyGroups) GroupMembers(ctx context.Context, id string) ([]string, error) {
	g.calls++
	if g.down {
		return nil, errors.New("slack: internal_error")
	}
	return g.members, nil
}

// While Slack's user groups do not answer, the membership last seen holds
// for group_cache_max_stale; after that, roles that depend on the group
// fail closed with a reason, and people listed by id are unaffected.
func TestGroupMembershipFailsClosedAfterMaxStale(t *testing.T) {
	g := &flakyGroups{members: []string{"U0DAVE"}}
	r := NewRoles([]string{"U0ALICE"}, []string{"U0ALICE", "S0APPROVERS"}, g, 10*time.Minute)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	ctx := context.Background()

	if ok, err := r.IsApprover(ctx, "U0DAVE"); !ok || err != nil {
		t.Fatalf("dave through the group: %v %v", ok, err)
	}
	g.down = true
	now = now.Add(9 * time.Minute)
	if ok, err := r.IsApprover(ctx, "U0DAVE"); !ok || err != nil {
		t.Fatalf("9 minutes stale, within max stale: %v %v", ok, err)
	}
	now = now.Add(2 * time.Minute)
	ok, err := r.IsApprover(ctx, "U0DAVE")
	if ok || err == nil || !strings.Contains(err.Error(), "group_cache_max_stale") {
		t.Fatalf("11 minutes stale: %v %v, want a refusal naming group_cache_max_stale", ok, err)
	}
	if ok, err := r.IsApprover(ctx, "U0ALICE"); !ok || err != nil {
		t.Fatalf("alice is listed by id and needs no group: %v %v", ok, err)
	}
	g.down = false
	if ok, err := r.IsApprover(ctx, "U0DAVE"); !ok || err != nil {
		t.Fatalf("slack answers again: %v %v", ok, err)
	}
}
