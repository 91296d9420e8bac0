//go:build crashtest

package crashpoint

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// Enabled reports whether this binary was built with the crash hook.
const Enabled = true

// The hook is armed by DEPLOYBOT_CRASH_AT=N: the Nth write transaction is
// killed with SIGKILL just before it commits, so that it is lost and
// whatever effect preceded it (a Slack post, a GitHub call) has happened
// without its record. DEPLOYBOT_CRASH_LOG, when set, names a file that gets
// one line per write ("N what"), so a test can count the crash points of a
// run before it kills one.
var (
	mu    sync.Mutex
	n     int
	at, _ = strconv.Atoi(os.Getenv("DEPLOYBOT_CRASH_AT"))
	logf  = os.Getenv("DEPLOYBOT_CRASH_LOG")
)

// Hit is called by the store just before each write transaction commits.
func Hit(what string) {
	mu.Lock()
	defer mu.Unlock()
	n++
	if logf != "" {
		if f, err := os.OpenFile(logf, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err == nil {
			fmt.Fprintf(f, "%d %s\n", n, what)
			f.Sync()
			f.Close()
		}
	}
	if at > 0 && n == at {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never commit
	}
}
