//go:build !unix

package git

import "os/exec"

// configureCancel keeps exec's default (kill the process) where process
// groups are not available.
func configureCancel(cmd *exec.Cmd) {}
