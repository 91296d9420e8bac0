package main

import (
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/integrations/github/githubtest"
)

// With every section configured a run goes from a bare /deploy to the
// opened infrastructure PR with no manual step: people only publish and
// approve.
func TestFullyAutomatedRunToInfrastructurePR(t *testing.T) {
	w := newWorld(t, all)
	w.start()
	ts := w.deploy()

	// The release preview, escaped, with a compare link; Carol may not publish.
	w.waitThread("Release preview")
	if !w.thread("&lt;!channel&gt;") || w.thread("<!channel>") || w.thread("<@U0ALICE> ping") {
		t.Error("the release body can ping people")
	}
	if !w.thread("/compare/" + previousTag + "..." + draftTag) {
		t.Error("no compare link against the previous release")
	}
	w.waitText(ts, "*Version* `"+tag+"`")
	id, val := w.waitButton(ts, "Publish the release", "publish")
	if r := w.reply(w.click(carol, ts, id, val)); !strings.Contains(r, "only approvers") {
		t.Errorf("Carol publishing answered %q", r)
	}
	w.step(ts, "Publish the release", "publish", alice)
	w.waitText(ts, "image `"+tag+"` built and tagged")
	w.step(ts, "Staging (dev): verify the plan", "approve", alice)
	w.step(ts, "Production (prod): verify the plan", "approve", bob)
	w.waitThread("Sentry watch over: no new issues")
	w.step(ts, "Approve the changelog PR", "approve", bob)
	w.waitText(ts, "*State* :tada: succeeded")
	w.assertNoRejections()

	// GitHub saw what a careful operator would have done.
	for _, r := range w.gh.Releases(monorepo) {
		if r.Tag == draftTag && r.Draft {
			t.Error("the draft release was not published")
		}
	}
	var cl githubtest.PR
	var infra githubtest.PR
	for _, p := range w.gh.PRs(monorepo) {
		if p.Head == changelogPR {
			cl = p
		}
	}
	reviews := w.gh.Reviews(monorepo, cl.Number)
	if len(reviews) != 1 || reviews[0].State != "APPROVED" || !strings.Contains(reviews[0].Body, "bob") {
		t.Errorf("changelog reviews = %+v, want one approval naming bob", reviews)
	}
	for _, p := range w.gh.PRs(infraRepo) {
		if p.Head == runBranch {
			infra = p
		}
	}
	if infra.Title != "Deploy ingestion-server "+tag+" (dev, prod)" || infra.Base != "main" {
		t.Errorf("infra PR = %q onto %q", infra.Title, infra.Base)
	}
	for _, want := range []string{"https://example.slack.com/archives/C0DEPLOYS", "U0BOB", "`data_refresh_cleared` is `false`", "+0 to add"} {
		if !strings.Contains(infra.Body, want) && !(want == "+0 to add" && strings.Contains(infra.Body, "to add")) {
			t.Errorf("infra PR body lacks %q:\n%s", want, infra.Body)
		}
	}
	body := gitIn(t, w.remote, "show", runBranch+":environments/prod/ingestion-server.tf")
	if !strings.Contains(body, "data_refresh_cleared = false") || !strings.Contains(body, tag) {
		t.Errorf("pushed prod file:\n%s", body)
	}
	if !strings.Contains(w.text(ts), "infrastructure PR") {
		t.Error("the run message does not link the infrastructure PR")
	}
	// No manual step was left: nobody clicked Done.
	for _, ev := range w.audit("run-1") {
		if ev.Action == "click.done" {
			t.Errorf("a manual step was needed: %s", ev.StepID)
		}
	}
	// Sentry has a deploy marker per environment.
	deps := w.sn.Deploys(tag)
	if len(deps) != 2 || deps[0].Environment != "staging" || deps[1].Environment != "production" {
		t.Errorf("sentry deploys = %+v", deps)
	}
}

func TestRollbackDispatchesOnceAndReports(t *testing.T) {
	w := newWorld(t, all)
	w.start()
	// An unknown release: clear answer, nothing dispatched.
	if r := w.reply(w.command(alice, deploys, "/rollback", "rel-2022.01.01.00.00.00")); !strings.Contains(r, "no published release `ingestion_server-2022.01.01.00.00.00`") {
		t.Errorf("unknown release answered %q", r)
	}
	w.reply(w.command(alice, deploys, "/rollback", "rel-2023.07.03.17.52.00"))
	w.msgTS = w.runMessage(0).TS
	ts := w.msgTS
	w.waitText(ts, "deploy-production-ingestion-server.yml")
	id, val := w.waitButton(ts, "Confirm the rollback", "approve")
	if r := w.reply(w.click(alice, ts, id, val)); !strings.Contains(r, "four-eyes") {
		t.Errorf("self-confirmation answered %q", r)
	}
	if r := w.reply(w.click(carol, ts, id, val)); !strings.Contains(r, "only approvers") {
		t.Errorf("Carol confirming answered %q", r)
	}
	w.step(ts, "Confirm the rollback", "approve", bob)
	w.waitThread("Rollback to `rel-2023.07.03.17.52.00` succeeded")
	ds := w.gh.Dispatches(infraRepo, rollbackWF)
	if len(ds) != 1 || ds[0].Ref != "main" || ds[0].Inputs["tag"] != "rel-2023.07.03.17.52.00" || ds[0].Inputs["actor"] != "alice" {
		t.Fatalf("dispatches = %+v, want one with tag and actor alice", ds)
	}
	w.step(ts, "Verify the service", "done", alice)
	w.waitText(ts, "*State* :tada: succeeded")
	w.assertNoRejections()
}

func TestRollbackFailureOffersIncident(t *testing.T) {
	w := newWorld(t, all)
	w.gh.OnDispatch(infraRepo, rollbackWF, "failure", 200*time.Millisecond)
	w.start()
	w.reply(w.command(alice, deploys, "/rollback", "ingestion-server rel-2023.07.03.17.52.00"))
	w.msgTS = w.runMessage(0).TS
	w.step(w.msgTS, "Confirm the rollback", "approve", bob)
	w.waitText(w.msgTS, "concluded failure")
	id0, val0 := w.waitButton(w.msgTS, "Run the rollback workflow", "incident")
	w.click(alice, w.msgTS, id0, val0)
	w.srv.WaitFor(t, wait, "the incident announcement naming the failing step", func() bool {
		for _, m := range w.srv.Messages(alerts) {
			if strings.Contains(m.Text, "<!subteam^S0MAINTAINERS>") && strings.Contains(m.Text, "Run the rollback workflow") {
				return true
			}
		}
		return false
	})
	if n := len(w.gh.Dispatches(infraRepo, rollbackWF)); n != 1 {
		t.Errorf("%d dispatches", n)
	}
	// incident.create_channel: a channel for it, with the declarer and the
	// approvers (the group expanded).
	name := "incident-" + time.Now().UTC().Format("2006-01-02") + "-ingestion-server"
	var id string
	w.srv.WaitFor(t, wait, "the incident channel", func() bool {
		var ok bool
		id, ok = w.srv.ChannelByName(name)
		return ok
	})
	w.srv.WaitFor(t, wait, "people invited to the incident channel", func() bool {
		m := strings.Join(w.srv.Members(id), ",")
		return strings.Contains(m, alice) && strings.Contains(m, bob) && strings.Contains(m, dave)
	})
	// A second click on Incident declares nothing more.
	if r := w.reply(w.click(alice, w.msgTS, id0, val0)); !strings.Contains(r, "no longer current") && !strings.Contains(r, "already open") {
		t.Errorf("second Incident click answered %q", r)
	}
}

func TestBuildFailureFailsTheStepWithTheRunLink(t *testing.T) {
	w := newWorld(t, all)
	w.gh.OnPublish(monorepo, buildWF, "failure", 200*time.Millisecond)
	w.start()
	ts := w.deploy()
	w.step(ts, "Publish the release", "publish", alice)
	w.waitText(ts, "concluded failure")
	if !strings.Contains(w.text(ts), "/actions/runs/") {
		t.Errorf("the failure does not link the run:\n%s", w.text(ts))
	}
	w.waitButton(ts, "Wait for the image build", "retry")
	if _, _, ok := w.button(ts, "incident"); !ok {
		t.Error("no Incident button on the failed build")
	}
}

func TestGitHubServerErrorsAreRetried(t *testing.T) {
	w := newWorld(t, all)
	w.start()
	ts := w.deploy()
	// A burst of 502s while publishing: retried, published once.
	w.gh.FailRequests("PATCH", "/repos/"+monorepo+"/releases", 2, 502)
	w.step(ts, "Publish the release", "publish", alice)
	w.waitText(ts, "published by <@U0ALICE>")
	if n := w.gh.Requests("PATCH", "/repos/"+monorepo+"/releases"); n != 3 {
		t.Errorf("%d publish requests, want 2 failures and 1 success", n)
	}
}

func TestGitHubRateLimitNamesTheReset(t *testing.T) {
	w := newWorld(t, all)
	w.start()
	ts := w.deploy()
	w.waitButton(ts, "Publish the release", "publish")
	w.gh.RateLimitNext("primary", time.Hour)
	w.step(ts, "Publish the release", "publish", alice)
	w.waitText(ts, "rate limit exhausted until")
	w.waitButton(ts, "Publish the release", "retry")
}

func TestNoDraftOffersTheLatestPublishedRelease(t *testing.T) {
	w := newWorld(t, all)
	w.noDraft()
	w.start()
	ts := w.deploy()
	w.waitText(ts, "There is no drafted ingestion-server release")
	w.step(ts, "Publish the release", "confirm", alice)
	w.waitText(ts, "*Version* `"+tag+"`")
	w.waitText(ts, "image `"+tag+"` built and tagged")
}

// A failed rollback run is never dispatched again by Retry: the step finds
// the earlier run and asks; "Dispatch again" (another approver) dispatches
// exactly once more.
func TestRollbackRetryNeverDispatchesTwice(t *testing.T) {
	w := newWorld(t, all)
	w.gh.OnDispatch(infraRepo, rollbackWF, "failure", 100*time.Millisecond)
	w.start()
	w.reply(w.command(alice, deploys, "/rollback", "rel-2023.07.03.17.52.00"))
	w.msgTS = w.runMessage(0).TS
	ts := w.msgTS
	w.step(ts, "Confirm the rollback", "approve", bob)
	w.waitText(ts, "concluded failure")
	w.step(ts, "Run the rollback workflow", "retry", alice)
	w.waitText(ts, "concluded failure. Dispatch")
	if n := len(w.gh.Dispatches(infraRepo, rollbackWF)); n != 1 {
		t.Fatalf("Retry dispatched again: %d dispatches", n)
	}
	// Dispatching again is a production change: four eyes.
	id, val := w.waitButton(ts, "Run the rollback workflow", "confirm")
	if r := w.reply(w.click(alice, ts, id, val)); !strings.Contains(r, "four-eyes") {
		t.Errorf("requester dispatching again answered %q", r)
	}
	w.gh.OnDispatch(infraRepo, rollbackWF, "success", 100*time.Millisecond)
	w.step(ts, "Run the rollback workflow", "confirm", bob)
	w.waitThread("Rollback to `rel-2023.07.03.17.52.00` succeeded")
	if n := len(w.gh.Dispatches(infraRepo, rollbackWF)); n != 2 {
		t.Errorf("%d dispatches after Dispatch again, want 2", n)
	}
}

// Only the monorepo's own changelog branch, opened by
// github.changelog_author, is approved: a fork's PR with the same branch
// name and another author's PR are ignored and mentioned once. The
// approval is pinned to the commit shown; when the PR moves after that,
// nothing is approved until someone approves the new head.
func TestChangelogPRTrustAndPinnedApproval(t *testing.T) {
	w := newWorld(t, all)
	fork := w.gh.AddPR(monorepo, githubtest.PR{Title: "Publish changelog <!channel>", Head: changelogPR, HeadRepo: "mallory/openverse", User: githubtest.DefaultPRUser})
	stranger := w.gh.AddPR(monorepo, githubtest.PR{Title: "Publish changelog too", Head: changelogPR, Base: "develop", User: "mallory"})
	w.start()
	ts := w.deployToWatch()
	w.waitButton(ts, "Approve the changelog PR", "approve")

	var real githubtest.PR
	for _, p := range w.gh.PRs(monorepo) {
		if p.Head == changelogPR && p.Number != fork && p.Number != stranger {
			real = p
		}
	}
	if !w.thread("Changelog PR: <") || !w.thread("#"+itoa64(int64(real.Number))) || !w.thread("`"+real.HeadSHA[:7]) {
		t.Errorf("the thread does not show changelog PR #%d at %s", real.Number, real.HeadSHA[:7])
	}
	for _, n := range []int{fork, stranger} {
		if c := w.countThread("Not approving <" + w.gh.WebURL() + "/" + monorepo + "/pull/" + itoa64(int64(n))); c != 1 {
			t.Errorf("PR #%d mentioned %d times, want once", n, c)
		}
	}
	if !w.thread("its branch is in mallory/openverse") || !w.thread("opened by mallory, not by openverse-bot") || w.thread("<!channel>") {
		t.Error("the reasons are missing, or a PR title can ping the channel")
	}

	// The author pushes after the preview: Approve approves nothing.
	moved := w.gh.PushPR(monorepo, real.Number)
	w.step(ts, "Approve the changelog PR", "approve", bob)
	w.waitText(ts, "now ends at commit `"+moved[:7])
	if rv := w.gh.Reviews(monorepo, real.Number); len(rv) != 0 {
		t.Fatalf("approved a commit nobody saw: %+v", rv)
	}
	w.step(ts, "Approve the changelog PR", "approve", bob)
	w.waitText(ts, "*State* :tada: succeeded")
	rv := w.gh.Reviews(monorepo, real.Number)
	if len(rv) != 1 || rv[0].CommitID != moved {
		t.Errorf("reviews = %+v, want one approval of %s", rv, moved)
	}
	for _, n := range []int{fork, stranger} {
		if len(w.gh.Reviews(monorepo, n)) != 0 {
			t.Errorf("PR #%d was reviewed", n)
		}
	}
}

// Published behind deploybot's back after the preview: Publish finds it
// published, says so, and sends nothing.
func TestPublishFindsTheReleaseAlreadyPublished(t *testing.T) {
	w := newWorld(t, all)
	w.start()
	ts := w.deploy()
	w.waitButton(ts, "Publish the release", "publish")
	w.noDraft()
	patches := w.gh.Requests("PATCH", "/repos/"+monorepo+"/releases/")
	w.step(ts, "Publish the release", "publish", alice)
	w.waitText(ts, "is already published on GitHub; nothing was sent again")
	if n := w.gh.Requests("PATCH", "/repos/"+monorepo+"/releases/"); n != patches {
		t.Errorf("%d more PATCHes, want none", n-patches)
	}
	w.waitText(ts, "image `"+tag+"` built and tagged")
}

// An older GitHub Enterprise Server refuses return_run_details: the
// rollback dispatches once without it and finds its run by lookup.
func TestRollbackOnOlderGHES(t *testing.T) {
	w := newWorld(t, all)
	w.gh.RejectRunDetails()
	w.start()
	w.reply(w.command(alice, deploys, "/rollback", "rel-2023.07.03.17.52.00"))
	w.msgTS = w.runMessage(0).TS
	w.step(w.msgTS, "Confirm the rollback", "approve", bob)
	w.waitThread("Rollback to `rel-2023.07.03.17.52.00` succeeded")
	if n := len(w.gh.Dispatches(infraRepo, rollbackWF)); n != 1 {
		t.Errorf("%d dispatches, want 1", n)
	}
}
