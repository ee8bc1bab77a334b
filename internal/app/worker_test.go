package app

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.temporal.io/sdk/client"
)

// healthClient is a Temporal client whose health check the test controls;
// the probe calls nothing else.
type healthClient struct {
	client.Client
	down atomic.Bool
}

func (c *healthClient) CheckHealth(context.Context, *client.CheckHealthRequest) (*client.CheckHealthResponse, error) {
	if c.down.Load() {
		return nil, errors.New("unavailable")
	}
	return &client.CheckHealthResponse{}, nil
}

type fakeLedger struct{ down atomic.Bool }

func (l *fakeLedger) Ping(context.Context) error {
	if l.down.Load() {
		return errors.New("connection refused")
	}
	return nil
}

// The worker's own listener: /livez always, /readyz only while it polls and
// Temporal and the shared ledger answer, naming what failed.
func TestWorkerProbes(t *testing.T) {
	c, l := &healthClient{}, &fakeLedger{}
	p := &workerProbe{client: c, ledger: l}
	reg := NewRegistry()
	srv := httptest.NewServer(workerMux(p, reg))
	defer srv.Close()
	get := func(path string) (int, map[string]any) {
		p.mu.Lock()
		p.checked = p.checked.AddDate(-1, 0, 0) // no cached answer
		p.mu.Unlock()
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(res.Body).Decode(&body)
		return res.StatusCode, body
	}
	if code, _ := get("/livez"); code != http.StatusOK {
		t.Fatalf("/livez: %d", code)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || body["checks"].(map[string]any)["worker"] != "not polling" {
		t.Fatalf("not polling yet: %d %v", code, body)
	}
	p.polling.Store(true)
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("polling, all up: %d %v", code, body)
	}
	l.down.Store(true)
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || body["checks"].(map[string]any)["decision_ledger"] != "unreachable" {
		t.Fatalf("ledger down: %d %v", code, body)
	}
	l.down.Store(false)
	c.down.Store(true)
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || body["checks"].(map[string]any)["temporal"] != "unreachable" {
		t.Fatalf("temporal down: %d %v", code, body)
	}
	c.down.Store(false)
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Fatalf("recovered: %d", code)
	}
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(b), "go_goroutines") {
		t.Fatalf("/metrics: %d", res.StatusCode)
	}
}
