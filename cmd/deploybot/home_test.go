package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/deploybot/deploybot/bot/slacktest"
	"github.com/deploybot/deploybot/steps"
)

// viewText is everything a person reads in a view, and its buttons as
// "label=action_id|value".
func viewText(t testing.TB, v slacktest.View) (text string, buttons []string) {
	t.Helper()
	var parts []string
	for _, b := range blocksOfRaw(t, v.Blocks) {
		if b.Text != nil {
			parts = append(parts, b.Text.Text)
		}
		for _, e := range b.Elements {
			if e.Type == "button" {
				buttons = append(buttons, e.text()+"="+e.ActionID+"|"+e.Value)
			} else if e.text() != "" {
				parts = append(parts, e.text())
			}
		}
	}
	return strings.Join(parts, "\n"), buttons
}

func blocksOfRaw(t testing.TB, raw json.RawMessage) []block {
	var bs []block
	if len(raw) == 0 {
		return nil // not published yet
	}
	if err := json.Unmarshal(raw, &bs); err != nil {
		t.Fatalf("view blocks: %v", err)
	}
	return bs
}

// waitHome waits until the user's Home tab says every one of want.
func (h *harness) waitHome(user string, want ...string) slacktest.View {
	h.t.Helper()
	var v slacktest.View
	h.srv.WaitFor(h.t, wait, fmt.Sprintf("%s's Home tab to say %q", user, want), func() bool {
		var ok bool
		if v, ok = h.srv.Home(user); !ok {
			return false
		}
		text, _ := viewText(h.t, v)
		for _, w := range want {
			if !strings.Contains(text, w) {
				return false
			}
		}
		return true
	})
	return v
}

// homeButton finds a button of the user's Home tab by its label.
func (h *harness) homeButton(user, label string) (actionID, value string) {
	h.t.Helper()
	v, _ := h.srv.Home(user)
	_, bs := viewText(h.t, v)
	for _, b := range bs {
		if l, rest, _ := strings.Cut(b, "="); l == label {
			id, val, _ := strings.Cut(rest, "|")
			return id, val
		}
	}
	h.t.Fatalf("no %q button on the Home tab; buttons: %v", label, bs)
	return "", ""
}

// openForm clicks a Home tab button that opens a form and returns it.
func (h *harness) openForm(user, label, callback string) slacktest.View {
	h.t.Helper()
	before, _ := h.srv.Modal(user)
	id, val := h.homeButton(user, label)
	if _, err := h.srv.WaitAck(h.srv.ClickView(user, "home", id, val), wait); err != nil {
		h.t.Fatal(err)
	}
	var form slacktest.View
	h.srv.WaitFor(h.t, wait, "the "+callback+" form", func() bool {
		var ok bool
		form, ok = h.srv.Modal(user)
		return ok && form.ID != before.ID && form.CallbackID == callback
	})
	return form
}

// modalSays waits until the user's form says want.
func (h *harness) modalSays(user, want string) {
	h.t.Helper()
	h.srv.WaitFor(h.t, wait, fmt.Sprintf("the form to say %q", want), func() bool {
		v, ok := h.srv.Modal(user)
		if !ok {
			return false
		}
		text, _ := viewText(h.t, v)
		return strings.Contains(text, want)
	})
}

type ackAnswer struct {
	ResponseAction string            `json:"response_action"`
	Errors         map[string]string `json:"errors"`
}

func answerOf(t testing.TB, p json.RawMessage) ackAnswer {
	var a ackAnswer
	if len(p) > 0 {
		if err := json.Unmarshal(p, &a); err != nil {
			t.Fatalf("ack payload %s: %v", p, err)
		}
	}
	return a
}

// Opening the Home tab publishes a valid view with the open run, who it
// waits on, the lock and the Deploy… button; a step moving on refreshes it
// for whoever opened it.
func TestHomeTabFollowsRuns(t *testing.T) {
	h := newHarness(t)
	h.start()
	if r := h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag)); !strings.Contains(r, "Started run-1") {
		t.Fatalf("/deploy answered %q", r)
	}
	ts := h.runMessage(0).TS
	h.waitButton(ts, "Check Airflow", "done")

	if _, err := h.srv.WaitAck(h.srv.OpenHome(bob), wait); err != nil {
		t.Fatal(err)
	}
	v := h.waitHome(bob, "ingestion-server", "run-1", "“Check Airflow” waiting, waiting for", "*Lock* held by `run-1`", "*Deployed* dev unknown · prod unknown")
	text, buttons := viewText(t, v)
	if !strings.Contains(strings.Join(buttons, " "), "Deploy…=deploy_form|ingestion-server") {
		t.Errorf("no Deploy… button: %v", buttons)
	}
	if !strings.Contains(text, "/archives/"+deploys+"/p") {
		t.Errorf("the open run does not link to its thread:\n%s", text)
	}
	published := v.Versions

	// Alice moves the run on; Bob's tab follows without Bob doing anything.
	h.step(ts, "Check Airflow", "done", alice)
	v = h.waitHome(bob, "“Publish the release” waiting, waiting for an approver")
	if v.Versions <= published {
		t.Errorf("the tab was not published again (%d versions)", v.Versions)
	}
	// Carol never opened it: nothing is published for her.
	if _, ok := h.srv.Home(carol); ok {
		t.Error("a Home tab was published for someone who never opened it")
	}
	h.assertNoRejections()
}

// Deploy… opens a form at once; submitting it starts a run as /deploy
// would. Someone without the deployer role is told so in the form, and
// nothing starts; so is a malformed tag.
func TestDeployForm(t *testing.T) {
	h := newHarness(t)
	h.start()
	for _, u := range []string{alice, carol} {
		h.srv.WaitAck(h.srv.OpenHome(u), wait)
		h.waitHome(u, "*Open run* none")
	}

	h.openForm(carol, "Deploy…", "deploy")
	a := answerOf(t, h.submit(carol, map[string]string{"service": "ingestion-server", "version": tag}))
	if a.ResponseAction != "errors" || !strings.Contains(a.Errors["service"], "only deployers") {
		t.Fatalf("Carol's submit answered %+v", a)
	}
	if f, ok := h.srv.Modal(carol); !ok || !strings.Contains(f.Errors["service"], "not allowed to start a deploy") {
		t.Errorf("the form does not show the refusal: %+v", f)
	}

	h.openForm(alice, "Deploy…", "deploy")
	a = answerOf(t, h.submit(alice, map[string]string{"service": "ingestion-server", "version": "rel-banana"}))
	if a.ResponseAction != "errors" || !strings.Contains(a.Errors["version"], "is not an image tag") {
		t.Fatalf("a bad tag answered %+v", a)
	}
	if ms := h.srv.Messages(deploys); len(ms) != 0 {
		t.Fatalf("a refused form started something: %d messages", len(ms))
	}
	if runs, _ := h.store().Runs(context.Background(), "", 10); len(runs) != 0 {
		t.Fatalf("a refused form recorded %d runs", len(runs))
	}
	refused := false
	for _, ev := range h.audit("") {
		refused = refused || ev.Action == "start.refused" && ev.Actor == carol
	}
	if !refused {
		t.Error("Carol's refused submit is not in the audit log")
	}

	a = answerOf(t, h.submit(alice, map[string]string{"service": "ingestion-server", "version": tag}))
	if a.ResponseAction != "update" {
		t.Fatalf("a good submit answered %+v", a)
	}
	h.modalSays(alice, "Started run-1: Deploy ingestion-server "+tag)
	msg := h.runMessage(0)
	h.waitText(msg.TS, "*Requested by* <@"+alice+">")
	h.waitHome(alice, "*Lock* held by `run-1`")
	h.assertNoRejections()
}

// With GitHub configured the form offers the newest drafted and published
// releases; picking one deploys that version.
func TestDeployFormOffersReleases(t *testing.T) {
	w := newWorld(t, sections{github: true})
	w.start()
	w.srv.WaitAck(w.srv.OpenHome(alice), wait)
	w.waitHome(alice, "ingestion-server")
	w.openForm(alice, "Deploy…", "deploy")
	var form slacktest.View
	w.srv.WaitFor(t, wait, "the releases in the form", func() bool {
		form, _ = w.srv.Modal(alice)
		return strings.Contains(string(form.Blocks), "rel-2024.09.09.05.40.20 (drafted release)") &&
			strings.Contains(string(form.Blocks), "rel-2023.07.03.17.52.00 (published release)")
	})
	a := answerOf(t, w.submit(alice, map[string]string{"service": "ingestion-server", "version_pick": "ingestion-server|" + tag}))
	if a.ResponseAction != "update" {
		t.Fatalf("submit answered %+v", a)
	}
	w.modalSays(alice, "Started run-1: Deploy ingestion-server "+tag)
	r, err := w.store().Run(context.Background(), "run-1")
	if err != nil || r.Version != tag || r.Requester != alice {
		t.Fatalf("run-1 = %+v, %v", r, err)
	}
	w.assertNoRejections()
}

// A trigger_id used after Slack's 3 seconds is refused by Slack; the bot
// says what happened and what to do, and nothing is done.
func TestFormExpiredTrigger(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.srv.WaitAck(h.srv.OpenHome(alice), wait)
	h.waitHome(alice, "*Open run* none")
	release := h.srv.Hold("views.open")
	id, val := h.homeButton(alice, "Deploy…")
	h.srv.WaitAck(h.srv.ClickView(alice, "home", id, val), wait)
	h.srv.WaitFor(t, wait, "views.open to be called", func() bool { return h.srv.Calls("views.open") == 1 })
	h.srv.ExpireTriggers()
	release()
	h.waitHome(alice, "Slack allows 3 seconds", "click Deploy… again, or type `/deploy ingestion-server <tag>`")
	rej := h.srv.Rejected()
	if len(rej) != 1 || rej[0].Method != "views.open" || rej[0].Error != "expired_trigger_id" {
		t.Errorf("rejections: %+v", rej)
	}
	if _, ok := h.srv.Modal(alice); ok {
		t.Error("a form opened with an expired trigger")
	}
	// The next tab render carries no stale notice.
	h.srv.WaitAck(h.srv.OpenHome(alice), wait)
	h.srv.WaitFor(t, wait, "the notice to go", func() bool {
		v, _ := h.srv.Home(alice)
		text, _ := viewText(t, v)
		return !strings.Contains(text, "Slack allows 3 seconds")
	})
}

// Reject asks for its reason in a form; the reason reaches the thread and
// the audit log. Someone who may not reject is refused without a form.
// /deploy history then lists the run privately; bad arguments get answers.
func TestRejectReasonAndHistory(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	ts := h.runMessage(0).TS
	h.step(ts, "Check Airflow", "done", alice)
	h.step(ts, "Publish the release", "done", bob)
	h.step(ts, "Wait for the image build", "done", alice)
	h.step(ts, "Staging (dev): bump ingestion-server", "done", alice)
	id, val := h.waitButton(ts, "Staging (dev): verify the plan", "reject")

	if r := h.reply(h.srv.Click(carol, deploys, ts, id, val)); !strings.Contains(r, "only approvers") {
		t.Errorf("Carol's Reject answered %q", r)
	}
	if _, ok := h.srv.Modal(carol); ok {
		t.Error("Carol got a form for a click she may not make")
	}

	e := h.srv.Click(bob, deploys, ts, id, val)
	h.srv.WaitAck(e, wait)
	h.srv.WaitFor(t, wait, "the reason form", func() bool { f, ok := h.srv.Modal(bob); return ok && f.CallbackID == "reason" })
	if a := answerOf(t, h.submit(bob, map[string]string{"reason": "   "})); a.ResponseAction != "errors" || a.Errors["reason"] == "" {
		t.Errorf("a blank reason answered %+v", a)
	}
	if strings.Contains(h.text(ts), "rejected") {
		t.Fatal("a blank reason rejected the plan")
	}
	if a := answerOf(t, h.submit(bob, map[string]string{"reason": "the plan <destroys> the database"})); a.ResponseAction != "update" {
		t.Fatalf("the reason answered %+v", a)
	}
	h.modalSays(bob, "your reason is in the run's thread and the audit log")
	h.srv.WaitFor(t, wait, "the reason in the thread", func() bool {
		return threadHas(h, ts, "clicked *Reject* on “Staging (dev): verify the plan”") && threadHas(h, ts, "Reason: the plan &lt;destroys&gt; the database")
	})
	h.waitText(ts, "rejected by <@"+bob+">")
	found := false
	for _, ev := range h.audit("run-1") {
		found = found || ev.Action == "click.reject" && ev.Actor == bob && ev.Detail == "the plan <destroys> the database"
	}
	if !found {
		t.Error("the reason is not in the audit log")
	}
	h.srv.WaitFor(t, wait, "run-1 to end", func() bool {
		r, err := h.store().Run(context.Background(), "run-1")
		return err == nil && r.State == steps.RunFailed
	})

	r := unescapeJSON(h.reply(h.command(carol, random, "/deploy", "history")))
	for _, want := range []string{"Last 1 runs of all services", "run-1", ":x: failed", "ingestion-server `" + tag + "`", "by <@" + alice + ">", "took "} {
		if !strings.Contains(r, want) {
			t.Errorf("/deploy history lacks %q:\n%s", want, r)
		}
	}
	if r := h.reply(h.command(carol, random, "/deploy", "history ingestion-server 5")); !strings.Contains(r, "Last 1 runs of ingestion-server") {
		t.Errorf("history of a service answered %q", r)
	}
	for arg, want := range map[string]string{
		"history nope":                "There is no service `nope`",
		"history 0":                   "not a number of runs from 1 to 50",
		"history 51":                  "not a number of runs from 1 to 50",
		"history a b c":               "takes at most a service and a number",
		"history 5 5":                 "one number of runs",
		"history -3 ingestion-server": "not a number of runs",
	} {
		if r := h.reply(h.command(alice, deploys, "/deploy", arg)); !strings.Contains(r, want) {
			t.Errorf("/deploy %s answered %q, want %q", arg, r, want)
		}
	}
	h.assertNoRejections()
}

// With many services and runs the tab stays within Slack's 100 blocks and
// says what it left out; each service lists its last 10 runs with who
// approved them.
func TestHomeTabLimits(t *testing.T) {
	h := newHarness(t)
	var svcs strings.Builder
	for i := range 30 {
		fmt.Fprintf(&svcs, "  svc-%02d:\n    release_tag_prefix: svc_%02d-\n    image_tag_prefix: rel-\n    environments:\n      - {name: prod, dir: environments/prod, file: environments/prod/svc.tf, module: svc, version_attribute: image_tag}\n", i, i)
	}
	cfg := fmt.Sprintf(baseConfig+"services:\n%s", h.srv.APIURL(), svcs.String())
	if err := os.WriteFile(h.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// Twelve finished deploys of svc-00, recorded before the bot starts.
	db := h.store()
	base := time.Now().Add(-24 * time.Hour)
	for i := range 12 {
		at := base.Add(time.Duration(i) * time.Hour)
		r := &steps.Run{Kind: steps.KindDeploy, Service: "svc-00", Version: fmt.Sprintf("rel-2024.01.%02d.00.00.00", i+1), Requester: alice, Channel: deploys,
			State: steps.RunSucceeded, CreatedAt: at, UpdatedAt: at.Add(7 * time.Minute), EndedAt: at.Add(7 * time.Minute),
			Steps: []steps.StepState{{Index: 0, ID: "apply:prod", Title: "apply", Status: steps.StepDone}}}
		if err := db.CreateRun(context.Background(), r, steps.Changes{}); err != nil {
			t.Fatal(err)
		}
		if err := db.SaveRun(context.Background(), r, steps.Changes{Approvals: []steps.Approval{{RunID: r.ID, StepIndex: 0, StepID: "apply:prod", Approver: bob, Decision: steps.VerbApprove, At: at}}}); err != nil {
			t.Fatal(err)
		}
	}
	h.start()
	h.srv.WaitAck(h.srv.OpenHome(alice), wait)
	v := h.waitHome(alice, "more services or incidents do not fit here")
	if n := len(blocksOfRaw(t, v.Blocks)); n > 100 {
		t.Errorf("%d blocks", n)
	}
	text, _ := viewText(t, v)
	for _, want := range []string{"*Last 10 runs*", "run-12", "rel-2024.01.12.00.00.00", "approved by <@" + bob + ">", "took 7m0s", "*Deployed* prod `rel-2024.01.12.00.00.00` (run-12)"} {
		if !strings.Contains(text, want) {
			t.Errorf("the tab lacks %q", want)
		}
	}
	if strings.Contains(text, "rel-2024.01.02.00.00.00") {
		t.Error("the tab lists more than the last 10 runs")
	}
	h.assertNoRejections()
}

// unescapeJSON undoes the escaping encoding/json applies to <, > and &.
func unescapeJSON(s string) string {
	return strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(s)
}

// Open incidents are on the Home tab with Resolve; a refused Resolve is
// explained on the tab (a view has no response_url), an accepted one
// resolves the incident and the tab follows.
func TestHomeTabResolvesIncidents(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.reply(h.command(bob, deploys, "/incident", "ingestion-server returns 500s"))
	for _, u := range []string{bob, carol} {
		h.srv.WaitAck(h.srv.OpenHome(u), wait)
		h.srv.WaitFor(t, wait, u+"'s Resolve button", func() bool {
			v, _ := h.srv.Home(u)
			_, bs := viewText(t, v)
			return strings.Contains(strings.Join(bs, " "), "Resolve=done:run-1:")
		})
	}
	h.waitHome(bob, "Open incidents", "returns 500s (declared by <@"+bob+">")
	id, val := h.homeButton(carol, "Resolve")
	h.srv.WaitAck(h.srv.ClickView(carol, "home", id, val), wait)
	h.waitHome(carol, ":no_entry: only <@"+bob+">, who started run-1, or an approver may answer")

	h.srv.WaitAck(h.srv.ClickView(bob, "home", id, val), wait)
	h.srv.WaitFor(t, wait, "the incident to leave the tab", func() bool {
		v, _ := h.srv.Home(bob)
		text, _ := viewText(t, v)
		return !strings.Contains(text, "Open incidents")
	})
	r, err := h.store().Run(context.Background(), "run-1")
	if err != nil || r.State != steps.RunSucceeded {
		t.Fatalf("run-1 = %+v, %v", r, err)
	}
	h.assertNoRejections()
}

// The manifest a deployer copies enables what the Home tab and the forms
// need.
func TestManifestEnablesHomeAndForms(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/slack-app-manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Features struct {
			AppHome struct {
				HomeTabEnabled bool `yaml:"home_tab_enabled"`
			} `yaml:"app_home"`
		} `yaml:"features"`
		Settings struct {
			Events struct {
				BotEvents []string `yaml:"bot_events"`
			} `yaml:"event_subscriptions"`
			Interactivity struct {
				IsEnabled bool `yaml:"is_enabled"`
			} `yaml:"interactivity"`
			SocketMode bool `yaml:"socket_mode_enabled"`
		} `yaml:"settings"`
	}
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if !m.Features.AppHome.HomeTabEnabled || !m.Settings.Interactivity.IsEnabled || !m.Settings.SocketMode ||
		!slices.Contains(m.Settings.Events.BotEvents, "app_home_opened") {
		t.Errorf("manifest = %+v", m)
	}
}

// Override on an Airflow block asks for its reason in a form: a form that
// could not open in time says what to do instead (including the slash
// command, which still works), and the reason given reaches the thread and
// the audit log.
func TestOverrideAsksForItsReason(t *testing.T) {
	w := newWorld(t, sections{airflow: true})
	w.af.SetRuns("image_data_refresh", refresh("image_data_refresh"))
	w.start()
	w.reply(w.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	ts := w.runMessage(0).TS
	w.msgTS = ts
	id, val := w.waitButton(ts, "Check Airflow", "confirm")
	if !buttonLabeled(w.harness, ts, "Override") {
		t.Fatal("no Override button on the Airflow block")
	}

	release := w.srv.Hold("views.open")
	e := w.srv.Click(bob, deploys, ts, id, val)
	w.srv.WaitFor(t, wait, "views.open to be called", func() bool { return w.srv.Calls("views.open") == 1 })
	w.srv.ExpireTriggers()
	release()
	if r := w.reply(e); !strings.Contains(r, "Slack allows 3 seconds") || !strings.Contains(r, "click Override again, or type `/deploy override run-1 <reason>`") {
		t.Errorf("the expired form answered %q", r)
	}
	w.srv.ClearRejected()
	if strings.Contains(w.text(ts), "overridden") {
		t.Fatal("an override happened without its reason")
	}

	w.click(bob, ts, id, val) // the harness gives the reason in the form
	w.waitThread("overrode the Airflow block: reason given by " + bob)
	w.waitText(ts, "block overridden by <@"+bob+">")
	found := false
	for _, ev := range w.audit("run-1") {
		found = found || ev.Action == "click.confirm" && ev.Actor == bob && ev.Detail == "reason given by "+bob
	}
	if !found {
		t.Error("the override's reason is not in the audit log")
	}
	w.assertNoRejections()
}
