package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/integrations/terraform"
	"github.com/deploybot/deploybot/internal/testtool"
)

// syncBuffer is the console's stdout, read by the test while the bot writes.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{written: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.written <- struct{}{}:
	default:
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitOutput waits until the output after offset contains want, and
// returns the offset just past it.
func waitOutput(t *testing.T, out *syncBuffer, from int, want string) int {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		s := out.String()
		if i := strings.Index(s[from:], want); i >= 0 {
			return from + i + len(want)
		}
		select {
		case <-out.written:
		case <-deadline.C:
			t.Fatalf("console never printed %q; output after offset:\n%s", want, s[from:])
		}
	}
}

// consoleConfig writes the example console configuration with its own
// state, infrastructure remote and real Terraform, and returns its path.
func consoleConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cfg, err := os.ReadFile("../../examples/console.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The example keeps its state beside the repo; the test keeps its own.
	cfg = bytes.Replace(cfg, []byte("state_path: ../.deploybot/console.db"), []byte("state_path: ./console.db"), 1)
	cfg = bytes.Replace(cfg, []byte("clone_url: ../.deploybot/infrastructure.git"), []byte("clone_url: "+infraRemote(t, nil)), 1)
	cfg = bytes.Replace(cfg, []byte("workdir: ../.deploybot/work"), []byte("workdir: ./work"), 1)
	cfg = bytes.Replace(cfg, []byte("terraform_bin: ../bin/terraform"), []byte("terraform_bin: "+testtool.Terraform(t)), 1)
	path := filepath.Join(dir, "console.yaml")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// consoleMain starts the console program in-process on consoleConfig.
// The returned say types a line.
func consoleMain(t *testing.T) (out *syncBuffer, say func(string)) {
	t.Helper()
	path := consoleConfig(t)
	inR, inW := io.Pipe()
	out = newSyncBuffer()
	m := NewMain()
	m.Stdin, m.Stdout, m.Stderr = inR, out, testWriter{t}
	m.Getenv = func(string) string { return "" }
	if err := m.ParseArgs([]string{"console", "--config", path, "--as", "U0ALICE"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		inW.Close()
		<-done
		m.Close()
	})
	return out, func(line string) {
		if _, err := fmt.Fprintln(inW, line); err != nil {
			t.Fatal(err)
		}
	}
}

// waitChoicesLast waits until, after from, the console has printed the
// choices and nothing after them: the buttons are at the bottom, where a
// person looks. It returns the choices' text.
func waitChoicesLast(t *testing.T, out *syncBuffer, from int) string {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		s := out.String()[from:]
		if i := strings.LastIndex(s, "\n┌ "); i >= 0 && strings.Contains(s[i:], "\n└ type 1 ") && strings.HasSuffix(s, "/deploy help\n") {
			return s[i+1:]
		}
		select {
		case <-out.written:
		case <-deadline.C:
			t.Fatalf("the choices never came last; output after offset:\n%s", s)
		}
	}
}

// rawMrkdwn finds Slack markup a terminal reader should never see.
var rawMrkdwn = regexp.MustCompile("(?:^|[\\s(])[*_~][^*_~\\s][^*_~]*[*_~](?:[\\s).,:]|$)|:[a-z][a-z_]*:|<[^<>\\n]*\\|[^<>\\n]*>|<@U|<!|@subteam\\^|&amp;|&lt;|&gt;|`")

func TestConsoleCompletesTheIngestionServerRunbook(t *testing.T) {
	out, say := consoleMain(t)

	pos := waitOutput(t, out, 0, "Type /deploy help")
	say("/deploy ingestion-server " + tag)
	pos = waitOutput(t, out, pos, "Started run-1")
	for i, s := range infraRunbook {
		pos = waitOutput(t, out, pos, s.title+" — waiting for")
		choices := waitChoicesLast(t, out, pos)
		if !strings.Contains(choices, "[1] ") || !strings.Contains(choices, "run-1") {
			t.Errorf("step %d: the choices do not say what they click:\n%s", i, choices)
		}
		if s.user != alice {
			say(":as " + s.user)
		}
		say("1")
		if s.user != alice {
			say(":as " + alice)
		}
	}
	pos = waitOutput(t, out, pos, "run-1 🎉 succeeded: all steps done")
	runLines := strings.Count(out.String()[:pos], "\n") + 1
	if strings.Contains(out.String(), "1. Check Airflow — ") {
		t.Error("the whole checklist was printed before anyone asked for it")
	}
	// The whole checklist, on request.
	say("s")
	pos = waitOutput(t, out, pos, "15. Open the infrastructure PR — done")
	say("/deploy status")
	waitOutput(t, out, pos, "No runs are open")

	got := out.String()
	if !strings.Contains(got, "applied plan") {
		t.Error("the console run did not apply with Terraform")
	}
	if strings.Contains(got, "(only you) ⛔") {
		t.Errorf("a click was refused:\n%s", got)
	}
	// Alice clicked Done on a manual step: she confirmed it, the bot did
	// not see a PR.
	if !strings.Contains(got, "15/15 Open the infrastructure PR — done: confirmed done by @U0ALICE") || strings.Contains(got, "PR opened by") {
		t.Error("the manual PR step does not say it was confirmed by a person")
	}
	// Terraform's -target warning is one line per apply.
	if n := strings.Count(got, terraform.TargetNote("module.ingestion-server")); n != 2 || strings.Contains(got, "-target option is not suitable") {
		t.Errorf("%d target notes in two applies, or the whole warning shown", n)
	}
	if strings.Contains(got, "\x1b") {
		t.Errorf("escape codes on a non-terminal stdout:\n%q", got)
	}
	// Each step change once, on one line: no line printed twice, and no
	// step reprinted while it stayed as it was.
	lines := strings.Split(got, "\n")
	seen := map[string]int{}
	for _, l := range lines {
		if strings.Contains(l, "/15 ") {
			seen[l]++
		}
		if m := rawMrkdwn.FindString(l); m != "" {
			t.Errorf("raw mrkdwn %q in %q", m, l)
		}
	}
	for l, n := range seen {
		if n > 1 {
			t.Errorf("printed %d times: %q", n, l)
		}
	}
	for i, s := range infraRunbook {
		if n := strings.Count(got, "/15 "+s.title+" — done"); n != 1 {
			t.Errorf("step %d %q: %d done lines, want 1", i, s.title, n)
		}
	}
	if n := strings.Count(got, "1. Check Airflow — done"); n != 2 {
		t.Errorf("the checklist printed %d times, want twice (on s and on /deploy status)", n)
	}
	// Two plans and two applies are most of it.
	if runLines > 200 {
		t.Errorf("a nine-click run printed %d lines:\n%s", runLines, got)
	}
	t.Logf("a nine-click run printed %d lines from start to \"succeeded\"", runLines)
	if testing.Verbose() {
		t.Log("\n" + got)
	}
}
