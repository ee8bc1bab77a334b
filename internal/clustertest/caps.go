//go:build cluster

package clustertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"remediator/internal/demo"
)

// Per-repository caps in the cluster: every process runs with caps on (so
// every scenario's starts go through the repositories' coordinators) but
// high, and the policy file caps one repository, the demo's copy
// "capped", at capActive running remediations: the caps scenario storms it.
const (
	capActive = 5
	// defaultCap is REMEDIATOR_REPO_MAX_ACTIVE and ..._PER_HOUR of every
	// process: on, but out of the other scenarios' way.
	defaultCap = 10000
)

// cappedRepoPath is the capped repository (its real path: what the API
// canonicalises a local repository to, and what the policy's glob names).
func (c *Cluster) cappedRepoPath() string {
	p := filepath.Join(c.gitRoot, "capped")
	if real, err := filepath.EvalSymlinks(p); err == nil {
		return real
	}
	return p
}

func (c *Cluster) policyFile() string { return filepath.Join(c.dir, "policy.yaml") }

// prepareCaps creates the capped repository (the demo: its Go files fail
// gofmt, so its remediations reach AwaitingApproval and stay there) and the
// policy file capping it; run after prepareRepos, before the processes
// start.
func (c *Cluster) prepareCaps(t *testing.T) {
	t.Helper()
	if _, err := demo.Ensure(context.Background(), filepath.Join(c.gitRoot, "capped")); err != nil {
		t.Fatal(err)
	}
	policy := fmt.Sprintf("caps:\n  - repos: [%q]\n    max_active: %d\n    max_per_hour: %d\n", c.cappedRepoPath(), capActive, defaultCap)
	if err := os.WriteFile(c.policyFile(), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
}
