package console

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"remediator/internal/auth"
)

// MethodOIDC and MethodDev name how a console user signed in.
const (
	MethodOIDC = "oidc"
	MethodDev  = "dev"
)

// preAuthTTL bounds a sign-in in progress (the form, the round trip to the
// identity provider).
const preAuthTTL = 15 * time.Minute

// OIDC configures sign-in with an OpenID Connect provider: authorization
// code flow with PKCE (S256), state and nonce. Roles and repositories come
// from the ID token's claims, mapped exactly as the API maps bearer JWTs
// (auth.ClaimsPrincipal with REMEDIATOR_JWT_ROLES_CLAIM/REPOS_CLAIM).
type OIDC struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is this console's /ui/oidc/callback as the provider knows it.
	RedirectURL  string
	RolesClaim   string
	ReposClaim   string
	DefaultRepos []string
	// Scopes requested besides openid (default profile, email).
	Scopes []string
	// HTTPClient talks to the provider (default: 10 s timeout).
	HTTPClient *http.Client
}

type oidcClient struct {
	cfg OIDC

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	oauth    *oauth2.Config
}

func newOIDCClient(cfg OIDC) (*oidcClient, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, errors.New("console: OIDC needs the issuer, client id and redirect URL")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{"profile", "email"}
	}
	return &oidcClient{cfg: cfg}, nil
}

func (o *oidcClient) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, o.cfg.HTTPClient)
}

// config discovers the provider on first use (and again after a failure).
func (o *oidcClient) config(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.oauth != nil {
		return o.oauth, o.verifier, nil
	}
	p, err := oidc.NewProvider(o.ctx(ctx), o.cfg.Issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("OIDC discovery: %w", err)
	}
	o.verifier = p.Verifier(&oidc.Config{ClientID: o.cfg.ClientID})
	o.oauth = &oauth2.Config{
		ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, RedirectURL: o.cfg.RedirectURL,
		Endpoint: p.Endpoint(), Scopes: append([]string{oidc.ScopeOpenID}, o.cfg.Scopes...),
	}
	return o.oauth, o.verifier, nil
}

type loginPage struct {
	base
	Next     string
	DevUsers []auth.Principal
	OIDC     bool
	Error    string
}

// loginPage offers the sign-in methods: the dev users (`remediator dev`
// only) and OpenID Connect.
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	s, ok := c.loadSession(r)
	if ok && s.Principal.Subject != "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	c.showLogin(w, r, http.StatusOK, next, "")
}

func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, status int, next, msg string) {
	s, ok := c.loadSession(r)
	if !ok || s.State != "" {
		var err error
		if s, err = c.startSession(w, r, Session{}, preAuthTTL); err != nil {
			c.opts.Logger.ErrorContext(r.Context(), "console: storing a session failed", "error", err)
			c.renderError(w, r, http.StatusServiceUnavailable, "Unavailable", "Sign-in is unavailable right now.")
			return
		}
	}
	page := loginPage{base: base{Title: "Sign in", CSRF: s.CSRF}, Next: next, DevUsers: c.opts.DevUsers, OIDC: c.oidc != nil, Error: msg}
	c.render(w, status, "login", page)
}

// devLogin signs in as one of the dev users; it exists only when the
// console was given dev users (`remediator dev`).
func (c *Console) devLogin(w http.ResponseWriter, r *http.Request) {
	if len(c.opts.DevUsers) == 0 {
		c.renderError(w, r, http.StatusNotFound, "Not found", "There is no such page.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		c.renderError(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	s, ok := c.loadSession(r)
	if !ok || !s.checkCSRF(r.PostForm.Get("csrf_token")) {
		c.renderError(w, r, http.StatusForbidden, "Form expired", "The sign-in form's security token is missing or wrong. Reload the page and try again.")
		return
	}
	i := slices.IndexFunc(c.opts.DevUsers, func(p auth.Principal) bool { return p.Subject == r.PostForm.Get("user") })
	if i < 0 {
		c.showLogin(w, r, http.StatusBadRequest, next, "Choose one of the dev users.")
		return
	}
	p := c.opts.DevUsers[i]
	p.Method = MethodDev
	c.signIn(w, r, p, next)
}

// signIn replaces the request's session with a signed-in one.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request, p auth.Principal, next string) {
	if _, err := c.startSession(w, r, Session{Principal: p}, c.opts.SessionTTL); err != nil {
		c.opts.Logger.ErrorContext(r.Context(), "console: storing a session failed", "error", err)
		c.renderError(w, r, http.StatusServiceUnavailable, "Unavailable", "Sign-in is unavailable right now.")
		return
	}
	c.opts.Logger.InfoContext(r.Context(), "console: signed in", "principal", p.Subject, "method", p.Method)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	c.endSession(w, r)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// oidcStart sends the browser to the provider with a fresh state, nonce
// and PKCE verifier, kept in a pre-sign-in session.
func (c *Console) oidcStart(w http.ResponseWriter, r *http.Request) {
	if c.oidc == nil {
		c.renderError(w, r, http.StatusNotFound, "Not found", "OpenID Connect sign-in is not configured.")
		return
	}
	oc, _, err := c.oidc.config(r.Context())
	if err != nil {
		c.opts.Logger.WarnContext(r.Context(), "console: OIDC provider unavailable", "error", err)
		c.renderError(w, r, http.StatusServiceUnavailable, "Unavailable", "The identity provider did not answer. Try again in a moment.")
		return
	}
	s := Session{State: randomToken(), Verifier: oauth2.GenerateVerifier(), Nonce: randomToken(), Next: safeNext(r.URL.Query().Get("next"))}
	if s, err = c.startSession(w, r, s, preAuthTTL); err != nil {
		c.opts.Logger.ErrorContext(r.Context(), "console: storing a session failed", "error", err)
		c.renderError(w, r, http.StatusServiceUnavailable, "Unavailable", "Sign-in is unavailable right now.")
		return
	}
	http.Redirect(w, r, oc.AuthCodeURL(s.State, oauth2.S256ChallengeOption(s.Verifier), oidc.Nonce(s.Nonce)), http.StatusFound)
}

// oidcCallback checks the state, redeems the code with the PKCE verifier,
// verifies the ID token (signature, issuer, audience, expiry, nonce) and
// signs the person in with the principal its claims map to.
func (c *Console) oidcCallback(w http.ResponseWriter, r *http.Request) {
	if c.oidc == nil {
		c.renderError(w, r, http.StatusNotFound, "Not found", "OpenID Connect sign-in is not configured.")
		return
	}
	q := r.URL.Query()
	s, ok := c.loadSession(r)
	if !ok || s.State == "" || subtle.ConstantTimeCompare([]byte(s.State), []byte(q.Get("state"))) != 1 {
		c.renderError(w, r, http.StatusBadRequest, "Sign-in failed", "This sign-in is not the one this browser started (or it took too long). Start again.")
		return
	}
	// The state is single use.
	_ = c.opts.Sessions.Delete(r.Context(), s.id)
	if e := q.Get("error"); e != "" {
		c.opts.Logger.InfoContext(r.Context(), "console: the identity provider refused the sign-in", "error", e)
		c.renderError(w, r, http.StatusForbidden, "Sign-in refused", "The identity provider refused the sign-in.")
		return
	}
	p, err := c.redeem(r.Context(), q.Get("code"), s)
	if err != nil {
		c.opts.Logger.WarnContext(r.Context(), "console: OIDC sign-in failed", "error", err)
		c.renderError(w, r, http.StatusForbidden, "Sign-in failed", "The identity provider's answer could not be verified. Start again.")
		return
	}
	c.signIn(w, r, p, safeNext(s.Next))
}

func (c *Console) redeem(ctx context.Context, code string, s Session) (auth.Principal, error) {
	if code == "" {
		return auth.Principal{}, errors.New("no code")
	}
	oc, verifier, err := c.oidc.config(ctx)
	if err != nil {
		return auth.Principal{}, err
	}
	tok, err := oc.Exchange(c.oidc.ctx(ctx), code, oauth2.VerifierOption(s.Verifier))
	if err != nil {
		return auth.Principal{}, fmt.Errorf("token exchange: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return auth.Principal{}, errors.New("the token response has no id_token")
	}
	idt, err := verifier.Verify(c.oidc.ctx(ctx), raw)
	if err != nil {
		return auth.Principal{}, err
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(s.Nonce)) != 1 {
		return auth.Principal{}, errors.New("nonce mismatch")
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return auth.Principal{}, err
	}
	p := auth.ClaimsPrincipal(claims, c.oidc.cfg.RolesClaim, c.oidc.cfg.ReposClaim, c.oidc.cfg.DefaultRepos)
	p.Subject, p.Method = idt.Subject, MethodOIDC
	if !c.opts.ValidSubject(p.Subject) {
		return auth.Principal{}, fmt.Errorf("unusable subject %q", p.Subject)
	}
	return p, nil
}
