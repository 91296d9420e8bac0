//go:build unix

package terraform

import (
	"errors"
	"io"
	"os"
	"syscall"
)

// fileLocked asks the kernel whether any process holds an fcntl lock on the
// state file, which is how Terraform's local backend locks (F_GETLK takes
// no lock itself).
func fileLocked(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil {
		return false, err
	}
	return lk.Type != syscall.F_UNLCK, nil
}
