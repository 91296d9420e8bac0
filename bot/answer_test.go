package bot

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/steps"
)

// A request that meets the run changing hands between replicas is told
// so, and what to do, rather than reported as a failure.
func TestAnswerWhenTheLeaseWasLost(t *testing.T) {
	b := fuzzBot(t)
	var got []string
	reply := func(ctx context.Context, v View) error { got = append(got, v.Text); return nil }
	b.answerErr(context.Background(), reply, fmt.Errorf("approving: %w", steps.ErrLeaseLost), "run-1")
	if len(got) != 1 || !strings.Contains(got[0], "your click was not recorded and nothing was done. Click again in a few seconds") {
		t.Errorf("answered %q", got)
	}
	got = nil
	b.answerErr(context.Background(), reply, steps.ErrForwarded, "run-1")
	if len(got) != 1 || !strings.Contains(got[0], "Another deploybot replica is running this run") {
		t.Errorf("a forwarded request answered %q", got)
	}
}
