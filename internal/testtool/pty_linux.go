package testtool

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"unsafe"
)

// Terminal opens a pseudo-terminal: tty is the side a program writes to
// (a terminal to it), ptmx the side the test reads what it printed from.
// The terminal is 80 columns wide. Both close with the test.
func Terminal(tb testing.TB) (tty, ptmx *os.File) {
	tb.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		Missing(tb, "no pseudo-terminals here: "+err.Error())
	}
	tb.Cleanup(func() { ptmx.Close() })
	var n uint32
	var unlock int32
	rc, err := ptmx.SyscallConn()
	if err != nil {
		tb.Fatal(err)
	}
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		if _, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); errno != 0 {
			return
		}
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock)))
	}); err != nil || errno != 0 {
		tb.Fatalf("setting up the pseudo-terminal: %v %v", err, errno)
	}
	// 80 columns, 24 rows, as a terminal window starts.
	ws := struct{ Row, Col, X, Y uint16 }{24, 80, 0, 0}
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws)))
	}); err != nil || errno != 0 {
		tb.Fatalf("sizing the pseudo-terminal: %v %v", err, errno)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tty.Close() })
	return tty, ptmx
}
