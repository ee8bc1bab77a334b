//go:build !unix

package recipe

import "os/exec"

// setProcessGroup is a no-op where process groups do not exist; only the
// direct child is killed on timeout.
func setProcessGroup(cmd *exec.Cmd) {}

func killProcessGroup(cmd *exec.Cmd) {}
