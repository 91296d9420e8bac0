package terraform

import (
	"os/exec"
	"syscall"
)

// setProcAttr matches terraform-exec on Linux: Terraform dies with the bot
// (it must never run on unsupervised), in its own process group.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
