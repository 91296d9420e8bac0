package testtool

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
)

// recordTB records how a helper ended a test, without ending this one.
type recordTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordTB) Helper()          {}
func (r *recordTB) Cleanup(f func()) {}
func (r *recordTB) Skip(args ...any) { r.skipped = fmt.Sprint(args...); runtime.Goexit() }
func (r *recordTB) Fatal(args ...any) {
	r.failed = fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *recordTB) Fatalf(format string, args ...any) { r.Fatal(fmt.Sprintf(format, args...)) }

func runHelper(t *testing.T, f func(testing.TB)) *recordTB {
	rec := &recordTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(rec)
	}()
	<-done
	return rec
}

// An unreachable PostgreSQL skips, naming the variable that fixes it, and
// fails in CI; the message never shows the password.
func TestPostgresUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	t.Setenv("DEPLOYBOT_TEST_POSTGRES", "postgres://u:hunter2@"+addr+"/test?sslmode=disable&connect_timeout=5")

	t.Setenv("CI", "")
	rec := runHelper(t, func(tb testing.TB) { Postgres(tb) })
	if !strings.Contains(rec.skipped, "DEPLOYBOT_TEST_POSTGRES") || rec.failed != "" {
		t.Errorf("outside CI: skipped %q, failed %q; want a skip naming DEPLOYBOT_TEST_POSTGRES", rec.skipped, rec.failed)
	}
	t.Setenv("CI", "true")
	rec = runHelper(t, func(tb testing.TB) { Postgres(tb) })
	if rec.failed == "" || rec.skipped != "" {
		t.Errorf("in CI: skipped %q, failed %q; want a failure", rec.skipped, rec.failed)
	}
	if strings.Contains(rec.failed+rec.skipped, "hunter2") {
		t.Errorf("the message shows the password: %s%s", rec.failed, rec.skipped)
	}
}
