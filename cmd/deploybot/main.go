// Command deploybot runs the deployment runbook from Slack (Socket Mode), or
// in a terminal with `deploybot console`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/getsentry/sentry-go"
	"go.uber.org/zap"
)

func main() {
	m := NewMain()
	defer func() {
		// Goroutines recover their own panics (steps, the engine, Socket
		// Mode handlers, the outbox publisher). One here, on the main
		// goroutine, means startup or shutdown itself is broken: it is
		// logged (and so reported to Sentry, with this goroutine's stack
		// from the panic site) before the process dies and is restarted.
		if p := recover(); p != nil {
			if m.Log != nil {
				m.Log.Error("deploybot panicked", zap.Error(fmt.Errorf("panic: %v", p)), zap.Stack("stack"))
			}
			if m.sentry {
				sentry.Flush(2 * time.Second)
			}
			panic(p)
		}
	}()
	m.Stdin, m.Stdout, m.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := m.ParseArgs(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if m.Mode == "help" {
		fmt.Fprintln(os.Stdout, usage)
		return
	}
	// SIGTERM or SIGINT stops taking work; a running terraform apply then
	// gets shutdown_grace to finish (Close). A second signal cuts the
	// grace short.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := m.Run(ctx)
	// Listen for the second signal before releasing the first listener:
	// in between, a signal would kill the process outright.
	again, stopAgain := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stop()
	if cerr := m.CloseContext(again); err == nil {
		err = cerr
	}
	stopAgain()
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploybot:", err)
		os.Exit(1)
	}
}
