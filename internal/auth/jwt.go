package auth

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/bmatcuk/doublestar/v4"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// Defaults applied by NewJWTVerifier to zero JWTConfig fields.
const (
	DefaultRolesClaim                = "roles"
	DefaultReposClaim                = "repos"
	DefaultLeeway                    = 30 * time.Second
	DefaultRefreshInterval           = 5 * time.Minute
	DefaultUnknownKIDRefreshInterval = time.Minute
	// DefaultJWKSTimeout bounds each JWKS fetch (and the default HTTP client).
	DefaultJWKSTimeout = 10 * time.Second
)

// MinHS256SecretLen is the shortest accepted HS256 secret: HMAC-SHA256 is only
// as strong as its key, and a short one can be brute-forced offline from any
// token.
const MinHS256SecretLen = 32

// MaxTokenLen bounds the size of a bearer token that is parsed at all, so an
// oversized header cannot make the server base64- and JSON-decode megabytes.
const MaxTokenLen = 32 << 10

// minRSABits is the smallest RSA modulus accepted for signature verification.
const minRSABits = 2048

// jwksAlgs returns the algorithms accepted for keys coming from a JWKS. A key
// is only ever used with the algorithm matching its type (see keyFitsAlg).
func jwksAlgs() []string { return []string{"RS256", "ES256", "EdDSA"} }

// JWTConfig configures a JWTVerifier. At least one key source (HS256Secret,
// JWKSURL or PublicKeyPEM) is required; JWKSURL and PublicKeyPEM are mutually
// exclusive. Zero values of the other fields select the documented defaults.
type JWTConfig struct {
	HS256Secret     []byte        // HS256 (must be >= 32 bytes when set)
	JWKSURL         string        // RS256/ES256/EdDSA keys from a JWKS (cached, refreshed periodically, unknown kid → rate-limited refresh)
	PublicKeyPEM    []byte        // or one PEM public key (RSA, ECDSA or Ed25519); alg chosen from the key type
	Issuer          string        // required `iss` when set
	Audience        string        // required `aud` when set
	RolesClaim      string        // dotted path, default "roles" (e.g. "realm_access.roles"); value is a []string or a space/comma separated string
	ReposClaim      string        // dotted path, default "repos"
	DefaultRepos    []string      // used when the token has no repos claim
	Leeway          time.Duration // clock skew allowed for exp/nbf/iat, default 30s
	RefreshInterval time.Duration // JWKS background refresh, default 5m
	HTTPClient      *http.Client  // for the JWKS fetch; default one with a 10s timeout

	// UnknownKIDRefreshInterval is the minimum time between JWKS refreshes
	// triggered by a token whose kid is not in the cached set (keyfunc's
	// RefreshUnknownKID rate limiter, burst 1). It lets a freshly rotated key
	// be picked up at once while stopping forged kids from hammering the
	// identity provider. Default 1m.
	UnknownKIDRefreshInterval time.Duration
}

// JWTVerifier verifies bearer JWTs against the configured key sources and
// maps their claims to a Principal. It is safe for concurrent use.
type JWTVerifier struct {
	parser       *jwt.Parser
	secret       []byte           // HS256, nil when not configured
	pemKey       crypto.PublicKey // nil when not configured
	pemAlg       string
	jwks         keyfunc.Keyfunc // nil when not configured
	stop         context.CancelFunc
	rolesClaim   string
	reposClaim   string
	defaultRepos []string
}

// NewJWTVerifier fails if no key source is configured, or if more than one
// asymmetric source is, or the secret is too short.
//
// With a JWKS URL it fetches the set once at start (error if unreachable or if
// it holds no usable key) and keeps it fresh in the background until ctx ends
// or Close is called.
func NewJWTVerifier(ctx context.Context, cfg JWTConfig) (*JWTVerifier, error) {
	if len(cfg.HS256Secret) == 0 && cfg.JWKSURL == "" && len(cfg.PublicKeyPEM) == 0 {
		return nil, errors.New("auth: no JWT key source configured (need HS256 secret, JWKS URL or PEM public key)")
	}
	if cfg.JWKSURL != "" && len(cfg.PublicKeyPEM) > 0 {
		return nil, errors.New("auth: JWKS URL and PEM public key are mutually exclusive")
	}
	if len(cfg.HS256Secret) > 0 && len(cfg.HS256Secret) < MinHS256SecretLen {
		return nil, fmt.Errorf("auth: HS256 secret is %d bytes, need at least %d", len(cfg.HS256Secret), MinHS256SecretLen)
	}
	if cfg.Leeway < 0 || cfg.RefreshInterval < 0 || cfg.UnknownKIDRefreshInterval < 0 {
		return nil, errors.New("auth: negative durations are not allowed in JWTConfig")
	}
	for _, g := range cfg.DefaultRepos {
		if !doublestar.ValidatePattern(g) {
			return nil, fmt.Errorf("auth: invalid default repo glob %q", g)
		}
	}

	v := &JWTVerifier{
		rolesClaim:   cmp.Or(cfg.RolesClaim, DefaultRolesClaim),
		reposClaim:   cmp.Or(cfg.ReposClaim, DefaultReposClaim),
		defaultRepos: slices.Clone(cfg.DefaultRepos),
	}
	var algs []string
	if len(cfg.HS256Secret) > 0 {
		v.secret = slices.Clone(cfg.HS256Secret)
		algs = append(algs, jwt.SigningMethodHS256.Alg())
	}
	if len(cfg.PublicKeyPEM) > 0 {
		key, alg, err := parsePublicKeyPEM(cfg.PublicKeyPEM)
		if err != nil {
			return nil, err
		}
		v.pemKey, v.pemAlg = key, alg
		algs = append(algs, alg)
	}
	if cfg.JWKSURL != "" {
		if err := v.startJWKS(ctx, cfg); err != nil {
			return nil, err
		}
		algs = append(algs, jwksAlgs()...)
	}

	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
		jwt.WithIssuedAt(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// startJWKS creates the keyfunc JWKS client: one blocking fetch now, then a
// refresh every RefreshInterval and on unknown kids (rate limited), all bound
// to a child of ctx that Close cancels.
func (v *JWTVerifier) startJWKS(ctx context.Context, cfg JWTConfig) error {
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: DefaultJWKSTimeout}
	}
	refresh := cfg.RefreshInterval
	if refresh == 0 {
		refresh = DefaultRefreshInterval
	}
	unknownKID := cfg.UnknownKIDRefreshInterval
	if unknownKID == 0 {
		unknownKID = DefaultUnknownKIDRefreshInterval
	}
	noErrorOnFirstFetch := false

	kctx, cancel := context.WithCancel(ctx)
	kf, err := keyfunc.NewDefaultOverrideCtx(kctx, []string{cfg.JWKSURL}, keyfunc.Override{
		Client:                    client,
		HTTPTimeout:               DefaultJWKSTimeout,
		NoErrorReturnFirstHTTPReq: &noErrorOnFirstFetch,
		// Bounds both the wait for the limiter and the refresh it triggers;
		// when the next refresh slot is further away than this, an unknown
		// kid fails at once instead of blocking the request.
		RateLimitWaitMax:  DefaultJWKSTimeout,
		RefreshInterval:   refresh,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(unknownKID), 1),
	})
	if err != nil {
		cancel()
		return fmt.Errorf("auth: JWKS %s: %w", cfg.JWKSURL, err)
	}
	keys, err := kf.Storage().KeyReadAll(kctx)
	if err != nil {
		cancel()
		return fmt.Errorf("auth: JWKS %s: %w", cfg.JWKSURL, err)
	}
	if len(keys) == 0 {
		cancel()
		return fmt.Errorf("auth: JWKS %s holds no usable keys", cfg.JWKSURL)
	}
	v.jwks, v.stop = kf, cancel
	return nil
}

// Close stops the periodic background JWKS refresh. It is optional
// (cancelling the context given to NewJWTVerifier does the same) and
// idempotent. Verification keeps working with the last fetched keys; a token
// with an unknown kid still triggers a (rate-limited) refresh within that
// request's context.
func (v *JWTVerifier) Close() {
	if v != nil && v.stop != nil {
		v.stop()
	}
}

// Verify parses and validates token and returns the principal it describes.
//
// Only the algorithms of the configured key sources are accepted (HS256 only
// with HS256Secret, and the secret is never used for another algorithm nor an
// asymmetric key for HS256, which rules out algorithm confusion; `alg=none`
// always fails). `exp` and `sub` are required; `nbf` and `iat` are checked
// with the leeway; `iss` and `aud` when configured. Roles outside
// developer/approver/admin are dropped. Failures are *Error with Code
// "token_expired" (only for a correctly signed token) or "invalid_token".
func (v *JWTVerifier) Verify(ctx context.Context, token string) (Principal, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	switch {
	case token == "":
		return Principal{}, newError(CodeInvalidToken, errors.New("empty token"))
	case len(token) > MaxTokenLen:
		return Principal{}, newError(CodeInvalidToken, fmt.Errorf("token is %d bytes, limit %d", len(token), MaxTokenLen))
	}
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.keyFunc(ctx)); err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Principal{}, newError(CodeTokenExpired, err)
		}
		return Principal{}, newError(CodeInvalidToken, err)
	}
	sub, err := claims.GetSubject()
	if err != nil {
		return Principal{}, newError(CodeInvalidToken, err)
	}
	if strings.TrimSpace(sub) == "" {
		return Principal{}, newError(CodeInvalidToken, errors.New("token has no sub claim"))
	}

	p := ClaimsPrincipal(claims, v.rolesClaim, v.reposClaim, v.defaultRepos)
	p.Subject, p.Method = sub, MethodJWT
	return p, nil
}

// ClaimsPrincipal maps verified claims to roles and repositories exactly
// as bearer JWTs are mapped (rolesClaim and reposClaim are dotted paths;
// unknown roles and invalid globs are dropped; defaultRepos apply when the
// repos claim is absent). Subject and Method are left to the caller; the
// approver console's OpenID Connect sign-in uses it for ID tokens.
func ClaimsPrincipal(claims map[string]any, rolesClaim, reposClaim string, defaultRepos []string) Principal {
	var p Principal
	if raw, ok := lookupClaim(claims, cmp.Or(rolesClaim, DefaultRolesClaim)); ok {
		p.Roles = knownRoles(claimStrings(raw))
	}
	if raw, ok := lookupClaim(claims, cmp.Or(reposClaim, DefaultReposClaim)); ok {
		for _, g := range claimStrings(raw) {
			if doublestar.ValidatePattern(g) && !slices.Contains(p.Repos, g) {
				p.Repos = append(p.Repos, g)
			}
		}
	} else {
		p.Repos = slices.Clone(defaultRepos)
	}
	return p
}

// keyFunc selects the verification key strictly by the token's algorithm, so
// that a key is never used with an algorithm of another family.
func (v *JWTVerifier) keyFunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		alg := t.Method.Alg()
		if alg == jwt.SigningMethodHS256.Alg() {
			if v.secret == nil {
				return nil, errors.New("HS256 is not configured")
			}
			return v.secret, nil
		}
		switch {
		case v.pemKey != nil:
			if alg != v.pemAlg {
				return nil, fmt.Errorf("algorithm %q does not match the configured public key (%s)", alg, v.pemAlg)
			}
			return v.pemKey, nil
		case v.jwks != nil:
			got, err := v.jwks.KeyfuncCtx(ctx)(t)
			if err != nil {
				return nil, err
			}
			if set, ok := got.(jwt.VerificationKeySet); ok { // token without kid
				var fit jwt.VerificationKeySet
				for _, k := range set.Keys {
					if keyFitsAlg(k, alg) {
						fit.Keys = append(fit.Keys, k)
					}
				}
				if len(fit.Keys) == 0 {
					return nil, fmt.Errorf("no JWKS key for algorithm %q", alg)
				}
				return fit, nil
			}
			if !keyFitsAlg(got, alg) {
				return nil, fmt.Errorf("JWKS key of type %T cannot verify %q", got, alg)
			}
			return got, nil
		}
		return nil, fmt.Errorf("no key for algorithm %q", alg)
	}
}

// keyFitsAlg reports whether key is an asymmetric public key of the type and
// size that alg requires.
func keyFitsAlg(key any, alg string) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") && k.N != nil && k.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		want, ok := ecAlg(k.Curve)
		return ok && want == alg
	case ed25519.PublicKey:
		return alg == "EdDSA" && len(k) == ed25519.PublicKeySize
	}
	return false
}

// ecAlg maps an ECDSA curve to its JWS algorithm.
func ecAlg(c elliptic.Curve) (string, bool) {
	switch c {
	case elliptic.P256():
		return "ES256", true
	case elliptic.P384():
		return "ES384", true
	case elliptic.P521():
		return "ES512", true
	}
	return "", false
}

// parsePublicKeyPEM reads exactly one PEM public key ("PUBLIC KEY",
// "RSA PUBLIC KEY" or a "CERTIFICATE") and returns it with its algorithm.
func parsePublicKeyPEM(data []byte) (crypto.PublicKey, string, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, "", errors.New("auth: JWT public key: no PEM block found")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, "", errors.New("auth: JWT public key: expected exactly one PEM block")
	}
	var (
		pub any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		return nil, "", fmt.Errorf("auth: JWT public key: unsupported PEM block %q (want PUBLIC KEY)", block.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("auth: JWT public key: %w", err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, "", fmt.Errorf("auth: JWT public key: RSA key has %d bits, need at least %d", k.N.BitLen(), minRSABits)
		}
		return k, "RS256", nil
	case *ecdsa.PublicKey:
		alg, ok := ecAlg(k.Curve)
		if !ok {
			return nil, "", errors.New("auth: JWT public key: unsupported ECDSA curve")
		}
		return k, alg, nil
	case ed25519.PublicKey:
		return k, "EdDSA", nil
	}
	return nil, "", fmt.Errorf("auth: JWT public key: unsupported key type %T", pub)
}

// lookupClaim finds a claim by its literal name first (claim names such as
// "https://example.com/roles" contain dots) and then as a dotted path
// through nested objects (e.g. Keycloak's "realm_access.roles").
func lookupClaim(claims map[string]any, path string) (any, bool) {
	if v, ok := claims[path]; ok {
		return v, true
	}
	var cur any = claims
	for part := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// claimStrings turns a claim value into strings: an array keeps its string
// elements, a string is split on spaces and commas; anything else is empty.
func claimStrings(v any) []string {
	var out []string
	add := func(s string) {
		for f := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
			out = append(out, f)
		}
	}
	switch t := v.(type) {
	case string:
		add(t)
	case []string:
		for _, s := range t {
			add(s)
		}
	case []any:
		for _, e := range t {
			if s, ok := e.(string); ok {
				add(s)
			}
		}
	}
	return out
}
