package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func bearer(tok string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func apiKeyReq(key string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set(APIKeyHeader, key)
	return r
}

func TestAPIKeyRoundTrip(t *testing.T) {
	key, entry, err := NewAPIKey("ci-bot", []string{"developer", "approver"}, []string{"acme/*", "tools/cli"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, "rmk_") || len(key) != len("rmk_")+43 {
		t.Fatalf("key %q: want rmk_ + 43 base64url chars", key)
	}
	if strings.Contains(entry, key) || strings.Contains(entry, strings.TrimPrefix(key, "rmk_")) {
		t.Fatal("entry contains the plain key")
	}
	sum := sha256.Sum256([]byte(key))
	if want := "ci-bot:developer|approver:acme/*|tools/cli:" + hex.EncodeToString(sum[:]); entry != want {
		t.Fatalf("entry = %q, want %q", entry, want)
	}
	key2, entry2, err := NewAPIKey("ops", []string{"admin"}, []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	if key2 == key {
		t.Fatal("two minted keys are equal")
	}

	keys, err := ParseAPIKeys(entry + ",\n " + entry2 + "\n")
	if err != nil {
		t.Fatalf("ParseAPIKeys: %v", err)
	}
	if len(keys) != 2 {
		t.Fatalf("got %d keys", len(keys))
	}
	a := &Authenticator{APIKeys: keys}
	if !a.Configured() {
		t.Fatal("Configured() = false with API keys")
	}
	p, err := a.Authenticate(apiKeyReq(key))
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if p.Subject != "ci-bot" || p.Method != MethodAPIKey ||
		!slices.Equal(p.Roles, []string{"developer", "approver"}) || !slices.Equal(p.Repos, []string{"acme/*", "tools/cli"}) {
		t.Fatalf("principal = %+v", p)
	}
	if !p.HasRole("approver") || p.HasRole("admin") || !p.CanAccessRepo("acme/api") || p.CanAccessRepo("tools/other") {
		t.Fatalf("role/repo checks wrong for %+v", p)
	}
	p, err = a.Authenticate(apiKeyReq(key2))
	if err != nil || p.Subject != "ops" || !p.CanAccessRepo("/abs/path/repo") {
		t.Fatalf("second key: %+v, %v", p, err)
	}

	for _, wrong := range []string{key + "x", key[:len(key)-1], "rmk_" + strings.Repeat("A", 43), "nope"} {
		_, err := a.Authenticate(apiKeyReq(wrong))
		wantCode(t, err, CodeInvalidAPIKey)
	}
	// A bad API key never falls through to the bearer token.
	r := apiKeyReq("nope")
	r.Header.Set("Authorization", "Bearer "+key)
	_, err = a.Authenticate(r)
	wantCode(t, err, CodeInvalidAPIKey)
	// API keys are not bearer tokens.
	_, err = a.Authenticate(bearer(key))
	wantCode(t, err, CodeInvalidToken)
}

func TestParseAPIKeysErrors(t *testing.T) {
	h := strings.Repeat("ab", 32)
	h2 := strings.Repeat("cd", 32)
	tests := []struct {
		spec, want string
	}{
		{"ci:developer:*", "4 fields"},
		{"ci:developer:*:" + h + ":extra", "4 fields"},
		{"bad name!:developer:*:" + h, "invalid name"},
		{":developer:*:" + h, "invalid name"},
		{strings.Repeat("n", 65) + ":developer:*:" + h, "invalid name"},
		{"ci::*:" + h, "at least one role"},
		{"ci:root:*:" + h, `unknown role "root"`},
		{"ci:developer|superuser:*:" + h, `unknown role "superuser"`},
		{"ci:developer::" + h, "at least one repository"},
		{"ci:developer:acme/[:" + h, "invalid repository glob"},
		{"ci:developer:*:abc", "64 hex"},
		{"ci:developer:*:" + strings.Repeat("zz", 32), "not hex"},
		{"ci:developer:*:" + h + ",ci:admin:*:" + h2, `duplicate name "ci"`},
		{"ci:developer:*:" + h + "\nci2:admin:*:" + h, "same hash"},
	}
	for _, tc := range tests {
		keys, err := ParseAPIKeys(tc.spec)
		if err == nil {
			t.Errorf("ParseAPIKeys(%q) = %+v, want error", tc.spec, keys)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseAPIKeys(%q) error %q does not mention %q", tc.spec, err, tc.want)
		}
		if strings.Contains(err.Error(), h) {
			t.Errorf("error echoes the hash: %q", err)
		}
	}

	keys, err := ParseAPIKeys(" \n, \n")
	if err != nil || len(keys) != 0 {
		t.Fatalf("blank spec: %v, %v", keys, err)
	}
	keys, err = ParseAPIKeys(" ci : developer | developer | admin : acme/* : " + strings.ToUpper(h) + " ")
	if err != nil {
		t.Fatal(err)
	}
	if k := keys[0]; k.Name != "ci" || !slices.Equal(k.Roles, []string{"developer", "admin"}) || !slices.Equal(k.Repos, []string{"acme/*"}) || hex.EncodeToString(k.Hash[:]) != h {
		t.Fatalf("parsed %+v", k)
	}
}

func TestNewAPIKeyErrors(t *testing.T) {
	for _, tc := range []struct {
		name         string
		roles, repos []string
	}{
		{"", []string{"admin"}, []string{"*"}},
		{"a:b", []string{"admin"}, []string{"*"}},
		{"ok", nil, []string{"*"}},
		{"ok", []string{"root"}, []string{"*"}},
		{"ok", []string{"admin"}, nil},
		{"ok", []string{"admin"}, []string{"a|b"}},
		{"ok", []string{"admin"}, []string{"a,b"}},
		{"ok", []string{"admin"}, []string{"acme/["}},
	} {
		if _, _, err := NewAPIKey(tc.name, tc.roles, tc.repos); err == nil {
			t.Errorf("NewAPIKey(%q, %v, %v) succeeded", tc.name, tc.roles, tc.repos)
		}
	}
}

func TestStaticTokens(t *testing.T) {
	tok, err := NewStaticToken("dev", "dev-token-123", []string{"developer", "admin"}, []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Hash != sha256.Sum256([]byte("dev-token-123")) {
		t.Fatal("static token hash is not SHA-256 of the token")
	}
	other, err := NewStaticToken("viewer", "viewer-token", []string{"approver"}, []string{"acme/*"})
	if err != nil {
		t.Fatal(err)
	}
	a := &Authenticator{Tokens: []StaticToken{other, tok}}
	if !a.Configured() {
		t.Fatal("Configured() = false with static tokens")
	}
	p, err := a.Authenticate(bearer("dev-token-123"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "dev" || p.Method != MethodToken || !slices.Equal(p.Roles, []string{"developer", "admin"}) || !p.CanAccessRepo("/abs/path/repo") {
		t.Fatalf("principal = %+v", p)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "bearer   viewer-token ")
	if p, err := a.Authenticate(r); err != nil || p.Subject != "viewer" {
		t.Fatalf("lower-case scheme: %+v, %v", p, err)
	}

	for _, bad := range []string{"dev-token-12", "dev-token-1234", "x.y.z"} {
		_, err := a.Authenticate(bearer(bad))
		wantCode(t, err, CodeInvalidToken)
	}
	r = httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Basic ZGV2OmRldg==")
	_, err = a.Authenticate(r)
	wantCode(t, err, CodeInvalidToken)
	r.Header.Set("Authorization", "Bearer")
	_, err = a.Authenticate(r)
	wantCode(t, err, CodeInvalidToken)

	if _, err := NewStaticToken("", "t", []string{"admin"}, []string{"*"}); err == nil {
		t.Error("empty subject accepted")
	}
	if _, err := NewStaticToken("s", "", []string{"admin"}, []string{"*"}); err == nil {
		t.Error("empty token accepted")
	}
	if _, err := NewStaticToken("s", "t", []string{"root"}, []string{"*"}); err == nil {
		t.Error("unknown role accepted")
	}
}

func TestAuthenticateRoutesJWTs(t *testing.T) {
	secret := []byte(testSecret)
	v := newVerifier(t, JWTConfig{HS256Secret: secret})
	jwtTok := sign(t, jwt.SigningMethodHS256, secret, "", claims("jwt-user"))
	// A static token that happens to look like a JWT is still found when no
	// JWT verifier is configured.
	st, err := NewStaticToken("static-user", jwtTok, []string{"developer"}, []string{"*"})
	if err != nil {
		t.Fatal(err)
	}

	p, err := (&Authenticator{JWT: v, Tokens: []StaticToken{st}}).Authenticate(bearer(jwtTok))
	if err != nil || p.Subject != "jwt-user" || p.Method != MethodJWT {
		t.Fatalf("with JWT verifier: %+v, %v", p, err)
	}
	p, err = (&Authenticator{Tokens: []StaticToken{st}}).Authenticate(bearer(jwtTok))
	if err != nil || p.Subject != "static-user" || p.Method != MethodToken {
		t.Fatalf("without JWT verifier: %+v, %v", p, err)
	}

	expired := claims("late")
	expired["exp"] = int64(1)
	_, err = (&Authenticator{JWT: v}).Authenticate(bearer(sign(t, jwt.SigningMethodHS256, secret, "", expired)))
	wantCode(t, err, CodeTokenExpired)
}

func TestAuthenticateMissingCredentials(t *testing.T) {
	for name, a := range map[string]*Authenticator{
		"empty":      {},
		"configured": {Tokens: []StaticToken{{Subject: "s", Roles: []string{"admin"}, Repos: []string{"*"}, Hash: sha256.Sum256([]byte("t"))}}},
	} {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			_, err := a.Authenticate(r)
			wantCode(t, err, CodeMissingCredentials)
			r.Header.Set(APIKeyHeader, "  ")
			_, err = a.Authenticate(r)
			wantCode(t, err, CodeMissingCredentials)
		})
	}
	if (&Authenticator{}).Configured() {
		t.Error("empty Authenticator reports Configured")
	}
	var nilA *Authenticator
	if nilA.Configured() {
		t.Error("nil Authenticator reports Configured")
	}
}

func TestPrincipal(t *testing.T) {
	p := Principal{Roles: []string{"developer", "approver"}, Repos: []string{"acme/*"}}
	if !p.CanAccessRepo("acme/api") || p.CanAccessRepo("other/x") || p.CanAccessRepo("acme/api/sub") {
		t.Error("acme/* matching wrong")
	}
	for _, all := range []string{"*", "**"} {
		p := Principal{Repos: []string{all}}
		for _, repo := range []string{"/abs/path/repo", "acme/api", "x"} {
			if !p.CanAccessRepo(repo) {
				t.Errorf("%q does not match %q", all, repo)
			}
		}
	}
	if (Principal{Repos: []string{"acme/**"}}).CanAccessRepo("acme/a/b") != true {
		t.Error("acme/** does not match acme/a/b")
	}
	if (Principal{}).CanAccessRepo("acme/api") || (Principal{Repos: []string{}}).CanAccessRepo("") {
		t.Error("empty repo list grants access")
	}
	if (Principal{Repos: []string{"acme/["}}).CanAccessRepo("acme/[") {
		t.Error("malformed glob grants access")
	}
	if !p.HasRole("admin", "approver") || p.HasRole("admin") || p.HasRole() {
		t.Error("HasRole wrong")
	}
}

func TestErrorType(t *testing.T) {
	cause := errors.New("signature mismatch")
	var err error = &Error{Code: CodeInvalidToken, Err: cause}
	if !errors.Is(err, cause) {
		t.Error("Unwrap does not expose the cause")
	}
	if got := err.Error(); !strings.Contains(got, CodeInvalidToken) || !strings.Contains(got, "signature mismatch") {
		t.Errorf("Error() = %q", got)
	}
	if got := (&Error{Code: CodeMissingCredentials}).Error(); got != "auth: missing_credentials" {
		t.Errorf("Error() without cause = %q", got)
	}
}

func TestFindHashScansAll(t *testing.T) {
	hs := [][32]byte{sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b")), sha256.Sum256([]byte("c"))}
	calls := 0
	get := func(h *[32]byte) *[32]byte { calls++; return h }
	if i := findHash(hs, get, sha256.Sum256([]byte("a"))); i != 0 {
		t.Fatalf("index = %d", i)
	}
	if calls != len(hs) {
		t.Fatalf("compared %d of %d entries: early exit", calls, len(hs))
	}
	if i := findHash(hs, get, sha256.Sum256([]byte("z"))); i != -1 {
		t.Fatalf("index = %d, want -1", i)
	}
}
