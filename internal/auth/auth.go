// Package auth authenticates callers of the remediator HTTP API.
//
// Three credential kinds are supported: JWTs (HS256 secret, a JWKS endpoint or
// a single PEM public key), API keys sent in the X-API-Key header, and static
// bearer tokens from a table. Secrets are only ever kept as SHA-256 hashes and
// compared in constant time. The package deliberately depends only on
// net/http (and the standard-library-only error catalogue) so that it can be
// used by any router.
package auth

import (
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	"remediator/internal/errcode"
)

// Roles known to remediator. Any other role found in a credential is dropped
// (JWT) or refused (API key configuration), so that a typo can never grant a
// privilege that no handler checks for.
const (
	RoleDeveloper = "developer"
	RoleApprover  = "approver"
	RoleAdmin     = "admin"
)

// Authentication methods reported in Principal.Method, so that audit logs can
// tell how a caller proved its identity.
const (
	MethodJWT    = "jwt"
	MethodAPIKey = "api_key"
	MethodToken  = "token"
)

// Error codes carried by *Error, by name from the one catalogue
// (internal/errcode), which also gives their HTTP status (401). They are
// stable and safe to return to clients; everything else about a failure stays
// in Error.Err.
var (
	CodeMissingCredentials = errcode.MissingCredentials.Name
	CodeInvalidToken       = errcode.InvalidToken.Name
	CodeTokenExpired       = errcode.TokenExpired.Name
	CodeInvalidAPIKey      = errcode.InvalidAPIKey.Name
)

// Principal is an authenticated caller. Handlers use it to decide what the
// caller may do (HasRole) and on which repositories (CanAccessRepo).
type Principal struct {
	Subject string   // JWT `sub`, API key name, or static token subject
	Roles   []string // subset of developer, approver, admin
	Repos   []string // glob list of repositories the principal may see/act on ("*" or "**" = all); empty = none
	Method  string   // "jwt", "api_key", "token"
}

// HasRole reports whether p has at least one of roles. Roles do not imply each
// other: callers that want admin to pass a developer check must list it.
func (p Principal) HasRole(roles ...string) bool {
	for _, r := range roles {
		if slices.Contains(p.Roles, r) {
			return true
		}
	}
	return false
}

// CanAccessRepo reports whether repo matches one of p.Repos. Globs follow
// doublestar syntax; "*" and "**" are treated as "everything", including
// repositories given as paths with '/' (which a plain "*" would not match).
// An empty list grants nothing, and a malformed glob matches nothing.
func (p Principal) CanAccessRepo(repo string) bool {
	for _, g := range p.Repos {
		if g == "*" || g == "**" {
			return true
		}
		if ok, err := doublestar.Match(g, repo); err == nil && ok {
			return true
		}
	}
	return false
}

// Error is returned for every authentication failure. Code is stable and safe
// to show to clients ("missing_credentials", "invalid_token",
// "token_expired", "invalid_api_key"); the wrapped Err has the detail for logs
// only. Never send Error() or Err to a client: they may say why a token failed.
type Error struct {
	Code string
	Err  error
}

// Error returns the code followed by the detail, for logs. Clients must only
// be shown Code.
func (e *Error) Error() string {
	if e.Err == nil {
		return "auth: " + e.Code
	}
	return "auth: " + e.Code + ": " + e.Err.Error()
}

// Unwrap exposes the detailed cause to errors.Is/As (for logging and tests).
func (e *Error) Unwrap() error { return e.Err }

func newError(code string, err error) *Error { return &Error{Code: code, Err: err} }

// isKnownRole reports whether r is one of the roles remediator checks.
func isKnownRole(r string) bool {
	return r == RoleDeveloper || r == RoleApprover || r == RoleAdmin
}

// knownRoles returns the known roles of in, trimmed and de-duplicated, in
// their first-seen order.
func knownRoles(in []string) []string {
	var out []string
	for _, r := range in {
		r = strings.TrimSpace(r)
		if isKnownRole(r) && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}
