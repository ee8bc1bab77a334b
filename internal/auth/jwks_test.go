package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"slices"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// keyPair is a signing key for one JWS algorithm.
type keyPair struct {
	alg    jwkset.ALG
	method jwt.SigningMethod
	priv   crypto.Signer
}

func keyPairs(t *testing.T) map[string]func() keyPair {
	return map[string]func() keyPair{
		"RS256": func() keyPair { return keyPair{jwkset.AlgRS256, jwt.SigningMethodRS256, rsaKey(t)} },
		"ES256": func() keyPair { return keyPair{jwkset.AlgES256, jwt.SigningMethodES256, ecKey(t)} },
		"EdDSA": func() keyPair { return keyPair{jwkset.AlgEdDSA, jwt.SigningMethodEdDSA, edKey(t)} },
	}
}

func TestJWKSKeyRotation(t *testing.T) {
	for name, gen := range keyPairs(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			k1, k2 := gen(), gen()
			srv := newJWKSServer(t)
			srv.add(t, "kid1", k1.alg, k1.priv.Public())

			v := newVerifier(t, JWTConfig{
				JWKSURL:                   srv.URL,
				RefreshInterval:           100 * time.Millisecond,
				UnknownKIDRefreshInterval: 20 * time.Millisecond,
			})
			c := claims("rotor")
			c["roles"] = []any{"developer"}
			tok1 := sign(t, k1.method, k1.priv, "kid1", c)
			tok2 := sign(t, k2.method, k2.priv, "kid2", c)

			p, err := v.Verify(ctx, tok1)
			if err != nil {
				t.Fatalf("kid1 token refused: %v", err)
			}
			if p.Subject != "rotor" || !slices.Equal(p.Roles, []string{"developer"}) {
				t.Fatalf("principal = %+v", p)
			}
			_, err = v.Verify(ctx, tok2)
			wantCode(t, err, CodeInvalidToken) // kid2 not published yet

			srv.add(t, "kid2", k2.alg, k2.priv.Public())
			eventually(t, "kid2 token accepted", func() bool {
				_, err := v.Verify(ctx, tok2)
				return err == nil
			})

			srv.remove("kid1")
			eventually(t, "kid1 token refused after removal", func() bool {
				_, err := v.Verify(ctx, tok1)
				if err != nil {
					wantCode(t, err, CodeInvalidToken)
				}
				return err != nil
			})
			if _, err := v.Verify(ctx, tok2); err != nil {
				t.Fatalf("kid2 token refused after kid1 removal: %v", err)
			}
		})
	}
}

// TestJWKSUnknownKIDRefresh checks that an unknown kid triggers a refresh
// (so a rotated-in key works before the periodic refresh), and that such
// refreshes are rate limited and then fail fast instead of blocking.
func TestJWKSUnknownKIDRefresh(t *testing.T) {
	ctx := context.Background()
	gen := keyPairs(t)
	k1, k2, stranger := gen["ES256"](), gen["EdDSA"](), gen["ES256"]()
	srv := newJWKSServer(t)
	srv.add(t, "kid1", k1.alg, k1.priv.Public())
	v := newVerifier(t, JWTConfig{
		JWKSURL:                   srv.URL,
		RefreshInterval:           time.Hour, // only unknown kids refresh in this test
		UnknownKIDRefreshInterval: time.Hour, // one unknown-kid refresh, then none
	})
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("fetches after start = %d, want 1", n)
	}
	if _, err := v.Verify(ctx, sign(t, k1.method, k1.priv, "kid1", claims("a"))); err != nil {
		t.Fatalf("kid1: %v", err)
	}

	srv.add(t, "kid2", k2.alg, k2.priv.Public())
	if _, err := v.Verify(ctx, sign(t, k2.method, k2.priv, "kid2", claims("a"))); err != nil {
		t.Fatalf("kid2 not picked up by the unknown-kid refresh: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}

	start := time.Now()
	for range 5 {
		_, err := v.Verify(ctx, sign(t, stranger.method, stranger.priv, "nope", claims("a")))
		wantCode(t, err, CodeInvalidToken)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d after rate-limited unknown kids, want 2", n)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("rate-limited unknown kids took %v, want fast failure", d)
	}
}

func TestJWKSRefusals(t *testing.T) {
	ctx := context.Background()
	rk, other := rsaKey(t), rsaKey(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv := newJWKSServer(t)
	srv.add(t, "kid1", jwkset.AlgRS256, rk.Public())
	srv.add(t, "p384", "", p384.Public()) // usable key type, but ES384 is not a JWKS algorithm here
	v := newVerifier(t, JWTConfig{JWKSURL: srv.URL, UnknownKIDRefreshInterval: 20 * time.Millisecond})

	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, rk, "kid1", claims("a"))); err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
	// A token without kid is tried against the keys that fit its algorithm.
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, rk, "", claims("a"))); err != nil {
		t.Fatalf("valid token without kid refused: %v", err)
	}
	for name, tok := range map[string]string{
		"unknown kid":         sign(t, jwt.SigningMethodRS256, other, "kid-unknown", claims("a")),
		"other key, same kid": sign(t, jwt.SigningMethodRS256, other, "kid1", claims("a")),
		"other key, no kid":   sign(t, jwt.SigningMethodRS256, other, "", claims("a")),
		"HS256 (no secret)":   sign(t, jwt.SigningMethodHS256, publicPEM(t, rk.Public()), "kid1", claims("a")),
		"alg mismatch":        sign(t, jwt.SigningMethodPS256, rk, "kid1", claims("a")),
		"missing sub":         sign(t, jwt.SigningMethodRS256, rk, "kid1", claims("")),
		"ES384 not allowed":   sign(t, jwt.SigningMethodES384, p384, "p384", claims("a")),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(ctx, tok)
			wantCode(t, err, CodeInvalidToken)
		})
	}
}

func TestJWKSStopsWithContext(t *testing.T) {
	ek := edKey(t)
	srv := newJWKSServer(t)
	srv.add(t, "kid1", jwkset.AlgEdDSA, ek.Public())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := NewJWTVerifier(ctx, JWTConfig{JWKSURL: srv.URL, RefreshInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "background refreshes", func() bool { return srv.fetches.Load() >= 3 })
	cancel()
	time.Sleep(100 * time.Millisecond) // let an in-flight refresh finish
	n := srv.fetches.Load()
	time.Sleep(200 * time.Millisecond)
	if m := srv.fetches.Load(); m != n {
		t.Fatalf("refreshes continued after cancel: %d → %d", n, m)
	}
	// Cached keys keep working.
	if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodEdDSA, ek, "kid1", claims("a"))); err != nil {
		t.Fatalf("Verify after cancel: %v", err)
	}
	v.Close() // idempotent after cancel
}
