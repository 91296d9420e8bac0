//go:build !linux

package testtool

import (
	"os"
	"testing"
)

// Terminal opens a pseudo-terminal; only Linux is supported.
func Terminal(tb testing.TB) (tty, ptmx *os.File) {
	tb.Helper()
	Missing(tb, "pseudo-terminals are opened on Linux only")
	return nil, nil
}
