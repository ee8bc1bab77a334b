// Package github is the service's GitHub client: it resolves commits, fetches
// code archives and CI logs, and opens draft pull requests. Every step of
// opening a change is idempotent, because the activity calling it may be
// killed at any point and run again.
package github

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v88/github"
)

const (
	defaultAPIURL = "https://api.github.com/"
	userAgent     = "remediator"
	apiVersion    = "2022-11-28"
)

// Config says where GitHub is and how to authenticate: with a token, or as
// a GitHub App whose installation is looked up per repository.
type Config struct {
	// APIURL defaults to https://api.github.com/; GitHub Enterprise Server
	// is "https://ghe.example.com/api/v3/".
	APIURL string
	// Token is a PAT or an installation token.
	Token string
	// AppID and PrivateKeyPEM authenticate as a GitHub App instead.
	AppID         int64
	PrivateKeyPEM []byte
	// HTTPClient is the guarded client (dialer, timeouts, redirect policy)
	// that every request goes through; its Transport is wrapped, never
	// replaced.
	HTTPClient *http.Client
}

// Client is safe for concurrent use. In App mode it caches, per
// repository, the installation and its token (refreshed before expiry by
// ghinstallation), so a token is minted once, not per call.
type Client struct {
	// download fetches what GitHub redirects to (codeload, log storage):
	// the caller's client as given, so no credential can follow.
	download *http.Client
	// api is the caller's client with credentials added by its Transport.
	api        http.Client
	baseURL    string
	uploadURL  string
	enterprise bool

	token *gh.Client // token mode
	app   *appAuth   // App mode
}

type appAuth struct {
	id     int64
	key    *rsa.PrivateKey
	next   http.RoundTripper // headers over the caller's transport
	tokens string            // API base for ghinstallation, without the trailing slash
	jwt    *gh.Client        // authenticated as the App, to find installations

	mu            sync.Mutex
	installations map[string]int64     // "owner/repo" (lower case) → installation
	clients       map[int64]*gh.Client // installation → client holding its token
}

// New checks the configuration now rather than on the first call: a
// missing client, ambiguous credentials or an unparsable App key fail the
// process at start.
func New(cfg Config) (*Client, error) {
	if cfg.HTTPClient == nil {
		return nil, errors.New("github: Config.HTTPClient is required")
	}
	hasToken := cfg.Token != ""
	hasApp := cfg.AppID != 0 || len(cfg.PrivateKeyPEM) > 0
	switch {
	case hasToken && hasApp:
		return nil, errors.New("github: set either Token or AppID with PrivateKeyPEM, not both")
	case !hasToken && !hasApp:
		return nil, errors.New("github: set Token, or AppID with PrivateKeyPEM")
	case hasApp && (cfg.AppID <= 0 || len(cfg.PrivateKeyPEM) == 0):
		return nil, errors.New("github: a GitHub App needs both AppID and PrivateKeyPEM")
	}
	base, upload, enterprise, err := apiURLs(cfg.APIURL)
	if err != nil {
		return nil, err
	}
	c := &Client{download: cfg.HTTPClient, api: *cfg.HTTPClient, baseURL: base, uploadURL: upload, enterprise: enterprise}
	c.api.CheckRedirect = sameHost(cfg.HTTPClient.CheckRedirect)
	next := cfg.HTTPClient.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	if hasToken {
		c.token, err = c.newGitHub(&headers{next: next, token: cfg.Token})
		return c, err
	}
	key, err := parseKey(cfg.PrivateKeyPEM)
	if err != nil {
		return nil, err
	}
	c.app = &appAuth{
		id: cfg.AppID, key: key, next: &headers{next: next}, tokens: strings.TrimSuffix(base, "/"),
		installations: map[string]int64{}, clients: map[int64]*gh.Client{},
	}
	if c.app.jwt, err = c.newGitHub(c.app.appsTransport()); err != nil {
		return nil, err
	}
	return c, nil
}

// apiURLs normalises the API URL and derives the uploads URL the way
// GitHub lays them out (Enterprise Server: /api/v3/ and /api/uploads/).
func apiURLs(raw string) (base, upload string, enterprise bool, err error) {
	if raw == "" {
		raw = defaultAPIURL
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil {
		return "", "", false, errors.New("github: APIURL must be an absolute http(s) URL without credentials")
	}
	u.RawQuery, u.Fragment = "", ""
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	base = u.String()
	switch {
	case strings.HasSuffix(u.Path, "/api/v3/"):
		up := *u
		up.Path = strings.TrimSuffix(u.Path, "v3/") + "uploads/"
		return base, up.String(), true, nil
	case strings.EqualFold(u.Host, "api.github.com"):
		return base, "https://uploads.github.com/", false, nil
	}
	return base, base, false, nil
}

// parseKey accepts the PKCS#1 key GitHub hands out and PKCS#8 conversions
// of it. Errors never quote the key.
func parseKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("github: PrivateKeyPEM holds no PEM block")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("github: PrivateKeyPEM is not an RSA private key")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("github: PrivateKeyPEM is not an RSA private key")
	}
	return rk, nil
}

// newGitHub builds a go-github client over rt with the caller's timeouts.
// Redirect endpoints (archives, logs) go through go-github's typed errors
// (WithRateLimitRedirectionalEndpoints), so a 404 there is a 404 here.
func (c *Client) newGitHub(rt http.RoundTripper) (*gh.Client, error) {
	hc := c.api
	hc.Transport = rt
	opts := []gh.ClientOptionsFunc{gh.WithHTTPClient(&hc), gh.WithUserAgent(userAgent), gh.WithRateLimitRedirectionalEndpoints()}
	if c.enterprise {
		opts = append(opts, gh.WithEnterpriseURLs(c.baseURL, c.uploadURL))
	} else {
		opts = append(opts, gh.WithURLs(&c.baseURL, &c.uploadURL))
	}
	g, err := gh.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("github: %w", err)
	}
	return g, nil
}

// appsTransport signs requests as the App. Each installation gets its own,
// because ghinstallation writes to it while refreshing a token.
func (a *appAuth) appsTransport() *ghinstallation.AppsTransport {
	t := ghinstallation.NewAppsTransportFromPrivateKey(a.next, a.id, a.key)
	t.BaseURL = a.tokens
	return t
}

// forRepo returns the client to use for a repository: the token client, or
// the client of the App installation that covers it.
func (c *Client) forRepo(ctx context.Context, owner, repo string) (*gh.Client, error) {
	if c.app == nil {
		return c.token, nil
	}
	a := c.app
	key := strings.ToLower(owner + "/" + repo)
	a.mu.Lock()
	if g := a.clients[a.installations[key]]; g != nil {
		a.mu.Unlock()
		return g, nil
	}
	a.mu.Unlock()

	inst, _, err := a.jwt.Apps.GetRepositoryInstallation(ctx, owner, repo)
	if err != nil {
		return nil, wrap("find the App installation", err)
	}
	id := inst.GetID()
	if id == 0 {
		return nil, wrap("find the App installation", errors.New("GitHub answered without an installation id"))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.installations[key] = id
	if g := a.clients[id]; g != nil {
		return g, nil
	}
	it := ghinstallation.NewFromAppsTransport(a.appsTransport(), id)
	it.BaseURL = a.tokens
	g, err := c.newGitHub(it)
	if err != nil {
		return nil, err
	}
	a.clients[id] = g
	return g, nil
}

// forget drops what App mode learnt about a repository when minting its
// installation token was refused: the App may have been reinstalled, and
// the next attempt should look the installation up again.
func (c *Client) forget(owner, repo string, err error) {
	if c.app == nil || err == nil {
		return
	}
	var refresh *ghinstallation.HTTPError
	if !errors.As(err, &refresh) || refresh.Response == nil {
		return
	}
	switch refresh.Response.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
	default:
		return
	}
	a := c.app
	key := strings.ToLower(owner + "/" + repo)
	a.mu.Lock()
	defer a.mu.Unlock()
	if id, ok := a.installations[key]; ok {
		delete(a.clients, id)
		delete(a.installations, key)
	}
}

// headers identifies the service on every API request (GitHub asks for a
// User-Agent and pins behaviour to an API version) and, in token mode,
// authenticates it. The request is cloned, as the RoundTripper contract asks.
type headers struct {
	next  http.RoundTripper
	token string
}

func (h *headers) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("User-Agent", userAgent)
	r.Header.Set("X-GitHub-Api-Version", apiVersion)
	if h.token != "" {
		r.Header.Set("Authorization", "Bearer "+h.token)
	}
	return h.next.RoundTrip(r)
}

// sameHost keeps API redirects on the API host: the auth transports add
// credentials to every request, including redirected ones, so a redirect
// elsewhere would hand them over. The caller's own policy still applies.
func sameHost(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		first := via[0].URL
		if !strings.EqualFold(req.URL.Host, first.Host) || req.URL.Scheme != first.Scheme {
			return errors.New("refusing to follow an API redirect to another host")
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
}

// get fetches a URL GitHub redirected to with the caller's client as given:
// pre-signed URLs carry their own authorisation, and our token must not
// reach those hosts. Non-success answers are mapped like API answers.
func (c *Client) get(ctx context.Context, op, rawURL string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, wrap(op, fmt.Errorf("bad redirect location %q", redact(rawURL)))
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := c.download.Do(req)
	if err != nil {
		return nil, wrap(op, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, wrap(op, gh.CheckResponse(resp))
	}
	return resp, nil
}

var (
	ownerName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)
	repoName  = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)
	fullSHA   = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)
)

// checkRepo keeps names that are not GitHub's out of request paths.
func checkRepo(op, owner, repo string) error {
	if !ownerName.MatchString(owner) || !repoName.MatchString(repo) || repo == "." || repo == ".." {
		return invalid(op, "%q/%q is not a GitHub repository name", owner, repo)
	}
	return nil
}

// validRef follows git check-ref-format, which GitHub enforces too; it
// also keeps path tricks out of URLs.
func validRef(name string) bool {
	if name == "" || len(name) > 255 || name == "@" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") ||
		strings.HasSuffix(name, ".") || strings.Contains(name, "..") || strings.Contains(name, "//") || strings.Contains(name, "@{") {
		return false
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return false
		}
	}
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, ".") || strings.HasSuffix(seg, ".lock") {
			return false
		}
	}
	return true
}
