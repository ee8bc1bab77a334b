//go:build unix

// Package procgroup runs external commands (git, recipe commands) in their
// own process group, so a timeout or cleanup kills everything they started,
// not just the direct child.
package procgroup

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// Set puts cmd in a new process group whose whole membership is killed when
// cmd's context is cancelled.
func Set(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
}

// Kill removes processes the command left behind after it exited, so they
// cannot keep changing a checkout.
func Kill(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
