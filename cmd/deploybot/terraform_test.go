package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/deploybot/deploybot/integrations/terraform"
	"github.com/deploybot/deploybot/internal/testtool"
)

// git runs git in dir, failing the test on error.
func gitIn(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// infraRemote makes a bare repository holding examples/infrastructure (and
// whatever extra files the test adds) and returns its path.
func infraRemote(t testing.TB, extra map[string]string) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.CopyFS(src, os.DirFS("../../examples/infrastructure")); err != nil {
		t.Fatal(err)
	}
	for name, body := range extra {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitIn(t, src, "init", "-q", "-b", "main")
	gitIn(t, src, "add", "-A")
	gitIn(t, src, "commit", "-q", "-m", "infrastructure")
	bare := filepath.Join(t.TempDir(), "infra.git")
	gitIn(t, t.TempDir(), "clone", "-q", "--bare", src, bare)
	return bare
}

// infraConfig is the services + infra part of a config using a remote.
func infraConfig(remote, workdir, tf string) string {
	return fmt.Sprintf(`infra:
  clone_url: %s
  base_branch: main
  workdir: %s
  terraform_bin: %s
`, remote, workdir, tf)
}

// stateImage reads the image an environment's Terraform state holds.
func stateImage(t *testing.T, tf, work, env string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte("terraform {\n  backend \"local\" {}\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &terraform.Runner{Bin: tf, Dir: dir}
	if err := r.Init(context.Background(), "path="+filepath.Join(work, "state", env+".tfstate")); err != nil {
		t.Fatal(err)
	}
	vals, err := r.ResourceValues(context.Background(), "module.ingestion-server.terraform_data.task_definition")
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(vals["output"])
}

// infraRunbook: with infra configured, bump/flag/apply/restore run by
// themselves; people answer the rest.
var infraRunbook = []struct{ title, verb, user string }{
	{"Check Airflow", "done", alice},
	{"Publish the release", "done", alice},
	{"Wait for the image build", "done", alice},
	{"Staging (dev): verify the plan", "approve", alice},
	{"Production (prod): check Airflow again", "done", alice},
	{"Production (prod): verify the plan", "approve", bob},
	{"Check Sentry", "done", alice},
	{"Approve the changelog PR", "done", bob},
	{"Open the infrastructure PR", "done", alice},
}

func TestTerraformDeploysDevThenProd(t *testing.T) {
	w := newWorld(t, sections{infra: true})
	h, remote, work := w.harness, w.remote, w.work
	tf := testtool.Terraform(t)
	h.start()

	h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	msg := h.runMessage(0)
	for _, s := range infraRunbook {
		if s.title == "Production (prod): verify the plan" {
			// Four-eyes: Alice started the run.
			id, val := h.waitButton(msg.TS, s.title, "approve")
			if r := h.reply(h.click(alice, msg.TS, id, val)); !strings.Contains(r, "four-eyes") {
				t.Errorf("self-approval of prod answered %q", r)
			}
		}
		h.step(msg.TS, s.title, s.verb, s.user)
	}
	h.waitText(msg.TS, "succeeded")
	h.assertNoRejections()
	if !threadHas(h, msg.TS, "*terraform apply (prod)*, latest lines") || !threadHas(h, msg.TS, "Apply complete!") {
		t.Error("apply progress was not streamed into the thread")
	}

	// The same version again: the plans have no changes and need no approval.
	h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	again := h.runMessage(1)
	for _, s := range infraRunbook {
		if strings.Contains(s.title, "verify the plan") {
			continue
		}
		h.step(again.TS, s.title, s.verb, s.user)
	}
	h.waitText(again.TS, "succeeded")
	for _, want := range []string{"no changes in dev: nothing to approve or apply", "no changes in prod", "the plan had no changes"} {
		if !strings.Contains(h.text(again.TS), want) {
			t.Errorf("second run lacks %q", want)
		}
	}
	h.stop()

	for _, env := range []string{"dev", "prod"} {
		if img := stateImage(t, tf, work, env); !strings.Contains(img, tag) {
			t.Errorf("%s state image = %s, want %s", env, img, tag)
		}
	}
	branch := "deploybot/ingestion-server-" + tag + "-run-1"
	for _, env := range []string{"dev", "prod"} {
		body := gitIn(t, remote, "show", branch+":environments/"+env+"/ingestion-server.tf")
		if !strings.Contains(body, `"`+tag+`"`) {
			t.Errorf("pushed %s file lacks the new tag:\n%s", env, body)
		}
		if env == "prod" && !strings.Contains(body, "data_refresh_cleared = false") {
			t.Errorf("pushed prod file does not have the flag false:\n%s", body)
		}
		if !strings.Contains(body, "#") {
			t.Errorf("comments lost in %s file", env)
		}
	}
	msgText := gitIn(t, remote, "log", "-1", "--format=%B", branch)
	for _, want := range []string{"ingestion-server", tag, "dev, prod", "run-1"} {
		if !strings.Contains(msgText, want) {
			t.Errorf("commit message lacks %q:\n%s", want, msgText)
		}
	}
	applies := map[string]int{}
	for _, ev := range h.audit("run-1") {
		if ev.Action == "step.done" && strings.HasPrefix(ev.StepID, "apply:") {
			applies[ev.StepID]++
		}
	}
	if applies["apply:dev"] != 1 || applies["apply:prod"] != 1 {
		t.Errorf("applies = %v, want each environment once", applies)
	}
	apps, err := h.store().Approvals(t.Context(), "run-1")
	if err != nil || len(apps) != 2 {
		t.Fatalf("approvals: %v %v", apps, err)
	}
	for _, a := range apps {
		if len(a.PlanSHA256) != 64 || len(a.Commit) != 40 {
			t.Errorf("approval does not pin the plan: %+v", a)
		}
	}
	if apps[1].Approver != bob {
		t.Errorf("prod approved by %s", apps[1].Approver)
	}
}

func TestApplyRefusedWhenPlanFileChangedOrBaseMoved(t *testing.T) {
	w := newWorld(t, sections{infra: true})
	h, remote, work := w.harness, w.remote, w.work
	h.start()
	h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	msg := h.runMessage(0)
	for _, s := range infraRunbook[:3] {
		h.step(msg.TS, s.title, s.verb, s.user)
	}

	// Tamper with the saved plan file after it was shown for approval.
	_, first := h.waitButton(msg.TS, "Staging (dev): verify the plan", "approve")
	plan := filepath.Join(work, "plans", "run-1", "dev.tfplan")
	f, err := os.OpenFile(plan, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("tampered"))
	f.Close()
	h.step(msg.TS, "Staging (dev): verify the plan", "approve", alice)
	h.srv.WaitFor(t, wait, "the apply to be refused for the changed plan", func() bool {
		return threadHas(h, msg.TS, "Apply refused: the plan file approved as")
	})
	// A new plan waits for a new approval.
	_, second := h.waitButton(msg.TS, "Staging (dev): verify the plan", "approve")
	if second == first {
		t.Fatal("no new approval was asked for")
	}

	// Someone pushes to main before the new plan is approved.
	other := filepath.Join(t.TempDir(), "other")
	gitIn(t, t.TempDir(), "clone", "-q", remote, other)
	if err := os.WriteFile(filepath.Join(other, "NOTES.md"), []byte("moved\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitIn(t, other, "add", "NOTES.md")
	gitIn(t, other, "-c", "user.name=x", "-c", "user.email=x@example.com", "commit", "-q", "-m", "move main")
	gitIn(t, other, "push", "-q", "origin", "main")
	h.step(msg.TS, "Staging (dev): verify the plan", "approve", alice)
	h.srv.WaitFor(t, wait, "the apply to be refused for the moved base", func() bool {
		return threadHas(h, msg.TS, "Apply refused: the base branch moved")
	})
	// The third plan, from the new base, applies.
	h.step(msg.TS, "Staging (dev): verify the plan", "approve", alice)
	h.waitText(msg.TS, "applied plan")

	evs := h.audit("run-1")
	rewinds, applied := 0, 0
	for _, ev := range evs {
		if ev.Action == "step.rewound" {
			rewinds++
		}
		if ev.Action == "step.done" && ev.StepID == "apply:dev" {
			applied++
		}
	}
	if rewinds != 2 || applied != 1 {
		t.Errorf("rewinds=%d applied=%d, want 2 and 1", rewinds, applied)
	}
	h.assertNoRejections()
}

func threadHas(h *harness, ts, text string) bool {
	for _, m := range h.srv.Thread(deploys, ts) {
		if strings.Contains(m.Text, text) {
			return true
		}
	}
	return false
}

// largePlanWorld is a world with the infra section whose plans are too
// long for a message: 300 resources that all change with the image tag.
func largePlanWorld(t *testing.T) *world {
	w := newWorld(t, sections{infra: true})
	w.remote = infraRemote(t, map[string]string{"modules/ingestion-server/many.tf": `
resource "terraform_data" "worker" {
  count = 300
  input = "worker-${count.index}-${var.image_tag}"
}
`})
	w.writeConfig(sections{infra: true})
	return w
}

func TestLargePlanArrivesAsSummaryAndFile(t *testing.T) {
	w := largePlanWorld(t)
	h := w.harness
	h.start()
	h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	msg := h.runMessage(0)
	for _, s := range infraRunbook[:3] {
		h.step(msg.TS, s.title, s.verb, s.user)
	}
	h.waitButton(msg.TS, "Staging (dev): verify the plan", "approve")
	h.srv.WaitFor(t, wait, "the plan file in the thread", func() bool { return len(h.srv.Files()) > 0 })
	f := h.srv.Files()[0]
	if !strings.Contains(string(f.Content), "terraform_data.worker[299]") || f.ThreadTS != msg.TS {
		t.Errorf("uploaded file %q (thread %s) lacks the full plan", f.Name, f.ThreadTS)
	}
	// The message keeps the summary and the lines it has room for, and
	// points at the file; Slack accepted every message (no rejections).
	if !threadHas(h, msg.TS, "+302 to add, ~0 to change, -0 to destroy, ±0 to replace") {
		t.Error("no summary line in the thread")
	}
	if !threadHas(h, msg.TS, "the whole plan is in the attached file") {
		t.Error("the thread does not point at the file")
	}
	if !threadHas(h, msg.TS, "+ module.ingestion-server.terraform_data.worker[") {
		t.Error("the message keeps no resource lines")
	}
	h.assertNoRejections()
}

func TestKillBetweenFlagAndRestoreLeavesFlagFalse(t *testing.T) {
	bin := buildBot(t)
	w := newWorld(t, sections{infra: true})
	h, remote, work := w.harness, w.remote, w.work
	p := h.process(bin)
	h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	msg := h.runMessage(0)
	for _, s := range infraRunbook[:5] {
		h.step(msg.TS, s.title, s.verb, s.user)
	}
	// Production's flag is set and its plan waits for approval: kill now.
	h.waitButton(msg.TS, "Production (prod): verify the plan", "approve")
	prodFile := filepath.Join(work, "runs", "run-1", "environments", "prod", "ingestion-server.tf")
	if b, _ := os.ReadFile(prodFile); !strings.Contains(string(b), "data_refresh_cleared = true") {
		t.Fatalf("flag not set before the kill:\n%s", b)
	}
	if err := p.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.Wait()
	h.srv.WaitFor(t, wait, "the connection to drop", func() bool { return h.srv.Connections() == 0 })

	h.process(bin)
	h.srv.WaitFor(t, wait, "the run to be picked up again", func() bool {
		return threadHas(h, msg.TS, "restarted and picked this run up again")
	})
	h.reply(h.command(bob, deploys, "/deploy", "cancel run-1"))
	h.waitText(msg.TS, "*State* cancelled")
	b, err := os.ReadFile(prodFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "data_refresh_cleared = false") {
		t.Errorf("flag not restored in the working copy:\n%s", b)
	}
	// Nothing with the flag true was committed or pushed.
	if out, err := exec.Command("git", "-C", remote, "branch", "--list", "deploybot/*").Output(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("a run branch was pushed: %q %v", out, err)
	}
	if !threadHas(h, msg.TS, "`data_refresh_cleared` restored to `false`") {
		t.Error("the thread does not say the flag was restored")
	}
}
