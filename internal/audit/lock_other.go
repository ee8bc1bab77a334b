//go:build !unix

package audit

import (
	"context"
	"os"
)

// lockFile is a no-op without flock: one process per file (the in-process
// mutex still serialises goroutines).
func lockFile(context.Context, *os.File, bool) (func(), error) { return func() {}, nil }
