package bot

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/bot/term"
	"github.com/deploybot/deploybot/steps"
)

// Console runs the bot in a terminal, over the same engine and store as
// Slack. It prints what changes rather than whole messages: a line when a
// run starts, one line per step change, thread messages as indented lines,
// and the choices on offer (numbered buttons and the prompt) always last.
// The whole checklist is printed on request. Lines typed are slash
// commands ("/deploy ingestion-server rel-…"), a choice number, "s" (or an
// empty line) for the checklist, or ":as U123" to act as another user
// (four-eyes needs a second person).
type Console struct {
	out     io.Writer
	channel string
	r       term.Renderer
	// settle is how long output must pause before the choices are printed
	// again below it: printing them after every line would bury the output
	// under copies of the same buttons.
	settle time.Duration

	mu     sync.Mutex
	user   string
	bot    *Bot
	nextTS int
	runs   map[string]*consoleRun     // by parent message ts
	lines  map[string]map[string]bool // thread message ts → lines printed
	offers []offer
	reply0 *offer // buttons of the last private answer
	// footer is the choices as printed at the bottom of the terminal, ""
	// when something else was printed (or typed) after them.
	footer string
	// shown is the numbered choices as last printed: a typed number is
	// clicked only while they are still what is offered, so it always
	// means what the person read.
	shown []choice
	files string // where uploads are written, made on the first
	timer *time.Timer
	done  bool
}

// consoleRun is what the console last showed of a run.
type consoleRun struct {
	run   *steps.Run
	view  View
	steps map[int]string // step index → the state last printed
	state string
}

// offer is a set of buttons and what they are for.
type offer struct {
	root    string // the run message the buttons belong to (its thread)
	ts      string // the message carrying them
	title   string // mrkdwn: what is asked
	buttons []Button
}

type choice struct {
	ts     string
	button Button
}

// ConsoleOption tunes a Console.
type ConsoleOption func(*Console)

// ConsoleRenderer sets how mrkdwn is drawn; the default is term.Detect on
// the output and the process environment (colour on a terminal unless
// NO_COLOR is set).
func ConsoleRenderer(r term.Renderer) ConsoleOption { return func(c *Console) { c.r = r } }

// ConsoleSettle sets how long output must pause before the choices are
// printed again at the bottom (default 300ms).
func ConsoleSettle(d time.Duration) ConsoleOption { return func(c *Console) { c.settle = d } }

// NewConsole makes a console that prints to out and acts as user in
// channel (the first deploy channel).
func NewConsole(out io.Writer, user, channel string, opts ...ConsoleOption) *Console {
	c := &Console{out: out, user: user, channel: channel, r: term.Detect(out, nil), settle: 300 * time.Millisecond,
		runs: map[string]*consoleRun{}, lines: map[string]map[string]bool{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Attach sets the bot the console drives.
func (c *Console) Attach(b *Bot) { c.bot = b }

// Post implements Chat.
func (c *Console) Post(ctx context.Context, channel, threadTS string, v View) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextTS++
	ts := fmt.Sprintf("%d.000000", c.nextTS)
	if threadTS != "" {
		text := c.r.Mrkdwn(viewText(v))
		c.remember(ts, text)
		c.print(c.threadPrefix(threadTS) + indent(text, "      "))
		if hasButtons(v) {
			c.setOffer(offer{root: threadTS, ts: ts, title: firstLine(viewText(v)), buttons: buttons(v)}, true)
		}
		return ts, nil
	}
	if v.run == nil {
		// Not a run (an incident announcement): printed whole, once.
		c.print(c.r.Bold("»") + " " + indent(c.r.Mrkdwn(viewText(v)), "  "))
		return ts, nil
	}
	c.showRun(ts, v)
	return ts, nil
}

// Update implements Chat: a run's message prints what changed in it, a
// thread message (apply progress) prints its new lines.
func (c *Console) Update(ctx context.Context, channel, ts string, v View) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v.run != nil {
		c.showRun(ts, v)
		return nil
	}
	var fresh []string
	for _, l := range strings.Split(c.r.Mrkdwn(viewText(v)), "\n") {
		if c.remember(ts, l) {
			fresh = append(fresh, l)
		}
	}
	if len(fresh) > 0 {
		c.print("      " + strings.Join(fresh, "\n      "))
	}
	return nil
}

// remember notes each line of text as printed for message ts and reports
// whether any was new.
func (c *Console) remember(ts, text string) bool {
	seen := c.lines[ts]
	if seen == nil {
		seen = map[string]bool{}
		c.lines[ts] = seen
	}
	fresh := false
	for _, l := range strings.Split(text, "\n") {
		if !seen[l] {
			seen[l] = true
			fresh = true
		}
	}
	return fresh
}

func (c *Console) threadPrefix(root string) string {
	id := ""
	if cr := c.runs[root]; cr != nil {
		id = cr.run.ID + " "
	}
	return "  " + c.r.Dim(id+"↳") + " "
}

// showRun prints what changed in a run since the console last showed it:
// the run's headline the first time, one line per step whose state moved,
// and the run's end.
func (c *Console) showRun(ts string, v View) {
	r := v.run
	cr := c.runs[ts]
	var out []string
	if cr == nil {
		cr = &consoleRun{steps: map[int]string{}}
		c.runs[ts] = cr
		head := fmt.Sprintf("%s %s by <@%s>: %d steps (type s for the checklist)", c.r.Bold(r.ID), c.r.Bold(r.Title()), r.Requester, len(r.Steps))
		if r.Summary != "" {
			head += "\n  " + c.r.Mrkdwn(">"+steps.Escape(r.Summary))
		}
		out = append(out, c.r.Mrkdwn(head))
	}
	cr.run, cr.view = r, v
	for _, st := range r.Steps {
		key := string(st.Status) + "|" + st.WaitingOn + "|" + st.Note + "|" + string(st.Comp)
		if cr.steps[st.Index] == key || (cr.steps[st.Index] == "" && st.Status == steps.StepPending && st.Comp == "") {
			cr.steps[st.Index] = key
			continue
		}
		cr.steps[st.Index] = key
		out = append(out, "  "+c.r.Mrkdwn(stepLine(r, st)))
	}
	if state := string(r.State) + "|" + r.Outcome; state != cr.state {
		cr.state = state
		if !r.State.Open() || r.State == steps.RunEnding {
			line := fmt.Sprintf("%s %s", c.r.Bold(r.ID), runStateWord(r))
			if r.Outcome != "" && !r.State.Open() {
				line += ": " + r.Outcome
			}
			out = append(out, c.r.Mrkdwn(line))
		}
	}
	// The run's buttons replace those it offered before; an ended run
	// offers nothing, in its thread either.
	c.dropOffers(ts, !r.State.Open())
	if o, ok := runOffer(ts, v); ok {
		c.setOffer(o, false)
	}
	if len(out) > 0 {
		c.print(strings.Join(out, "\n"))
	} else {
		c.schedule()
	}
}

// stepLine is one step as a line of mrkdwn: where it is in the run, its
// state, and what it says.
func stepLine(r *steps.Run, st steps.StepState) string {
	word := statusWord[st.Status]
	if st.Status == steps.StepWaiting && st.WaitingOn != "" {
		word = "waiting for " + st.WaitingOn
	}
	line := fmt.Sprintf("%s %d/%d *%s* — %s", statusIcon[st.Status], st.Index+1, len(r.Steps), st.Title, word)
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
	return line
}

// runOffer is the choice a run's message offers: the waiting step's
// prompt and buttons.
func runOffer(ts string, v View) (offer, bool) {
	var title string
	for i, b := range v.Blocks {
		if b.Kind != Actions || len(b.Buttons) == 0 {
			continue
		}
		if i > 0 && v.Blocks[i-1].Kind == Section {
			title = v.Blocks[i-1].Text
		}
		id := ""
		if v.run != nil {
			id = "*" + v.run.ID + "* · "
		}
		return offer{root: ts, ts: ts, title: id + title, buttons: b.Buttons}, true
	}
	return offer{}, false
}

func buttons(v View) []Button {
	var bs []Button
	for _, b := range v.Blocks {
		bs = append(bs, b.Buttons...)
	}
	return bs
}

// setOffer adds o to the choices; a thread's new buttons replace its
// older thread buttons.
func (c *Console) setOffer(o offer, inThread bool) {
	kept := c.offers[:0]
	for _, x := range c.offers {
		if x.root == o.root && (x.ts == o.ts || (inThread && x.ts != x.root)) {
			continue
		}
		kept = append(kept, x)
	}
	c.offers = append(kept, o)
	c.schedule()
}

// dropOffers removes the run message's own buttons and, with thread, those
// in its thread.
func (c *Console) dropOffers(root string, thread bool) {
	kept := c.offers[:0]
	for _, x := range c.offers {
		if x.root == root && (x.ts == root || thread) {
			continue
		}
		kept = append(kept, x)
	}
	c.offers = kept
}

func hasButtons(v View) bool {
	for _, b := range v.Blocks {
		if len(b.Buttons) > 0 {
			return true
		}
	}
	return false
}

// ordered is every offer in the order its buttons are numbered: a private
// answer's, then the waiting steps', then those in threads (Roll back,
// Declare incident). A step's own buttons come first so that "1" stays
// the step's answer when an alert offers more.
func (c *Console) ordered() []offer {
	var all []offer
	if c.reply0 != nil {
		all = append(all, *c.reply0)
	}
	for _, o := range c.offers {
		if o.ts == o.root {
			all = append(all, o)
		}
	}
	for _, o := range c.offers {
		if o.ts != o.root {
			all = append(all, o)
		}
	}
	return all
}

// choices numbers every button on offer.
func (c *Console) choices() []choice {
	var cs []choice
	for _, o := range c.ordered() {
		for _, b := range o.buttons {
			cs = append(cs, choice{ts: o.ts, button: b})
		}
	}
	return cs
}

// print writes lines of output. On a terminal the choices shown last are
// erased first and come back below once the output settles, so they stay
// at the bottom; elsewhere (a pipe, a file) nothing is erased and they are
// printed again below.
func (c *Console) print(s string) {
	if c.footer != "" && c.r.Color {
		// Only where the terminal's width says how many rows the
		// choices took once wrapped: erasing a guess could take real
		// output with it.
		if cols := term.Width(c.out); cols > 0 {
			fmt.Fprintf(c.out, "\x1b[%dF\x1b[J", term.Rows(c.footer, cols))
		}
	}
	c.footer = ""
	fmt.Fprintln(c.out, s)
	c.schedule()
}

// schedule prints the choices once output has paused for c.settle.
func (c *Console) schedule() {
	if c.done || c.footer != "" {
		return
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	c.timer = time.AfterFunc(c.settle, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.done && c.footer == "" {
			c.printChoices()
		}
	})
}

// printChoices prints what can be clicked now and how, as the last lines.
func (c *Console) printChoices() {
	cs := c.choices()
	if len(cs) == 0 {
		c.shown = nil
		return
	}
	var b strings.Builder
	n := 0
	for _, o := range c.ordered() {
		if len(o.buttons) == 0 {
			continue
		}
		if o.title != "" {
			b.WriteString(c.r.Dim("┌ ") + indent(c.r.Mrkdwn(o.title), c.r.Dim("│ ")) + "\n")
		} else {
			b.WriteString(c.r.Dim("┌") + "\n")
		}
		var labels []string
		for _, bt := range o.buttons {
			n++
			labels = append(labels, c.r.Bold(fmt.Sprintf("[%d]", n))+" "+bt.Label)
		}
		b.WriteString(c.r.Dim("│ ") + strings.Join(labels, "   ") + "\n")
	}
	hint := fmt.Sprintf("type 1 to %d to click as %s · s for the checklist · \":as U…\" to switch user · /deploy help", n, c.user)
	if n == 1 {
		hint = fmt.Sprintf("type 1 to click as %s · s for the checklist · \":as U…\" to switch user · /deploy help", c.user)
	}
	b.WriteString(c.r.Dim("└ "+hint) + "\n")
	text := b.String()
	fmt.Fprint(c.out, text)
	c.footer = text
	c.shown = cs
}

// showChecklist prints every open run's whole message, or the last run's
// when none is open.
func (c *Console) showChecklist() {
	var open, last *consoleRun
	for _, cr := range c.runs {
		if last == nil || cr.run.CreatedAt.After(last.run.CreatedAt) || (cr.run.CreatedAt.Equal(last.run.CreatedAt) && cr.run.ID > last.run.ID) {
			last = cr
		}
	}
	var shown []string
	for _, cr := range c.sortedRuns() {
		if cr.run.State.Open() {
			open = cr
			shown = append(shown, c.checklist(cr))
		}
	}
	if open == nil && last != nil {
		shown = append(shown, c.checklist(last))
	}
	if len(shown) == 0 {
		c.print("  No run yet. Start one with /deploy <service> <tag>.")
		return
	}
	c.print(strings.Join(shown, "\n"))
}

func (c *Console) sortedRuns() []*consoleRun {
	var rs []*consoleRun
	for _, cr := range c.runs {
		rs = append(rs, cr)
	}
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && runBefore(rs[j], rs[j-1]); j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
	return rs
}

func runBefore(a, b *consoleRun) bool {
	if !a.run.CreatedAt.Equal(b.run.CreatedAt) {
		return a.run.CreatedAt.Before(b.run.CreatedAt)
	}
	return a.run.ID < b.run.ID
}

// checklist is a run's message as a boxed block of terminal text; its
// buttons are left to the choices below.
func (c *Console) checklist(cr *consoleRun) string {
	var parts []string
	for _, b := range cr.view.Blocks {
		switch b.Kind {
		case Header:
			parts = append(parts, c.r.Bold(b.Text))
		case Section, Context:
			parts = append(parts, c.r.Mrkdwn(b.Text))
		}
	}
	text := strings.Join(parts, "\n")
	return c.r.Dim("┌──────────────────────────────────────────") + "\n" + c.r.Dim("│ ") + indent(text, c.r.Dim("│ ")) + "\n" + c.r.Dim("└──")
}

// Say prints mrkdwn text as the console's own line, above the choices: a
// program that shares the terminal with the console (the demo) writes
// through it, so the choices can still be kept last.
func (c *Console) Say(text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.print(c.r.Mrkdwn(text))
}

// Find implements Chat. The console's messages live only on the screen, so
// nothing is found: after a restart an entry that was printed just before
// the crash may print again, which a terminal reader can tell.
func (c *Console) Find(ctx context.Context, channel, threadTS, key string, since time.Time) (string, bool, error) {
	return "", false, nil
}

// FindFile implements Chat; see Find.
func (c *Console) FindFile(ctx context.Context, channel, threadTS, name, title string) (bool, error) {
	return false, nil
}

// Upload implements Chat: the console writes the file into a directory of
// its own and prints where. The directory is made fresh (os.MkdirTemp,
// owner-only) rather than at a fixed name in the shared temporary
// directory, where another user could have made it first, or a link.
func (c *Console) Upload(ctx context.Context, channel, threadTS, name, title string, content []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.files == "" {
		dir, err := os.MkdirTemp("", "deploybot-console-")
		if err != nil {
			return err
		}
		c.files = dir
	}
	path := filepath.Join(c.files, filepath.Base(name))
	if err := os.WriteFile(path, content, 0o600); err != nil {
		return err
	}
	c.print(c.threadPrefix(threadTS) + "📎 " + c.r.Mrkdwn(title) + ": " + path)
	return nil
}

// Permalink implements Chat: the console has no links; it names the
// message instead.
func (c *Console) Permalink(ctx context.Context, channel, ts string) (string, error) {
	return "console:" + channel + "/" + ts, nil
}

// reply prints a private answer.
func (c *Console) reply(ctx context.Context, v View) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reply0 = nil
	if hasButtons(v) {
		c.reply0 = &offer{title: firstLine(viewText(v)), buttons: buttons(v)}
	}
	c.print("  " + c.r.Dim("(only you)") + " " + indent(c.r.Mrkdwn(viewText(v)), "  "))
	return nil
}

// Run reads lines from in until EOF, "quit", or ctx ends (Ctrl-C), and
// says that it stops.
func (c *Console) Run(ctx context.Context, in io.Reader) error {
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	c.mu.Lock()
	fmt.Fprintf(c.out, "deploybot console: you are %s in %s. Type /deploy help, or s for the checklist.\n", c.user, c.channel)
	c.mu.Unlock()
	defer c.stop()
	for {
		select {
		case <-ctx.Done():
			c.stopping("stopping: open runs stay recorded; starting the console again (make console) resumes them.")
			return nil
		case line, ok := <-lines:
			if !ok {
				c.stopping("input ended, stopping: open runs stay recorded; starting the console again (make console) resumes them.")
				return nil
			}
			if !c.handle(ctx, strings.TrimSpace(line)) {
				c.stopping("stopping: open runs stay recorded; starting the console again (make console) resumes them.")
				return nil
			}
		}
	}
}

func (c *Console) stopping(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.footer = ""
	fmt.Fprintln(c.out, s)
}

// stop ends the reprinting of choices: nothing prints after Run returns
// but what the bot still delivers.
func (c *Console) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done = true
	if c.timer != nil {
		c.timer.Stop()
	}
}

// handle acts on one typed line; it reports false to stop.
func (c *Console) handle(ctx context.Context, line string) bool {
	c.mu.Lock()
	// What was typed is now below the choices: they are no longer the
	// last lines to erase.
	c.footer = ""
	c.mu.Unlock()
	switch {
	case line == "quit" || line == "exit":
		return false
	case line == "" || line == "s" || line == "status":
		c.mu.Lock()
		c.showChecklist()
		c.mu.Unlock()
	case strings.HasPrefix(line, ":as "):
		u := strings.TrimSpace(strings.TrimPrefix(line, ":as "))
		c.mu.Lock()
		c.user = u
		c.print("  now acting as " + u)
		c.mu.Unlock()
	case strings.HasPrefix(line, "/"):
		name, text, _ := strings.Cut(line, " ")
		c.mu.Lock()
		user := c.user
		c.mu.Unlock()
		c.bot.HandleCommand(ctx, Command{User: user, Channel: c.channel, Name: name, Text: text, Reply: c.reply})
		if f := strings.Fields(text); name == "/deploy" && len(f) == 1 && f[0] == "status" {
			c.mu.Lock()
			c.showChecklist()
			c.mu.Unlock()
		}
	default:
		ch, user, answer, reprint := c.pick(line)
		if answer != "" {
			_ = c.reply(ctx, textView(answer))
			if reprint {
				c.mu.Lock()
				c.printChoices()
				c.mu.Unlock()
			}
			return true
		}
		c.bot.HandleClick(ctx, Click{User: user, Channel: c.channel, MessageTS: ch.ts, ActionID: ch.button.ActionID, Value: ch.button.Value, Reply: c.reply})
	}
	return true
}

// pick resolves a typed number against the choices as last printed, while
// they are still the choices on offer. When
// it cannot, it says what to do instead, and whether the choices should be
// printed again below that answer.
func (c *Console) pick(line string) (ch choice, user, answer string, reprint bool) {
	n, err := strconv.Atoi(line)
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, now := c.shown, c.choices()
	switch {
	case len(now) == 0:
		return choice{}, "", "Nothing to click now. Type s for the checklist, /deploy help for the commands, or :as USER to switch user.", false
	case len(cs) == 0:
		// Offered, but not printed yet: nothing was read to choose from.
		return choice{}, "", "Here are the choices: type the number of yours.", true
	case err != nil || n < 1 || n > len(cs):
		return choice{}, "", fmt.Sprintf("Type a choice from 1 to %d, s for the checklist, a /command, or :as USER.", len(cs)), false
	}
	ch = cs[n-1]
	if !sameChoices(cs, now) {
		// The numbers on screen no longer match what is offered: neither
		// the printed button nor the one now at that number is surely
		// what the person meant.
		return choice{}, "", fmt.Sprintf("The choices changed since they were printed, so %d was not clicked. Here they are now: type the number of yours.", n), true
	}
	return ch, c.user, "", false
}

func sameChoices(a, b []choice) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ts != b[i].ts || a[i].button.ActionID != b[i].button.ActionID || a[i].button.Value != b[i].button.Value {
			return false
		}
	}
	return true
}

// viewText is a view's mrkdwn: its blocks' texts, or its fallback text.
func viewText(v View) string {
	var parts []string
	for _, b := range v.Blocks {
		switch b.Kind {
		case Header:
			parts = append(parts, "*"+b.Text+"*")
		case Section, Context:
			parts = append(parts, b.Text)
		}
	}
	if len(parts) == 0 {
		return v.Text
	}
	return strings.Join(parts, "\n")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func indent(s, prefix string) string {
	return strings.ReplaceAll(s, "\n", "\n"+prefix)
}
