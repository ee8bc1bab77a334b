//go:build unix

package recipe

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup runs the command in its own process group so that a
// timeout kills everything a recipe started (go, gofmt, xargs, sed ...), not
// just the shell.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
}

// killProcessGroup removes background processes a command left behind after
// it exited, so they cannot keep modifying the checkout.
func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
