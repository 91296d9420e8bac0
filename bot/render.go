package bot

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/deploybot/deploybot/steps"
)

// Slack's limits (FACTS.md). The Slack adapter checks them again; the
// renderer keeps within them so that no run can produce a message Slack
// rejects.
const (
	maxBlocks      = 50
	maxSectionText = 3000
	maxHeaderText  = 150
	maxText        = 40000
	maxButtons     = 25
)

var statusIcon = map[steps.StepStatus]string{
	steps.StepPending:     ":white_circle:",
	steps.StepRunning:     ":hourglass_flowing_sand:",
	steps.StepWaiting:     ":eyes:",
	steps.StepDone:        ":white_check_mark:",
	steps.StepFailed:      ":x:",
	steps.StepSkipped:     ":fast_forward:",
	steps.StepInterrupted: ":warning:",
}

var statusWord = map[steps.StepStatus]string{
	steps.StepPending:     "pending",
	steps.StepRunning:     "running",
	steps.StepWaiting:     "waiting",
	steps.StepDone:        "done",
	steps.StepFailed:      "failed",
	steps.StepSkipped:     "skipped",
	steps.StepInterrupted: "interrupted",
}

// RenderRun draws a run's parent message: the headline, who and what, the
// checklist of every step with its state, and the buttons of the step that
// waits.
func RenderRun(r *steps.Run) View {
	var blocks []Block
	blocks = append(blocks, Block{Kind: Header, Text: truncate(r.Title(), maxHeaderText)})

	facts := []string{
		"*Run* `" + r.ID + "`",
		"*Service* " + r.Service,
		"*Requested by* <@" + r.Requester + ">",
	}
	if r.Version != "" {
		facts = append(facts, "*Version* `"+steps.Escape(r.Version)+"`")
	}
	facts = append(facts, "*State* "+runStateWord(r))
	blocks = append(blocks, Block{Kind: Section, Text: strings.Join(facts, "  ·  ")})
	if r.Summary != "" {
		blocks = append(blocks, Block{Kind: Section, Text: truncate(">"+steps.Escape(r.Summary), maxSectionText)})
	}

	var lines []string
	for _, st := range r.Steps {
		line := fmt.Sprintf("%s %d. %s — _%s_", statusIcon[st.Status], st.Index+1, st.Title, statusWord[st.Status])
		if st.Status == steps.StepWaiting && st.WaitingOn != "" {
			line = fmt.Sprintf("%s %d. %s — _waiting for %s_", statusIcon[st.Status], st.Index+1, st.Title, st.WaitingOn)
		}
		if st.Note != "" {
			line += ": " + oneLine(st.Note, 300)
		}
		switch st.Comp {
		case steps.CompDone:
			line += " (undone)"
		case steps.CompFailed:
			line += " :rotating_light: undo failed"
		case steps.CompNeeded:
			line += " (undoing…)"
		}
		lines = append(lines, line)
	}
	var tail []Block
	for _, st := range r.Steps {
		if len(st.Buttons) == 0 || !r.State.Open() || r.State == steps.RunEnding {
			continue
		}
		if st.Prompt != "" {
			tail = append(tail, Block{Kind: Section, Text: truncate(fmt.Sprintf("*%d. %s*\n%s", st.Index+1, st.Title, st.Prompt), maxSectionText)})
		}
		var bs []Button
		for _, b := range st.Buttons {
			if len(bs) == maxButtons {
				break
			}
			bs = append(bs, Button{Label: b.Label, Style: b.Style,
				ActionID: ActionID(b.Verb, r.ID, st.Index), Value: ButtonValue(r.ID, st.Index, st.Seq)})
		}
		tail = append(tail, Block{Kind: Actions, Buttons: bs})
	}
	if r.Outcome != "" && !r.State.Open() {
		tail = append(tail, Block{Kind: Context, Text: truncate("Outcome: "+r.Outcome, maxSectionText)})
	}
	tail = append(tail, Block{Kind: Context, Text: "Updated " + r.UpdatedAt.UTC().Format("2006-01-02 15:04:05") + " UTC · details in the thread"})

	// The checklist gets whatever room the head and the buttons leave: the
	// buttons of the waiting step must never be the part that is cut.
	chunks := chunkLines(lines, maxSectionText)
	if room := maxBlocks - len(blocks) - len(tail); len(chunks) > room {
		chunks = chunks[:max(room, 0)]
		if len(chunks) > 0 {
			last := chunks[len(chunks)-1]
			chunks[len(chunks)-1] = truncate(last, maxSectionText-40) + "\n… more steps in `/deploy status`"
		}
	}
	for _, c := range chunks {
		blocks = append(blocks, Block{Kind: Section, Text: c})
	}
	blocks = append(blocks, tail...)
	return View{Text: truncate(fallbackText(r), maxText), Blocks: blocks, run: r}
}

func runStateWord(r *steps.Run) string {
	switch r.State {
	case steps.RunActive:
		if cur := r.Current(); cur != nil {
			return fmt.Sprintf("step %d of %d %s", cur.Index+1, len(r.Steps), statusWord[cur.Status])
		}
		return "active"
	case steps.RunEnding:
		return "ending (restoring what was changed)"
	case steps.RunSucceeded:
		return ":tada: succeeded"
	case steps.RunCancelled:
		return "cancelled"
	}
	return string(r.State)
}

func fallbackText(r *steps.Run) string {
	return fmt.Sprintf("%s (%s): %s", r.Title(), r.ID, runStateWord(r))
}

// ActionID is a button's action id: the verb, then run and step so that ids
// are unique within a message.
func ActionID(verb, runID string, step int) string {
	return verb + ":" + runID + ":" + strconv.Itoa(step)
}

// ButtonValue identifies the run, the step and the step's state (its Seq) a
// button was drawn for; a click from an older state is refused.
func ButtonValue(runID string, step, seq int) string {
	return fmt.Sprintf("%s|%d|%d", runID, step, seq)
}

// parseButton reads an action id and value back. It reports false for
// anything malformed, which the bot answers without acting.
func parseButton(actionID, value string) (req steps.ActionRequest, ok bool) {
	verb, _, _ := strings.Cut(actionID, ":")
	known := false
	for _, v := range steps.Verbs {
		known = known || v == verb
	}
	parts := strings.Split(value, "|")
	if !known || len(parts) != 3 {
		return req, false
	}
	idx, err1 := strconv.Atoi(parts[1])
	seq, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || parts[0] == "" {
		return req, false
	}
	return steps.ActionRequest{RunID: parts[0], StepIndex: idx, Seq: seq, Verb: verb}, true
}

// chunkLines joins lines into texts of at most max characters each.
func chunkLines(lines []string, max int) []string {
	var out []string
	var b strings.Builder
	for _, l := range lines {
		l = truncate(l, max)
		if b.Len() > 0 && b.Len()+1+len(l) > max {
			out = append(out, b.String())
			b.Reset()
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l)
	}
	if b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}

// truncate cuts s to at most max characters (runes), marking the cut.
func truncate(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}

// oneLine squashes s onto one line of at most max characters.
func oneLine(s string, max int) string {
	return truncate(strings.Join(strings.Fields(s), " "), max)
}

func clock(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") + " UTC" }
