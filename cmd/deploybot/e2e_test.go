package main

import (
	"strings"
	"testing"

	"github.com/deploybot/deploybot/bot/slacktest"
	"github.com/deploybot/deploybot/steps"
)

// runbook is the ingestion-server runbook as clicked through by people:
// step title, verb, who clicks. Production's plan needs a second approver.
var runbook = []struct{ title, verb, user string }{
	{"Check Airflow", "done", alice},
	{"Publish the release", "done", alice},
	{"Wait for the image build", "done", alice},
	{"Staging (dev): bump ingestion-server", "done", alice},
	{"Staging (dev): verify the plan", "approve", alice},
	{"Staging (dev): apply", "done", alice},
	{"Production (prod): check Airflow again", "done", alice},
	{"Production (prod): set data_refresh_cleared", "done", alice},
	{"Production (prod): bump ingestion-server", "done", alice},
	{"Production (prod): verify the plan", "approve", bob},
	{"Production (prod): apply", "done", alice},
	{"Production (prod): restore data_refresh_cleared", "done", alice},
	{"Check Sentry", "done", alice},
	{"Approve the changelog PR", "done", bob},
	{"Open the infrastructure PR", "done", alice},
}

func TestFullRunClickedThroughByTwoUsers(t *testing.T) {
	h := newHarness(t)
	h.start()

	e := h.command(alice, deploys, "/deploy", "ingestion-server "+tag)
	if r := h.reply(e); !strings.Contains(r, "Started run-1") {
		t.Fatalf("reply = %q, want it to name the new run", r)
	}
	msg := h.runMessage(0)
	h.waitText(msg.TS, "run-1")
	txt := h.text(msg.TS)
	for _, want := range []string{"Deploy ingestion-server " + tag, "<@U0ALICE>", "ingestion-server", tag} {
		if !strings.Contains(txt, want) {
			t.Errorf("run message lacks %q:\n%s", want, txt)
		}
	}
	for _, s := range runbook {
		if !strings.Contains(txt, s.title) {
			t.Errorf("checklist lacks step %q", s.title)
		}
	}

	for _, s := range runbook {
		h.step(msg.TS, s.title, s.verb, s.user)
	}
	h.waitText(msg.TS, "succeeded")
	final := h.text(msg.TS)
	if strings.Count(final, ":white_check_mark:") != len(runbook) {
		t.Errorf("want every step done:\n%s", final)
	}
	if _, _, ok := h.button(msg.TS, "done"); ok {
		t.Error("a finished run still offers buttons")
	}

	// The thread tells who clicked what.
	h.srv.WaitFor(t, wait, "the thread to name Bob's approval", func() bool {
		for _, m := range h.srv.Thread(deploys, msg.TS) {
			if strings.Contains(m.Text, "<@U0BOB> clicked *Approve* on “Production (prod): verify the plan”") {
				return true
			}
		}
		return false
	})
	h.assertNoRejections()
	h.stop()

	// The audit log has every step, who did it, and the end.
	evs := h.audit("run-1")
	var done []string
	for _, ev := range evs {
		if ev.Action == "step.done" {
			done = append(done, ev.StepID+"/"+ev.Actor)
		}
	}
	if len(done) != len(runbook) {
		t.Fatalf("audit has %d steps done, want %d: %v", len(done), len(runbook), done)
	}
	if done[9] != "plan:prod/"+bob {
		t.Errorf("prod plan approval recorded as %q, want Bob's", done[7])
	}
	if last := evs[len(evs)-1]; last.Action != "run.succeeded" {
		t.Errorf("last audit event = %s, want run.succeeded", last.Action)
	}
	apps, err := h.store().Approvals(t.Context(), "run-1")
	if err != nil || len(apps) != 2 || apps[1].Approver != bob || apps[1].StepID != "plan:prod" {
		t.Errorf("approvals = %+v, %v; want dev by Alice and prod by Bob", apps, err)
	}
}

func TestRedeliveredEnvelopeAndDoubleClickActOnce(t *testing.T) {
	h := newHarness(t)
	h.start()

	e := h.command(alice, deploys, "/deploy", "ingestion-server "+tag)
	h.reply(e)
	msg := h.runMessage(0)
	again := h.srv.Redeliver(e)
	if _, err := h.srv.WaitAck(again, wait); err != nil {
		t.Fatalf("redelivery not acked: %v", err)
	}

	id, val := h.waitButton(msg.TS, "Check Airflow", "done")
	first := h.click(alice, msg.TS, id, val)
	second := h.click(alice, msg.TS, id, val) // the same button, clicked again
	redelivered := h.srv.Redeliver(first)
	if _, err := h.srv.WaitAck(redelivered, wait); err != nil {
		t.Fatal(err)
	}
	// The two clicks are handled concurrently: whichever comes second is
	// told the button is no longer current, and only one acts.
	h.srv.WaitFor(t, wait, "one of the two clicks to be refused", func() bool {
		for _, e := range []*slacktest.Envelope{first, second} {
			for _, r := range h.srv.Responses(e) {
				if strings.Contains(r.Text, "no longer current") {
					return true
				}
			}
		}
		return false
	})
	h.waitButton(msg.TS, "Publish the release", "done")

	h.stop()
	if n := len(h.srv.Messages(deploys)); n != 1 {
		t.Errorf("redelivered /deploy posted %d run messages, want 1", n)
	}
	// The redelivery carries the same response_url: one answer in all.
	if rs := h.srv.Responses(again); len(rs) != 1 {
		t.Errorf("/deploy answered %d times, want once", len(rs))
	}
	doneCount := 0
	for _, ev := range h.audit("run-1") {
		if ev.Action == "step.done" {
			doneCount++
		}
	}
	if doneCount != 1 {
		t.Errorf("%d steps done after one real click, want 1", doneCount)
	}
}

func TestRefusedClicksChangeNothing(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	msg := h.runMessage(0)

	// Carol has no role: she may not even confirm a manual step.
	id, val := h.waitButton(msg.TS, "Check Airflow", "done")
	if r := h.reply(h.click(carol, msg.TS, id, val)); !strings.Contains(r, "only <@U0ALICE>, who started run-1, or an approver") {
		t.Errorf("Carol's click answered %q", r)
	}
	for _, s := range runbook[:9] {
		h.step(msg.TS, s.title, s.verb, s.user)
	}
	// Alice started the run: four-eyes forbids her approving production.
	id, val = h.waitButton(msg.TS, "Production (prod): verify the plan", "approve")
	if r := h.reply(h.click(alice, msg.TS, id, val)); !strings.Contains(r, "four-eyes") {
		t.Errorf("self-approval answered %q", r)
	}
	// A non-approver may not approve either.
	if r := h.reply(h.click(carol, msg.TS, id, val)); !strings.Contains(r, "only approvers") {
		t.Errorf("Carol's approval answered %q", r)
	}
	if _, v, ok := h.button(msg.TS, "approve"); !ok || v != val {
		t.Fatal("a refused click moved the step on")
	}
	// Dave is an approver through a user group.
	h.step(msg.TS, "Production (prod): verify the plan", "approve", dave)

	refused := 0
	for _, ev := range h.audit("run-1") {
		if ev.Action == "click.refused" {
			refused++
		}
	}
	if refused != 3 {
		t.Errorf("audit has %d refused clicks, want 3", refused)
	}
	h.assertNoRejections()
}

func TestConcurrentDeployRefusedAndCancelFreesTheService(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	msg := h.runMessage(0)
	for _, s := range runbook[:8] {
		h.step(msg.TS, s.title, s.verb, s.user)
	}

	r := h.reply(h.command(alice, deploys, "/deploy", "ingestion-server rel-2024.10.01.00.00.00"))
	for _, want := range []string{"busy", "<@U0ALICE>", "run-1", "/deploy cancel run-1"} {
		if !strings.Contains(r, want) {
			t.Errorf("refusal %q lacks %q", r, want)
		}
	}
	if n := len(h.srv.Messages(deploys)); n != 1 {
		t.Fatalf("a refused deploy posted a message (%d messages)", n)
	}
	// /deploy status names the holder and who the run waits on.
	st := h.reply(h.command(bob, deploys, "/deploy", "status"))
	for _, want := range []string{"run-1", "ingestion-server is locked by `run-1`", "waiting for the requester or an approver"} {
		if !strings.Contains(st, want) {
			t.Errorf("status %q lacks %q", st, want)
		}
	}
	// Carol may not cancel; Bob (an approver) may. The flag step's undo is
	// announced in the thread.
	if r := h.reply(h.command(carol, deploys, "/deploy", "cancel run-1")); !strings.Contains(r, "only <@U0ALICE>") {
		t.Errorf("Carol's cancel answered %q", r)
	}
	h.reply(h.command(bob, deploys, "/deploy", "cancel run-1"))
	h.waitText(msg.TS, "*State* cancelled")
	h.srv.WaitFor(t, wait, "the undo instruction for data_refresh_cleared", func() bool {
		for _, m := range h.srv.Thread(deploys, msg.TS) {
			if strings.Contains(m.Text, "restore `data_refresh_cleared = false`") {
				return true
			}
		}
		return false
	})
	// The service is free again.
	if r := h.reply(h.command(alice, deploys, "/deploy", "ingestion-server rel-2024.10.01.00.00.00")); !strings.Contains(r, "Started run-2") {
		t.Errorf("deploy after cancel answered %q", r)
	}
	evs := h.audit("run-1")
	var comp bool
	for _, ev := range evs {
		comp = comp || (ev.Action == "compensation.done" && ev.StepID == "flag:prod")
	}
	if !comp {
		t.Error("no compensation recorded for the flag step")
	}
	if evs[len(evs)-1].Action != "run.cancelled" {
		t.Errorf("last event %s", evs[len(evs)-1].Action)
	}
}

func TestBadInputGetsAnAnswerAndStartsNothing(t *testing.T) {
	h := newHarness(t)
	h.start()
	cases := []struct {
		name, user, channel, cmd, text, want string
	}{
		{"unknown service", alice, deploys, "/deploy", "search-api " + tag, "There is no service `search-api`"},
		{"malformed tag", alice, deploys, "/deploy", "ingestion-server 2024.09.09", "is not an image tag"},
		{"wrong prefix", alice, deploys, "/deploy", "ingestion-server ingestion_server-2024.09.09.05.40.20", "is not an image tag"},
		{"impossible date", alice, deploys, "/deploy", "ingestion-server rel-2024.13.45.25.61.00", "is not a real date and time"},
		{"extra words", alice, deploys, "/deploy", "ingestion-server " + tag + " now please", "Too many words"},
		{"outside deploy channels", alice, random, "/deploy", "ingestion-server " + tag, "Type the command there"},
		{"no permission", carol, deploys, "/deploy", "ingestion-server " + tag, "not allowed to start a deploy"},
		{"no tag without GitHub", alice, deploys, "/deploy", "ingestion-server", "Name the image tag"},
		{"cancel without id", alice, deploys, "/deploy", "cancel", "Name the run to cancel"},
		{"cancel unknown run", alice, deploys, "/deploy", "cancel run-99", "no run run-99"},
		{"status extra words", alice, deploys, "/deploy", "status all", "takes no more words"},
		{"rollback bad tag", alice, deploys, "/rollback", "rel-2023.07.03", "is not an image tag"},
		{"rollback unknown service", alice, deploys, "/rollback", "api rel-2023.07.03.17.52.00", "There is no service `api`"},
		{"rollback outside channel", alice, random, "/rollback", "rel-2023.07.03.17.52.00", "Type the command there"},
		{"rollback no permission", carol, deploys, "/rollback", "rel-2023.07.03.17.52.00", "not allowed to start a rollback"},
		{"incident without text", alice, deploys, "/incident", "", "Say what is wrong"},
		{"mention in input is not echoed raw", alice, deploys, "/deploy", "<!channel> " + tag, "&lt;!channel&gt;"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.reply(h.command(c.user, c.channel, c.cmd, c.text))
			if !strings.Contains(r, c.want) {
				t.Errorf("%s %s answered %q, want %q", c.cmd, c.text, r, c.want)
			}
		})
	}
	if n := len(h.srv.Messages(deploys)) + len(h.srv.Messages(random)); n != 0 {
		t.Errorf("bad input posted %d messages", n)
	}
	h.stop()
	runs, err := h.store().Runs(t.Context(), "", 10)
	if err != nil || len(runs) != 0 {
		t.Errorf("bad input started runs: %v %v", runs, err)
	}
	refused := 0
	for _, ev := range h.audit("") {
		if strings.HasSuffix(ev.Action, ".refused") {
			refused++
		}
	}
	if refused != len(cases) {
		t.Errorf("audit recorded %d refusals, want %d", refused, len(cases))
	}
}

func TestHelpListsCommandsAndServices(t *testing.T) {
	h := newHarness(t)
	h.start()
	r := h.reply(h.command(carol, random, "/deploy", "help"))
	for _, want := range []string{"/deploy <service> [<tag>]", "/deploy status", "/deploy cancel", "/rollback", "/incident", "`ingestion-server`"} {
		if !strings.Contains(r, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestRollbackAndIncidentOpenManualRuns(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.reply(h.command(alice, deploys, "/rollback", "rel-2023.07.03.17.52.00"))
	rb := h.runMessage(0)
	h.waitText(rb.TS, "Rollback of ingestion-server to rel-2023.07.03.17.52.00")
	// Four-eyes: production rollbacks need a second approver.
	id, val := h.waitButton(rb.TS, "Confirm the rollback", "approve")
	if r := h.reply(h.click(alice, rb.TS, id, val)); !strings.Contains(r, "four-eyes") {
		t.Errorf("self-confirmation answered %q", r)
	}
	h.step(rb.TS, "Confirm the rollback", "approve", bob)
	h.waitButton(rb.TS, "Run the rollback workflow", "done")

	// An incident does not take the service's lock.
	h.reply(h.command(bob, deploys, "/incident", "ingestion-server returns 500s <!channel>"))
	inc := h.runMessage(1)
	h.waitText(inc.TS, "Incident: ingestion-server")
	txt := h.text(inc.TS)
	if !strings.Contains(txt, "&lt;!channel&gt;") || strings.Contains(txt, "<!channel>") {
		t.Errorf("incident summary not escaped:\n%s", txt)
	}
	// The team is told in the alerts channel, with the group mentioned.
	h.srv.WaitFor(t, wait, "the incident announcement", func() bool {
		for _, m := range h.srv.Messages(alerts) {
			if strings.Contains(m.Text, "<!subteam^S0MAINTAINERS>") && strings.Contains(m.Text, "*Declared by* <@U0BOB>") &&
				strings.Contains(m.Text, "&lt;!channel&gt;") && !strings.Contains(m.Text, "<!channel>") {
				return true
			}
		}
		return false
	})
	// /deploy status lists the open incident with a Resolve button, which
	// the declarer (not Carol) may use.
	id, val = h.waitButton(inc.TS, "Resolve the incident", "done")
	st := h.command(alice, deploys, "/deploy", "status")
	r := h.reply(st)
	if !strings.Contains(r, "Open incident") || !strings.Contains(r, "Resolve") {
		t.Fatalf("status lacks the incident: %s", r)
	}
	if r := h.reply(h.click(carol, inc.TS, id, val)); !strings.Contains(r, "only <@U0BOB>") {
		t.Errorf("Carol resolving answered %q", r)
	}
	h.step(inc.TS, "Resolve the incident", "done", bob)
	h.waitText(inc.TS, "resolved by <@U0BOB>")
	h.assertNoRejections()
	_ = steps.KindIncident
}
