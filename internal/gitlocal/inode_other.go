//go:build !unix

package gitlocal

import "os"

// inode is unknown here; size, time and mode still describe the file.
func inode(os.FileInfo) uint64 { return 0 }
