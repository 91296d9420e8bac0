package terraform

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
)

// A deploy plans and applies with -target (one service's module), so
// Terraform warns about it on every apply: a dozen lines meant for someone
// who reached for -target by hand. In chat they bury the apply's own
// output, so TargetNotes says it in one line. The runner's Log still gets
// Terraform's full text.

// targetWarnings open Terraform's -target diagnostics (apply, plan).
var targetWarnings = []string{
	"Warning: Applied changes may be incomplete",
	"Warning: Resource targeting is in effect",
}

// nextSection starts output that is not part of the warning: the warning
// ended without the wording this filter knows.
var nextSection = []string{"Apply complete!", "Outputs:", "Warning:", "Error:", "Plan:", "No changes."}

// maxWarningLines bounds what is held back: a diagnostic longer than the
// one Terraform prints is not the one recognised, and is shown as it is.
const maxWarningLines = 20

// TargetNote is the line that replaces the -target warning.
func TargetNote(target string) string {
	return fmt.Sprintf("Targeted apply: %s only, because the runbook changes one service (Terraform's -target warning is expected).", target)
}

// TargetNotes writes what is written to it on to w, line by line, with
// Terraform's -target warning replaced by TargetNote(target). Flush writes
// what is left once the command has ended.
func TargetNotes(w io.Writer, target string) *TargetFilter {
	return &TargetFilter{w: w, note: TargetNote(target)}
}

// TargetFilter is the writer TargetNotes returns.
type TargetFilter struct {
	w    io.Writer
	note string

	mu   sync.Mutex
	buf  []byte
	held []string // lines of a warning being collapsed
}

func (f *TargetFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buf = append(f.buf, p...)
	var out strings.Builder
	for {
		i := bytes.IndexByte(f.buf, '\n')
		if i < 0 {
			break
		}
		f.line(&out, string(f.buf[:i+1]))
		f.buf = f.buf[i+1:]
	}
	if out.Len() > 0 {
		if _, err := io.WriteString(f.w, out.String()); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// line passes one line (with its newline) on, or holds it as part of a
// warning.
func (f *TargetFilter) line(out *strings.Builder, l string) {
	text := diagText(l)
	if f.held == nil {
		for _, w := range targetWarnings {
			if strings.HasPrefix(text, w) {
				f.held = []string{l}
				return
			}
		}
		out.WriteString(l)
		return
	}
	for _, s := range nextSection {
		if strings.HasPrefix(text, s) {
			out.WriteString(f.note + "\n")
			f.held = nil
			f.line(out, l)
			return
		}
	}
	f.held = append(f.held, l)
	switch {
	case strings.HasSuffix(text, "message."):
		// Both warnings end "…as part of an error message."
		out.WriteString(f.note + "\n")
		f.held = nil
	case len(f.held) > maxWarningLines:
		out.WriteString(strings.Join(f.held, ""))
		f.held = nil
	}
}

// diagText is a line without the frame Terraform draws around
// diagnostics on a terminal ("│ ", "╷", "╵") and surrounding space.
func diagText(l string) string {
	l = strings.TrimSpace(l)
	for _, p := range []string{"│", "╷", "╵"} {
		l = strings.TrimPrefix(l, p)
	}
	return strings.TrimSpace(l)
}

// Flush writes a last unterminated line, and a warning cut short as the
// note.
func (f *TargetFilter) Flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out strings.Builder
	if len(f.buf) > 0 {
		f.line(&out, string(f.buf))
		f.buf = nil
	}
	if f.held != nil {
		out.WriteString(f.note + "\n")
		f.held = nil
	}
	if out.Len() == 0 {
		return nil
	}
	_, err := io.WriteString(f.w, out.String())
	return err
}
