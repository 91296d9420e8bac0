package steps

import (
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/config"
)

// "No new issues in 15 minutes" is said only for a window checked to its
// end; a watch checked in part says how much; one checked not at all
// waits for Retry or an approver's Skip.
func TestWatchResultCountsWhatWasChecked(t *testing.T) {
	s := &watchStep{cfg: &config.Sentry{Watch: 15 * time.Minute}}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ws := []window{{senv: "staging", start: t0, end: t0.Add(15 * time.Minute)}, {senv: "production", start: t0.Add(5 * time.Minute), end: t0.Add(20 * time.Minute)}}

	full := s.result(ws, []time.Time{t0.Add(21 * time.Minute), t0.Add(21 * time.Minute)}, 0)
	if full.Status != StepDone || full.Note != "no new issues in 15 minutes" {
		t.Errorf("whole watch checked: %v %q", full.Status, full.Note)
	}
	part := s.result(ws, []time.Time{t0.Add(21 * time.Minute), t0.Add(14 * time.Minute)}, 2)
	if part.Status != StepDone || strings.Contains(part.Note, "in 15 minutes") || !strings.Contains(part.Note, "production: checked 9 minutes of 15 minutes") || !strings.Contains(part.Note, "2 new issues") {
		t.Errorf("production checked for 9 of 15 minutes: %v %q", part.Status, part.Note)
	}
	none := s.result(ws, []time.Time{{}, {}}, 0)
	if none.Status != StepWaiting || strings.Contains(none.Note, "no new issues") {
		t.Fatalf("nothing checked: %v %q", none.Status, none.Note)
	}
	verbs := []string{}
	for _, b := range none.Buttons {
		verbs = append(verbs, b.Verb)
	}
	if strings.Join(verbs, ",") != "retry,skip" {
		t.Errorf("nothing checked offers %v, want retry and skip", verbs)
	}
}

// Sentry and GitHub text going into mrkdwn: whatever it is, escaped it
// carries no mention, link or channel ping, and it reads back unchanged.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"<!channel>", "<@U0ALICE>", "<#C0DEPLOYS|deploys>", "<https://evil.example|click>", "a & b", "&lt;!here&gt;", "KeyError: '<' not supported", "<!subteam^S0MAINTAINERS>"} {
		f.Add(s)
	}
	unescape := strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		if strings.ContainsAny(e, "<>") {
			t.Fatalf("Escape(%q) = %q still holds < or >", s, e)
		}
		if got := unescape.Replace(e); got != s {
			t.Fatalf("Escape(%q) = %q reads back as %q", s, e, got)
		}
		if o := oneLine(e, 200); strings.ContainsAny(o, "<>") {
			t.Fatalf("oneLine(Escape(%q)) = %q", s, o)
		}
	})
}
