package bot

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/deploybot/deploybot/steps"
)

// A run with very many steps and long notes still renders within Slack's
// limits, and outside text cannot ping anyone.
func TestRenderStaysWithinSlackLimits(t *testing.T) {
	r := &steps.Run{ID: "run-7", Kind: steps.KindDeploy, Service: "svc", Version: "rel-2024.01.01.00.00.00", Requester: "U0A",
		State: steps.RunActive, UpdatedAt: time.Now(), Summary: strings.Repeat("<!channel> ", 1000)}
	for i := 0; i < 400; i++ {
		st := steps.StepState{Index: i, ID: fmt.Sprint(i), Title: strings.Repeat("t", 140), Status: steps.StepDone, Note: strings.Repeat("n", 5000)}
		if i == 399 {
			st.Status, st.Prompt = steps.StepWaiting, strings.Repeat("p", 10000)
			for _, v := range steps.Verbs {
				st.Buttons = append(st.Buttons, steps.Button{Verb: v, Label: v})
			}
		}
		r.Steps = append(r.Steps, st)
	}
	v := RenderRun(r)
	blocks := toBlocks(v)
	if len(blocks) > maxBlocks {
		t.Fatalf("%d blocks", len(blocks))
	}
	for _, b := range v.Blocks {
		if n := utf8.RuneCountInString(b.Text); n > maxSectionText {
			t.Errorf("block text of %d characters", n)
		}
	}
	if utf8.RuneCountInString(v.Text) > maxText {
		t.Errorf("text of %d characters", len(v.Text))
	}
	all := v.Text
	for _, b := range v.Blocks {
		all += b.Text
	}
	if strings.Contains(all, "<!channel>") {
		t.Error("the summary can ping the channel")
	}
	// The waiting step's buttons survive even when the checklist is cut.
	if !strings.Contains(fmt.Sprint(v.Blocks[len(v.Blocks)-2].Buttons), "approve:run-7:399") &&
		!strings.Contains(fmt.Sprint(v.Blocks), "approve:run-7:399") {
		t.Error("the waiting step's buttons were cut")
	}
}

func TestParseButtonRejectsMalformedValues(t *testing.T) {
	for _, c := range []struct{ id, value string }{
		{"approve:run-1:0", "run-1|0"},
		{"explode:run-1:0", "run-1|0|1"},
		{"approve:run-1:0", "run-1|x|1"},
		{"approve:run-1:0", "|0|1"},
		{"", ""},
	} {
		if _, ok := parseButton(c.id, c.value); ok {
			t.Errorf("%q %q accepted", c.id, c.value)
		}
	}
	req, ok := parseButton(ActionID("done", "run-3", 2), ButtonValue("run-3", 2, 9))
	if !ok || req.RunID != "run-3" || req.StepIndex != 2 || req.Seq != 9 || req.Verb != "done" {
		t.Errorf("round trip: %+v %v", req, ok)
	}
}
