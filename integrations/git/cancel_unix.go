//go:build unix

package git

import (
	"os/exec"
	"syscall"
)

// configureCancel puts git in its own process group and stops the whole group
// on cancellation: git fetch/push run helpers (git-remote-https, pack-objects)
// that would otherwise keep talking to the remote, and keep holding locks,
// after git itself is gone. SIGTERM first, so git can remove its lock files.
func configureCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
}
