//go:build cluster

package clustertest

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// forgeProxy forwards one worker's GitHub calls to the fake, rewriting the
// fake's download redirects to itself (the worker trusts only its configured
// host:port). The first pull-request create it sees, when armed, is held
// for hold before it is forwarded — forwarded even if the caller died
// meanwhile, as GitHub would still act on a request it received.
type forgeProxy struct {
	idx      int
	url      string
	upstream string
	srv      *http.Server
	rp       *httputil.ReverseProxy

	mu    sync.Mutex
	calls []string
	armed *holdPulls
}

// holdPulls is one armed hold: inFlight receives the worker index when the
// create arrives.
type holdPulls struct {
	hold      time.Duration
	inFlight  chan int
	forwarded chan int // the fake's answer to the held create
	once      sync.Once
}

func newForgeProxy(upstream string, idx int) (*forgeProxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &forgeProxy{idx: idx, url: "http://" + l.Addr().String(), upstream: upstream}
	p.rp = httputil.NewSingleHostReverseProxy(u)
	p.rp.ModifyResponse = func(res *http.Response) error {
		if loc := res.Header.Get("Location"); strings.HasPrefix(loc, upstream) {
			res.Header.Set("Location", p.url+strings.TrimPrefix(loc, upstream))
		}
		return nil
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

func (p *forgeProxy) close() { _ = p.srv.Close() }

var pullsCreate = regexp.MustCompile(`^/repos/[^/]+/[^/]+/pulls$`)

func (p *forgeProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.calls = append(p.calls, r.Method+" "+r.URL.Path)
	armed := p.armed
	p.mu.Unlock()
	if r.Method == http.MethodPost && pullsCreate.MatchString(r.URL.Path) && armed != nil {
		held := false
		armed.once.Do(func() { held = true })
		if held {
			// GitHub has the whole request once it is in flight: read it
			// before the hold, then forward it even if the caller died.
			body, err := io.ReadAll(r.Body)
			armed.inFlight <- p.idx
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			time.Sleep(armed.hold)
			r = r.WithContext(context.WithoutCancel(r.Context()))
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			// Hide http.CloseNotifier: ReverseProxy would cancel the
			// forwarded request when the dead caller's connection closes.
			sw := &statusWriter{ResponseWriter: w}
			p.rp.ServeHTTP(sw, r)
			armed.forwarded <- sw.status
			return
		}
	}
	p.rp.ServeHTTP(w, r)
}

// statusWriter records the status; it hides http.CloseNotifier.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// count is how many calls matched method and a path suffix.
func (p *forgeProxy) count(method, suffix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.calls {
		if (method == "" || strings.HasPrefix(c, method+" ")) && strings.HasSuffix(c, suffix) {
			n++
		}
	}
	return n
}
