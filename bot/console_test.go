package bot

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot/term"
	"github.com/deploybot/deploybot/internal/testtool"
	"github.com/deploybot/deploybot/steps"
)

// screen is what the console printed, read while it prints.
type screen struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{}
}

func newScreen() *screen { return &screen{written: make(chan struct{}, 1)} }

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case s.written <- struct{}{}:
	default:
	}
	return s.buf.Write(p)
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// waitFor waits until what was printed after from satisfies cond, and
// returns it.
func (s *screen) waitFor(t *testing.T, from int, what string, cond func(string) bool) string {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		got := s.String()[from:]
		if cond(got) {
			return got
		}
		select {
		case <-s.written:
		case <-deadline.C:
			t.Fatalf("never printed %s; printed:\n%s", what, got)
		}
	}
}

func endsWithChoices(s string) bool { return strings.HasSuffix(s, "/deploy help\n") }

func sampleRun() *steps.Run {
	return &steps.Run{ID: "run-1", Kind: steps.KindDeploy, Service: "svc", Version: "rel-1", Requester: "U0ALICE", State: steps.RunActive,
		Steps: []steps.StepState{
			{Index: 0, Title: "Check Airflow", Status: steps.StepWaiting, WaitingOn: "the requester or an approver", Prompt: "Check that no *data refresh* runs.",
				Buttons: []steps.Button{{Verb: steps.VerbDone, Label: "Done"}, {Verb: steps.VerbCancel, Label: "Cancel run"}}},
			{Index: 1, Title: "Apply", Status: steps.StepPending},
			{Index: 2, Title: "Check Sentry", Status: steps.StepPending},
		}}
}

var rawMarkup = regexp.MustCompile("(?:^|\\s)[*_][^*_\\s][^*_]*[*_](?:[\\s.,:]|$)|:[a-z][a-z_]*:|<[^<>\\n]*>|&amp;|&lt;|&gt;|`|\x1b")

func TestConsolePrintsEachChangeOnceWithTheChoicesLast(t *testing.T) {
	ctx := context.Background()
	out := newScreen()
	c := NewConsole(out, "U0ALICE", "C0DEPLOYS", ConsoleSettle(20*time.Millisecond))
	r := sampleRun()

	ts, err := c.Post(ctx, "C0DEPLOYS", "", RenderRun(r))
	if err != nil {
		t.Fatal(err)
	}
	got := out.waitFor(t, 0, "the choices", endsWithChoices)
	for _, want := range []string{
		"run-1 Deploy svc rel-1 by @U0ALICE: 3 steps (type s for the checklist)\n",
		"  👀 1/3 Check Airflow — waiting for the requester or an approver\n",
		"┌ run-1 · 1. Check Airflow\n│ Check that no data refresh runs.\n│ [1] Done   [2] Cancel run\n└ type 1 to 2 to click as U0ALICE",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Apply") {
		t.Errorf("a pending step was printed before it changed:\n%s", got)
	}

	// The same state again prints nothing; a thread line prints once and
	// the choices come back below it.
	pos := len(out.String())
	if err := c.Update(ctx, "C0DEPLOYS", ts, RenderRun(r)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Post(ctx, "C0DEPLOYS", ts, textView(":rocket: Applying plan `abc` to dev… <https://example.com/x|log> &amp; more")); err != nil {
		t.Fatal(err)
	}
	got = out.waitFor(t, pos, "the choices again", endsWithChoices)
	if !strings.HasPrefix(got, "  run-1 ↳ 🚀 Applying plan abc to dev… log & more\n┌ run-1 · 1. Check Airflow") {
		t.Errorf("after an unchanged update and a thread line:\n%s", got)
	}

	// The step is done and the next runs: two lines, and nothing left to
	// click.
	pos = len(out.String())
	r.Steps[0].Status, r.Steps[0].Note, r.Steps[0].Buttons, r.Steps[0].Prompt, r.Steps[0].WaitingOn = steps.StepDone, "confirmed done by <@U0ALICE>", nil, "", ""
	r.Steps[1].Status = steps.StepRunning
	if err := c.Update(ctx, "C0DEPLOYS", ts, RenderRun(r)); err != nil {
		t.Fatal(err)
	}
	want := "  ✅ 1/3 Check Airflow — done: confirmed done by @U0ALICE\n  ⏳ 2/3 Apply — running\n"
	if got := out.String()[pos:]; got != want {
		t.Errorf("step change printed as\n%q\nwant\n%q", got, want)
	}
	pos = len(out.String())
	c.handle(ctx, "1")
	if got := out.String()[pos:]; !strings.Contains(got, "Nothing to click now") || strings.Contains(got, "1 to 0") {
		t.Errorf("a number with nothing on offer answered %q", got)
	}

	// Progress edited in place prints only its new lines.
	live, err := c.Post(ctx, "C0DEPLOYS", ts, textView("*terraform apply (dev)*, latest lines:\n```\ncreating a\ncreating b\n```"))
	if err != nil {
		t.Fatal(err)
	}
	pos = len(out.String())
	if err := c.Update(ctx, "C0DEPLOYS", live, textView("*terraform apply (dev)*, latest lines:\n```\ncreating b\nApply complete!\n```")); err != nil {
		t.Fatal(err)
	}
	if got := out.String()[pos:]; got != "        Apply complete!\n" {
		t.Errorf("progress update printed %q", got)
	}

	// The end of the run, in one line each, and the whole checklist on s.
	r.Steps[1].Status, r.Steps[1].Note = steps.StepDone, "applied plan `abc`"
	r.Steps[2].Status = steps.StepDone
	r.State, r.Outcome = steps.RunSucceeded, "all steps done"
	if err := c.Update(ctx, "C0DEPLOYS", ts, RenderRun(r)); err != nil {
		t.Fatal(err)
	}
	c.handle(ctx, "s")
	all := out.String()
	if !strings.Contains(all, "run-1 🎉 succeeded: all steps done\n") || strings.Contains(all, "  succeeded") {
		t.Errorf("the end:\n%s", all)
	}
	if !strings.Contains(all, "│ ✅ 3. Check Sentry — done\n") {
		t.Errorf("s printed no checklist:\n%s", all)
	}
	for _, l := range strings.Split(all, "\n") {
		if m := rawMarkup.FindString(l); m != "" {
			t.Errorf("raw markup %q in %q", m, l)
		}
	}
	if n := strings.Count(all, "1/3 Check Airflow — done"); n != 1 {
		t.Errorf("step 1's change printed %d times", n)
	}
}

// Buttons in the thread (Roll back, Declare incident) are offered beside
// the step's, and go when the run ends.
func TestConsoleOffersThreadButtonsUntilTheRunEnds(t *testing.T) {
	ctx := context.Background()
	out := newScreen()
	c := NewConsole(out, "U0ALICE", "C0DEPLOYS", ConsoleSettle(20*time.Millisecond))
	r := sampleRun()
	ts, _ := c.Post(ctx, "C0DEPLOYS", "", RenderRun(r))
	offer := View{Text: "new issue", Blocks: []Block{{Kind: Section, Text: ":rotating_light: New issue *INGESTION-4F*"},
		{Kind: Actions, Buttons: []Button{{Label: "Roll back", ActionID: "rollback:run-1:-1"}, {Label: "Declare incident", ActionID: "incident:run-1:-1"}}}}}
	if _, err := c.Post(ctx, "C0DEPLOYS", ts, offer); err != nil {
		t.Fatal(err)
	}
	got := out.waitFor(t, 0, "both offers", endsWithChoices)
	if !strings.Contains(got, "[1] Done   [2] Cancel run\n┌ 🚨 New issue INGESTION-4F\n│ [3] Roll back   [4] Declare incident\n└ type 1 to 4") {
		t.Errorf("choices:\n%s", got)
	}
	if cs := c.choices(); len(cs) != 4 || cs[2].button.ActionID != "rollback:run-1:-1" {
		t.Errorf("choices %+v", cs)
	}
	// The next step waits after the alert: its buttons still come first,
	// so 1 answers the step, not the alert.
	r.Steps[0].Status, r.Steps[0].Buttons = steps.StepDone, nil
	r.Steps[1].Status, r.Steps[1].Seq = steps.StepWaiting, 4
	r.Steps[1].Buttons = []steps.Button{{Verb: steps.VerbApprove, Label: "Approve"}}
	_ = c.Update(ctx, "C0DEPLOYS", ts, RenderRun(r))
	if cs := c.choices(); len(cs) != 3 || cs[0].button.Label != "Approve" || cs[0].button.Value != "run-1|1|4" || cs[1].button.Label != "Roll back" {
		t.Errorf("after the next step: choices %+v", cs)
	}
	r.State = steps.RunFailed
	r.Steps[0].Status, r.Steps[0].Buttons = steps.StepFailed, nil
	_ = c.Update(ctx, "C0DEPLOYS", ts, RenderRun(r))
	c.Say("» *demo*: `run-1` ended")
	if !strings.Contains(out.String(), "» demo: run-1 ended\n") {
		t.Errorf("Say printed:\n%s", out.String())
	}
	if cs := c.choices(); len(cs) != 0 {
		t.Errorf("an ended run still offers %+v", cs)
	}
}

// On a terminal the console styles text and keeps the choices at the
// bottom by erasing them before new output; NO_COLOR (or a pipe) gets
// plain text and no escape sequence at all.
func TestConsoleOnATerminal(t *testing.T) {
	for _, tc := range []struct {
		name    string
		noColor string
	}{{"colour", ""}, {"NO_COLOR", "1"}} {
		t.Run(tc.name, func(t *testing.T) {
			tty, ptmx := testtool.Terminal(t)
			shown := newScreen()
			go func() { _, _ = io.Copy(shown, ptmx) }()
			env := func(k string) string {
				if k == "NO_COLOR" {
					return tc.noColor
				}
				return ""
			}
			c := NewConsole(tty, "U0ALICE", "C0DEPLOYS", ConsoleRenderer(term.Detect(tty, env)), ConsoleSettle(20*time.Millisecond))
			ctx := context.Background()
			ts, _ := c.Post(ctx, "C0DEPLOYS", "", RenderRun(sampleRun()))
			shown.waitFor(t, 0, "the choices", func(s string) bool { return strings.Contains(s, "/deploy help") })
			_, _ = c.Post(ctx, "C0DEPLOYS", ts, textView("*next*"))
			got := shown.waitFor(t, 0, "the choices again", func(s string) bool { return strings.Count(s, "/deploy help") == 2 })
			// Four lines of choices, the last (96 columns) wrapped in two
			// rows of an 80-column terminal: five rows erased.
			erase := regexp.MustCompile(`\x1b\[5F\x1b\[J`)
			if tc.noColor != "" {
				if strings.Contains(got, "\x1b") {
					t.Errorf("escape sequences with NO_COLOR:\n%q", got)
				}
				return
			}
			if !strings.Contains(got, "\x1b[1mrun-1\x1b[22m") {
				t.Errorf("no bold on a terminal:\n%q", got)
			}
			if !erase.MatchString(got) {
				t.Errorf("the choices were not erased before new output:\n%q", got)
			}
		})
	}
}

// quit, the end of the input and Ctrl-C (the context ending) each say
// what becomes of open runs.
func TestConsoleSaysWhyItStops(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		cancel         bool
	}{
		{"quit", "quit\n/deploy never\n", "\nstopping: open runs stay recorded; starting the console again (make console) resumes them.\n", false},
		{"end of input", "", "\ninput ended, stopping: open runs stay recorded", false},
		{"ctrl-c", "", "\nstopping: open runs stay recorded", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := newScreen()
			c := NewConsole(out, "U0ALICE", "C0DEPLOYS")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var in io.Reader = strings.NewReader(tc.in)
			if tc.cancel {
				r, w := io.Pipe() // open input: only the context stops it
				defer w.Close()
				in = r
				cancel()
			}
			if err := c.Run(ctx, in); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("printed:\n%s", out.String())
			}
		})
	}
}

// A typed number clicks only the button printed with it: once the offers
// change (another run's step starts waiting and would take its number, or
// a printed button goes), the number is refused and the choices printed
// again below the answer.
func TestConsoleNumberClicksOnlyWhatIsPrinted(t *testing.T) {
	ctx := context.Background()
	out := newScreen()
	c := NewConsole(out, "U0ALICE", "C0DEPLOYS", ConsoleSettle(20*time.Millisecond))
	if _, _, answer, _ := c.pick("1"); !strings.Contains(answer, "Nothing to click now") {
		t.Errorf("with nothing offered, 1 answered %q", answer)
	}
	r := sampleRun()
	ts, _ := c.Post(ctx, "C0DEPLOYS", "", RenderRun(r))
	offer := View{Text: "new issue", Blocks: []Block{{Kind: Section, Text: "New issue *INGESTION-4F*"},
		{Kind: Actions, Buttons: []Button{{Label: "Roll back", ActionID: "rollback:run-1:-1"}, {Label: "Declare incident", ActionID: "incident:run-1:-1"}}}}}
	if _, err := c.Post(ctx, "C0DEPLOYS", ts, offer); err != nil {
		t.Fatal(err)
	}
	got := out.waitFor(t, 0, "the choices", endsWithChoices)
	if !strings.Contains(got, "[3] Roll back") {
		t.Fatalf("choices:\n%s", got)
	}
	if ch, user, answer, _ := c.pick("3"); answer != "" || ch.button.Label != "Roll back" || user != "U0ALICE" {
		t.Errorf("3 picked %q as %q (%q), want Roll back", ch.button.Label, user, answer)
	}
	if _, _, answer, _ := c.pick("5"); !strings.Contains(answer, "from 1 to 4") {
		t.Errorf("5 of 4 printed choices answered %q", answer)
	}
	// From now on the choices are not printed again by themselves.
	c.mu.Lock()
	c.settle = time.Hour
	c.mu.Unlock()
	r2 := sampleRun()
	r2.ID = "run-2"
	r2.Steps[0].Buttons = []steps.Button{{Verb: steps.VerbApprove, Label: "Approve"}}
	if _, err := c.Post(ctx, "C0DEPLOYS", "", RenderRun(r2)); err != nil {
		t.Fatal(err)
	}
	if cs := c.choices(); len(cs) != 5 || cs[2].button.Label != "Approve" {
		t.Fatalf("the new run's step should now come third among the offers: %+v", cs)
	}
	pos := len(out.String())
	c.handle(ctx, "3")
	got = out.String()[pos:]
	if i := strings.Index(got, "The choices changed since they were printed, so 3 was not clicked"); i < 0 || !strings.Contains(got[i:], "[3] Approve") || !endsWithChoices(got) {
		t.Errorf("3 after the offers changed printed:\n%s\nwant the refusal, then the choices now below it", got)
	}
	if ch, _, answer, _ := c.pick("3"); answer != "" || ch.button.Label != "Approve" {
		t.Errorf("after the reprint, 3 picked %q (%q), want run-2's Approve", ch.button.Label, answer)
	}
	// A printed button that goes is not clicked either.
	r.Steps[0].Status, r.Steps[0].Buttons = steps.StepDone, nil
	_ = c.Update(ctx, "C0DEPLOYS", ts, RenderRun(r))
	if ch, _, answer, reprint := c.pick("1"); !strings.Contains(answer, "1 was not clicked") || !reprint {
		t.Errorf("1 (Done, gone) picked %q, answered %q", ch.button.Label, answer)
	}
}

// A file shared in the console is written owner-only into a directory of
// the console's own, made fresh: never a fixed name in the shared
// temporary directory, which another user could have made first.
func TestConsoleUploadsIntoItsOwnPrivateDirectory(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	// What another user could have left at the old fixed name.
	if err := os.Mkdir(filepath.Join(tmp, "deploybot-console"), 0o777); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dirs := map[string]bool{}
	for i := 0; i < 2; i++ {
		out := newScreen()
		c := NewConsole(out, "U0ALICE", "C0DEPLOYS", ConsoleSettle(time.Hour))
		if err := c.Upload(ctx, "C0DEPLOYS", "", "../run-1-plan-dev.txt", "Plan (dev)", []byte("+ a\n")); err != nil {
			t.Fatal(err)
		}
		got := out.String()
		i := strings.LastIndex(got, ": ")
		path := strings.TrimSpace(got[i+2:])
		dir := filepath.Dir(path)
		if dir == filepath.Join(tmp, "deploybot-console") || filepath.Dir(dir) != tmp || filepath.Base(path) != "run-1-plan-dev.txt" {
			t.Fatalf("written to %q", path)
		}
		dirs[dir] = true
		for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
			}
		}
	}
	if len(dirs) != 2 {
		t.Errorf("two consoles shared a directory: %v", dirs)
	}
}
