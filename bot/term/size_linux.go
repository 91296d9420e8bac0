package term

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

// Width is the terminal's width in columns, 0 when w is no terminal or
// does not say.
func Width(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	var ws struct{ Row, Col, X, Y uint16 }
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCGWINSZ, uintptr(unsafe.Pointer(&ws)))
	}); err != nil || errno != 0 {
		return 0
	}
	return int(ws.Col)
}
