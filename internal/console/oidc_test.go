package console

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fakeProvider is an OpenID Connect provider speaking the real wire
// format: discovery document, JWKS, and a token endpoint that checks the
// client's credentials, the redirect URI and the PKCE verifier.
type fakeProvider struct {
	t      *testing.T
	srv    *httptest.Server
	key    *rsa.PrivateKey
	signer *rsa.PrivateKey // signs ID tokens (key, unless a test swaps it)

	mu    sync.Mutex
	codes map[string]grant
	// nonce, when set, replaces the nonce the sign-in asked for.
	nonce string
}

type grant struct {
	challenge, nonce, redirect string
	claims                     map[string]any
}

const (
	clientID     = "remediator-console"
	clientSecret = "console-secret"
)

func newFakeProvider(t *testing.T) *fakeProvider {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &fakeProvider{t: t, key: key, signer: key, codes: map[string]grant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"issuer": p.srv.URL, "authorization_endpoint": p.srv.URL + "/authorize", "token_endpoint": p.srv.URL + "/token",
			"jwks_uri": p.srv.URL + "/jwks", "response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"}, "code_challenge_methods_supported": []string{"S256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
			"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	mux.HandleFunc("POST /token", p.token)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// authorize plays the provider's authorization endpoint for a person who
// signs in: it checks the request and returns the callback URL.
func (p *fakeProvider) authorize(authURL string, claims map[string]any) string {
	p.t.Helper()
	u, err := url.Parse(authURL)
	if err != nil || !strings.HasPrefix(authURL, p.srv.URL+"/authorize?") {
		p.t.Fatalf("not sent to the provider: %q", authURL)
	}
	q := u.Query()
	for k, want := range map[string]string{"response_type": "code", "client_id": clientID, "code_challenge_method": "S256", "redirect_uri": "http://127.0.0.1:8080/ui/oidc/callback"} {
		if q.Get(k) != want {
			p.t.Fatalf("authorize %s = %q, want %q", k, q.Get(k), want)
		}
	}
	if !strings.Contains(" "+q.Get("scope")+" ", " openid ") || q.Get("state") == "" || q.Get("nonce") == "" || len(q.Get("code_challenge")) != 43 {
		p.t.Fatalf("authorize request %v", q)
	}
	code := randomToken()
	p.mu.Lock()
	p.codes[code] = grant{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirect: q.Get("redirect_uri"), claims: claims}
	p.mu.Unlock()
	return "/ui/oidc/callback?" + url.Values{"code": {code}, "state": {q.Get("state")}}.Encode()
}

func (p *fakeProvider) token(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, e string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": e})
	}
	if err := r.ParseForm(); err != nil {
		fail(400, "invalid_request")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != clientID || secret != clientSecret {
		fail(401, "invalid_client")
		return
	}
	p.mu.Lock()
	g, ok := p.codes[r.PostForm.Get("code")]
	delete(p.codes, r.PostForm.Get("code"))
	nonce := p.nonce
	p.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if !ok || r.PostForm.Get("grant_type") != "authorization_code" || r.PostForm.Get("redirect_uri") != g.redirect ||
		base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		fail(400, "invalid_grant")
		return
	}
	if nonce == "" {
		nonce = g.nonce
	}
	now := time.Now()
	claims := jwt.MapClaims{"iss": p.srv.URL, "aud": clientID, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "nonce": nonce}
	for k, v := range g.claims {
		claims[k] = v
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = "k1"
	signed, err := tok.SignedString(p.signer)
	if err != nil {
		fail(500, "server_error")
		return
	}
	writeJSON(w, map[string]any{"access_token": randomToken(), "token_type": "Bearer", "expires_in": 300, "id_token": signed})
}

func oidcConsole(t *testing.T, p *fakeProvider) *Console {
	opts := testOptions(newFake())
	opts.DevUsers = nil
	opts.OIDC = &OIDC{Issuer: p.srv.URL, ClientID: clientID, ClientSecret: clientSecret, RedirectURL: "http://127.0.0.1:8080/ui/oidc/callback",
		RolesClaim: "realm_access.roles", ReposClaim: "https://example.com/repos"}
	return newConsole(t, opts)
}

var aliceClaims = map[string]any{
	"sub": "alice@example.com", "realm_access": map[string]any{"roles": []string{"approver", "wizard"}},
	"https://example.com/repos": []string{"teamA/*"},
}

// startOIDC follows the console to the provider and returns the
// authorization URL.
func startOIDC(t *testing.T, b *browser, next string) string {
	t.Helper()
	page := b.get("/ui/login?next=" + url.QueryEscape(next)).Body.String()
	if !strings.Contains(strings.ToLower(page), strings.ToLower(`href="/ui/oidc/start?next=`+url.QueryEscape(next))) {
		t.Fatalf("the sign-in page does not offer OIDC:\n%s", page)
	}
	rec := b.get("/ui/oidc/start?next=" + url.QueryEscape(next))
	if rec.Code != http.StatusFound {
		t.Fatalf("oidc start: %d %s", rec.Code, rec.Body)
	}
	return rec.Header().Get("Location")
}

func TestOIDCSignIn(t *testing.T) {
	p := newFakeProvider(t)
	b := newBrowser(t, oidcConsole(t, p))
	callback := p.authorize(startOIDC(t, b, "/ui/remediations/rem-a1"), aliceClaims)
	rec := b.get(callback)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/remediations/rem-a1" {
		t.Fatalf("callback: %d %q %s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	page := b.get("/ui/remediations/rem-a1")
	if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), "Signed in as <strong>alice@example.com</strong> (approver)") {
		t.Fatalf("after sign-in: %d %s", page.Code, page.Body)
	}
	// The repos claim scopes the session as it scopes the API's JWTs.
	if rec := b.get("/ui/remediations/rem-b1"); rec.Code != http.StatusNotFound {
		t.Errorf("another team's remediation: %d", rec.Code)
	}
	// The code and state are single use.
	if rec := b.get(callback); rec.Code != http.StatusBadRequest {
		t.Errorf("replayed callback: %d", rec.Code)
	}
}

func TestOIDCRefusals(t *testing.T) {
	p := newFakeProvider(t)
	c := oidcConsole(t, p)
	signedOut := func(b *browser) bool { return b.get("/ui/").Code == http.StatusSeeOther }

	// A callback with another state (a forged or cross-browser callback).
	b := newBrowser(t, c)
	cb := p.authorize(startOIDC(t, b, "/ui/"), aliceClaims)
	u, _ := url.Parse(cb)
	q := u.Query()
	q.Set("state", randomToken())
	if rec := b.get("/ui/oidc/callback?" + q.Encode()); rec.Code != http.StatusBadRequest || !signedOut(b) {
		t.Errorf("wrong state: %d", rec.Code)
	}
	// Another browser presenting a callback it did not start.
	b = newBrowser(t, c)
	cb = p.authorize(startOIDC(t, b, "/ui/"), aliceClaims)
	other := newBrowser(t, c)
	if rec := other.get(cb); rec.Code != http.StatusBadRequest || !signedOut(other) {
		t.Errorf("callback in another browser: %d", rec.Code)
	}
	// The provider says no.
	b = newBrowser(t, c)
	cb = p.authorize(startOIDC(t, b, "/ui/"), aliceClaims)
	u, _ = url.Parse(cb)
	q = u.Query()
	q.Del("code")
	q.Set("error", "access_denied")
	if rec := b.get("/ui/oidc/callback?" + q.Encode()); rec.Code != http.StatusForbidden || !signedOut(b) {
		t.Errorf("access_denied: %d", rec.Code)
	}
	// A nonce other than the one this sign-in asked for.
	p.nonce = "replayed-nonce"
	b = newBrowser(t, c)
	if rec := b.get(p.authorize(startOIDC(t, b, "/ui/"), aliceClaims)); rec.Code != http.StatusForbidden || !signedOut(b) {
		t.Errorf("wrong nonce: %d", rec.Code)
	}
	p.nonce = ""
	// An ID token signed by another key.
	other2, _ := rsa.GenerateKey(rand.Reader, 2048)
	p.signer = other2
	b = newBrowser(t, c)
	if rec := b.get(p.authorize(startOIDC(t, b, "/ui/"), aliceClaims)); rec.Code != http.StatusForbidden || !signedOut(b) {
		t.Errorf("foreign signature: %d", rec.Code)
	}
	p.signer = p.key
	// A wrong PKCE verifier: the provider refuses the code (the console
	// sends the verifier it kept; tamper with the kept one).
	b = newBrowser(t, c)
	cb = p.authorize(startOIDC(t, b, "/ui/"), aliceClaims)
	s, _, _ := c.opts.Sessions.Get(t.Context(), b.cookies[CookieName].Value)
	s.Verifier = randomToken()
	_ = c.opts.Sessions.Put(t.Context(), b.cookies[CookieName].Value, s)
	if rec := b.get(cb); rec.Code != http.StatusForbidden || !signedOut(b) {
		t.Errorf("wrong verifier: %d", rec.Code)
	}
	// Without a role the person signs in but sees nothing.
	b = newBrowser(t, c)
	rec := b.get(p.authorize(startOIDC(t, b, "/ui/"), map[string]any{"sub": "nobody", "https://example.com/repos": []string{"*"}}))
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("sign-in without roles: %d", rec.Code)
	}
	if rec := b.get("/ui/"); rec.Code != http.StatusForbidden {
		t.Errorf("pending list without a role: %d", rec.Code)
	}
}
