package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/deploybot/deploybot/bot/slacktest"
)

// The driver plays the people of a run, knowing nothing of where the run
// is: it reads the run's parent message in the Slack test server, finds
// the buttons of the step that waits, and clicks the one a careful operator
// would. Bob (an approver who did not start the run) gives every
// affirmative answer, so four-eyes holds; Alice, who started it, retries.

// stallLimit: a run whose Slack message and thread show nothing new for
// this long is stuck (a whole run takes about ten seconds).
const stallLimit = 45 * time.Second

// offer is one button on the run message, with the step it belongs to.
type offer struct {
	verb, actionID, value string
	title, prompt         string
}

// clickRec is one click the driver made.
type clickRec struct {
	verb, user, title string
	at                time.Time
	proc              int
}

type driveResult struct {
	state     string // the run's state word in its message
	crashed   bool   // the armed process died of SIGKILL
	restarts  int
	starts    int // how many times the start command was sent
	clicks    []clickRec
	stuck     string // why the run did not end before the deadline
	unplanned string // a process that died without being armed
	elapsed   time.Duration
}

// offers lists the buttons of the run message in order, each with the
// title and prompt of its step (the section above its actions block).
func offers(m slacktest.Message) []offer {
	var bs []struct {
		Type string `json:"type"`
		Text *struct {
			Text string `json:"text"`
		} `json:"text"`
		Elements []element `json:"elements"`
	}
	if json.Unmarshal(m.Blocks, &bs) != nil {
		return nil
	}
	var out []offer
	var title, prompt string
	for _, b := range bs {
		switch b.Type {
		case "section":
			title, prompt = "", ""
			if b.Text != nil && strings.HasPrefix(b.Text.Text, "*") {
				head, rest, _ := strings.Cut(b.Text.Text, "\n")
				title = strings.Trim(head, "*")
				if _, t, ok := strings.Cut(title, ". "); ok {
					title = t
				}
				prompt = rest
			}
		case "actions":
			for _, e := range b.Elements {
				if e.Type != "button" {
					continue
				}
				verb, _, _ := strings.Cut(e.ActionID, ":")
				out = append(out, offer{verb: verb, actionID: e.ActionID, value: e.Value, title: title, prompt: prompt})
			}
		}
	}
	return out
}

// runState is the run's state as its message shows it ("active: step 3 of
// 15 waiting" is reported as "step 3 of 15 waiting"); "" until it is drawn.
func runState(m slacktest.Message) string {
	all := m.Text
	for _, o := range blockTexts(m) {
		all += "\n" + o
	}
	i := strings.Index(all, "*State* ")
	if i < 0 {
		return ""
	}
	s := all[i+len("*State* "):]
	if j := strings.Index(s, "  ·  "); j >= 0 {
		s = s[:j]
	}
	if j := strings.Index(s, "\n"); j >= 0 {
		s = s[:j]
	}
	return strings.TrimSpace(s)
}

func blockTexts(m slacktest.Message) []string {
	var bs []block
	if json.Unmarshal(m.Blocks, &bs) != nil {
		return nil
	}
	var out []string
	for _, b := range bs {
		if b.Text != nil {
			out = append(out, b.Text.Text)
		}
	}
	return out
}

// ended reports whether a state word is final, and which.
func ended(state string) (string, bool) {
	switch {
	case strings.Contains(state, "succeeded"):
		return "succeeded", true
	case state == "failed" || state == "cancelled":
		return state, true
	}
	return "", false
}

// choose picks the button a careful operator clicks, and who clicks it.
// Nothing is chosen when only refusals are offered (reject, cancel, skip,
// incident, rollback): the run then waits on something else.
func (cw *crashWorld) choose(os []offer) (offer, string, bool) {
	if cw.sc.applyFails {
		for _, o := range os {
			if o.verb == "cancel" && strings.Contains(o.title, "(prod)") && strings.Contains(o.title, "apply") && strings.Contains(o.prompt, "This step failed") {
				return o, alice, true
			}
		}
	}
	for _, verb := range []string{"publish", "approve", "confirm", "done", "retry", "recheck"} {
		for _, o := range os {
			if o.verb != verb {
				continue
			}
			user := bob
			if verb == "retry" || verb == "recheck" {
				user = alice
			}
			return o, user, true
		}
	}
	return offer{}, "", false
}

// drive runs the scenario to its end: it starts the binary (armed to crash
// at crashAt when > 0), sends the start command, answers whatever the run
// waits on, restarts the binary without the hook when it dies, and returns
// once the run has ended and the bot has gone quiet. The process it leaves
// running is the last of cw.procs.
func (cw *crashWorld) drive(crashAt int, crashLog string, limit time.Duration) driveResult {
	t0 := time.Now()
	end := t0.Add(limit)
	var res driveResult
	p := cw.startProc(crashAt, crashLog)
	upSince := time.Now()
	cw.sc.start(cw)
	res.starts++
	lastStart := time.Now()

	var ts string
	var last struct {
		key  string
		at   time.Time
		proc *botProc
	}
	var quiet, moved struct {
		sig   string
		since time.Time
	}
	for {
		// Anything Slack shows moving counts as progress.
		m, _ := cw.srv.Message(deploys, ts)
		if sig := fmt.Sprintf("%d/%d/%d/%d", len(cw.srv.Thread(deploys, ts)), m.Edits, len(cw.procs), len(cw.srv.Messages(deploys))); sig != moved.sig {
			moved.sig, moved.since = sig, time.Now()
		}
		if time.Now().After(end) || time.Since(moved.since) > stallLimit {
			res.stuck = fmt.Sprintf("the run did not end (nothing moved for %v, %v in all); state %q, buttons %v",
				time.Since(moved.since).Round(time.Second), time.Since(t0).Round(time.Second), runState(m), verbsOf(offers(m)))
			break
		}
		if p.dead() {
			if p.crashAt > 0 && p.killedBySIGKILL() && !res.crashed {
				res.crashed = true
			} else {
				res.unplanned = fmt.Sprintf("process %d (crash_at=%d) exited unplanned: %v\n%s", len(cw.procs), p.crashAt, p.state, tailFile(p.logPath, 20))
				break
			}
			_ = waitUntil(wait, func() bool { return cw.srv.Connections() == 0 })
			p = cw.startProc(0, "")
			upSince = time.Now()
			res.restarts++
			continue
		}
		// The run's message is the latest top-level one: a restart that
		// posts the run message again moves the run there (and the check
		// counts the copy).
		if ms := cw.srv.Messages(deploys); len(ms) > 0 && ms[len(ms)-1].TS != ts {
			ts = ms[len(ms)-1].TS
			cw.msgTS = ts
			continue
		}
		if ts == "" {
			// A start command the crash swallowed is sent again, as a
			// person would once nothing showed up.
			if time.Since(lastStart) > 8*time.Second && time.Since(upSince) > 5*time.Second {
				cw.sc.start(cw)
				res.starts++
				lastStart = time.Now()
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		m, ok := cw.srv.Message(deploys, ts)
		if !ok {
			res.stuck = "the run message disappeared"
			break
		}
		if st, done := ended(runState(m)); done {
			res.state = st
			sig := fmt.Sprintf("%d/%d/%d", len(cw.srv.Thread(deploys, ts)), m.Edits, len(cw.srv.Messages(alerts)))
			if sig != quiet.sig {
				quiet.sig, quiet.since = sig, time.Now()
			}
			if time.Since(quiet.since) > 2*time.Second && time.Since(upSince) > 2*time.Second {
				break
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if o, user, ok := cw.choose(offers(m)); ok {
			if o.verb == "retry" && retries(res.clicks) >= maxRetries {
				res.stuck = fmt.Sprintf("%q still fails after %d retries: %s", o.title, maxRetries, oneLineForReport(o.prompt))
				break
			}
			key := user + " " + o.actionID + " " + o.value
			if key != last.key || last.proc != p || time.Since(last.at) > 15*time.Second {
				cw.answerForm(user, o, func() { cw.srv.Click(user, deploys, ts, o.actionID, o.value) })
				res.clicks = append(res.clicks, clickRec{verb: o.verb, user: user, title: o.title, at: time.Now(), proc: len(cw.procs)})
				last.key, last.at, last.proc = key, time.Now(), p
			}
		}
		before := m.Edits
		_ = waitUntil(time.Second, func() bool {
			m2, _ := cw.srv.Message(deploys, ts)
			return m2.Edits != before || p.dead()
		})
	}
	res.elapsed = time.Since(t0)
	return res
}

// maxRetries bounds the driver's Retry clicks in one run: a step that
// keeps failing is reported, not retried until the deadline.
const maxRetries = 6

func retries(cs []clickRec) int {
	n := 0
	for _, c := range cs {
		if c.verb == "retry" {
			n++
		}
	}
	return n
}

// clickList lists the clicks for a report.
func (r driveResult) clickList() string {
	var parts []string
	for _, c := range r.clicks {
		parts = append(parts, fmt.Sprintf("%s %s on %q (process %d)", c.user, c.verb, c.title, c.proc))
	}
	return strings.Join(parts, "; ")
}

func verbsOf(os []offer) []string {
	var vs []string
	for _, o := range os {
		vs = append(vs, o.verb+" on "+o.title)
	}
	return vs
}

// answerForm makes the click; when the button asks for a reason first
// (Force unlock, Override: danger confirms), the operator gives one.
func (cw *crashWorld) answerForm(user string, o offer, click func()) {
	before, _ := cw.srv.Modal(user)
	click()
	if o.verb != "confirm" {
		return
	}
	opened := func() bool {
		f, ok := cw.srv.Modal(user)
		return ok && f.ID != before.ID && f.CallbackID == "reason"
	}
	if waitUntil(5*time.Second, opened) == nil {
		cw.srv.Submit(user, map[string]string{"reason": "crash driver: " + o.title})
	}
}
