package forge

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Checker tells whether a forge repository exists for the service's
// credentials; the forge clients implement it.
type Checker interface {
	Resolve(ctx context.Context, path, ref string) (sha, defaultBranch string, isBranch bool, err error)
}

// LocalRepos canonicalises local references (*gitlocal.Provider).
type LocalRepos interface {
	Canonical(ctx context.Context, repo string) (string, error)
	ScopeNames(canonical string) []string
	Roots() []string
}

// Resolver is the API's one door from a caller's repository reference to the
// canonical one: local paths through the local provider, forge references
// checked against the forge (the service's credentials must reach the
// repository). A forge that is not configured is refused like an unknown
// repository. Positive forge answers are cached for a minute so a burst of
// starts costs one call per repository.
type Resolver struct {
	Local  LocalRepos // nil: local repositories are refused
	Forges map[Kind]Checker
	Hosts  Hosts

	mu    sync.Mutex
	known map[Ref]time.Time
}

// cacheTTL bounds how long a forge repository is known to exist.
const cacheTTL = time.Minute

// Canonical implements the API's RepoResolver.
func (r *Resolver) Canonical(ctx context.Context, repo string) (string, error) {
	ref, err := Parse(repo, r.Hosts)
	if err != nil {
		return "", err
	}
	if ref.Kind == Local {
		if r.Local == nil {
			return "", fmt.Errorf("%w: local repositories are not enabled", ErrUnknown)
		}
		return r.Local.Canonical(ctx, ref.Path)
	}
	c := r.Forges[ref.Kind]
	if c == nil {
		return "", fmt.Errorf("%w: %s is not configured", ErrUnknown, ref.Kind)
	}
	r.mu.Lock()
	at, ok := r.known[ref]
	r.mu.Unlock()
	if ok && time.Since(at) < cacheTTL {
		return ref.String(), nil
	}
	if _, _, _, err := c.Resolve(ctx, ref.Path, ""); err != nil {
		return "", fmt.Errorf("%s %s: %w", ref.Kind, ref.Path, err)
	}
	r.mu.Lock()
	if r.known == nil {
		r.known = map[Ref]time.Time{}
	}
	r.known[ref] = time.Now()
	r.mu.Unlock()
	return ref.String(), nil
}

// ScopeNames implements the API's RepoResolver for canonical references.
func (r *Resolver) ScopeNames(canonical string) []string {
	ref, err := Parse(canonical, r.Hosts)
	switch {
	case err != nil:
		return []string{canonical}
	case ref.Kind == Local:
		if r.Local == nil {
			return []string{canonical}
		}
		return r.Local.ScopeNames(canonical)
	}
	return ref.ScopeNames(r.Hosts)
}

// ForgeScopeNames implements the API's RepoResolver: the names of a forge
// reference, from the reference alone.
func (r *Resolver) ForgeScopeNames(repo string) ([]string, bool) {
	ref, err := Parse(repo, r.Hosts)
	if err != nil || ref.Kind == Local {
		return nil, false
	}
	return ref.ScopeNames(r.Hosts), true
}

// ScopeBases implements the API's RepoResolver: forge names as they are
// (a GitLab glob names "gitlab:group/..."), local repositories under each
// root.
func (r *Resolver) ScopeBases() []string {
	bases := []string{""}
	if r.Local != nil {
		for _, root := range r.Local.Roots() {
			bases = append(bases, strings.TrimSuffix(root, "/")+"/")
		}
	}
	return bases
}
