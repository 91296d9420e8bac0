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
)

func main() {
	m := NewMain()
	defer func() {
		// A panic outside a step (those are caught by the engine) still
		// reaches Sentry before the process dies.
		if p := recover(); p != nil {
			if m.sentry {
				sentry.CurrentHub().Recover(p)
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
