package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/internal/demo"
	"github.com/deploybot/deploybot/steps"
)

// demoState is `deploybot demo`: its flags, and the world and the driver
// while it runs. This file is the only one in the program that imports
// internal/demo, and so the test servers.
type demoState struct {
	auto     bool
	scenario demo.Scenario
	dir      string
	// watch and delay shorten sentry.watch and the test servers'
	// workflows (tests, benchmarks); 0 keeps the demo's defaults.
	watch, delay time.Duration

	world   *demo.World
	started func() // called once the console is attached (app.go)
	// attached is closed then (tests wait on it before reading m.Engine).
	attached chan struct{}
	// Summary and Records are what the demo reported at its end.
	summary string
	records demo.Records
}

func (m *Main) parseDemoArgs(args []string) error {
	fs := flag.NewFlagSet("deploybot demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&m.demo.auto, "auto", false, "click through by itself and print a summary")
	scenario := fs.String("scenario", string(demo.Happy), "happy or failed-apply")
	fs.StringVar(&m.demo.dir, "dir", "", "an empty or new folder for the demo's files (default: a new temporary folder)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%v\n%s", err, usage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q\n%s", fs.Arg(0), usage)
	}
	sc, err := demo.ParseScenario(*scenario)
	if err != nil {
		return fmt.Errorf("%v\n%s", err, usage)
	}
	m.demo.scenario = sc
	m.demo.attached = make(chan struct{})
	return nil
}

// runDemo builds the world, runs the console against it (clicking by
// itself with --auto), prints the summary and shuts everything down.
func (m *Main) runDemo(ctx context.Context) error {
	tf, err := demo.FindTerraform(m.Getenv)
	if err != nil {
		return err
	}
	dir := m.demo.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "deploybot-demo-"); err != nil {
			return err
		}
	}
	w, err := demo.Start(ctx, dir, demo.Options{Scenario: m.demo.scenario, Terraform: tf, Watch: m.demo.watch, Delay: m.demo.delay})
	if err != nil {
		return err
	}
	defer w.Close()
	m.demo.world = w
	m.ConfigPath = w.ConfigPath
	// Hermetic: the demo's integrations read only the demo's credentials,
	// never the person's real tokens (or their SENTRY_DSN).
	m.Getenv = func(k string) string { return w.Env[k] }
	m.As = demo.Alice
	out := &lockedWriter{w: m.Stdout}
	m.Stdout = out

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &driver{m: m, w: w, out: out, auto: m.demo.auto, done: make(chan struct{}), cancel: cancel,
		clicked: map[string]bool{}, fourEyes: map[string]bool{}, hinted: map[string]bool{}}
	if d.auto {
		// The console reads nothing: the driver clicks. Closing the pipe
		// lets the console's reader end with the demo.
		r, pw := io.Pipe()
		defer pw.Close()
		m.Stdin = r
	}
	d.intro()
	if m.demo.attached == nil {
		m.demo.attached = make(chan struct{})
	}
	launched := false
	// Called by m.run on this goroutine, once the console is attached.
	m.demo.started = func() {
		launched = true
		close(m.demo.attached)
		go d.run(runCtx)
	}
	err = m.run(runCtx)
	cancel()
	if launched {
		<-d.done
	}
	if m.Store != nil {
		if m.infra != nil && d.deployID != "" {
			// The merge into main happens just after the run ends; the
			// summary shows it.
			wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			if r, err := m.Engine.Run(wctx, d.deployID); err == nil && !r.State.Open() {
				m.infra.WaitRunEnded(wctx, d.deployID)
			}
			wcancel()
		}
		m.demo.records = w.Records(context.WithoutCancel(ctx))
		m.demo.summary = d.summary(context.WithoutCancel(ctx), m.demo.records)
		fmt.Fprint(out, m.demo.summary)
	}
	// Shut down here, while the servers still answer; main's Close then
	// finds nothing left to do.
	cerr := m.CloseContext(context.WithoutCancel(ctx))
	m.Engine, m.Bot, m.Store, m.infra, m.http = nil, nil, nil, nil, nil
	return errors.Join(err, d.err, cerr)
}

// lockedWriter lets the console and the demo's own lines share stdout
// without tearing each other's writes.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// driver follows the runs: with --auto it clicks as the right person; in
// both modes it tells the person what the scenario expects of them, and
// ends the demo when the scenario is over.
type driver struct {
	m      *Main
	w      *demo.World
	out    io.Writer
	auto   bool
	cancel context.CancelFunc
	done   chan struct{}
	err    error

	begin    time.Time
	deployID string
	rollback string
	clicked  map[string]bool // run|step|seq already answered
	fourEyes map[string]bool // run|step where the requester was refused
	hinted   map[string]bool
	events   []string // what the summary should mention
}

func (d *driver) say(format string, args ...any) {
	fmt.Fprintf(d.out, "\n» demo: "+format+"\n", args...)
}

func (d *driver) intro() {
	w := d.w
	fmt.Fprintf(d.out, `deploybot demo (scenario %s): the Openverse ingestion-server runbook, automated, with no account and no network.
  GitHub, Airflow and Sentry are test servers inside this process, seeded like Openverse: the drafted
  release %s, its build, the changelog PR from %s, the data-refresh DAGs (none running),
  and a Sentry project. Terraform 1.5.7 plans and applies a scratch copy of examples/infrastructure for real.
  Everything lives in %s.
`, w.Scenario, w.Release, demo.ChangelogAuthor, w.Dir)
	if d.auto {
		fmt.Fprintf(d.out, "  --auto: the demo clicks by itself, as %s (deployer and approver) or %s (approver) as each step needs.\n", demo.Alice, demo.Bob)
		return
	}
	fmt.Fprintf(d.out, `  You are %[1]s, a deployer and approver; %[2]s is a second approver. Production needs four eyes:
  the person who started a run may not approve its production plan, so type ":as %[2]s" to click as Bob,
  and ":as %[1]s" to switch back. Type a button's number to click it. Ctrl-D ends the demo.
  Start with:  /deploy %[3]s
  (deploybot demo --auto clicks through by itself.)
`, demo.Alice, demo.Bob, demo.Service)
}

func (d *driver) run(ctx context.Context) {
	defer close(d.done)
	d.begin = time.Now()
	if d.auto {
		d.command(ctx, demo.Alice, "/deploy", demo.Service)
	}
	deadline := time.Now().Add(20 * time.Minute)
	tick := time.NewTicker(150 * time.Millisecond)
	defer tick.Stop()
	for {
		over, err := d.step(ctx)
		if err != nil {
			d.err = err
		}
		if over || err != nil {
			d.cancel()
			return
		}
		if d.auto && time.Now().After(deadline) {
			d.err = errors.New("the demo did not finish within 20 minutes; the summary shows where it stopped")
			d.cancel()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// step looks at the runs once: clicks (auto) or hints (interactive), and
// reports whether the scenario is over.
func (d *driver) step(ctx context.Context) (bool, error) {
	open := d.m.Engine.OpenRuns()
	for _, r := range open {
		switch {
		case r.Kind == steps.KindDeploy && d.deployID == "":
			d.deployID = r.ID
		case r.Kind == steps.KindRollback && d.rollback == "":
			d.rollback = r.ID
		}
	}
	for _, r := range open {
		if err := d.attend(ctx, r); err != nil {
			return true, err
		}
	}
	if d.deployID == "" {
		return false, nil
	}
	dep, err := d.m.Engine.Run(ctx, d.deployID)
	if err != nil || dep.State.Open() {
		return false, nil
	}
	if d.w.Scenario == demo.Happy || dep.State == steps.RunSucceeded {
		if dep.State != steps.RunSucceeded && d.auto {
			return true, fmt.Errorf("%s ended %s: %s", dep.ID, dep.State, plainText(dep.Outcome))
		}
		return true, nil
	}
	// failed-apply: the deploy ended without success; a rollback follows.
	if d.rollback == "" {
		if d.auto {
			d.say("%s ended (%s). Production runs a half-applied version: %s rolls back to the last good one.", dep.ID, dep.State, demo.Alice)
			d.command(ctx, demo.Alice, "/rollback", demo.PreviousVersion)
		} else if !d.hinted["rollback"] {
			d.hinted["rollback"] = true
			d.say("%s has ended. Roll production back to the last good version: type  /rollback %s", dep.ID, demo.PreviousVersion)
		}
		return false, nil
	}
	rb, err := d.m.Engine.Run(ctx, d.rollback)
	if err != nil || rb.State.Open() {
		return false, nil
	}
	if rb.State != steps.RunSucceeded && d.auto {
		return true, fmt.Errorf("%s ended %s: %s", rb.ID, rb.State, plainText(rb.Outcome))
	}
	return true, nil
}

// affirmative is the order in which the driver prefers a step's buttons.
var affirmative = []string{steps.VerbPublish, steps.VerbApprove, steps.VerbConfirm, steps.VerbDone}

// attend answers (auto) or explains (interactive) what run r waits for.
func (d *driver) attend(ctx context.Context, r *steps.Run) error {
	cur := r.Current()
	if r.State != steps.RunActive || cur == nil || len(cur.Buttons) == 0 {
		return nil
	}
	if cur.Status != steps.StepWaiting && cur.Status != steps.StepFailed && cur.Status != steps.StepInterrupted {
		return nil
	}
	key := fmt.Sprintf("%s|%d|%d", r.ID, cur.Index, cur.Seq)
	expectedFailure := d.w.Scenario == demo.FailedApply && r.Kind == steps.KindDeploy && cur.ID == "apply:prod" && cur.Status == steps.StepFailed
	if !d.auto {
		if d.hinted[key] {
			return nil
		}
		d.hinted[key] = true
		switch {
		case expectedFailure:
			d.say("Production's apply failed, as this scenario intends (Terraform's error is above). Click \"Cancel run\": "+
				"data_refresh_cleared goes back to false. Then roll back with  /rollback %s", demo.PreviousVersion)
		case cur.ID == "changelog" && strings.Contains(noteOf(r, "sentry"), "new issue"):
			d.say("Sentry raised a new issue in production during the watch (above), as the demo intends. In a real deploy you would look at it: " +
				"its Roll back button replaces this deploy with a rollback, Declare incident tells the team. To finish the runbook, approve the changelog PR.")
		case cur.Status == steps.StepWaiting && (cur.ID == "plan:prod" || cur.ID == "rollback-confirm"):
			d.say("Four eyes: %s started %s, so %s must answer “%s”. Type  :as %s  then the button's number (and  :as %s  to switch back).",
				r.Requester, r.ID, demo.Bob, cur.Title, demo.Bob, demo.Alice)
		}
		return nil
	}
	if d.clicked[key] {
		return nil
	}
	verb := ""
	if expectedFailure {
		verb = steps.VerbCancel
	} else if cur.Status != steps.StepWaiting {
		return fmt.Errorf("“%s” of %s %s: %s", cur.Title, r.ID, cur.Status, plainText(cur.Note))
	} else {
		for _, v := range affirmative {
			if hasVerb(cur, v) {
				verb = v
				break
			}
		}
		if verb == "" {
			return fmt.Errorf("“%s” of %s waits with no button the demo clicks by itself: %s", cur.Title, r.ID, plainText(cur.Prompt))
		}
	}
	user := r.Requester
	if d.fourEyes[fmt.Sprintf("%s|%d", r.ID, cur.Index)] {
		user = demo.Bob
	}
	label := verb
	for _, b := range cur.Buttons {
		if b.Verb == verb {
			label = b.Label
		}
	}
	d.say("%s clicks “%s” on “%s”", user, label, cur.Title)
	reply := d.click(ctx, r, cur, verb, user)
	if strings.Contains(reply, "four-eyes") {
		d.fourEyes[fmt.Sprintf("%s|%d", r.ID, cur.Index)] = true
		d.events = append(d.events, fmt.Sprintf("four-eyes: %s, who started %s, was refused on “%s”; %s answered", user, r.ID, cur.Title, demo.Bob))
		return nil // asked again as Bob on the next look
	}
	d.clicked[key] = true
	return nil
}

func noteOf(r *steps.Run, stepID string) string {
	if st := r.StepByID(stepID); st != nil {
		return st.Note
	}
	return ""
}

func hasVerb(st *steps.StepState, verb string) bool {
	for _, b := range st.Buttons {
		if b.Verb == verb {
			return true
		}
	}
	return false
}

// click presses a button of r's current step as user, through the bot as
// the console would, and returns the private answer, if any.
func (d *driver) click(ctx context.Context, r *steps.Run, st *steps.StepState, verb, user string) string {
	var mu sync.Mutex
	var answer strings.Builder
	reply := func(ctx context.Context, v bot.View) error {
		mu.Lock()
		defer mu.Unlock()
		answer.WriteString(v.Text)
		fmt.Fprintf(d.out, "  (only %s) %s\n", user, plainText(v.Text))
		return nil
	}
	d.m.Bot.HandleClick(ctx, bot.Click{User: user, Channel: demo.Channel, MessageTS: r.MessageTS,
		ActionID: bot.ActionID(verb, r.ID, st.Index), Value: bot.ButtonValue(r.ID, st.Index, st.Seq), Reply: reply})
	mu.Lock()
	defer mu.Unlock()
	return answer.String()
}

func (d *driver) command(ctx context.Context, user, name, text string) {
	d.say("%s types  %s %s", user, name, text)
	d.m.Bot.HandleCommand(ctx, bot.Command{User: user, Channel: demo.Channel, Name: name, Text: text, Reply: func(ctx context.Context, v bot.View) error {
		fmt.Fprintf(d.out, "  (only %s) %s\n", user, plainText(v.Text))
		return nil
	}})
}

var (
	linkRe    = regexp.MustCompile(`<([^>|]+)\|([^>]*)>`)
	mentionRe = regexp.MustCompile(`<[@#!](?:subteam\^)?([^>]+)>`)
	emojiRe   = regexp.MustCompile(`:[a-z0-9_+-]+: ?`)
)

// plainText makes the bot's mrkdwn readable in the demo's own lines (the
// console renders its messages itself): links as their text, mentions as
// @id, no emoji codes, bold or code marks, one line.
func plainText(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = linkRe.ReplaceAllString(s, "$2")
	s = mentionRe.ReplaceAllString(s, "@$1")
	s = strings.NewReplacer("<", "", ">", "").Replace(s)
	s = emojiRe.ReplaceAllString(s, "")
	s = strings.NewReplacer("*", "", "`", "", "&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
	return strings.TrimSpace(s)
}
