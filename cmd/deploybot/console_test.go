package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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

func TestConsoleCompletesTheIngestionServerRunbook(t *testing.T) {
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

	inR, inW := io.Pipe()
	out := newSyncBuffer()
	m := NewMain()
	m.Stdin, m.Stdout, m.Stderr = inR, out, testWriter{t}
	m.Getenv = func(string) string { return "" }
	if err := m.ParseArgs([]string{"console", "--config", path, "--as", "U0ALICE"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		inW.Close()
		<-done
		m.Close()
	}()
	say := func(line string) {
		if _, err := fmt.Fprintln(inW, line); err != nil {
			t.Fatal(err)
		}
	}

	pos := waitOutput(t, out, 0, "Type /deploy help")
	say("/deploy ingestion-server " + tag)
	pos = waitOutput(t, out, pos, "Started run-1")
	for _, s := range infraRunbook {
		pos = waitOutput(t, out, pos, fmt.Sprintf(". %s*", s.title))
		pos = waitOutput(t, out, pos, "[1] ")
		if s.user != alice {
			say(":as " + s.user)
		}
		say("1")
		if s.user != alice {
			say(":as " + alice)
		}
	}
	pos = waitOutput(t, out, pos, "succeeded")
	if !strings.Contains(out.String(), "applied plan") {
		t.Error("the console run did not apply with Terraform")
	}
	if strings.Contains(out.String(), "(only you) [no]") {
		t.Errorf("a click was refused:\n%s", out.String())
	}
	_ = pos
}
