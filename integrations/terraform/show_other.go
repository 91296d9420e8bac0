//go:build !linux

package terraform

import "os/exec"

func setProcAttr(*exec.Cmd) {}
