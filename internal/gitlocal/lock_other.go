//go:build !unix

package gitlocal

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"time"
)

// staleLockAge bounds how long a lock file left by a crashed process can block
// others on platforms without flock.
const staleLockAge = 10 * time.Minute

// lockFile emulates an exclusive lock with an O_EXCL file; a lock older than
// staleLockAge is considered abandoned and broken.
func lockFile(ctx context.Context, root *os.Root, path string) (func(), error) {
	for {
		f, err := root.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			_ = f.Close()
			return func() { _ = root.Remove(path) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if st, serr := root.Stat(path); serr == nil && time.Since(st.ModTime()) > staleLockAge {
			_ = root.Remove(path)
			continue
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}
