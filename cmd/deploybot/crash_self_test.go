package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/integrations/sqlite"
	"github.com/deploybot/deploybot/internal/testtool"
	"github.com/deploybot/deploybot/steps"
)

// The matrix is only as good as its checks: forge each violation in a
// world where no bot ran, and make sure the checks name it.
func TestCrashChecksSeeForgedViolations(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("skipped with -short: it builds a world with real Terraform and git (never skipped in CI)")
	}
	realTF := testtool.Terraform(t)
	cw := newCrashWorld(t, deployScenario, "", realTF)

	// A run message whose thread has a message twice and an issue twice.
	cw.srv.PostUserMessage(carol, deploys, "run message", "")
	ts := cw.srv.Messages(deploys)[0].TS
	cw.msgTS = ts
	for i := 0; i < 2; i++ {
		cw.srv.PostUserReply(carol, deploys, ts, ":white_check_mark: dev applied: `image_tag` is now `x`.")
		cw.srv.PostUserReply(carol, deploys, ts, "*Regressed issue in production* (`INGESTION-9101`) at "+string(rune('a'+i)))
	}
	// Production applied twice, with no approval in the store.
	apply := func(line string) {
		f, err := os.OpenFile(line[:strings.Index(line, "|")], os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(line[strings.Index(line, "|")+1:] + "\n")
		f.Close()
	}
	for i := 0; i < 2; i++ {
		apply(cw.applyLog + "|production " + tag)
		apply(cw.tfLog + "|" + filepath.Join(cw.work, "runs", "run-1", "environments", "prod") + " apply -no-color plan")
	}
	// A commit with the flag true, pushed.
	clone := filepath.Join(t.TempDir(), "clone")
	gitIn(t, t.TempDir(), "clone", "-q", cw.remote, clone)
	prod := filepath.Join(clone, "environments", "prod", "ingestion-server.tf")
	b, err := os.ReadFile(prod)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prod, []byte(strings.Replace(string(b), "data_refresh_cleared = false", "data_refresh_cleared = true", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	gitIn(t, clone, "commit", "-qam", "flag")
	gitIn(t, clone, "push", "-q", "origin", "HEAD:refs/heads/deploybot/forged")
	gitIn(t, clone, "push", "-q", "origin", "HEAD:refs/heads/deploybot/forged-again")

	// A run whose step is done and whose plan is approved in the store,
	// with none of the events that say so.
	db, err := sqlite.Open(filepath.Join(cw.dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	r := &steps.Run{Kind: steps.KindDeploy, Service: "ingestion-server", Version: tag, State: steps.RunSucceeded,
		Steps: []steps.StepState{{Index: 0, ID: "plan:prod", Status: steps.StepDone}}}
	if err := db.CreateRun(t.Context(), r, steps.Changes{}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveRun(t.Context(), r, steps.Changes{Approvals: []steps.Approval{{StepID: "plan:prod", Approver: bob, Decision: "approve"}}}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	v := cw.check(driveResult{state: "succeeded"})
	got := map[string]string{}
	for _, f := range v.findings {
		got[f.invariant] += f.detail + "; "
	}
	for _, want := range []string{"slack:duplicate", "sentry:issue", "apply:effect", "apply:count", "flag:committed", "effect:push", "effect:publish", "slack:lost", "audit:run", "audit:gap"} {
		if got[want] == "" {
			t.Errorf("the checks did not report %s; they reported %v", want, got)
		}
	}
	if v.duplicates < 5 || v.losses == 0 {
		t.Errorf("duplicates=%d losses=%d", v.duplicates, v.losses)
	}
}
