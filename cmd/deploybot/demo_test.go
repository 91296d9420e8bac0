package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/demo"
	"github.com/deploybot/deploybot/internal/testtool"
	"github.com/deploybot/deploybot/steps"
)

// runDemo runs `deploybot demo --auto` in-process, as main would, and
// returns the program and what it printed.
func runDemo(t *testing.T, args ...string) (*Main, string, error) {
	t.Helper()
	tf := testtool.Terraform(t)
	out := newSyncBuffer()
	m := NewMain()
	m.Stdout, m.Stderr = out, testWriter{t}
	m.Getenv = func(k string) string {
		if k == "DEPLOYBOT_TERRAFORM" {
			return tf
		}
		return ""
	}
	if err := m.ParseArgs(append([]string{"demo"}, args...)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	err := m.Run(ctx)
	if cerr := m.Close(); cerr != nil {
		t.Errorf("close after the demo: %v", cerr)
	}
	return m, out.String(), err
}

func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("the demo did not print %q", w)
		}
	}
}

func TestDemoAutoDeploysThroughTheWholeRunbook(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	m, out, err := runDemo(t, "--auto", "--dir", dir)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	w, rec := m.demo.world, m.demo.records
	v := w.Version
	sum := m.demo.summary
	if sum == "" || !strings.Contains(out, sum) {
		t.Fatalf("no summary printed:\n%s", out)
	}
	wantLines(t, sum,
		"run-1 deployed "+v+" to dev and prod and opened the infrastructure PR, which was merged into main.",
		"run-1  Deploy ingestion-server "+v+": succeeded after",
		"dev   rel-2023.07.03.17.52.00 → "+v+"  (applied, run-1)",
		"prod  rel-2023.07.03.17.52.00 → "+v+"  (applied, run-1)",
		"the infrastructure repository's main now says: dev "+v+", prod "+v,
		"“Production (prod): verify the plan”: approve by U0BOB",
		"four-eyes: U0ALICE, who started run-1, was refused on “Production (prod): verify the plan”",
		"“Deploy ingestion-server "+v+" (dev, prod)”",
		"release "+w.Release+": published (1 publish request(s))",
		"changelog PR #1 by openverse-bot: reviews: APPROVED",
		"dispatches: 0 (none)",
		"deploy markers for "+v+": 2 (staging, production)",
		"run-1 watch: 1 new issue in",
	)
	if n := strings.Count(sum, "plan sha256 "); n != 2 {
		t.Errorf("%d approvals with plan hashes in the summary, want 2 (dev and prod)", n)
	}
	// Every step of the runbook is listed done, with a duration.
	if n := strings.Count(sum, " done "); n != 15 {
		t.Errorf("%d steps done in the summary, want 15:\n%s", n, sum)
	}

	// What the outside systems saw.
	if !rec.Published() || rec.Publishes != 1 {
		t.Errorf("release published=%v after %d publish requests, want once", rec.Published(), rec.Publishes)
	}
	if len(rec.Reviews) != 1 || rec.Reviews[0].State != "APPROVED" || rec.ChangelogPR.User != demo.ChangelogAuthor {
		t.Errorf("changelog PR %+v reviews %+v, want one approval of the bot's PR", rec.ChangelogPR, rec.Reviews)
	}
	pr, ok := rec.InfraPR("deploybot/ingestion-server-" + v + "-run-1")
	if !ok || pr.Base != "main" || len(rec.InfraPRs) != 1 {
		t.Errorf("infrastructure PRs %+v", rec.InfraPRs)
	}
	if len(rec.Dispatches) != 0 {
		t.Errorf("rollback dispatched on a good deploy: %+v", rec.Dispatches)
	}
	if rec.MainVersions["dev"] != v || rec.MainVersions["prod"] != v {
		t.Errorf("main of the infrastructure repository: %v, want %s (merge_on_success)", rec.MainVersions, v)
	}
	// Terraform applied for real, in each environment.
	for _, env := range []string{"dev", "prod"} {
		state, err := os.ReadFile(filepath.Join(dir, "work", "state", env+".tfstate"))
		if err != nil || !strings.Contains(string(state), "openverse-ingestion_server:"+v) {
			t.Errorf("%s state does not hold %s (%v)", env, v, err)
		}
	}
	if strings.Contains(out, "(only U0BOB) :no_entry:") || strings.Contains(out, "could not do that") {
		t.Errorf("a click by the right person was refused:\n%s", out)
	}
}

func TestDemoAutoFailedApplyRollsBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	m, out, err := runDemo(t, "--auto", "--scenario", "failed-apply", "--dir", dir)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	w, rec := m.demo.world, m.demo.records
	v := w.Version
	sum := m.demo.summary
	wantLines(t, out, "health check: ingestion-server answered 503", "U0ALICE types  /rollback rel-2023.07.03.17.52.00")
	wantLines(t, sum,
		"Failure path, as the scenario intends: production's apply of "+v+" failed in run-1, which was cancelled",
		"run-2 rolled production back to rel-2023.07.03.17.52.00 with the rollback workflow (1 dispatch)",
		"run-1  Deploy ingestion-server "+v+": cancelled",
		"prod  rel-2023.07.03.17.52.00 → "+v+"  (apply failed, run-1)",
		"prod  rolled back to rel-2023.07.03.17.52.00 by the deploy-production-ingestion-server.yml workflow (run-2)",
		"run-2  “Confirm the rollback”: approve by U0BOB",
		"none: no deploy got as far as opening it",
		"dispatches: 1 (ref main, tag rel-2023.07.03.17.52.00, actor U0ALICE)",
	)
	if len(rec.Dispatches) != 1 || rec.Dispatches[0].Inputs["tag"] != demo.PreviousVersion {
		t.Errorf("rollback dispatches %+v, want one to %s", rec.Dispatches, demo.PreviousVersion)
	}
	if !rec.Published() || rec.Publishes != 1 {
		t.Errorf("release published=%v after %d requests", rec.Published(), rec.Publishes)
	}
	if len(rec.InfraPRs) != 0 || len(rec.Reviews) != 0 {
		t.Errorf("a failed deploy opened PRs %+v or reviewed %+v", rec.InfraPRs, rec.Reviews)
	}
	if rec.MainVersions["prod"] != demo.PreviousVersion {
		t.Errorf("main moved after a failed deploy: %v", rec.MainVersions)
	}
	// The failed apply left data_refresh_cleared false.
	b, err := os.ReadFile(filepath.Join(dir, "work", "runs", "run-1", "environments", "prod", "ingestion-server.tf"))
	if err != nil || !strings.Contains(string(b), "data_refresh_cleared = false") {
		t.Errorf("prod flag after the failed apply (%v):\n%s", err, b)
	}
	// The example itself stays valid: only the scratch copy fails.
	if _, err := os.Stat("../../examples/infrastructure/modules/ingestion-server/demo_failure.tf"); !os.IsNotExist(err) {
		t.Errorf("the failing file leaked into examples/infrastructure: %v", err)
	}
}

// Bad input gets an answer that says what to do, and starts nothing.
func TestDemoRefusesBadInput(t *testing.T) {
	m := NewMain()
	if err := m.ParseArgs([]string{"demo", "--scenario", "sad"}); err == nil || !strings.Contains(err.Error(), "use happy or failed-apply") {
		t.Errorf("unknown scenario: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keep.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, out, err := runDemo(t, "--auto", "--dir", dir)
	if err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Errorf("a non-empty --dir: %v\n%s", err, out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the demo wrote into a non-empty folder: %v", entries)
	}
	// No Terraform: the answer says how to get it.
	m = NewMain()
	m.Stdout, m.Stderr = newSyncBuffer(), testWriter{t}
	m.Getenv = func(k string) string {
		if k == "DEPLOYBOT_TERRAFORM" {
			return filepath.Join(dir, "no-terraform-here")
		}
		return ""
	}
	if err := m.ParseArgs([]string{"demo", "--auto", "--dir", filepath.Join(t.TempDir(), "d")}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "make terraform") {
		t.Errorf("missing Terraform: %v", err)
	}
}

// Interactively, the person clicks: the demo tells them to switch to Bob
// for production's plan (four-eyes is real: Alice is refused), and ends
// with the summary once the deploy is done.
func TestDemoInteractiveTellsWhoMustClick(t *testing.T) {
	tf := testtool.Terraform(t)
	inR, inW := io.Pipe()
	out := newSyncBuffer()
	m := NewMain()
	m.Stdin, m.Stdout, m.Stderr = inR, out, testWriter{t}
	m.Getenv = func(k string) string {
		if k == "DEPLOYBOT_TERRAFORM" {
			return tf
		}
		return ""
	}
	if err := m.ParseArgs([]string{"demo", "--dir", filepath.Join(t.TempDir(), "demo")}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background()) }()
	defer inW.Close()
	say := func(line string) {
		t.Helper()
		if _, err := fmt.Fprintln(inW, line); err != nil {
			t.Fatal(err)
		}
	}
	waitOutput(t, out, 0, "Start with:  /deploy ingestion-server")
	// The engine is up once the console is attached. (Taken once: the
	// demo clears m.Engine when it shuts down.)
	select {
	case <-m.demo.attached:
	case err := <-done:
		t.Fatalf("the demo ended before its console started: %v", err)
	case <-time.After(wait):
		t.Fatal("the demo's console never started")
	}
	eng := m.Engine
	say("/deploy ingestion-server")

	lastKey, lastAt := "", time.Time{}
	deadline := time.Now().Add(wait * 3)
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("demo: %v\n%s", err, out.String())
			}
			if err := m.Close(); err != nil {
				t.Error(err)
			}
			sum := m.demo.summary
			wantLines(t, sum, "run-1 deployed "+m.demo.world.Version+" to dev and prod", "“Production (prod): verify the plan”: approve by U0BOB")
			wantLines(t, out.String(), "Four eyes: U0ALICE started run-1, so U0BOB must answer “Production (prod): verify the plan”. Type  :as U0BOB",
				"four-eyes applies to prod", "Sentry raised a new issue in production during the watch (above), as the demo intends.")
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the interactive demo did not finish:\n%s", out.String())
		}
		var cur *steps.StepState
		for _, r := range eng.OpenRuns() {
			if c := r.Current(); c != nil && c.Status == steps.StepWaiting && len(c.Buttons) > 0 {
				cur = c
			}
		}
		if cur == nil {
			continue
		}
		// A number typed while the choices on screen are not current is
		// refused by the console and changes nothing: it is typed again a
		// little later.
		key := fmt.Sprint(cur.ID, cur.Seq)
		if key == lastKey && time.Since(lastAt) < 3*time.Second {
			continue
		}
		// The Sentry issue's message offers Roll back and Declare
		// incident: its numbers are the console's choices until the
		// choices printed last show the step, which a person waits for.
		o := out.String()
		if !strings.Contains(lastChoices(o), fmt.Sprintf("%d. %s", cur.Index+1, cur.Title)) {
			continue
		}
		// Like a person, the test reads the demo's advice first.
		if advice := map[string]string{"plan:prod": "Four eyes: U0ALICE started run-1", "changelog": "Sentry raised a new issue"}[cur.ID]; advice != "" && !strings.Contains(o, advice) {
			continue
		}
		lastKey, lastAt = key, time.Now()
		if cur.ID == "plan:prod" && strings.Contains(out.String(), "four-eyes applies to prod") {
			// Alice was refused: as the demo says, Bob answers.
			say(":as U0BOB")
			say("1")
			say(":as U0ALICE")
			continue
		}
		say("1")
	}
}

// lastChoices is the block of choices the console printed last (the boxed
// prompts, their numbered buttons and the hint line), "" when none.
func lastChoices(o string) string {
	lines := strings.Split(strings.TrimRight(o, "\n"), "\n")
	end := -1
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(strings.TrimSpace(lines[i]), "└ type") {
			end = i
			break
		}
	}
	if end < 0 {
		return ""
	}
	start := end
	for start > 0 {
		l := strings.TrimSpace(lines[start-1])
		if !strings.HasPrefix(l, "┌") && !strings.HasPrefix(l, "│") {
			break
		}
		start--
	}
	return strings.Join(lines[start:end+1], "\n")
}
