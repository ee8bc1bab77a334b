package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// APIKeyHeader is the request header that carries an API key.
const APIKeyHeader = "X-API-Key"

// StaticToken is a bearer token from a table (dev mode and simple
// deployments); only its hash is kept, so the table in memory is not a list of
// usable credentials.
type StaticToken struct {
	Subject      string
	Roles, Repos []string
	Hash         [32]byte
}

// NewStaticToken builds a StaticToken from the token's plain text, keeping
// only its SHA-256 hash. Subject and token must be non-empty; roles must be
// known (at least one) and repos valid globs (at least one), as for API keys.
func NewStaticToken(subject, token string, roles, repos []string) (StaticToken, error) {
	if strings.TrimSpace(subject) == "" {
		return StaticToken{}, errors.New("auth: static token needs a subject")
	}
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return StaticToken{}, fmt.Errorf("auth: static token for %q is empty or contains whitespace", subject)
	}
	r, err := parseRoles(roles)
	if err != nil {
		return StaticToken{}, fmt.Errorf("auth: static token for %q: %w", subject, err)
	}
	g, err := parseRepos(repos)
	if err != nil {
		return StaticToken{}, fmt.Errorf("auth: static token for %q: %w", subject, err)
	}
	return StaticToken{Subject: subject, Roles: r, Repos: g, Hash: sha256.Sum256([]byte(token))}, nil
}

// Authenticator tries, in order: the X-API-Key header (API keys), then
// Authorization: Bearer <token> — a token that looks like a JWT (three
// base64url segments) goes to the JWT verifier when configured; otherwise it
// is compared with the static tokens. Hash comparisons are constant time
// across ALL entries (no early exit), so timing reveals neither which entry
// matched nor how many bytes did. A present but wrong credential never falls
// through to the next method. The fields must not be modified while
// Authenticate may run.
type Authenticator struct {
	JWT     *JWTVerifier // may be nil
	APIKeys []APIKey
	Tokens  []StaticToken
}

// Configured reports whether at least one verifier (JWT, API key or static
// token) is set up; an unconfigured Authenticator refuses every request.
func (a *Authenticator) Configured() bool {
	return a != nil && (a.JWT != nil || len(a.APIKeys) > 0 || len(a.Tokens) > 0)
}

// Authenticate identifies the caller of r. Failures are *Error: Code
// "missing_credentials" when neither header is present, "invalid_api_key"
// for a bad X-API-Key, and "invalid_token" or "token_expired" for a bad
// bearer token (including a non-Bearer Authorization scheme).
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	if key := strings.TrimSpace(r.Header.Get(APIKeyHeader)); key != "" {
		return a.authenticateAPIKey(key)
	}
	authz := strings.TrimSpace(r.Header.Get("Authorization"))
	if authz == "" {
		return Principal{}, newError(CodeMissingCredentials, errors.New("no X-API-Key or Authorization header"))
	}
	scheme, tok, _ := strings.Cut(authz, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return Principal{}, newError(CodeInvalidToken, errors.New("authorization scheme is not Bearer"))
	}
	tok = strings.TrimSpace(tok)
	switch {
	case tok == "":
		return Principal{}, newError(CodeInvalidToken, errors.New("empty bearer token"))
	case len(tok) > MaxTokenLen:
		return Principal{}, newError(CodeInvalidToken, fmt.Errorf("bearer token is %d bytes, limit %d", len(tok), MaxTokenLen))
	}
	if a != nil && a.JWT != nil && looksLikeJWT(tok) {
		return a.JWT.Verify(r.Context(), tok)
	}
	return a.authenticateStatic(tok)
}

// authenticateAPIKey finds the API key whose hash matches key.
func (a *Authenticator) authenticateAPIKey(key string) (Principal, error) {
	if len(key) > MaxTokenLen {
		return Principal{}, newError(CodeInvalidAPIKey, errors.New("API key too long"))
	}
	var keys []APIKey
	if a != nil {
		keys = a.APIKeys
	}
	i := findHash(keys, func(k *APIKey) *[32]byte { return &k.Hash }, sha256.Sum256([]byte(key)))
	if i < 0 {
		return Principal{}, newError(CodeInvalidAPIKey, errors.New("no API key matches"))
	}
	k := keys[i]
	return Principal{Subject: k.Name, Roles: knownRoles(k.Roles), Repos: slices.Clone(k.Repos), Method: MethodAPIKey}, nil
}

// authenticateStatic finds the static token whose hash matches tok.
func (a *Authenticator) authenticateStatic(tok string) (Principal, error) {
	var toks []StaticToken
	if a != nil {
		toks = a.Tokens
	}
	i := findHash(toks, func(t *StaticToken) *[32]byte { return &t.Hash }, sha256.Sum256([]byte(tok)))
	if i < 0 {
		return Principal{}, newError(CodeInvalidToken, errors.New("no static token matches"))
	}
	t := toks[i]
	return Principal{Subject: t.Subject, Roles: knownRoles(t.Roles), Repos: slices.Clone(t.Repos), Method: MethodToken}, nil
}

// findHash returns the index of the item whose hash equals want, or -1. It
// compares against every item in constant time and never exits early.
func findHash[T any](items []T, hash func(*T) *[32]byte, want [32]byte) int {
	found := -1
	for i := range items {
		eq := subtle.ConstantTimeCompare(hash(&items[i])[:], want[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	return found
}

// looksLikeJWT reports whether tok has the compact JWS shape: three
// base64url segments, the first two non-empty. An empty signature segment
// still counts, so that "alg=none" tokens reach the JWT verifier and are
// refused there with a clear log detail.
func looksLikeJWT(tok string) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return false
	}
	for _, p := range parts {
		for _, c := range []byte(p) {
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			default:
				return false
			}
		}
	}
	return true
}
