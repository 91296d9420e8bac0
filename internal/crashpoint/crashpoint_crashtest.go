//go:build crashtest

package crashpoint

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Enabled reports whether this binary was built with the crash hook.
const Enabled = true

// The hook is armed by DEPLOYBOT_CRASH_AT=N: the Nth write transaction is
// killed with SIGKILL just before it commits, so that it is lost and
// whatever effect preceded it (a Slack post, a GitHub call) has happened
// without its record. DEPLOYBOT_CRASH_LOG, when set, names a file that gets
// one line per write ("N what caller unixnano"), so a test can count the
// crash points of a run before it kills one, name the store method each one
// commits for, and place it in time against the clicks it drove.
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
			fmt.Fprintf(f, "%d %s %s %d\n", n, what, caller(), time.Now().UnixNano())
			f.Sync()
			f.Close()
		}
	}
	if at > 0 && n == at {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never commit
	}
}

// caller names the store method the write commits for: the first frame
// outside this package and the store's own write helper.
func caller() string {
	pcs := make([]uintptr, 16)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs)])
	for {
		f, more := frames.Next()
		name := f.Function
		if i := strings.LastIndex(name, "/"); i >= 0 {
			name = name[i+1:]
		}
		if name != "" && !strings.HasPrefix(name, "crashpoint.") && !strings.HasSuffix(name, ".write") && !strings.Contains(name, ".func") {
			return name
		}
		if !more {
			return "?"
		}
	}
}
