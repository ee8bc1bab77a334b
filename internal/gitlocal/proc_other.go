//go:build !unix

package gitlocal

import "os/exec"

// setProcessGroup is a no-op where process groups do not exist; the default
// exec.CommandContext cancellation (kill the direct child) applies.
func setProcessGroup(cmd *exec.Cmd) {}
