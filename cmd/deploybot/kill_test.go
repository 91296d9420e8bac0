package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// buildBot compiles the real binary once per test run.
func buildBot(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "deploybot")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = testWriter{t}
	if err := cmd.Run(); err != nil {
		t.Fatalf("building deploybot: %v", err)
	}
	return bin
}

// process runs the built bot as its own OS process.
func (h *harness) process(bin string) *exec.Cmd {
	h.t.Helper()
	before := h.srv.ConnectionsOpened()
	cmd := exec.Command(bin, "--config", h.cfgPath)
	cmd.Env = os.Environ()
	for k, v := range h.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = testWriter{h.t}, testWriter{h.t}
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	h.srv.WaitFor(h.t, wait, "the bot process to connect", func() bool { return h.srv.ConnectionsOpened() > before && h.srv.Connections() > 0 })
	return cmd
}

func TestSIGKILLMidRunAndRestartFinishesTheRun(t *testing.T) {
	bin := buildBot(t)
	h := newHarness(t)
	p := h.process(bin)

	h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	msg := h.runMessage(0)
	for _, s := range runbook[:8] {
		h.step(msg.TS, s.title, s.verb, s.user)
	}
	h.waitButton(msg.TS, runbook[8].title, "done")
	updatesBefore := h.srv.Calls("chat.update")

	if err := p.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.Wait()
	h.srv.WaitFor(t, wait, "the connection to drop", func() bool { return h.srv.Connections() == 0 })

	h.process(bin)
	// Restarted, the bot re-renders the same message (no second one).
	h.srv.WaitFor(t, wait, "the message to be re-rendered", func() bool { return h.srv.Calls("chat.update") > updatesBefore })
	h.srv.WaitFor(t, wait, "the thread to say the run was picked up again", func() bool {
		for _, m := range h.srv.Thread(deploys, msg.TS) {
			if strings.Contains(m.Text, "restarted and picked this run up again at step 9") {
				return true
			}
		}
		return false
	})
	if n := len(h.srv.Messages(deploys)); n != 1 {
		t.Fatalf("restart posted a new run message (%d messages)", n)
	}
	for _, s := range runbook[8:] {
		h.step(msg.TS, s.title, s.verb, s.user)
	}
	h.waitText(msg.TS, "succeeded")
	h.assertNoRejections()

	// Nothing was lost from the audit log: every step once, in order, the
	// restart recorded, and the end.
	var got []string
	var resumed bool
	evs := h.audit("run-1")
	for _, ev := range evs {
		switch ev.Action {
		case "step.done":
			got = append(got, ev.StepID)
		case "run.resumed":
			resumed = true
		}
	}
	want := []string{"airflow", "release", "build", "bump:dev", "plan:dev", "apply:dev", "airflow:prod", "flag:prod", "bump:prod", "plan:prod", "apply:prod", "restore:prod", "sentry", "changelog", "infra-pr"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("steps done in the audit log:\n got %v\nwant %v", got, want)
	}
	if !resumed {
		t.Error("the restart is not in the audit log")
	}
	if evs[len(evs)-1].Action != "run.succeeded" {
		t.Errorf("last event %s", evs[len(evs)-1].Action)
	}
}
