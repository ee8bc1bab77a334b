//go:build !unix

// Package procgroup runs external commands in their own process group where
// the platform has them; elsewhere only the direct child is killed.
package procgroup

import "os/exec"

// Set is a no-op without process groups.
func Set(cmd *exec.Cmd) {}

// Kill is a no-op without process groups.
func Kill(cmd *exec.Cmd) {}
