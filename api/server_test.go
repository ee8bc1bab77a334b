package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"remediator/internal/orchestrator"
	"remediator/internal/ratelimit"
)

// countingOrch counts readiness checks and says whether the caller's
// cancellation reached them.
type countingOrch struct {
	*fakeOrch
	ready     atomic.Int32
	cancelled atomic.Int32
	fail      atomic.Bool
}

func (o *countingOrch) Ready(ctx context.Context) error {
	o.ready.Add(1)
	time.Sleep(20 * time.Millisecond) // long enough for concurrent probes to pile up
	if ctx.Err() != nil {
		o.cancelled.Add(1)
		return ctx.Err()
	}
	if o.fail.Load() {
		return orchestrator.ErrUnavailable
	}
	return nil
}

func TestReadyzIsCached(t *testing.T) {
	orch := &countingOrch{fakeOrch: &fakeOrch{}}
	engine, h := newHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), orch, Options{Auth: testAuth(t)})
	var clock atomic.Int64
	clock.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	h.ready.now = func() time.Time { return time.Unix(0, clock.Load()) }
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	probe := func(path string) int {
		return serve(t, engine, httptest.NewRequest("GET", path, nil)).Code
	}

	// The first caller gives up at once: the shared check must not inherit that.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if rec := serve(t, engine, httptest.NewRequest("GET", "/readyz", nil).WithContext(ctx)); rec.Code != 200 {
		t.Fatalf("a check started by a cancelled request: %d %s", rec.Code, rec.Body)
	}
	if orch.cancelled.Load() != 0 {
		t.Fatal("the caller's cancellation reached the shared check")
	}

	advance(readyCacheTTL + time.Millisecond)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if code := probe("/readyz"); code != 200 {
				t.Errorf("concurrent /readyz: %d", code)
			}
		})
	}
	wg.Wait()
	if got := orch.ready.Load(); got != 2 {
		t.Fatalf("50 concurrent probes after the window: %d checks in all, want 2", got)
	}
	for range 10 {
		probe("/readyz")
		probe("/health")
		advance(readyCacheTTL / 20)
	}
	if got := orch.ready.Load(); got != 2 {
		t.Fatalf("probes within the window must share one check: %d", got)
	}

	// An outage shows once the window has passed, and is cached the same way.
	orch.fail.Store(true)
	advance(readyCacheTTL)
	if code := probe("/readyz"); code != 503 {
		t.Fatalf("after the window an outage is seen: %d", code)
	}
	if code := probe("/readyz"); code != 503 || orch.ready.Load() != 3 {
		t.Fatalf("the failed check is cached too: %d after %d checks", code, orch.ready.Load())
	}
}

// panicOrch panics where a handler asks for a status.
type panicOrch struct{ *fakeOrch }

func (panicOrch) Get(context.Context, string) (orchestrator.Status, error) { panic("boom") }

func TestServerAnswersEverythingWithACorrelationID(t *testing.T) {
	lim, err := ratelimit.New(memStore(t), rules(t, "general=1-M"), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), panicOrch{&fakeOrch{}}, Options{
		Auth: testAuth(t), Limiter: lim, MaxBodyBytes: 4096, PublicURL: "http://x"})
	srv := NewServer("127.0.0.1:0", h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	base := "http://" + ln.Addr().String()

	call := func(method, path, token, ctype, body string, hdr ...string) (*http.Response, errorBody) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		checkResponse(t, req, resp.StatusCode, resp.Header, raw)
		var eb errorBody
		_ = json.Unmarshal(raw, &eb)
		if resp.StatusCode >= 400 && (eb.CorrelationID == "" || eb.CorrelationID != resp.Header.Get(HeaderCorrelationID)) {
			t.Errorf("%s %s → %d: body correlation_id %q, header %q", method, path, resp.StatusCode, eb.CorrelationID, resp.Header.Get(HeaderCorrelationID))
		}
		return resp, eb
	}

	cases := []struct {
		name              string
		method, path, tok string
		ctype, body       string
		hdr               []string
		wantStatus        int
		wantCode          string
	}{
		{"ok", "GET", "/livez", "", "", "", nil, 200, ""},
		{"unknown route", "GET", "/nowhere", "", "", "", nil, 404, "not_found"},
		{"unknown method", "DELETE", "/livez", "", "", "", nil, 405, "method_not_allowed"},
		{"body over the cap", "POST", "/api/remediations", devTok, "application/json", `{"repo":"` + strings.Repeat("a", 5000) + `"}`, nil, 413, "body_too_large"},
		{"not JSON", "POST", "/api/remediations", devTok, "text/plain", "repo=x", nil, 415, "unsupported_media_type"},
		{"panic", "GET", "/api/remediations/rem-1", approverTok, "", "", nil, 500, "internal"},
		{"headers just under 64 KiB", "GET", "/livez", "", "", "", []string{"X-Padding", strings.Repeat("p", 60<<10)}, 200, ""},
		{"headers over 64 KiB", "GET", "/livez", "", "", "", []string{"X-Padding", strings.Repeat("p", 70<<10)}, 431, "request_header_too_large"},
		{"headers over 64 KiB, unknown route", "GET", "/nowhere", "", "", "", []string{"X-Padding", strings.Repeat("p", 200<<10)}, 431, "request_header_too_large"},
		{"under budget", "GET", "/health", "", "", "", nil, 200, ""},
		{"over budget", "GET", "/health", "", "", "", nil, 429, "rate_limited"},
	}
	for _, tc := range cases {
		resp, eb := call(tc.method, tc.path, tc.tok, tc.ctype, tc.body, tc.hdr...)
		if resp.StatusCode != tc.wantStatus || eb.Error != tc.wantCode {
			t.Errorf("%s: want %d %q, got %d %q", tc.name, tc.wantStatus, tc.wantCode, resp.StatusCode, eb.Error)
		}
		if resp.Header.Get(HeaderCorrelationID) == "" {
			t.Errorf("%s: no %s", tc.name, HeaderCorrelationID)
		}
	}
	// The caller's id is kept on refusals too.
	if resp, eb := call("GET", "/livez", "", "", "", "X-Correlation-ID", "req-431-check", "X-Padding", strings.Repeat("p", 70<<10)); resp.StatusCode != 431 || eb.CorrelationID != "req-431-check" {
		t.Errorf("431 keeps the caller's correlation id: %d %+v", resp.StatusCode, eb)
	}
	if srv.MaxHeaderBytes <= maxHeaderBytes {
		t.Errorf("NewServer must let net/http read more than the documented limit, or Go answers 431 itself: %d", srv.MaxHeaderBytes)
	}
}

func TestHeaderBytesCountsTheRequestAsSent(t *testing.T) {
	req := httptest.NewRequest("GET", "/api/remediations?phase=Failed", nil)
	req.Header.Set("Authorization", "Bearer abc")
	// "GET /api/remediations?phase=Failed HTTP/1.1\r\n" + "Host: example.com\r\n" + "Authorization: Bearer abc\r\n"
	if got, want := headerBytes(req), 45+19+27; got != want {
		t.Fatalf("headerBytes = %d, want %d", got, want)
	}
}

// Further dependencies (the PostgreSQL ledger) make /readyz fail by name
// while they are down, and /health says degraded.
func TestReadyzReportsExtraChecks(t *testing.T) {
	var down atomic.Bool
	engine, h := newHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), &fakeOrch{}, Options{Auth: testAuth(t),
		ReadyChecks: map[string]func(context.Context) error{"decision_ledger": func(context.Context) error {
			if down.Load() {
				return orchestrator.ErrUnavailable
			}
			return nil
		}}})
	h.ready.ttl = 0
	body := func(path string) (int, map[string]any) {
		rec := serve(t, engine, httptest.NewRequest("GET", path, nil))
		var m map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		return rec.Code, m
	}
	if code, m := body("/readyz"); code != 200 || m["checks"].(map[string]any)["decision_ledger"] != "ok" {
		t.Fatalf("ledger up: %d %v", code, m)
	}
	down.Store(true)
	if code, m := body("/readyz"); code != 503 || m["checks"].(map[string]any)["decision_ledger"] != "unreachable" {
		t.Fatalf("ledger down: %d %v", code, m)
	}
	if _, m := body("/health"); m["status"] != "degraded" || m["dependencies"].(map[string]any)["decision_ledger"] != "unhealthy" {
		t.Fatalf("health with the ledger down: %v", m)
	}
	down.Store(false)
	if code, _ := body("/readyz"); code != 200 {
		t.Fatalf("ledger back: %d", code)
	}
}

// A stopping API answers /readyz 503 "draining" (while it still serves
// requests) so that load balancers take it out before its listener closes.
func TestReadyzDraining(t *testing.T) {
	var draining atomic.Bool
	engine, _ := newHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), &fakeOrch{}, Options{Auth: testAuth(t), Draining: draining.Load})
	if rec := serve(t, engine, httptest.NewRequest("GET", "/readyz", nil)); rec.Code != 200 {
		t.Fatalf("serving: %d", rec.Code)
	}
	draining.Store(true)
	rec := serve(t, engine, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "draining") {
		t.Fatalf("draining: %d %s", rec.Code, rec.Body)
	}
	if rec := serve(t, engine, httptest.NewRequest("GET", "/livez", nil)); rec.Code != 200 {
		t.Fatalf("a draining API is still alive: %d", rec.Code)
	}
}
