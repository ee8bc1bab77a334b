package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// APIKeyPrefix starts every key minted by NewAPIKey, so leaked keys are easy
// to recognise (and to scan for) in logs and repositories.
const APIKeyPrefix = "rmk_"

// APIKey is a configured API key. Only the SHA-256 hash of the key is stored,
// with a name, roles and allowed repositories, so the configuration itself
// does not hold usable credentials.
type APIKey struct {
	Name  string
	Roles []string
	Repos []string
	Hash  [32]byte
}

// validAPIKeyName reports whether name matches [A-Za-z0-9._-]{1,64}.
func validAPIKeyName(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for _, c := range []byte(name) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// ParseAPIKeys reads entries separated by ',' or newlines:
// "name:role|role:repoglob|repoglob:sha256hex" (the format NewAPIKey emits).
// Names must match [A-Za-z0-9._-]{1,64} and be unique; roles must be
// developer, approver or admin (at least one); at least one valid repo glob is
// required; the hash is 64 hex digits and must be unique. Blank entries are
// ignored, so an empty spec yields no keys. Errors name the offending entry
// but never echo its hash.
func ParseAPIKeys(spec string) ([]APIKey, error) {
	var keys []APIKey
	entries := strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' })
	n := 0
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		n++
		k, err := parseAPIKeyEntry(e)
		if err != nil {
			return nil, fmt.Errorf("auth: API key entry %d: %w", n, err)
		}
		for _, prev := range keys {
			if prev.Name == k.Name {
				return nil, fmt.Errorf("auth: API key entry %d: duplicate name %q", n, k.Name)
			}
			if prev.Hash == k.Hash {
				return nil, fmt.Errorf("auth: API key entry %d (%q): same hash as %q", n, k.Name, prev.Name)
			}
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// parseAPIKeyEntry parses and validates one "name:roles:repos:hash" entry.
func parseAPIKeyEntry(e string) (APIKey, error) {
	f := strings.Split(e, ":")
	if len(f) != 4 {
		return APIKey{}, fmt.Errorf("want name:roles:repos:sha256hex (4 fields separated by ':'), got %d fields", len(f))
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	name := f[0]
	if !validAPIKeyName(name) {
		return APIKey{}, fmt.Errorf("invalid name %q: want 1-64 of [A-Za-z0-9._-]", name)
	}
	roles, err := parseRoles(splitList(f[1]))
	if err != nil {
		return APIKey{}, fmt.Errorf("%q: %w", name, err)
	}
	repos, err := parseRepos(splitList(f[2]))
	if err != nil {
		return APIKey{}, fmt.Errorf("%q: %w", name, err)
	}
	if len(f[3]) != 2*sha256.Size {
		return APIKey{}, fmt.Errorf("%q: hash must be %d hex digits (SHA-256), got %d characters", name, 2*sha256.Size, len(f[3]))
	}
	var k APIKey
	if _, err := hex.Decode(k.Hash[:], []byte(f[3])); err != nil {
		return APIKey{}, fmt.Errorf("%q: hash is not hex", name)
	}
	k.Name, k.Roles, k.Repos = name, roles, repos
	return k, nil
}

// splitList splits a '|' separated list, trimming items and dropping empty ones.
func splitList(s string) []string {
	var out []string
	for it := range strings.SplitSeq(s, "|") {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}

// parseRoles validates a role list: every role known, at least one; the
// result is de-duplicated.
func parseRoles(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, errors.New("at least one role is required (developer, approver, admin)")
	}
	var out []string
	for _, r := range in {
		if !isKnownRole(r) {
			return nil, fmt.Errorf("unknown role %q (want developer, approver or admin)", r)
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// parseRepos validates a repository glob list: at least one, each a valid
// doublestar pattern; the result is de-duplicated.
func parseRepos(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, errors.New(`at least one repository glob is required ("*" for all)`)
	}
	var out []string
	for _, g := range in {
		if !doublestar.ValidatePattern(g) {
			return nil, fmt.Errorf("invalid repository glob %q", g)
		}
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out, nil
}

// NewAPIKey mints a key: "rmk_" + base64url(32 random bytes). It returns the
// key, to be shown once and never stored, and the config entry in
// ParseAPIKeys format (name:roles:repos:hash) for REMEDIATOR_API_KEYS. The
// name, roles and repos are validated as ParseAPIKeys would; items may not
// contain the separators ':', '|', ',' or whitespace.
func NewAPIKey(name string, roles, repos []string) (key, entry string, err error) {
	for _, it := range slices.Concat([]string{name}, roles, repos) {
		if it == "" || strings.ContainsAny(it, ":|,\r\n\t ") {
			return "", "", fmt.Errorf("auth: API key field %q is empty or contains a separator (':', '|', ',' or whitespace)", it)
		}
	}
	if !validAPIKeyName(name) {
		return "", "", fmt.Errorf("auth: invalid API key name %q: want 1-64 of [A-Za-z0-9._-]", name)
	}
	if roles, err = parseRoles(roles); err != nil {
		return "", "", fmt.Errorf("auth: API key %q: %w", name, err)
	}
	if repos, err = parseRepos(repos); err != nil {
		return "", "", fmt.Errorf("auth: API key %q: %w", name, err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", fmt.Errorf("auth: generating API key: %w", err)
	}
	key = APIKeyPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(key))
	entry = strings.Join([]string{name, strings.Join(roles, "|"), strings.Join(repos, "|"), hex.EncodeToString(sum[:])}, ":")
	return key, entry, nil
}
