package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deploybot/deploybot/integrations/github/githubtest"
)

// The crash matrix runs the real binary, built with the crashtest tag, as
// its own process against a fresh world per crash point. These are the
// pieces that world adds to the one the other end-to-end tests use: a
// Terraform wrapper that logs every command, an update hook in the bare
// infrastructure repository that logs every push, a Terraform resource
// whose provisioner logs every apply that took effect, and Sentry issues
// that are due during the watch whenever it runs.

// crashScenario is one kind of run the matrix crashes.
type crashScenario struct {
	name string
	kind string // "deploy" or "rollback": which effects and messages it has
	// start sends the command that starts the run (as Alice).
	start func(cw *crashWorld)
	// setup changes the world before the bot starts.
	setup func(cw *crashWorld)
	// applyFails makes production's apply fail (a provisioner that fails
	// while a file exists); the driver then cancels instead of retrying it.
	applyFails bool
	// want is the outcome the run must reach.
	want string // "succeeded", "cancelled"
}

func startDeploy(cw *crashWorld) { cw.srv.SlashCommand(alice, deploys, "/deploy", "ingestion-server") }
func startRollback(cw *crashWorld) {
	cw.srv.SlashCommand(alice, deploys, "/rollback", "rel-2023.07.03.17.52.00")
}

var (
	deployScenario    = crashScenario{name: "deploy", kind: "deploy", want: "succeeded", start: startDeploy}
	rollbackScenario  = crashScenario{name: "rollback", kind: "rollback", want: "succeeded", start: startRollback}
	applyFailScenario = crashScenario{name: "apply-failure", kind: "deploy", applyFails: true, want: "cancelled", start: startDeploy}
	// GitHub applies each effect and then answers 504, once: a request
	// that may have reached GitHub must not be sent blindly again.
	deploy504Scenario = crashScenario{name: "deploy-504", kind: "deploy", want: "succeeded", start: startDeploy,
		setup: func(cw *crashWorld) {
			cw.gh.FailAfterApply("PATCH", "/repos/"+monorepo+"/releases/", 1, 504)
			cw.gh.FailAfterApply("POST", "/repos/"+monorepo+"/pulls/", 1, 504) // the review
			cw.gh.FailAfterApply("POST", "/repos/"+infraRepo+"/pulls", 1, 504)
		}}
	rollback504Scenario = crashScenario{name: "rollback-504", kind: "rollback", want: "succeeded", start: startRollback,
		setup: func(cw *crashWorld) {
			cw.gh.FailAfterApply("POST", "/repos/"+infraRepo+"/actions/workflows/", 1, 504)
		}}
)

// crashIssues are due in production during any watch: regressed issues,
// seen until well after the test, are new to every watch window.
var crashIssues = []string{"9101", "9102"}

type crashWorld struct {
	*world
	sc       crashScenario
	bin      string
	tfLog    string // one line per terraform command: "<dir> <args>"
	pushLog  string // one line per ref update: "<ref> <old> <new>"
	applyLog string // one line per apply that took effect: "<environment> <tag>"
	failFile string // while it exists, production's apply fails
	logDir   string // the processes' output
	procs    []*botProc
	pgDSN    string // the PostgreSQL store, when the bots share one (replicas_test.go)
}

// newCrashWorld builds a fresh world: state db, repositories, test servers.
func newCrashWorld(t *testing.T, sc crashScenario, bin, realTF string) *crashWorld {
	t.Helper()
	dir := t.TempDir()
	cw := &crashWorld{sc: sc, bin: bin, logDir: dir,
		tfLog: filepath.Join(dir, "terraform.log"), pushLog: filepath.Join(dir, "push.log"),
		applyLog: filepath.Join(dir, "applied.log"), failFile: filepath.Join(dir, "fail-prod-apply")}
	wrapper := filepath.Join(dir, "terraform")
	script := fmt.Sprintf("#!/bin/sh\necho \"$PWD $*\" >> %q\nexec %q \"$@\"\n", cw.tfLog, realTF)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// newWorld asks terraformBin for the binary the config names.
	t.Setenv("DEPLOYBOT_TERRAFORM", wrapper)
	w := newWorld(t, all)
	w.watch = "3s"
	for _, n := range []string{"2", "3"} { // a lost /deploy is sent again: later run ids
		w.gh.AddRef(infraRepo, "deploybot/ingestion-server-"+tag+"-run-"+n)
	}
	for _, id := range crashIssues {
		is := sentryIssue(id, "Regression "+id+" in refresh", "error", 5, 2)
		is.Substatus = "regressed"
		is.FirstSeen = time.Now().Add(-72 * time.Hour)
		is.LastSeen = time.Now().Add(24 * time.Hour)
		w.sn.AddIssue("ingestion-server", "production", is)
	}
	extra := map[string]string{"modules/ingestion-server/crash_counter.tf": fmt.Sprintf(`
# Crash matrix: one line per apply that took effect, per environment.
resource "terraform_data" "crash_apply_counter" {
  triggers_replace = [var.image_tag]
  provisioner "local-exec" {
    command = "echo '${var.environment} ${var.image_tag}' >> %s"
  }
}
`, cw.applyLog)}
	if sc.applyFails {
		extra["modules/ingestion-server/crash_fail.tf"] = fmt.Sprintf(`
# Crash matrix: production's apply fails while %[1]s exists.
resource "terraform_data" "crash_fail_gate" {
  count            = var.environment == "production" ? 1 : 0
  triggers_replace = [var.image_tag]
  provisioner "local-exec" {
    command = "test ! -e %[1]s"
  }
  depends_on = [terraform_data.crash_apply_counter]
}
`, cw.failFile)
		if err := os.WriteFile(cw.failFile, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.remote = infraRemote(t, extra)
	hook := fmt.Sprintf("#!/bin/sh\necho \"$1 $2 $3\" >> %q\n", cw.pushLog)
	if err := os.WriteFile(filepath.Join(w.remote, "hooks", "update"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	w.writeConfig(all)
	cw.world = w
	if sc.setup != nil {
		sc.setup(cw)
	}
	return cw
}

// botProc is one run of the binary.
type botProc struct {
	cmd     *exec.Cmd
	crashAt int
	started time.Time
	exited  chan struct{}
	state   *os.ProcessState
	logPath string
}

func (p *botProc) dead() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// killedBySIGKILL reports whether the process died of SIGKILL (the crash
// hook, or the test).
func (p *botProc) killedBySIGKILL() bool {
	if p.state == nil {
		return false
	}
	ws, ok := p.state.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// startProc starts the binary; crashAt > 0 arms the hook, crashLog names
// the write log. It waits for the Socket Mode connection or the process's
// end, whichever comes first (an early crash point kills it before it
// connects).
func (cw *crashWorld) startProc(crashAt int, crashLog string) *botProc {
	t := cw.t
	t.Helper()
	before := cw.srv.ConnectionsOpened()
	p := &botProc{crashAt: crashAt, started: time.Now(), exited: make(chan struct{}),
		logPath: filepath.Join(cw.logDir, fmt.Sprintf("bot-%d.log", len(cw.procs)+1))}
	out, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(cw.bin, "--config", cw.cfgPath)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DEPLOYBOT_CRASH_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	for k, v := range cw.env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	if crashAt > 0 {
		p.cmd.Env = append(p.cmd.Env, "DEPLOYBOT_CRASH_AT="+strconv.Itoa(crashAt))
	}
	if crashLog != "" {
		p.cmd.Env = append(p.cmd.Env, "DEPLOYBOT_CRASH_LOG="+crashLog)
	}
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.state = p.cmd.ProcessState
		out.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if !p.dead() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	cw.procs = append(cw.procs, p)
	if err := waitUntil(wait, func() bool {
		return p.dead() || cw.srv.ConnectionsOpened() > before && cw.srv.Connections() > 0
	}); err != nil {
		t.Fatalf("the bot process neither connected nor exited: %v\n%s", err, tailFile(p.logPath, 30))
	}
	return p
}

// stopProc ends the process as a shutdown does (SIGTERM), so that the state
// is at rest before the checks read it.
func (cw *crashWorld) stopProc(p *botProc) error {
	if p.dead() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("the bot did not stop within 30s of SIGTERM")
	}
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// readLines reads a log file, one entry a line; a missing file is empty.
func readLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// crashWrite is one line of DEPLOYBOT_CRASH_LOG.
type crashWrite struct {
	n      int
	caller string
	at     time.Time
}

func readCrashLog(path string) []crashWrite {
	var ws []crashWrite
	for _, l := range readLines(path) {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		n, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		w := crashWrite{n: n}
		if len(f) >= 4 {
			w.caller = f[2]
			if ns, err := strconv.ParseInt(f[3], 10, 64); err == nil {
				w.at = time.Unix(0, ns)
			}
		}
		ws = append(ws, w)
	}
	return ws
}

// changelogReviews counts approvals on the changelog PR.
func changelogReviews(gh *githubtest.Server) int {
	n := 0
	for _, p := range gh.PRs(monorepo) {
		if strings.HasPrefix(p.Head, "changelog/") {
			for _, r := range gh.Reviews(monorepo, p.Number) {
				if r.State == "APPROVED" {
					n++
				}
			}
		}
	}
	return n
}

// waitUntil polls cond every 25ms until it holds or the timeout passes.
func waitUntil(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v", timeout)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return nil
}
