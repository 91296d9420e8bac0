package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/testtool"
)

// The crash matrix (issue 8): for every store write a run makes, kill the
// bot just before that write commits (the crashpoint hook, in binaries
// built with -tags crashtest), restart it, drive the run to its end, and
// check that no outside effect happened twice or went missing, that no
// Slack message was posted twice or lost, that data_refresh_cleared never
// left a commit true, and that the audit log has no gap.
//
// `go test` runs a sample of the points (DEPLOYBOT_CRASH_SAMPLE: a number
// of evenly spread points, default 8, or a list like "3,17,40"; the writes
// right after each approval are added); `make crash-matrix` sets
// DEPLOYBOT_CRASH_ALL=1 and runs every one.

// pointLimit bounds one run, crash and restart included.
const pointLimit = 3 * time.Minute

// The last argument is the default sample: evenly spread points, and
// whether the writes right after each approval are added.
func TestCrashMatrixDeploy(t *testing.T)       { crashMatrix(t, deployScenario, 8, true) }
func TestCrashMatrixRollback(t *testing.T)     { crashMatrix(t, rollbackScenario, 4, true) }
func TestCrashMatrixApplyFailure(t *testing.T) { crashMatrix(t, applyFailScenario, 4, true) }
func TestCrashMatrixDeploy504(t *testing.T)    { crashMatrix(t, deploy504Scenario, 1, false) }
func TestCrashMatrixRollback504(t *testing.T)  { crashMatrix(t, rollback504Scenario, 1, false) }

// buildCrashBot compiles the real binary with the crash hook.
func buildCrashBot(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "deploybot-crashtest")
	cmd := exec.Command("go", "build", "-tags", "crashtest", "-o", bin, ".")
	cmd.Stderr = testWriter{t}
	if err := cmd.Run(); err != nil {
		t.Fatalf("building deploybot -tags crashtest: %v", err)
	}
	return bin
}

func crashMatrix(t *testing.T, sc crashScenario, sample int, nearApprovals bool) {
	t.Helper()
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("the crash matrix runs the real binary many times; skipped with -short (never in CI)")
	}
	realTF := testtool.Terraform(t)
	bin := buildCrashBot(t)

	var (
		writes  []crashWrite
		clicks  []clickRec
		total   verdict
		perRun  []time.Duration
		covered int
	)
	report := func(t *testing.T, label string, res driveResult, v verdict) {
		total.effects += v.effects
		total.duplicates += v.duplicates
		total.losses += v.losses
		total.unanswered += v.unanswered
		if v.unanswered > 0 {
			t.Logf("%s: the start command was acked, then the crash came before it was recorded; it was typed again (%d times)", label, v.unanswered)
		}
		for _, f := range v.findings {
			total.findings = append(total.findings, finding{f.invariant, label + ": " + f.detail})
			t.Errorf("%s [%s] %s", label, f.invariant, f.detail)
		}
		t.Logf("%s: %s in %v (crashed=%v, restarts=%d, clicks=%d, effects=%d)", label, res.state, res.elapsed.Round(time.Millisecond), res.crashed, res.restarts, len(res.clicks), v.effects)
	}

	// The run without a crash counts the writes: the crash points.
	t.Run("count", func(t *testing.T) {
		cw := newCrashWorld(t, sc, bin, realTF)
		log := filepath.Join(t.TempDir(), "crash.log")
		res := cw.drive(0, log, pointLimit)
		cw.finish(res)
		writes, clicks = readCrashLog(log), res.clicks
		perRun = append(perRun, res.elapsed)
		report(t, "no crash", res, cw.check(res))
		if testing.Verbose() {
			for _, m := range cw.srv.Thread(deploys, cw.msgTS) {
				t.Logf("thread: %s", oneLineForReport(m.Text))
			}
			for _, w := range writes {
				t.Logf("write %d: %s", w.n, w.caller)
			}
		}
	})
	if len(writes) == 0 {
		t.Fatal("the run without a crash logged no store writes: is the binary built with -tags crashtest?")
	}
	if !nearApprovals {
		clicks = nil
	}
	points, how := crashPoints(len(writes), writes, clicks, sample)
	t.Logf("%s: %d store writes in a whole run; running %s: %v", sc.name, len(writes), how, points)

	for _, n := range points {
		what := ""
		if n <= len(writes) {
			what = writes[n-1].caller
		}
		label := fmt.Sprintf("N=%d (%s)", n, what)
		t.Run(fmt.Sprintf("N=%03d", n), func(t *testing.T) {
			cw := newCrashWorld(t, sc, bin, realTF)
			res := cw.drive(n, "", pointLimit)
			cw.finish(res)
			if !res.crashed {
				label += " never reached"
			}
			perRun = append(perRun, res.elapsed)
			v := cw.check(res)
			if len(v.findings) > 0 {
				t.Logf("clicks: %s", res.clickList())
				for _, m := range cw.srv.Thread(deploys, cw.msgTS) {
					t.Logf("thread: %s", oneLineForReport(m.Text))
				}
				for i, p := range cw.procs {
					t.Logf("bot process %d (crash_at=%d) log tail:\n%s", i+1, p.crashAt, tailFile(p.logPath, 15))
				}
			}
			report(t, label, res, v)
			covered++
		})
	}

	var sum time.Duration
	for _, d := range perRun {
		sum += d
	}
	byInvariant := map[string]int{}
	for _, f := range total.findings {
		byInvariant[f.invariant]++
	}
	var inv []string
	for k, n := range byInvariant {
		inv = append(inv, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(inv)
	line := fmt.Sprintf("crash matrix (%s): %d points of %d, %d effects counted, %d duplicates, %d losses, %d start commands unanswered (crash before they were recorded); %.1fs per point; findings by invariant: %s",
		sc.name, covered, len(writes), total.effects, total.duplicates, total.losses, total.unanswered, (sum / time.Duration(max(len(perRun), 1))).Seconds(), strings.Join(inv, " "))
	t.Log(line)
	fmt.Println(line)
}

// finish stops the bot that the drive left running, so the store is at
// rest before it is read.
func (cw *crashWorld) finish(res driveResult) {
	if len(cw.procs) == 0 {
		return
	}
	if err := cw.stopProc(cw.procs[len(cw.procs)-1]); err != nil {
		cw.t.Errorf("%v", err)
	}
}

// crashPoints chooses the points to run: every one with
// DEPLOYBOT_CRASH_ALL=1; else DEPLOYBOT_CRASH_SAMPLE, a count of evenly
// spread points (default sample) or a comma-separated list, plus the first
// two writes after each approval (publish, approve, confirm).
func crashPoints(total int, writes []crashWrite, clicks []clickRec, sample int) ([]int, string) {
	if os.Getenv("DEPLOYBOT_CRASH_ALL") == "1" {
		var all []int
		for n := 1; n <= total; n++ {
			all = append(all, n)
		}
		return all, "every point (DEPLOYBOT_CRASH_ALL=1)"
	}
	set := map[int]bool{}
	spec := strings.TrimSpace(os.Getenv("DEPLOYBOT_CRASH_SAMPLE"))
	if strings.Contains(spec, ",") {
		for _, f := range strings.Split(spec, ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
				set[n] = true
			}
		}
		return sorted(set), "the points in DEPLOYBOT_CRASH_SAMPLE"
	}
	if n, err := strconv.Atoi(spec); err == nil && n > 0 {
		sample = n
	}
	for i := 0; i < sample; i++ {
		if sample == 1 {
			set[1+total/2] = true
			break
		}
		set[1+i*(total-1)/(sample-1)] = true
	}
	for _, c := range clicks {
		if c.verb != "publish" && c.verb != "approve" && c.verb != "confirm" {
			continue
		}
		k := 0
		for _, w := range writes {
			if w.at.After(c.at) && k < 2 {
				set[w.n] = true
				k++
			}
		}
	}
	return sorted(set), fmt.Sprintf("a sample (%d evenly spread, DEPLOYBOT_CRASH_SAMPLE, and the two writes after each approval)", sample)
}

func sorted(set map[int]bool) []int {
	var out []int
	for n := range set {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}
