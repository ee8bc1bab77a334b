package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

func TestNewJWTVerifierConfigErrors(t *testing.T) {
	rsaPEM := publicPEM(t, rsaKey(t).Public())
	srv := newJWKSServer(t)
	srv.add(t, "k", jwkset.AlgES256, ecKey(t).Public())
	dead := newJWKSServer(t)
	deadURL := dead.URL
	dead.Close()

	tests := []struct {
		name string
		cfg  JWTConfig
		want string
	}{
		{"no source", JWTConfig{}, "no JWT key source"},
		{"two asymmetric sources", JWTConfig{JWKSURL: srv.URL, PublicKeyPEM: rsaPEM}, "mutually exclusive"},
		{"short secret", JWTConfig{HS256Secret: []byte("short")}, "at least 32"},
		{"bad pem", JWTConfig{PublicKeyPEM: []byte("not a pem")}, "no PEM block"},
		{"private key pem", JWTConfig{PublicKeyPEM: []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")}, "unsupported PEM block"},
		{"unreachable jwks", JWTConfig{JWKSURL: deadURL}, "JWKS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewJWTVerifier(context.Background(), tc.cfg)
			if err == nil {
				v.Close()
				t.Fatal("expected an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}

	// HS256 together with one asymmetric source is allowed.
	v := newVerifier(t, JWTConfig{HS256Secret: []byte(testSecret), PublicKeyPEM: rsaPEM})
	if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claims("a"))); err != nil {
		t.Fatalf("HS256 with secret+PEM: %v", err)
	}
}

func TestJWTRefusesAlgNone(t *testing.T) {
	for name, cfg := range map[string]JWTConfig{
		"hs256": {HS256Secret: []byte(testSecret)},
		"pem":   {PublicKeyPEM: publicPEM(t, rsaKey(t).Public())},
	} {
		t.Run(name, func(t *testing.T) {
			v := newVerifier(t, cfg)
			c := claims("mallory")
			c["roles"] = []string{"admin"}
			tok := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", c)
			_, err := v.Verify(context.Background(), tok)
			wantCode(t, err, CodeInvalidToken)

			// Also through the Authenticator (the empty signature segment must
			// still reach the JWT verifier, not the static table).
			a := &Authenticator{JWT: v}
			_, err = a.Authenticate(bearer(tok))
			wantCode(t, err, CodeInvalidToken)
		})
	}
}

func TestJWTRefusesHS256SignedWithRSAPublicKey(t *testing.T) {
	pemBytes := publicPEM(t, rsaKey(t).Public())
	v := newVerifier(t, JWTConfig{PublicKeyPEM: pemBytes})
	// The classic confusion attack: HMAC keyed with the public key's bytes.
	tok := sign(t, jwt.SigningMethodHS256, pemBytes, "", claims("mallory"))
	_, err := v.Verify(context.Background(), tok)
	wantCode(t, err, CodeInvalidToken)
}

func TestJWTKeyFuncNeverMixesAlgorithmFamilies(t *testing.T) {
	// Even past WithValidMethods, the key selection must refuse to hand an
	// asymmetric key to HMAC or the secret to RSA.
	pemBytes := publicPEM(t, rsaKey(t).Public())
	v := newVerifier(t, JWTConfig{HS256Secret: []byte(testSecret), PublicKeyPEM: pemBytes})
	kf := v.keyFunc(context.Background())
	key, err := kf(&jwt.Token{Method: jwt.SigningMethodHS256, Header: map[string]any{"alg": "HS256"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := key.([]byte); !ok {
		t.Fatalf("HS256 got key of type %T, want the secret", key)
	}
	if _, err := kf(&jwt.Token{Method: jwt.SigningMethodES256, Header: map[string]any{"alg": "ES256"}}); err == nil {
		t.Fatal("ES256 must not get the RSA key")
	}
	rsaOnly := newVerifier(t, JWTConfig{PublicKeyPEM: pemBytes})
	if _, err := rsaOnly.keyFunc(context.Background())(&jwt.Token{Method: jwt.SigningMethodHS256, Header: map[string]any{"alg": "HS256"}}); err == nil {
		t.Fatal("HS256 must not get a key when no secret is configured")
	}
}

func TestJWTClaimValidation(t *testing.T) {
	ctx := context.Background()
	secret := []byte(testSecret)
	v := newVerifier(t, JWTConfig{HS256Secret: secret, Issuer: "https://idp", Audience: "remediator"})
	base := func() jwt.MapClaims {
		c := claims("alice")
		c["iss"] = "https://idp"
		c["aud"] = "remediator"
		return c
	}
	now := time.Now()
	with := func(mut func(jwt.MapClaims)) string {
		c := base()
		mut(c)
		return sign(t, jwt.SigningMethodHS256, secret, "", c)
	}

	if _, err := v.Verify(ctx, with(func(jwt.MapClaims) {})); err != nil {
		t.Fatalf("baseline token refused: %v", err)
	}

	tests := []struct {
		name string
		tok  string
		code string
	}{
		{"missing exp", with(func(c jwt.MapClaims) { delete(c, "exp") }), CodeInvalidToken},
		{"expired beyond leeway", with(func(c jwt.MapClaims) { c["exp"] = now.Add(-2 * time.Minute).Unix() }), CodeTokenExpired},
		{"nbf in the future", with(func(c jwt.MapClaims) { c["nbf"] = now.Add(5 * time.Minute).Unix() }), CodeInvalidToken},
		{"iat in the future", with(func(c jwt.MapClaims) { c["iat"] = now.Add(5 * time.Minute).Unix() }), CodeInvalidToken},
		{"wrong iss", with(func(c jwt.MapClaims) { c["iss"] = "https://evil" }), CodeInvalidToken},
		{"missing iss", with(func(c jwt.MapClaims) { delete(c, "iss") }), CodeInvalidToken},
		{"wrong aud", with(func(c jwt.MapClaims) { c["aud"] = "other" }), CodeInvalidToken},
		{"missing aud", with(func(c jwt.MapClaims) { delete(c, "aud") }), CodeInvalidToken},
		{"missing sub", with(func(c jwt.MapClaims) { delete(c, "sub") }), CodeInvalidToken},
		{"blank sub", with(func(c jwt.MapClaims) { c["sub"] = "  " }), CodeInvalidToken},
		{"other secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), "", base()), CodeInvalidToken},
		{"HS512 not allowed", sign(t, jwt.SigningMethodHS512, secret, "", base()), CodeInvalidToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(ctx, tc.tok)
			if err == nil {
				t.Fatalf("accepted: %+v", p)
			}
			wantCode(t, err, tc.code)
		})
	}

	t.Run("expired within leeway", func(t *testing.T) {
		tok := with(func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() })
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatalf("token expired 10s ago refused with 30s leeway: %v", err)
		}
	})
	t.Run("nbf within leeway", func(t *testing.T) {
		tok := with(func(c jwt.MapClaims) { c["nbf"] = now.Add(10 * time.Second).Unix() })
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatalf("nbf 10s ahead refused with 30s leeway: %v", err)
		}
	})
	t.Run("custom leeway", func(t *testing.T) {
		strict := newVerifier(t, JWTConfig{HS256Secret: secret, Leeway: time.Second})
		tok := sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"sub": "a", "exp": now.Add(-10 * time.Second).Unix()})
		_, err := strict.Verify(ctx, tok)
		wantCode(t, err, CodeTokenExpired)
	})
}

func TestJWTRefusesGarbage(t *testing.T) {
	v := newVerifier(t, JWTConfig{HS256Secret: []byte(testSecret)})
	rnd := make([]byte, 48)
	if _, err := rand.Read(rnd); err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	for _, tok := range []string{
		"",
		"abc",
		"a.b.c",
		"..",
		b64(rnd),
		b64(rnd[:16]) + "." + b64(rnd[16:32]) + "." + b64(rnd[32:]),
		b64([]byte(`{"alg":"HS256"}`)) + "." + b64([]byte(`{"sub":"x","exp":99999999999}`)) + ".",
		b64([]byte(`{"alg":"HS256"}`)) + "." + b64([]byte(`not json`)) + "." + b64(rnd),
		strings.Repeat("a", MaxTokenLen+1),
	} {
		_, err := v.Verify(context.Background(), tok)
		wantCode(t, err, CodeInvalidToken)
	}
}

func TestJWTRefusesOtherKey(t *testing.T) {
	key, other := rsaKey(t), rsaKey(t)
	v := newVerifier(t, JWTConfig{PublicKeyPEM: publicPEM(t, key.Public())})
	if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodRS256, key, "", claims("a"))); err != nil {
		t.Fatalf("own key refused: %v", err)
	}
	_, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodRS256, other, "", claims("a")))
	wantCode(t, err, CodeInvalidToken)
	// Same key, but an algorithm other than the one derived from the key type.
	_, err = v.Verify(context.Background(), sign(t, jwt.SigningMethodRS512, key, "", claims("a")))
	wantCode(t, err, CodeInvalidToken)
	_, err = v.Verify(context.Background(), sign(t, jwt.SigningMethodPS256, key, "", claims("a")))
	wantCode(t, err, CodeInvalidToken)
}

func TestJWTPEMKeys(t *testing.T) {
	rk, ek, ecK := rsaKey(t), edKey(t), ecKey(t)
	tests := []struct {
		name   string
		pub    any
		method jwt.SigningMethod
		priv   any
	}{
		{"rsa", rk.Public(), jwt.SigningMethodRS256, rk},
		{"ed25519", ek.Public(), jwt.SigningMethodEdDSA, ek},
		{"ecdsa", ecK.Public(), jwt.SigningMethodES256, ecK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, JWTConfig{PublicKeyPEM: publicPEM(t, tc.pub)})
			c := claims("svc-" + tc.name)
			c["roles"] = []any{"approver"}
			p, err := v.Verify(context.Background(), sign(t, tc.method, tc.priv, "", c))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p.Subject != "svc-"+tc.name || p.Method != MethodJWT || !slices.Equal(p.Roles, []string{"approver"}) {
				t.Fatalf("principal = %+v", p)
			}
			// An HS256 token keyed with the PEM bytes is refused for every key type.
			_, err = v.Verify(context.Background(), sign(t, jwt.SigningMethodHS256, publicPEM(t, tc.pub), "", c))
			wantCode(t, err, CodeInvalidToken)
		})
	}
}

func TestJWTRolesAndRepos(t *testing.T) {
	secret := []byte(testSecret)
	ctx := context.Background()

	t.Run("roles claim, repos claim", func(t *testing.T) {
		v := newVerifier(t, JWTConfig{HS256Secret: secret, DefaultRepos: []string{"default/*"}})
		c := claims("alice")
		c["roles"] = []any{"developer", "superuser", "admin", "developer", 7}
		c["repos"] = []any{"acme/*", "other/x"}
		p, err := v.Verify(ctx, sign(t, jwt.SigningMethodHS256, secret, "", c))
		if err != nil {
			t.Fatal(err)
		}
		if p.Subject != "alice" || p.Method != MethodJWT {
			t.Fatalf("principal = %+v", p)
		}
		if !slices.Equal(p.Roles, []string{"developer", "admin"}) {
			t.Fatalf("roles = %v, want [developer admin] (unknown roles dropped)", p.Roles)
		}
		if !slices.Equal(p.Repos, []string{"acme/*", "other/x"}) {
			t.Fatalf("repos = %v", p.Repos)
		}
		if !p.CanAccessRepo("acme/api") || p.CanAccessRepo("default/x") {
			t.Fatalf("repo access wrong for %v", p.Repos)
		}
	})

	t.Run("realm_access.roles, default repos", func(t *testing.T) {
		v := newVerifier(t, JWTConfig{HS256Secret: secret, RolesClaim: "realm_access.roles", DefaultRepos: []string{"default/*"}})
		c := claims("bob")
		c["realm_access"] = map[string]any{"roles": []any{"approver", "offline_access"}}
		c["roles"] = []any{"admin"} // must be ignored: not the configured path
		p, err := v.Verify(ctx, sign(t, jwt.SigningMethodHS256, secret, "", c))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(p.Roles, []string{"approver"}) {
			t.Fatalf("roles = %v, want [approver]", p.Roles)
		}
		if !slices.Equal(p.Repos, []string{"default/*"}) {
			t.Fatalf("repos = %v, want DefaultRepos", p.Repos)
		}
	})

	t.Run("string claims and custom repos path", func(t *testing.T) {
		v := newVerifier(t, JWTConfig{HS256Secret: secret, RolesClaim: "https://remediator.dev/roles", ReposClaim: "ext.repos"})
		c := claims("carol")
		c["https://remediator.dev/roles"] = "developer approver,bogus"
		c["ext"] = map[string]any{"repos": "acme/api, acme/web"}
		p, err := v.Verify(ctx, sign(t, jwt.SigningMethodHS256, secret, "", c))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(p.Roles, []string{"developer", "approver"}) || !slices.Equal(p.Repos, []string{"acme/api", "acme/web"}) {
			t.Fatalf("principal = %+v", p)
		}
	})

	t.Run("no roles, no repos, no defaults", func(t *testing.T) {
		v := newVerifier(t, JWTConfig{HS256Secret: secret})
		p, err := v.Verify(ctx, sign(t, jwt.SigningMethodHS256, secret, "", claims("dave")))
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Roles) != 0 || len(p.Repos) != 0 || p.CanAccessRepo("acme/api") {
			t.Fatalf("principal = %+v, want no roles and no repos", p)
		}
	})
}
