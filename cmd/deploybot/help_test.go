package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseArgsTakesHelpAsARequest(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}, {"console", "-help"}, {"check-config", "--help"}} {
		m := NewMain()
		m.Getenv = func(string) string { return "" }
		if err := m.ParseArgs(args); err != nil || m.Mode != "help" {
			t.Errorf("%q: mode %q, error %v", args, m.Mode, err)
		}
	}
	for _, args := range [][]string{{"helpme"}, {"check-config", "help"}, {"help", "console"}} {
		m := NewMain()
		m.Getenv = func(string) string { return "" }
		if err := m.ParseArgs(args); err == nil || m.Mode == "help" {
			t.Errorf("%q accepted as mode %q", args, m.Mode)
		}
	}
}

// The real binary: asking for help is answered on stdout with exit 0, and
// Ctrl-C in the console says what becomes of the run before it exits.
func TestBinaryHelpAndCtrlC(t *testing.T) {
	bin := buildBot(t)
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"console", "--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), "DEPLOYBOT_CONFIG=")
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("exit: %v; stderr: %s", err, stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), "usage:") || !strings.Contains(stdout.String(), "deploybot console") {
				t.Errorf("stdout:\n%s", stdout.String())
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr: %s", stderr.String())
			}
		})
	}
	t.Run("unknown flag", func(t *testing.T) {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "--nope")
		cmd.Stderr = &stderr
		var ee *exec.ExitError
		if err := cmd.Run(); !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), "usage:") {
			t.Errorf("exit %v, stderr %s", err, stderr.String())
		}
	})

	t.Run("ctrl-c in the console", func(t *testing.T) {
		out := newSyncBuffer()
		cmd := exec.Command(bin, "console", "--config", consoleConfig(t), "--as", "U0ALICE")
		cmd.Env = append(os.Environ(), "NO_COLOR=1")
		stdin, err := cmd.StdinPipe() // stays open: only the signal stops it
		if err != nil {
			t.Fatal(err)
		}
		defer stdin.Close()
		cmd.Stdout, cmd.Stderr = out, testWriter{t}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		waitOutput(t, out, 0, "Type /deploy help")
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("exit after Ctrl-C: %v", err)
			}
		case <-time.After(wait):
			t.Fatal("the console did not stop on Ctrl-C")
		}
		if !strings.Contains(out.String(), "stopping: open runs stay recorded; starting the console again (make console) resumes them.") {
			t.Errorf("Ctrl-C said nothing:\n%s", out.String())
		}
	})
}
