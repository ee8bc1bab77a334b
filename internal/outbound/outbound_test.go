package outbound

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"remediator/internal/correlation"
)

// fakeResolver answers from a table and records every question, so tests
// can make names resolve to 127.0.0.1 and prove a refusal came before DNS.
type fakeResolver struct {
	mu    sync.Mutex
	hosts map[string][]string
	asked []string
}

func newResolver(kv ...string) *fakeResolver {
	r := &fakeResolver{hosts: map[string][]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		r.hosts[kv[i]] = append(r.hosts[kv[i]], kv[i+1])
	}
	return r
}

func (r *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, host)
	var out []netip.Addr
	for _, s := range r.hosts[host] {
		out = append(out, netip.MustParseAddr(s))
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

func (r *fakeResolver) questions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.asked...)
}

// watched is a 127.0.0.1 server that counts the connections it accepts.
type watched struct {
	*httptest.Server
	port  string
	conns atomic.Int64
}

func newWatched(t *testing.T, h http.Handler) *watched {
	t.Helper()
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	}
	w := &watched{Server: httptest.NewUnstartedServer(h)}
	w.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			w.conns.Add(1)
		}
	}
	w.Start()
	t.Cleanup(w.Close)
	_, w.port, _ = net.SplitHostPort(w.Listener.Addr().String())
	return w
}

// assertUntouched proves no connection reached the server before now. The
// listener accepts in arrival order, so once a probe made after the refused
// request has been answered, any earlier connection would have been counted.
func (w *watched) assertUntouched(t *testing.T) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Get(w.URL + "/probe")
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	resp.Body.Close()
	if n := w.conns.Load(); n != 1 {
		t.Errorf("the refused request reached the listener (%d connections before the probe)", n-1)
	}
}

func newClient(t *testing.T, o Options) *http.Client {
	t.Helper()
	c := NewClient(o)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func do(t *testing.T, c *http.Client, ctx context.Context, method, rawURL string, hdr http.Header, body string) (*http.Response, string, error) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, r)
	if err != nil {
		t.Fatalf("new request %q: %v", rawURL, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return resp, "", err
	}
	defer resp.Body.Close()
	data, _, err := LimitedBody(resp.Body, 1<<16)
	return resp, string(data), err
}

func get(t *testing.T, c *http.Client, rawURL string) (*http.Response, string, error) {
	t.Helper()
	return do(t, c, context.Background(), http.MethodGet, rawURL, nil, "")
}

func wantBlocked(t *testing.T, err error) {
	t.Helper()
	var be *BlockedError
	if !errors.Is(err, ErrBlocked) || !errors.As(err, &be) {
		t.Errorf("want a *BlockedError matching ErrBlocked, got %v", err)
	}
}

func TestTrustedHostOverHTTP(t *testing.T) {
	srv := newWatched(t, nil)
	c := newClient(t, Options{Policy: Policy{Trusted: []string{"127.0.0.1:" + srv.port}}})
	resp, body, err := get(t, c, srv.URL+"/x")
	if err != nil || resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("GET trusted: %v %v %q", resp, err, body)
	}
}

func TestTrustedNameDialsTheResolvedAddress(t *testing.T) {
	srv := newWatched(t, nil)
	entry, err := TrustedHost("http://Forge.Test:" + srv.port + "/api/v4")
	if err != nil || entry != "forge.test:"+srv.port {
		t.Fatalf("TrustedHost: %q %v", entry, err)
	}
	res := newResolver("forge.test", "127.0.0.1")
	c := newClient(t, Options{Policy: Policy{Trusted: []string{entry}}, Resolver: res})
	// forge.test exists only in the fake resolver: reaching the server
	// proves the dialler connects to the answer it was given.
	if resp, _, err := get(t, c, "http://forge.test:"+srv.port+"/"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET: %v", err)
	}
}

func TestHTTPSWithPrivateCAUsesHTTP2(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) }))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	entry, err := TrustedHost(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, Options{Policy: Policy{Trusted: []string{entry}}, RootCAs: pool})
	resp, body, err := get(t, c, srv.URL)
	if err != nil || resp.ProtoMajor != 2 || body != "HTTP/2.0" {
		t.Fatalf("GET over TLS: %v %q", err, body)
	}
}

func TestRefusedRequestsNeverConnect(t *testing.T) {
	srv := newWatched(t, nil)
	port := srv.port
	allow := func(p ...string) Policy { return Policy{Allowed: p} }
	trust := func(p ...string) Policy { return Policy{Trusted: p} }
	cases := []struct {
		name   string
		policy Policy
		url    string
		noDNS  bool
	}{
		{"unconfigured name", Policy{}, "https://evil.example.com:PORT/", true},
		{"unconfigured IP", Policy{}, "http://127.0.0.1:PORT/", true},
		{"only another port trusted", trust("127.0.0.1:1"), "http://127.0.0.1:PORT/", true},
		{"trusted name, not its IP", trust("forge.test:PORT"), "http://127.0.0.1:PORT/", true},
		{"private literal", allow("10.1.2.3"), "https://10.1.2.3/", true},
		{"metadata literal", allow("169.254.169.254"), "https://169.254.169.254/latest/meta-data/", true},
		{"IPv6 loopback literal", allow("::1"), "https://[::1]:PORT/", true},
		{"unspecified literal", allow("0.0.0.0"), "https://0.0.0.0:PORT/", true},
		{"mapped loopback literal", allow("::ffff:127.0.0.1"), "https://[::ffff:127.0.0.1]:PORT/", true},
		{"loopback literal", allow("127.0.0.1"), "https://127.0.0.1:PORT/", true},
		{"allowed name resolving to loopback", allow(".example.com"), "https://evil.example.com:PORT/", false},
		{"allowed name resolving to private and loopback", allow("*.example.com"), "https://mixed.example.com:PORT/", false},
		{"allowed name resolving to mapped loopback", allow("mapped.example.com"), "https://mapped.example.com:PORT/", false},
		{"metadata name under an allowed suffix", allow(".internal"), "https://metadata.google.internal:PORT/", true},
		{"localhost", allow("localhost"), "https://localhost:PORT/", true},
		{"userinfo on a trusted host", trust("127.0.0.1:PORT"), "http://user:pw@127.0.0.1:PORT/", true},
		{"http to an allowed host", allow(".example.com"), "http://evil.example.com:PORT/", true},
		{"ftp", allow(".example.com"), "ftp://evil.example.com:PORT/", true},
		{"gopher", allow(".example.com"), "gopher://evil.example.com:PORT/_GET%20/", true},
		{"file", allow(".example.com"), "file:///etc/passwd", true},
		{"ftp to a trusted host", trust("127.0.0.1:PORT"), "ftp://127.0.0.1:PORT/", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv.conns.Store(0)
			for i, e := range tc.policy.Trusted {
				tc.policy.Trusted[i] = strings.ReplaceAll(e, "PORT", port)
			}
			res := newResolver(
				"evil.example.com", "127.0.0.1",
				"mixed.example.com", "10.0.0.1", "mixed.example.com", "127.0.0.1",
				"mapped.example.com", "::ffff:127.0.0.1",
				"metadata.google.internal", "127.0.0.1",
				"localhost", "127.0.0.1",
				"forge.test", "127.0.0.1",
			)
			c := newClient(t, Options{Policy: tc.policy, Resolver: res})
			_, _, err := get(t, c, strings.ReplaceAll(tc.url, "PORT", port))
			wantBlocked(t, err)
			if q := res.questions(); tc.noDNS && len(q) > 0 {
				t.Errorf("refusal should come before DNS, resolver was asked %v", q)
			}
			srv.assertUntouched(t)
		})
	}
}

// The dial-time check must hold on its own: Check never sees where a name
// resolves, and a request that bypassed it must still not connect.
func TestDialerRefusesNonPublicAddresses(t *testing.T) {
	srv := newWatched(t, nil)
	res := newResolver("evil.example.com", "127.0.0.1", "forge.test", "127.0.0.1")
	g := &guard{policy: Policy{Allowed: []string{"127.0.0.1", ".example.com"}, Trusted: []string{"forge.test"}}, resolver: res}
	for _, addr := range []string{"127.0.0.1:" + srv.port, "evil.example.com:" + srv.port, "unlisted.test:" + srv.port} {
		conn, err := g.dialContext(context.Background(), "tcp", addr)
		if conn != nil {
			conn.Close()
		}
		wantBlocked(t, err)
	}
	srv.assertUntouched(t)

	conn, err := g.dialContext(context.Background(), "tcp", "forge.test:"+srv.port)
	if err != nil {
		t.Fatalf("trusted name: %v", err)
	}
	conn.Close()

	if err := control("x", false)("tcp4", "127.0.0.1:80", nil); !errors.Is(err, ErrBlocked) {
		t.Errorf("control let loopback through for an untrusted host: %v", err)
	}
	if err := control("x", true)("tcp4", "127.0.0.1:80", nil); err != nil {
		t.Errorf("control refused a trusted host: %v", err)
	}
}

func redirectTo(loc string, code int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, loc, code) })
}

func TestRedirectToLoopbackIsRefused(t *testing.T) {
	target := newWatched(t, nil)
	for _, loc := range []string{
		"http://127.0.0.1:" + target.port + "/",
		"http://localhost:" + target.port + "/",
		"http://[::ffff:127.0.0.1]:" + target.port + "/",
		"https://127.0.0.1:" + target.port + "/",
	} {
		t.Run(loc, func(t *testing.T) {
			target.conns.Store(0)
			src := newWatched(t, redirectTo(loc, http.StatusFound))
			c := newClient(t, Options{Policy: Policy{Trusted: []string{"127.0.0.1:" + src.port}, Allowed: []string{"localhost", "127.0.0.1"}}})
			_, _, err := get(t, c, src.URL)
			wantBlocked(t, err)
			target.assertUntouched(t)
		})
	}
}

func TestRedirectToUnlistedHostIsRefusedBeforeDNS(t *testing.T) {
	src := newWatched(t, redirectTo("https://blob.example.net/logs/1", http.StatusFound))
	res := newResolver("blob.example.net", "127.0.0.1")
	c := newClient(t, Options{Policy: Policy{Trusted: []string{"127.0.0.1:" + src.port}, Allowed: []string{".example.org"}}, Resolver: res})
	_, _, err := get(t, c, src.URL)
	wantBlocked(t, err)
	if q := res.questions(); len(q) > 0 {
		t.Errorf("resolver asked %v", q)
	}
}

func TestRedirectLimit(t *testing.T) {
	var hits atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/hop/{n}", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		n := r.PathValue("n")
		if n == "0" {
			io.WriteString(w, "done")
			return
		}
		next := map[string]string{"1": "0", "2": "1", "3": "2", "4": "3", "5": "4", "6": "5"}[n]
		http.Redirect(w, r, "/hop/"+next, http.StatusFound)
	})
	srv := newWatched(t, mux)
	policy := Policy{Trusted: []string{"127.0.0.1:" + srv.port}}

	for _, tc := range []struct {
		max   int
		start string
		ok    bool
	}{{2, "2", true}, {2, "3", false}, {0, "5", true}, {0, "6", false}} {
		hits.Store(0)
		c := newClient(t, Options{Policy: policy, MaxRedirects: tc.max})
		_, body, err := get(t, c, srv.URL+"/hop/"+tc.start)
		if tc.ok && (err != nil || body != "done") {
			t.Errorf("max %d from %s: %v %q", tc.max, tc.start, err, body)
		}
		if !tc.ok {
			wantBlocked(t, err)
			if want := int64(tc.max + 1); tc.max > 0 && hits.Load() != want {
				t.Errorf("max %d: server saw %d requests, want %d", tc.max, hits.Load(), want)
			}
		}
	}

	c := newClient(t, Options{Policy: policy, MaxRedirects: -1})
	resp, _, err := get(t, c, srv.URL+"/hop/1")
	if err != nil || resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/hop/0" {
		t.Fatalf("MaxRedirects -1 should hand back the 302: %v %v", resp, err)
	}
}

// recorder keeps the headers and Host of every request a server sees.
type recorder struct {
	mu   sync.Mutex
	seen []*http.Request
}

func (rec *recorder) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen = append(rec.seen, &http.Request{Host: r.Host, URL: r.URL, Header: r.Header.Clone()})
		rec.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func (rec *recorder) last(t *testing.T) *http.Request {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seen) == 0 {
		t.Fatal("no request recorded")
	}
	return rec.seen[len(rec.seen)-1]
}

// Go keeps Authorization when a redirect changes only the port or goes to a
// subdomain, and never strips custom token headers; the client strips every
// credential once the chain leaves the starting origin.
func TestCredentialsDoNotFollowCrossOriginRedirects(t *testing.T) {
	var recA, recB recorder
	var portA, portB string
	muxA := http.NewServeMux()
	muxA.HandleFunc("/to-b", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://b.test:"+portB+"/land", http.StatusFound)
	})
	muxA.HandleFunc("/to-port-b", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.1:"+portB+"/land", http.StatusFound)
	})
	muxA.HandleFunc("/to-sub", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://sub.a.test:"+portA+"/land", http.StatusFound)
	})
	muxA.HandleFunc("/round-trip", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://b.test:"+portB+"/back", http.StatusFound)
	})
	muxA.HandleFunc("/same", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/land", http.StatusFound) })
	muxA.HandleFunc("/land", func(w http.ResponseWriter, r *http.Request) {})
	muxB := http.NewServeMux()
	muxB.HandleFunc("/land", func(w http.ResponseWriter, r *http.Request) {})
	muxB.HandleFunc("/back", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://a.test:"+portA+"/land", http.StatusFound)
	})
	a := newWatched(t, recA.handler(muxA))
	b := newWatched(t, recB.handler(muxB))
	portA, portB = a.port, b.port

	res := newResolver("a.test", "127.0.0.1", "sub.a.test", "127.0.0.1", "b.test", "127.0.0.1")
	c := newClient(t, Options{
		Policy: Policy{Trusted: []string{
			"a.test:" + portA, "sub.a.test:" + portA, "b.test:" + portB,
			"127.0.0.1:" + portA, "127.0.0.1:" + portB,
		}},
		Resolver:  res,
		UserAgent: "remediator-test",
	})
	ctx := correlation.With(context.Background(), "corr-redirect")
	creds := http.Header{
		"Authorization": {"Bearer secret"},
		"Private-Token": {"glpat-secret"},
		"Cookie":        {"session=secret"},
		"Accept":        {"application/vnd.github+json"},
	}
	stripped := func(t *testing.T, r *http.Request) {
		t.Helper()
		for _, k := range []string{"Authorization", "Private-Token", "Cookie", "Referer"} {
			if v := r.Header.Get(k); v != "" {
				t.Errorf("%s reached %s: %q", k, r.Host, v)
			}
		}
		if r.Header.Get("Accept") != "application/vnd.github+json" || r.Header.Get(correlation.Header) != "corr-redirect" ||
			r.Header.Get("User-Agent") != "remediator-test" {
			t.Errorf("safe headers lost on %s: %v", r.Host, r.Header)
		}
	}

	t.Run("other host", func(t *testing.T) {
		if _, _, err := do(t, c, ctx, "GET", "http://a.test:"+portA+"/to-b", creds, ""); err != nil {
			t.Fatal(err)
		}
		stripped(t, recB.last(t))
	})
	t.Run("same host name, other port", func(t *testing.T) {
		if _, _, err := do(t, c, ctx, "GET", "http://127.0.0.1:"+portA+"/to-port-b", creds, ""); err != nil {
			t.Fatal(err)
		}
		stripped(t, recB.last(t))
	})
	t.Run("subdomain", func(t *testing.T) {
		if _, _, err := do(t, c, ctx, "GET", "http://a.test:"+portA+"/to-sub", creds, ""); err != nil {
			t.Fatal(err)
		}
		r := recA.last(t)
		if r.Host != "sub.a.test:"+portA {
			t.Fatalf("landed on %s", r.Host)
		}
		stripped(t, r)
	})
	t.Run("back to the start after another origin", func(t *testing.T) {
		if _, _, err := do(t, c, ctx, "GET", "http://a.test:"+portA+"/round-trip", creds, ""); err != nil {
			t.Fatal(err)
		}
		r := recA.last(t)
		if r.URL.Path != "/land" {
			t.Fatalf("landed on %s", r.URL.Path)
		}
		stripped(t, r)
	})
	t.Run("same origin keeps credentials", func(t *testing.T) {
		if _, _, err := do(t, c, ctx, "GET", "http://a.test:"+portA+"/same", creds, ""); err != nil {
			t.Fatal(err)
		}
		r := recA.last(t)
		if r.URL.Path != "/land" || r.Header.Get("Authorization") != "Bearer secret" || r.Header.Get("Private-Token") != "glpat-secret" {
			t.Errorf("same-origin redirect lost credentials: %s %v", r.URL.Path, r.Header)
		}
	})
}

func TestCrossOriginRedirectDoesNotReplayABody(t *testing.T) {
	target := newWatched(t, nil)
	src := newWatched(t, redirectTo("http://127.0.0.1:"+target.port+"/", http.StatusTemporaryRedirect))
	c := newClient(t, Options{Policy: Policy{Trusted: []string{"127.0.0.1:" + src.port, "127.0.0.1:" + target.port}}})
	_, _, err := do(t, c, context.Background(), http.MethodPost, src.URL, nil, `{"secret":1}`)
	wantBlocked(t, err)
	target.assertUntouched(t)
}

func TestCorrelationIDAndUserAgentReachTheServer(t *testing.T) {
	var rec recorder
	srv := newWatched(t, rec.handler(http.NotFoundHandler()))
	c := newClient(t, Options{Policy: Policy{Trusted: []string{"127.0.0.1:" + srv.port}}, UserAgent: "remediator/1"})
	ctx := correlation.With(context.Background(), "corr-12345678")
	if _, _, err := do(t, c, ctx, "GET", srv.URL, nil, ""); err != nil {
		t.Fatal(err)
	}
	r := rec.last(t)
	if r.Header.Get(correlation.Header) != "corr-12345678" || r.Header.Get("User-Agent") != "remediator/1" {
		t.Fatalf("headers: %v", r.Header)
	}
	if _, _, err := do(t, c, ctx, "GET", srv.URL, http.Header{"User-Agent": {"caller/2"}}, ""); err != nil {
		t.Fatal(err)
	}
	if ua := rec.last(t).Header.Get("User-Agent"); ua != "caller/2" {
		t.Fatalf("a caller's User-Agent must win, got %q", ua)
	}
}

func TestDefaults(t *testing.T) {
	c := NewClient(Options{})
	if c.Timeout != 30*time.Second {
		t.Errorf("timeout %v", c.Timeout)
	}
	tr := c.Transport.(*guardedTransport).idle
	if tr.Proxy != nil || !tr.ForceAttemptHTTP2 {
		t.Errorf("transport must ignore proxy settings and keep HTTP/2")
	}
}

func TestCheck(t *testing.T) {
	p := Policy{
		Trusted: []string{"gitlab.internal:80", "GHE.Corp", "[::1]:8080", "10.0.0.5:443"},
		Allowed: []string{"api.github.com", ".blob.core.windows.net", "*.githubusercontent.com", "8.8.8.8"},
	}
	ok := []string{
		"http://gitlab.internal/api/v4",
		"http://GITLAB.internal:80/",
		"https://ghe.corp:8443/", // trusted without a port: any port
		"http://[::1]:8080/",
		"https://10.0.0.5/",
		"https://api.github.com/repos",
		"https://API.GitHub.com./repos",
		"https://x.blob.core.windows.net/c?sig=1",
		"https://pipelines.actions.githubusercontent.com:8443/",
		"https://8.8.8.8/",
	}
	for _, s := range ok {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Check(u); err != nil {
			t.Errorf("Check(%s): %v", s, err)
		}
	}
	refused := []string{
		"https://gitlab.internal/",           // trusted on 80 only
		"http://gitlab.internal:6379/",       // another port of a trusted host
		"http://api.github.com/",             // http for an allowed host
		"https://github.com/",                // apex not listed
		"https://blob.core.windows.net/",     // a wildcard is not its apex
		"https://evilblob.core.windows.net/", // suffix without the dot
		"https://api.github.com.evil.com/",
		"https://user@api.github.com/",
		"https://127.1/",
		"https://2130706433/",
		"https://xn--80ak6aa92e.com/", // not listed
		"https://äpi.github.com/",
		"ws://api.github.com/",
		"https:///nohost",
	}
	for _, s := range refused {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Check(u); !errors.Is(err, ErrBlocked) {
			t.Errorf("Check(%s) = %v, want ErrBlocked", s, err)
		}
	}
	if err := p.Check(nil); !errors.Is(err, ErrBlocked) {
		t.Error("nil URL")
	}
	if _, err := p.ParseURL("https://api.github.com/x"); err != nil {
		t.Error(err)
	}
	if _, err := p.ParseURL("https://169.254.169.254/"); !errors.Is(err, ErrBlocked) {
		t.Errorf("ParseURL metadata: %v", err)
	}
}

func TestAddrReason(t *testing.T) {
	refused := []string{
		"127.0.0.1", "127.255.0.1", "::1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
		"fc00::1", "fd00:ec2::254", "169.254.169.254", "fe80::1", "fe80::1%eth0", "0.0.0.0", "0.1.2.3", "::",
		"224.0.0.1", "ff02::1", "255.255.255.255", "100.64.0.1", "100.100.100.200", "192.0.0.192",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::", "2001::1",
	}
	for _, s := range refused {
		if addrReason(netip.MustParseAddr(s)) == "" {
			t.Errorf("%s accepted as public", s)
		}
	}
	public := []string{"8.8.8.8", "140.82.112.6", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"}
	for _, s := range public {
		if r := addrReason(netip.MustParseAddr(s)); r != "" {
			t.Errorf("%s refused: %s", s, r)
		}
	}
	if addrReason(netip.Addr{}) == "" {
		t.Error("the zero Addr must be refused")
	}
}

func TestParseAllowHosts(t *testing.T) {
	got, err := ParseAllowHosts(" Example.com, .example.org ,*.example.net,8.8.8.8,[2606:4700::1111]")
	want := []string{"example.com", ".example.org", ".example.net", "8.8.8.8", "2606:4700::1111"}
	if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("ParseAllowHosts = %v, %v", got, err)
	}
	for _, bad := range []string{
		"http://x", "x/y", "", "a..b", "x\x00", "example.com,", "example.com:443", "*.com", ".com",
		"*", "-x.com", "10.0.0.1", "169.254.169.254", "127.1", "a b.com", "exämple.com", "*.*.example.com",
	} {
		if got, err := ParseAllowHosts(bad); err == nil {
			t.Errorf("ParseAllowHosts(%q) = %v, want an error", bad, got)
		}
	}
}

func TestTrustedHost(t *testing.T) {
	for in, want := range map[string]string{
		"http://gitlab.internal":       "gitlab.internal:80",
		"https://api.github.com/":      "api.github.com:443",
		"https://[::1]:8443/api":       "[::1]:8443",
		"http://127.0.0.1:9000/decide": "127.0.0.1:9000",
		"https://GHE.corp./api/v3":     "ghe.corp:443",
	} {
		if got, err := TrustedHost(in); err != nil || got != want {
			t.Errorf("TrustedHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"ftp://x.com", "https://u:p@x.com", "https://", "x.com", "https://a..b/"} {
		if got, err := TrustedHost(bad); err == nil {
			t.Errorf("TrustedHost(%q) = %q, want an error", bad, got)
		}
	}
}

func TestLimitedBody(t *testing.T) {
	for _, tc := range []struct {
		in    string
		max   int64
		out   string
		trunc bool
	}{{"hello", 10, "hello", false}, {"hello", 5, "hello", false}, {"hello", 4, "hell", true}, {"hello", 0, "", true}, {"", -1, "", false}} {
		got, trunc, err := LimitedBody(strings.NewReader(tc.in), tc.max)
		if err != nil || string(got) != tc.out || trunc != tc.trunc {
			t.Errorf("LimitedBody(%q, %d) = %q, %v, %v", tc.in, tc.max, got, trunc, err)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false}, {"soon", 0, false}, {"7", 7 * time.Second, true}, {"1.5", 1500 * time.Millisecond, true},
		{"-3", 0, true}, {"999999", MaxRetryAfter, true}, {"NaN", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), MaxRetryAfter, true},
	} {
		h := http.Header{}
		if tc.v != "" {
			h.Set("Retry-After", tc.v)
		}
		if d, ok := RetryAfter(h, now); d != tc.want || ok != tc.ok {
			t.Errorf("Retry-After %q: %v %v, want %v %v", tc.v, d, ok, tc.want, tc.ok)
		}
	}
}

func TestShorten(t *testing.T) {
	if got := Shorten("héllo", 2); got != "h…" {
		t.Errorf("cut inside a rune: %q", got)
	}
	if got := Shorten("short", 10); got != "short" {
		t.Errorf("%q", got)
	}
}
