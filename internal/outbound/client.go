package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"

	"remediator/internal/correlation"
	"remediator/internal/telemetry"
)

// Resolver is the part of *net.Resolver the guard needs. It is an option so
// tests (here and in packages that use fake forges) can make a hostname
// resolve anywhere without DNS.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configures NewClient. The zero value is usable but trusts and
// allows nothing, so every request fails closed.
type Options struct {
	Policy Policy
	// Timeout bounds a whole request, redirects and body included; 0 means
	// 30s. Raise it for large downloads rather than disabling it.
	Timeout time.Duration
	// MaxRedirects is how many redirects one request may follow; 0 means 5.
	// A negative value follows none and hands the 3xx response back, for
	// callers that want to inspect a Location before fetching it.
	MaxRedirects int
	// UserAgent is sent when the request sets none: GitHub refuses requests
	// without one, and operators of the other side can tell us apart.
	UserAgent string
	// Resolver replaces net.DefaultResolver; see Resolver.
	Resolver Resolver
	// RootCAs replaces the system roots, for a self-hosted forge whose
	// certificate is issued by a private CA.
	RootCAs *x509.CertPool
}

const (
	defaultTimeout      = 30 * time.Second
	defaultMaxRedirects = 5
)

// NewClient returns the client every outbound call should use. It owns its
// transport, so no proxy from the environment can stand between the guard
// and the address it checked, and it never shares the default transport's
// connections with code that is not guarded.
func NewClient(o Options) *http.Client {
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	if o.MaxRedirects == 0 {
		o.MaxRedirects = defaultMaxRedirects
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	g := &guard{
		policy:   o.Policy,
		resolver: o.Resolver,
		dialer:   net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second},
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            g.dialContext,
		ForceAttemptHTTP2:      true,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.RootCAs},
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  o.Timeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    10,
		MaxResponseHeaderBytes: 1 << 20,
	}
	return &http.Client{
		Transport: &guardedTransport{
			policy:    o.Policy,
			userAgent: o.UserAgent,
			next:      telemetry.HTTPTransport(correlation.Transport{Base: tr}),
			idle:      tr,
		},
		CheckRedirect: redirectChecker(o.Policy, o.MaxRedirects),
		Timeout:       o.Timeout,
	}
}

// guardedTransport refuses a request before anything is cloned or dialled
// when its URL fails the policy; this is what stops ftp:// or userinfo URLs
// with ErrBlocked instead of a transport error nobody classifies.
type guardedTransport struct {
	policy    Policy
	userAgent string
	next      http.RoundTripper
	idle      *http.Transport
}

func (t *guardedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.policy.Check(req.URL); err != nil {
		if req.Body != nil {
			req.Body.Close() // RoundTrip owns the body, even on error
		}
		return nil, err
	}
	if t.userAgent != "" && req.Header.Get("User-Agent") == "" {
		req = req.Clone(req.Context())
		req.Header.Set("User-Agent", t.userAgent)
	}
	return t.next.RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// transport through the wrappers.
func (t *guardedTransport) CloseIdleConnections() { t.idle.CloseIdleConnections() }

// guard is the dial-time half of the policy: it resolves the name itself and
// connects to the address it checked, so the answer that was judged is the
// answer that is used.
type guard struct {
	policy   Policy
	resolver Resolver
	dialer   net.Dialer
}

func (g *guard) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	h, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	host := normHost(h)
	trusted := g.policy.trusted(host, port)
	if !trusted {
		if err := g.policy.checkUntrusted(host); err != nil {
			return nil, err
		}
	}
	ips, err := g.lookup(ctx, network, host)
	if err != nil {
		return nil, err
	}
	var permitted []netip.Addr
	var refused []string
	for _, ip := range ips {
		if reason := addrReason(ip); !trusted && reason != "" {
			refused = append(refused, fmt.Sprintf("%s (%s)", ip, reason))
			continue
		}
		permitted = append(permitted, ip)
	}
	if len(permitted) == 0 {
		return nil, blocked(host, "resolves only to non-public addresses: %s", strings.Join(refused, ", "))
	}

	d := g.dialer
	d.Control = control(host, trusted)
	var errs []error
	for _, ip := range permitted {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// control re-checks the address a socket is about to connect to, so the rule
// holds even if a later change dialled a name instead of a checked IP.
func control(host string, trusted bool) func(network, address string, c syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return blocked(host, "dialling unparsed address %q", address)
		}
		if reason := addrReason(ap.Addr()); !trusted && reason != "" {
			return blocked(host, "%s address %s", reason, ap.Addr())
		}
		return nil
	}
}

// lookup answers IP literals itself so they never reach a resolver, and asks
// only for the address family the transport will dial.
func (g *guard) lookup(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	family := "ip"
	switch network {
	case "tcp4":
		family = "ip4"
	case "tcp6":
		family = "ip6"
	}
	ips, err := g.resolver.LookupNetIP(ctx, family, host)
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	return ips, nil
}

// credentialSafe are the headers a redirect may carry to another origin.
// It is an allow-list because credentials do not only travel in the headers
// Go strips (Authorization, Cookie): GitLab's PRIVATE-TOKEN and JOB-TOKEN,
// or an X-API-Key, would otherwise follow a 302 to blob storage.
var credentialSafe = []string{"Accept", "Accept-Language", "User-Agent", "Range", correlation.Header}

// redirectChecker applies the policy to every hop, bounds the chain and
// strips credentials once the chain has left the origin it started at.
//
// Go itself keeps Authorization when only the port differs or the target is
// a subdomain (it compares host names, and "sub.example.com" counts as the
// same site), and never strips custom token headers; an origin here is
// scheme, host and port, and the strip is sticky — a hop back to the
// original origin after visiting another does not regain the credentials,
// because that hop's target was chosen by the other origin.
func redirectChecker(p Policy, max int) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if max < 0 {
			return http.ErrUseLastResponse
		}
		if len(via) > max {
			return blocked(req.URL.Host, "more than %d redirects", max)
		}
		if err := p.Check(req.URL); err != nil {
			return err
		}
		start := origin(via[0].URL.Scheme, via[0].URL.Hostname(), via[0].URL.Port())
		left := false
		for _, r := range append(via[1:len(via):len(via)], req) {
			if origin(r.URL.Scheme, r.URL.Hostname(), r.URL.Port()) != start {
				left = true
			}
		}
		if !left {
			return nil
		}
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			// A 307/308 replays the method and body; a request body meant
			// for one service must not be delivered to another.
			return blocked(req.URL.Host, "cross-origin redirect would resend a %s request", req.Method)
		}
		for k := range req.Header {
			if !slices.ContainsFunc(credentialSafe, func(s string) bool { return strings.EqualFold(s, k) }) {
				delete(req.Header, k)
			}
		}
		return nil
	}
}

func origin(scheme, host, port string) string {
	scheme = strings.ToLower(scheme)
	if port == "" {
		port = defaultPort(scheme)
	}
	return scheme + "://" + net.JoinHostPort(normHost(host), port)
}
