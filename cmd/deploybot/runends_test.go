package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// With infra.merge_on_success (the console's and the demo's setting) a
// succeeded run's branch is merged into main, so the next run bumps from
// the version just deployed; with infra.keep_runs: 1, the first run's
// folders are deleted when the second ends.
func TestNextRunBumpsFromTheMergedVersionAndOldRunFoldersGo(t *testing.T) {
	w := newWorld(t, sections{infra: true})
	cfg, err := os.ReadFile(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	withKeys := strings.Replace(string(cfg), "  base_branch: main\n", "  base_branch: main\n  merge_on_success: true\n  keep_runs: 1\n", 1)
	if withKeys == string(cfg) {
		t.Fatal("the infra section moved; update the test")
	}
	if err := os.WriteFile(w.cfgPath, []byte(withKeys), 0o600); err != nil {
		t.Fatal(err)
	}
	h := w.harness
	h.start()

	deploy := func(n int, version string) string {
		t.Helper()
		h.reply(h.command(alice, deploys, "/deploy", "ingestion-server "+version))
		msg := h.runMessage(n)
		for _, s := range infraRunbook {
			h.step(msg.TS, s.title, s.verb, s.user)
		}
		h.waitText(msg.TS, "succeeded")
		return msg.TS
	}
	deploy(0, tag)
	h.srv.WaitFor(t, wait, "main to carry "+tag, func() bool {
		return strings.Contains(gitIn(t, w.remote, "show", "main:environments/prod/ingestion-server.tf"), `"`+tag+`"`)
	})
	const next = "rel-2024.10.01.12.00.00"
	ts := deploy(1, next)
	if want := "`rel-2024.09.09.05.40.20` → `" + next + "`"; !strings.Contains(h.text(ts), want) {
		t.Errorf("the second run's bump does not start from the first run's version (want %s):\n%s", want, h.text(ts))
	}
	h.srv.WaitFor(t, wait, "run-1's folders to be deleted", func() bool {
		_, errRun := os.Stat(filepath.Join(w.work, "runs", "run-1"))
		_, errPlan := os.Stat(filepath.Join(w.work, "plans", "run-1"))
		return os.IsNotExist(errRun) && os.IsNotExist(errPlan)
	})
	if _, err := os.Stat(filepath.Join(w.work, "runs", "run-2")); err != nil {
		t.Errorf("the newest finished run lost its checkout: %v", err)
	}
	h.assertNoRejections()
}
