package api

import (
	"context"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"remediator/internal/errcode"
	"remediator/internal/orchestrator"
)

// RepoResolver turns what a caller names into the repository the service
// will act on. The API checks the caller's scope on that canonical form and
// passes only it to the workflow, so a link inside one team's tree cannot
// carry a remediation into another's. *gitlocal.Provider implements it.
type RepoResolver interface {
	// Canonical resolves repo (a path, file:// URL or owner/name) or fails;
	// the failure's detail is for the log only.
	Canonical(ctx context.Context, repo string) (string, error)
	// ScopeNames are the names a canonical repository answers to in the
	// principals' repository globs.
	ScopeNames(canonical string) []string
	// ForgeScopeNames are the scope names of a forge reference, known
	// without asking the forge (ok false for local references): scope is
	// checked before the forge is called for a repository the caller may
	// not use.
	ForgeScopeNames(repo string) (names []string, ok bool)
	// ScopeBases are the prefixes under which a relative glob ("teamA/**",
	// "acme/*") can match canonical references: "" for forge names,
	// "gitlab:" when GitLab is on, and each local root followed by "/".
	ScopeBases() []string
}

// canonicalRepo resolves repo for the caller, answering every failure with
// one code and message: whether a path exists, lies outside the roots or is
// no repository is not told apart.
func (h *handler) canonicalRepo(c *gin.Context, repo string) (string, error) {
	if h.opts.Repos == nil {
		return "", newError(errcode.InvalidRepository, "the repository is not one this service can act on")
	}
	canonical, err := h.opts.Repos.Canonical(c.Request.Context(), repo)
	if err != nil {
		h.logger.InfoContext(c.Request.Context(), "repository refused", "repo", repo, "error", err, "correlation_id", correlationID(c))
		return "", newError(errcode.InvalidRepository, "the repository is not one this service can act on")
	}
	return canonical, nil
}

// repoFor is the canonical repository p may start remediations on. A
// repository outside p's scope is answered exactly like one that does not
// exist, so a caller learns nothing about repositories it may not use.
func (h *handler) repoFor(c *gin.Context, p Principal, repo string) (string, error) {
	if h.opts.Repos != nil {
		if names, ok := h.opts.Repos.ForgeScopeNames(repo); ok && !slices.ContainsFunc(names, p.CanAccessRepo) {
			h.logger.InfoContext(c.Request.Context(), "repository outside the caller's scope", "repo", repo, "principal", p.Subject, "correlation_id", correlationID(c))
			return "", newError(errcode.InvalidRepository, "the repository is not one this service can act on")
		}
	}
	canonical, err := h.canonicalRepo(c, repo)
	if err != nil {
		return "", err
	}
	if !h.principalMayAccess(p, canonical) {
		h.logger.InfoContext(c.Request.Context(), "repository outside the caller's scope", "repo", canonical, "principal", p.Subject, "correlation_id", correlationID(c))
		return "", newError(errcode.InvalidRepository, "the repository is not one this service can act on")
	}
	return canonical, nil
}

// scopeNames are the names repo is matched by in repository globs.
func (h *handler) scopeNames(repo string) []string {
	if h.opts.Repos == nil {
		return []string{repo}
	}
	return h.opts.Repos.ScopeNames(repo)
}

// principalMayAccess: a repository is visible when one of its names matches
// one of the principal's globs.
func (h *handler) principalMayAccess(p Principal, repo string) bool {
	for _, name := range h.scopeNames(repo) {
		if p.CanAccessRepo(name) {
			return true
		}
	}
	return false
}

// globMeta are the characters that end the literal prefix of a glob.
const globMeta = "*?[{\\"

// listScope turns the principal's globs into a visibility condition that
// covers at least every repository they match (the list is filtered exactly
// afterwards): "*" sees all, a glob without wildcards names one repository,
// any other glob the repositories starting with its literal prefix. Relative
// globs ("teamA/**", "acme/*") apply under every scope base.
func (h *handler) listScope(p Principal) orchestrator.Scope {
	bases := []string{""}
	if h.opts.Repos != nil {
		bases = h.opts.Repos.ScopeBases()
	}
	var s orchestrator.Scope
	for _, g := range p.Repos {
		if g == "*" || g == "**" {
			return orchestrator.Scope{All: true}
		}
		globBases := bases
		if strings.HasPrefix(g, "/") {
			globBases = []string{""}
		}
		i := strings.IndexAny(g, globMeta)
		for _, b := range globBases {
			switch {
			case i < 0:
				s.Exact = append(s.Exact, b+g)
			case b+g[:i] == "":
				return orchestrator.Scope{All: true}
			default:
				s.Prefixes = append(s.Prefixes, b+g[:i])
			}
		}
	}
	return s
}
