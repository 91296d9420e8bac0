package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/deploybot/deploybot/internal/testtool"
	"github.com/deploybot/deploybot/steps"
)

// rollout holds a production apply in flight for as long as the test
// wants: the module gets a resource whose creation (on every new image
// tag) runs a script that touches started, fails while fail exists, and
// waits while slow exists. Staging applies run `true`.
type rollout struct{ started, slow, fail string }

func withRollout(t testing.TB, w *world, with sections, extraConfig string) rollout {
	t.Helper()
	dir := t.TempDir()
	ro := rollout{started: filepath.Join(dir, "started"), slow: filepath.Join(dir, "slow"), fail: filepath.Join(dir, "fail")}
	// An apply killed with the bot leaves its script orphaned: end it.
	t.Cleanup(func() { os.Remove(ro.slow) })
	script := fmt.Sprintf("touch '%s'\nif [ -e '%s' ]; then echo 'rollout failed' >&2; exit 1; fi\nwhile [ -e '%s' ]; do sleep 0.1; done\n", ro.started, ro.fail, ro.slow)
	w.remote = infraRemote(t, map[string]string{"modules/ingestion-server/rollout.tf": `
locals {
  rollout = <<-EOT
` + script + `EOT
}

resource "terraform_data" "rollout" {
  triggers_replace = [var.image_tag]

  provisioner "local-exec" {
    command = var.environment == "production" ? local.rollout : "true"
  }
}

# Created only after the rollout: an apply cut short during the rollout
# always leaves this to do, so the plan after it always has changes.
resource "terraform_data" "rolled_out" {
  input      = var.image_tag
  depends_on = [terraform_data.rollout]
}
`})
	w.writeConfig(with)
	if extraConfig != "" {
		f, err := os.OpenFile(w.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(f, extraConfig)
		f.Close()
	}
	return ro
}

func touch(t testing.TB, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

// toProdApply clicks a run through to the production apply (no Airflow
// configured: people check it) and waits until the apply's script runs.
func toProdApply(t testing.TB, h *harness, ts string, ro rollout) {
	t.Helper()
	for _, s := range infraRunbook[:6] {
		h.step(ts, s.title, s.verb, s.user)
	}
	h.srv.WaitFor(t, wait, "the production apply to be running", func() bool { return exists(ro.started) })
}

// exited returns a channel that receives the process's exit.
func exited(p *exec.Cmd) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- p.Wait() }()
	return ch
}

func stepState(t testing.TB, h *harness, id string) steps.StepState {
	t.Helper()
	r, err := h.store().Run(t.Context(), "run-1")
	if err != nil {
		t.Fatal(err)
	}
	st := r.StepByID(id)
	if st == nil {
		t.Fatalf("run-1 has no step %s", id)
	}
	return *st
}

func prodFlag(t *testing.T, work string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(work, "runs", "run-1", "environments", "prod", "ingestion-server.tf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "data_refresh_cleared" {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no data_refresh_cleared in the prod file:\n%s", b)
	return ""
}

// SIGTERM while production applies: deploybot disconnects from Slack at
// once, lets the apply finish, records it done, starts nothing after it,
// and exits; the next start carries on from there.
func TestSIGTERMLetsRunningApplyFinish(t *testing.T) {
	bin := buildBot(t)
	w := newWorld(t, sections{infra: true})
	ro := withRollout(t, w, sections{infra: true}, "shutdown_grace: 5m\n")
	h := w.harness
	touch(t, ro.slow)
	p := h.process(bin)
	h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	msg := h.runMessage(0)
	toProdApply(t, h, msg.TS, ro)

	if err := p.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := exited(p)
	h.srv.WaitFor(t, wait, "the bot to disconnect from Slack", func() bool { return h.srv.Connections() == 0 })
	select {
	case err := <-done:
		t.Fatalf("deploybot exited (%v) while the apply was still running", err)
	default:
	}
	os.Remove(ro.slow) // the apply may finish now
	h.srv.WaitFor(t, wait, "deploybot to exit", func() bool {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("deploybot exited with %v after SIGTERM", err)
			}
			return true
		default:
			return false
		}
	})

	if st := stepState(t, h, "apply:prod"); st.Status != steps.StepDone {
		t.Fatalf("apply:prod is %s after a graceful shutdown (%s), want done", st.Status, st.Note)
	}
	if st := stepState(t, h, "restore:prod"); st.Status != steps.StepPending || st.Attempt != 0 {
		t.Errorf("restore:prod started during the shutdown: %s, attempt %d", st.Status, st.Attempt)
	}
	if img := stateImage(t, testtool.Terraform(t), w.work, "prod"); !strings.Contains(img, tag) {
		t.Errorf("prod state image = %s, want %s", img, tag)
	}

	// Started again, the run goes on after the apply: the flag is restored.
	h.process(bin)
	h.waitButton(msg.TS, "Check Sentry", "done")
	if v := prodFlag(t, w.work); v != "false" {
		t.Errorf("data_refresh_cleared = %s after restore", v)
	}
	for _, ev := range h.audit("run-1") {
		if ev.Action == "step.interrupted" {
			t.Errorf("a step was interrupted: %+v", ev)
		}
	}
}

// With a grace shorter than the apply, the apply is cancelled (Terraform
// stops cleanly and unlocks) and the next start marks it interrupted,
// offering Re-plan, with the flag already false.
func TestSIGTERMGraceOverInterruptsApply(t *testing.T) {
	bin := buildBot(t)
	w := newWorld(t, sections{infra: true})
	ro := withRollout(t, w, sections{infra: true}, "shutdown_grace: 1s\n")
	h := w.harness
	touch(t, ro.slow)
	p := h.process(bin)
	h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	msg := h.runMessage(0)
	toProdApply(t, h, msg.TS, ro)

	if err := p.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := exited(p)
	h.srv.WaitFor(t, wait, "deploybot to exit after its grace", func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
	if st := stepState(t, h, "apply:prod"); st.Status != steps.StepRunning {
		t.Fatalf("apply:prod is %s after the grace ran out, want still recorded running", st.Status)
	}
	if exists(filepath.Join(w.work, "state", ".prod.tfstate.lock.info")) {
		t.Error("the cancelled apply left the state locked")
	}

	h.process(bin)
	h.waitButton(msg.TS, "Production (prod): apply", "retry")
	if !strings.Contains(h.text(msg.TS), "Re-plan") && !buttonLabeled(h, msg.TS, "Re-plan") {
		t.Error("the interrupted apply does not offer Re-plan")
	}
	if v := prodFlag(t, w.work); v != "false" {
		t.Errorf("data_refresh_cleared = %s in the working copy after the interrupted apply", v)
	}
}

func buttonLabeled(h *harness, ts, label string) bool {
	for _, b := range blocksOf(h.t, h.message(ts)) {
		for _, e := range b.Elements {
			if e.Type == "button" && e.text() == label {
				return true
			}
		}
	}
	return false
}

// deploybot killed mid-apply: Terraform dies with it and leaves the state
// lock behind. On restart the thread shows whose lock it is, only another
// approver may force it open (four-eyes in prod), the flag is already
// false, and Re-plan goes back through the checks to a fresh plan that
// needs a fresh approval; the old plan is never applied.
func TestKillDuringApplyShowsLockForceUnlockAndReplan(t *testing.T) {
	bin := buildBot(t)
	w := newWorld(t, sections{infra: true})
	ro := withRollout(t, w, sections{infra: true}, "")
	h := w.harness
	touch(t, ro.slow)
	p := h.process(bin)
	h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	msg := h.runMessage(0)
	toProdApply(t, h, msg.TS, ro)
	oldPlanSeq := stepState(t, h, "plan:prod").Seq

	if err := p.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.Wait()
	lockFile := filepath.Join(w.work, "state", ".prod.tfstate.lock.info")
	h.srv.WaitFor(t, wait, "the connection to drop", func() bool { return h.srv.Connections() == 0 })
	if !exists(lockFile) {
		t.Fatal("the killed apply left no lock record; the test cannot show a lock")
	}
	os.Remove(ro.slow)

	h.process(bin)
	id, val := h.waitButton(msg.TS, "Production (prod): apply", "confirm")
	if v := prodFlag(t, w.work); v != "false" {
		t.Errorf("data_refresh_cleared = %s in the working copy before anyone acted", v)
	}
	w.msgTS = msg.TS
	w.waitThread("The prod state is locked")
	for _, want := range []string{"ID `", "Operation `OperationTypeApply`", "Who `", "Since 20"} {
		if !w.thread(want) {
			t.Errorf("the lock message lacks %q", want)
		}
	}
	if !buttonLabeled(h, msg.TS, "Force unlock") {
		t.Error("no Force unlock button")
	}
	if _, _, ok := h.button(msg.TS, "retry"); ok {
		t.Error("Re-plan is offered while the state is locked")
	}

	// The requester may not force it (four-eyes), nor can someone without a role.
	if r := h.reply(h.click(alice, msg.TS, id, val)); !strings.Contains(r, "four-eyes") {
		t.Errorf("Force unlock by the requester answered %q", r)
	}
	if r := h.reply(h.click(carol, msg.TS, id, val)); !strings.Contains(r, "only approvers") {
		t.Errorf("Force unlock by Carol answered %q", r)
	}
	if !exists(lockFile) {
		t.Fatal("a refused click unlocked the state")
	}
	h.step(msg.TS, "Production (prod): apply", "confirm", bob)
	if exists(lockFile) {
		t.Error("Force unlock left the lock")
	}
	w.waitThread("force-unlocked the prod state")
	w.waitThread("clicked *Force unlock* on “Production (prod): apply” at ")
	w.waitThread("Reason: reason given by " + bob) // from the form Force unlock opened
	unlocks := 0
	for _, ev := range h.audit("run-1") {
		if ev.Action == "terraform.force_unlock" && ev.Actor == bob && strings.Contains(ev.Detail, "OperationTypeApply") && strings.Contains(ev.Detail, "reason: reason given by "+bob) {
			unlocks++
		}
	}
	if unlocks != 1 {
		t.Errorf("force unlock audited %d times, want once with its lock", unlocks)
	}

	// Re-plan: back through the Airflow check and the flag to a new plan.
	h.step(msg.TS, "Production (prod): apply", "retry", alice)
	h.step(msg.TS, "Production (prod): check Airflow again", "done", alice)
	h.waitButton(msg.TS, "Production (prod): verify the plan", "approve")
	if st := stepState(t, h, "plan:prod"); st.Seq == oldPlanSeq {
		t.Error("the plan step did not run again")
	}
	approvedAgain(t, w, msg.TS)
}

// approvedAgain: prod waits on a fresh plan with the flag set, nothing was
// applied without that plan's approval; once Bob approves, the apply runs,
// the flag is back to false, and prod carries two approvals in all.
func approvedAgain(t *testing.T, w *world, ts string) {
	t.Helper()
	h := w.harness
	h.waitButton(ts, "Production (prod): verify the plan", "approve")
	if v := prodFlag(t, w.work); v != "true" {
		t.Errorf("data_refresh_cleared = %s while the new plan waits, want true", v)
	}
	if st := stepState(t, h, "apply:prod"); st.Status == steps.StepDone {
		t.Fatal("the apply ran again without a new approval")
	}
	h.step(ts, "Production (prod): verify the plan", "approve", bob)
	h.waitButton(ts, "Check Sentry", "done")
	if v := prodFlag(t, w.work); v != "false" {
		t.Errorf("data_refresh_cleared = %s after the apply", v)
	}
	apps, err := h.store().Approvals(t.Context(), "run-1")
	if err != nil {
		t.Fatal(err)
	}
	prod := 0
	for _, a := range apps {
		if a.StepID == "plan:prod" && a.Decision == "approve" {
			prod++
		}
	}
	if prod != 2 {
		t.Errorf("prod approvals = %d, want 2 (the new plan needed its own)", prod)
	}
	h.assertNoRejections()
}

// A failed production apply puts data_refresh_cleared back to false in the
// working copy before Retry is offered, and Retry does not simply apply
// again: it goes back to the Airflow check (which now finds a data refresh
// and holds the deploy), sets the flag, plans, and needs a new approval.
func TestFailedApplyRestoresFlagAndRetryChecksAirflowAgain(t *testing.T) {
	with := sections{infra: true, airflow: true}
	w := newWorld(t, with)
	ro := withRollout(t, w, with, "")
	h := w.harness
	touch(t, ro.fail)
	h.start()
	h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	msg := h.runMessage(0)
	w.msgTS = msg.TS
	h.step(msg.TS, "Publish the release", "done", alice)
	h.step(msg.TS, "Wait for the image build", "done", alice)
	h.step(msg.TS, "Staging (dev): verify the plan", "approve", alice)
	h.step(msg.TS, "Production (prod): verify the plan", "approve", bob)

	h.waitButton(msg.TS, "Production (prod): apply", "retry")
	if v := prodFlag(t, w.work); v != "false" {
		t.Fatalf("data_refresh_cleared = %s in the working copy while Retry is offered", v)
	}
	w.waitThread("`data_refresh_cleared` restored to `false`")
	w.waitThread("rollout failed")

	// A data refresh starts before anyone retries.
	w.af.AddRun("image_data_refresh", refresh("image_data_refresh"))
	h.step(msg.TS, "Production (prod): apply", "retry", alice)
	h.waitButton(msg.TS, "Production (prod): check Airflow again", "recheck")
	w.waitThread("A data refresh is active")
	if v := prodFlag(t, w.work); v != "false" {
		t.Errorf("data_refresh_cleared = %s while Airflow blocks the retry", v)
	}

	w.af.ClearRuns("image_data_refresh")
	os.Remove(ro.fail)
	h.step(msg.TS, "Production (prod): check Airflow again", "recheck", alice)
	approvedAgain(t, w, msg.TS)
}
