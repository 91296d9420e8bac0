package main

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/integrations/github/githubtest"
)

// Answers that never arrive: GitHub applies a request and then answers 504,
// or the connection drops before the answer. Each effect must still happen
// exactly once (counted on the test server) and the run must go on.

const dispatchPath = "/repos/" + infraRepo + "/actions/workflows/" + rollbackWF + "/dispatches"

// lose makes the next request with that method and path prefix take effect
// and then lose its answer, in the way named by how.
func lose(gh *githubtest.Server, how, method, prefix string) {
	switch how {
	case "504":
		gh.FailAfterApply(method, prefix, 1, 504)
	case "dropped":
		gh.DropAfterApply(method, prefix, 1)
	default:
		panic(how)
	}
}

// Publishing, approving the changelog PR and opening the infrastructure PR
// all lose their answer once during one deploy: each is checked before it
// is tried again, and happens once.
func TestLostAnswersDuringADeployDoNotDouble(t *testing.T) {
	for _, how := range []string{"504", "dropped"} {
		t.Run(how, func(t *testing.T) {
			w := newWorld(t, all)
			lose(w.gh, how, "PATCH", "/repos/"+monorepo+"/releases/")
			lose(w.gh, how, "POST", "/repos/"+monorepo+"/pulls/") // the review
			lose(w.gh, how, "POST", "/repos/"+infraRepo+"/pulls") // the infrastructure PR
			w.start()
			ts := w.deploy()
			w.step(ts, "Publish the release", "publish", alice)
			w.waitText(ts, "image `"+tag+"` built and tagged")
			w.step(ts, "Staging (dev): verify the plan", "approve", alice)
			w.step(ts, "Production (prod): verify the plan", "approve", bob)
			w.step(ts, "Approve the changelog PR", "approve", bob)
			w.waitText(ts, "*State* :tada: succeeded")

			if n := len(w.gh.Runs(monorepo, buildWF)); n != 1 {
				t.Errorf("%d build runs: the release was published %d times", n, n)
			}
			var changelog []githubtest.PR
			for _, p := range w.gh.PRs(monorepo) {
				if p.Head == changelogPR {
					changelog = append(changelog, p)
				}
			}
			if len(changelog) != 1 {
				t.Fatalf("changelog PRs = %+v", changelog)
			}
			if rv := w.gh.Reviews(monorepo, changelog[0].Number); len(rv) != 1 || rv[0].State != "APPROVED" || rv[0].CommitID != changelog[0].HeadSHA {
				t.Errorf("reviews = %+v, want one approval of %s", rv, changelog[0].HeadSHA)
			}
			if n := w.gh.Requests("POST", "/repos/"+monorepo+"/pulls/"); n != 1 {
				t.Errorf("%d review POSTs, want 1: it was found, not sent again", n)
			}
			if prs := w.gh.PRs(infraRepo); len(prs) != 1 || prs[0].Head != runBranch || prs[0].Base != "main" {
				t.Errorf("infrastructure PRs = %+v, want one from %s into main", prs, runBranch)
			}
			if n := w.gh.Requests("POST", "/repos/"+infraRepo+"/pulls"); n != 1 {
				t.Errorf("%d PR creation POSTs, want 1", n)
			}
			if n := w.gh.FailuresLeft(); n != 0 {
				t.Errorf("%d lost answers were set up but never happened", n)
			}
			w.assertNoRejections()
		})
	}
}

// A rollback dispatch whose answer is lost is never sent again: the run it
// started is found (ours, workflow_dispatch, after the recorded intent, the
// tag in its title) and followed to the end.
func TestLostDispatchAnswerIsFoundNotResent(t *testing.T) {
	for _, how := range []string{"504", "dropped"} {
		t.Run(how, func(t *testing.T) {
			w := newWorld(t, all)
			w.gh.SetRunName(infraRepo, rollbackWF, "Deploy ingestion-server ${{ inputs.tag }}")
			lose(w.gh, how, "POST", dispatchPath)
			w.start()
			w.reply(w.command(alice, deploys, "/rollback", "rel-2023.07.03.17.52.00"))
			w.msgTS = w.runMessage(0).TS
			w.step(w.msgTS, "Confirm the rollback", "approve", bob)
			w.waitThread("Rollback to `rel-2023.07.03.17.52.00` succeeded")
			if !w.thread("No clear answer to the dispatch") {
				t.Error("the thread does not say the dispatch's answer was lost")
			}
			if n := len(w.gh.Dispatches(infraRepo, rollbackWF)); n != 1 {
				t.Errorf("%d dispatches, want 1", n)
			}
			if n := w.gh.Requests("POST", dispatchPath); n != 1 {
				t.Errorf("%d dispatch POSTs, want 1", n)
			}
			if n := w.gh.FailuresLeft(); n != 0 {
				t.Errorf("%d lost answers were set up but never happened", n)
			}
			w.assertNoRejections()
		})
	}
}

// With the answer lost and two runs that could be the dispatch's, the bot
// does not guess: it lists both with links and asks. Dispatch again stays
// an approver's explicit, four-eyes choice.
func TestLostDispatchWithTwoCandidatesAsks(t *testing.T) {
	w := newWorld(t, all)
	w.gh.FailAfterApply("POST", dispatchPath, 1, 504)
	w.start()
	w.reply(w.command(alice, deploys, "/rollback", "rel-2023.07.03.17.52.00"))
	w.msgTS = w.runMessage(0).TS
	ts := w.msgTS
	w.waitButton(ts, "Confirm the rollback", "approve")
	// Someone with the same credentials dispatches the workflow by hand just
	// before Bob confirms; its run still counts as a candidate.
	other := w.gh.AddRun(infraRepo, rollbackWF, githubtest.Run{Event: "workflow_dispatch", Status: "in_progress"})
	w.step(ts, "Confirm the rollback", "approve", bob)
	w.waitText(ts, "2 runs of "+rollbackWF+" may be the one dispatched")
	text := w.text(ts)
	runs := w.gh.Runs(infraRepo, rollbackWF)
	if len(runs) != 2 {
		t.Fatalf("server runs = %+v", runs)
	}
	for _, r := range runs {
		if !strings.Contains(text, "/actions/runs/"+itoa64(r.ID)) {
			t.Errorf("run %d (other is %d) is not listed:\n%s", r.ID, other, text)
		}
	}
	if _, _, ok := w.button(ts, "recheck"); !ok {
		t.Error("no Re-check button")
	}
	// Re-check still finds both: it asks again and dispatches nothing.
	w.step(ts, "Run the rollback workflow", "recheck", alice)
	w.waitText(ts, "2 runs of "+rollbackWF+" may be the one dispatched")
	if n := len(w.gh.Dispatches(infraRepo, rollbackWF)); n != 1 {
		t.Fatalf("%d dispatches after Re-check, want 1", n)
	}
	id, val := w.waitButton(ts, "Run the rollback workflow", "confirm")
	if r := w.reply(w.click(alice, ts, id, val)); !strings.Contains(r, "four-eyes") {
		t.Errorf("requester dispatching again answered %q", r)
	}
	w.step(ts, "Run the rollback workflow", "confirm", bob)
	w.waitThread("Rollback to `rel-2023.07.03.17.52.00` succeeded")
	if n := len(w.gh.Dispatches(infraRepo, rollbackWF)); n != 2 {
		t.Errorf("%d dispatches after Dispatch again, want 2", n)
	}
	if n := w.gh.FailuresLeft(); n != 0 {
		t.Errorf("the lost answer was set up but never happened")
	}
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

// A dispatch that got no answer and started nothing: after the time a run
// takes to appear (github.rollback_timeout here, shorter than the default
// two minutes), the bot says no run can be found and waits for a person;
// only an approver's Dispatch again dispatches.
func TestLostDispatchWithNoRunAsks(t *testing.T) {
	w := newWorld(t, all)
	w.setConfig("  poll_interval: 50ms\n", "  poll_interval: 50ms\n  rollback_timeout: 1s\n")
	// 504 before GitHub did anything: from outside, the same as after.
	w.gh.FailRequests("POST", dispatchPath, 1, 504)
	w.start()
	w.reply(w.command(alice, deploys, "/rollback", "rel-2023.07.03.17.52.00"))
	w.msgTS = w.runMessage(0).TS
	ts := w.msgTS
	w.step(ts, "Confirm the rollback", "approve", bob)
	w.waitText(ts, "but no run of it can be found")
	if n := w.gh.Requests("POST", dispatchPath); n != 1 {
		t.Fatalf("%d dispatch POSTs, want 1: nothing may be resent by itself", n)
	}
	w.step(ts, "Run the rollback workflow", "confirm", bob)
	w.waitThread("Rollback to `rel-2023.07.03.17.52.00` succeeded")
	if n := len(w.gh.Dispatches(infraRepo, rollbackWF)); n != 1 {
		t.Errorf("%d dispatches, want 1", n)
	}
}

// setConfig replaces the first old in the written config file with new.
func (w *world) setConfig(old, new string) {
	w.t.Helper()
	b, err := readFile(w.cfgPath)
	if err != nil || !strings.Contains(b, old) {
		w.t.Fatalf("config lacks %q: %v", old, err)
	}
	if err := os.WriteFile(w.cfgPath, []byte(strings.Replace(b, old, new, 1)), 0o600); err != nil {
		w.t.Fatal(err)
	}
}
