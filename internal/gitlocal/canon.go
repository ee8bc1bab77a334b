package gitlocal

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// opCanonical names Canonical's operation; only it is answered from the
// cache.
const opCanonical = "canonical"

// Bounds of the canonicalisation cache.
const (
	canonTTL        = 10 * time.Second
	canonMaxEntries = 4096
)

// canonCache remembers, for canonTTL, that a real path was the top of a
// repository of its own under the roots, so the API's canonicalisation of
// every start does not run git three times (about 15 ms of a start). The
// path is still resolved through every link and checked against the roots on
// each call; a hit needs the repository's top, git dir, config and
// alternates to look exactly as they did (inode, size, time, mode). The
// worker never uses the cache: it re-opens the repository itself before it
// reads or writes anything, so a stale answer can at worst start a
// remediation that then fails.
type canonCache struct {
	mu sync.Mutex
	m  map[string]canonEntry
}

type canonEntry struct {
	stamp string
	info  repoInfo
	until time.Time
}

func (c *canonCache) get(real string) (*repoInfo, bool) {
	c.mu.Lock()
	e, ok := c.m[real]
	c.mu.Unlock()
	if !ok || time.Now().After(e.until) || repoStamp(real) != e.stamp {
		return nil, false
	}
	info := e.info
	return &info, true
}

// put records info for real as it looked (stamp) before git was asked.
func (c *canonCache) put(real, stamp string, info *repoInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= canonMaxEntries {
		c.m = map[string]canonEntry{}
	}
	c.m[real] = canonEntry{stamp: stamp, info: *info, until: time.Now().Add(canonTTL)}
}

// repoStamp describes the files whose change could change what git says of
// real (a work tree or a bare repository).
func repoStamp(real string) string {
	var b strings.Builder
	for _, rel := range []string{"", ".git", ".git/config", ".git/objects", ".git/objects/info/alternates", "config", "objects", "objects/info/alternates"} {
		st, err := os.Lstat(filepath.Join(real, rel))
		if err != nil {
			b.WriteString("-|")
			continue
		}
		fmt.Fprintf(&b, "%d:%d:%d:%o|", inode(st), st.Size(), st.ModTime().UnixNano(), st.Mode())
	}
	return b.String()
}
