package main

import (
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/integrations/airflow/airflowtest"
)

func refresh(dag string) airflowtest.DagRun {
	return airflowtest.DagRun{DagID: dag, RunID: "scheduled__2026-11-28T00:00:00", State: "running", StartDate: time.Now().Add(-time.Hour)}
}

func TestDataRefreshBlocksTheRunUntilItClears(t *testing.T) {
	w := newWorld(t, all)
	w.af.SetRuns("image_data_refresh", refresh("image_data_refresh"))
	w.start()
	ts := w.deploy()
	w.waitThread("A data refresh is active")
	if !w.thread("`image_data_refresh` run `scheduled__2026-11-28T00:00:00`") || !w.thread("open in Airflow") {
		t.Error("the thread does not show the DAG, run and link")
	}
	// Still running: Re-check keeps the block.
	w.step(ts, "Check Airflow", "recheck", alice)
	w.waitButton(ts, "Check Airflow", "recheck")
	if n := w.countThread("A data refresh is active"); n != 2 {
		t.Errorf("re-check posted %d block notices, want 2", n)
	}
	if len(w.gh.Releases(monorepo)) != 2 || w.gh.Requests("PATCH", "/repos/") != 0 {
		t.Error("something changed while blocked")
	}
	w.af.ClearRuns("image_data_refresh")
	w.step(ts, "Check Airflow", "recheck", alice)
	w.waitText(ts, "no data refresh running")
	w.waitButton(ts, "Publish the release", "publish")
}

func TestRefreshStartingBetweenStagingAndProdBlocksProd(t *testing.T) {
	w := newWorld(t, all)
	w.start()
	ts := w.deploy()
	w.step(ts, "Publish the release", "publish", alice)
	id, val := w.waitButton(ts, "Staging (dev): verify the plan", "approve")
	// A refresh starts while staging deploys.
	w.af.SetRuns("audio_data_refresh", refresh("audio_data_refresh"))
	w.click(alice, ts, id, val)
	w.waitButton(ts, "Production (prod): check Airflow again", "recheck")
	w.waitText(ts, "Staging (dev): apply — _done_")
	if strings.Contains(w.text(ts), "Production (prod): set data_refresh_cleared — _done_") {
		t.Fatal("production went ahead during a refresh")
	}
	// Carol cannot override; an approver can, with a reason that is kept.
	if r := w.reply(w.command(carol, deploys, "/deploy", "override run-1 it is fine")); !strings.Contains(r, "only approvers") {
		t.Errorf("Carol's override answered %q", r)
	}
	if r := w.reply(w.command(bob, deploys, "/deploy", "override run-1")); !strings.Contains(r, "Say which run and why") {
		t.Errorf("override without reason answered %q", r)
	}
	w.reply(w.command(bob, deploys, "/deploy", "override run-1 refresh paused by the data team"))
	w.waitThread("overrode the Airflow block: refresh paused by the data team")
	w.waitButton(ts, "Production (prod): verify the plan", "approve")
	found := false
	for _, ev := range w.audit("run-1") {
		found = found || (ev.Action == "click.confirm" && ev.Actor == bob && strings.Contains(ev.Detail, "refresh paused"))
	}
	if !found {
		t.Error("the override's reason is not in the audit log")
	}
}

func TestAirflowUnreachableFailsClearlyWithRetry(t *testing.T) {
	w := newWorld(t, all)
	w.af.Down(true)
	w.start()
	ts := w.deploy()
	w.waitText(ts, "could not check Airflow")
	w.waitButton(ts, "Check Airflow", "retry")
	w.af.Down(false)
	w.step(ts, "Check Airflow", "retry", alice)
	w.waitText(ts, "no data refresh running")
}

// A new Sentry issue is posted once, with Roll back and Declare incident,
// even across a restart; the watch ends with a summary; an alert from the
// Sentry app in the alerts channel is linked into the thread.
func TestSentryWatchPostsIssuesOnceAcrossARestart(t *testing.T) {
	w := newWorld(t, all)
	w.watch = "15s"
	w.writeConfig(all)
	w.start()
	ts := w.deployToWatch()
	w.sn.AddIssue("ingestion-server", "production", sentryIssue("9001", "KeyError <!here> in refresh", "error", 12, 3))
	w.waitThread("New issue in production")
	if w.thread("<!here>") || !w.thread("KeyError &lt;!here&gt; in refresh") || !w.thread("12 events · 3 users") {
		t.Error("the issue message is unescaped or incomplete")
	}
	// The alert the Sentry app posts in #openverse-alerts is linked.
	w.srv.PostBotMessage(alerts, sentryBotID, "Sentry", "IndexError in reindex", sentryBlocksAlert(w.sn.Org(), "9002", "INGESTION-SERVER-4G", "IndexError in reindex"), nil)
	w.waitThread("Sentry raised")

	// Restart in the middle of the watch.
	if w.thread("Sentry watch over") {
		t.Fatal("the watch ended before the restart; lengthen it")
	}
	w.stop()
	w.start()
	w.waitThread("restarted and picked this run up again")
	w.waitThread("Sentry watch over: 1 new issue in")
	if n := w.countThread("New issue in production"); n != 1 {
		t.Errorf("the issue was posted %d times", n)
	}
	// The issue message carries Roll back and Declare incident.
	for _, m := range w.srv.Thread(deploys, ts) {
		if strings.Contains(m.Text, "New issue in production") {
			b := string(m.Blocks)
			if !strings.Contains(b, "rollback:run-1:-1") || !strings.Contains(b, "incident:run-1:-1") {
				t.Errorf("issue message buttons: %s", b)
			}
		}
	}
}

// Roll back on a Sentry issue rolls back to the last good version that
// deploybot knows from its own history.
func TestRollBackFromASentryIssue(t *testing.T) {
	w := newWorld(t, all)
	w.watch = "30s"
	w.writeConfig(all)
	w.start()
	ts := w.deployToWatch()
	w.sn.AddIssue("ingestion-server", "production", sentryIssue("9002", "Crash", "fatal", 1, 1))
	w.waitThread("New issue in production")
	var msg string
	for _, m := range w.srv.Thread(deploys, ts) {
		if strings.Contains(m.Text, "New issue in production") {
			msg = m.TS
		}
	}
	e := w.srv.Click(alice, deploys, msg, "rollback:run-1:-1", "run-1|-1|0")
	if _, err := w.srv.WaitAck(e, wait); err != nil {
		t.Fatal(err)
	}
	w.waitText(ts, "superseded by a rollback to rel-2023.07.03.17.52.00")
	rb := w.runMessage(1)
	w.waitText(rb.TS, "Rollback of ingestion-server to rel-2023.07.03.17.52.00")
	// Production's flag was put back when the deploy was superseded.
	if b, _ := readFile(w.work + "/runs/run-1/environments/prod/ingestion-server.tf"); !strings.Contains(b, "data_refresh_cleared = false") {
		t.Errorf("flag not false after the rollback took over:\n%s", b)
	}
}

func TestManualFallbackForEachAbsentSection(t *testing.T) {
	for _, c := range []struct {
		name  string
		with  sections
		step  string
		check string
	}{
		{"no airflow", sections{github: true, sentry: true, infra: true}, "Check Airflow", ""},
		{"no sentry", sections{github: true, airflow: true, infra: true}, "Check Sentry", ""},
		{"no github", sections{airflow: true, sentry: true, infra: true}, "Publish the release", "tag"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, c.with)
			w.start()
			text := "ingestion-server"
			if c.check == "tag" {
				// Without GitHub the version must be named.
				if r := w.reply(w.command(alice, deploys, "/deploy", text)); !strings.Contains(r, "Name the image tag") {
					t.Errorf("bare deploy without GitHub answered %q", r)
				}
				text += " " + tag
			}
			w.reply(w.command(alice, deploys, "/deploy", text))
			w.msgTS = w.runMessage(0).TS
			ts := w.msgTS
			// Walk to the step; it must be the manual one (a Done button
			// with the runbook's words).
			for i := 0; ; i++ {
				waitAnyButton(w, ts)
				if strings.Contains(w.text(ts), "*"+stepNumber(w, ts, c.step)+". "+c.step+"*") {
					break
				}
				if i == 20 {
					t.Fatalf("never reached %q", c.step)
				}
				advance(w, ts)
			}
			w.waitButton(ts, c.step, "done")
			if strings.Contains(w.text(ts), c.step+" — _running_") {
				t.Errorf("%q runs automatically without its section", c.step)
			}
		})
	}
}

// stepNumber finds a step's number in the checklist.
func stepNumber(w *world, ts, title string) string {
	for _, line := range strings.Split(w.text(ts), "\n") {
		if i := strings.Index(line, ". "+title+" —"); i > 0 {
			f := strings.Fields(line[:i])
			return f[len(f)-1]
		}
	}
	return "?"
}

func waitAnyButton(w *world, ts string) {
	w.t.Helper()
	w.srv.WaitFor(w.t, wait, "a button to press", func() bool {
		for _, v := range []string{"publish", "approve", "done"} {
			if _, _, ok := w.button(ts, v); ok {
				return true
			}
		}
		return false
	})
}

// advance answers whatever the run waits on with the affirmative button.
func advance(w *world, ts string) {
	w.t.Helper()
	var id, val, verb string
	w.srv.WaitFor(w.t, wait, "a button to press", func() bool {
		for _, v := range []string{"publish", "approve", "done"} {
			var ok bool
			if id, val, ok = w.button(ts, v); ok {
				verb = v
				return true
			}
		}
		return false
	})
	user := alice
	if strings.Contains(w.text(ts), "Production (prod): verify the plan*") && verb == "approve" {
		user = bob
	}
	w.click(user, ts, id, val)
	w.srv.WaitFor(w.t, wait, "the step to move on", func() bool {
		_, v, ok := w.button(ts, verb)
		return !ok || v != val
	})
}
