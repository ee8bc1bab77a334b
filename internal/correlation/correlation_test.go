package correlation

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
)

type headers map[string]*commonpb.Payload

func (h headers) Set(k string, v *commonpb.Payload) { h[k] = v }
func (h headers) Get(k string) (*commonpb.Payload, bool) {
	v, ok := h[k]
	return v, ok
}
func (h headers) ForEachKey(f func(string, *commonpb.Payload) error) error {
	for k, v := range h {
		if err := f(k, v); err != nil {
			return err
		}
	}
	return nil
}

func TestPropagatorRoundTrip(t *testing.T) {
	h := headers{}
	if err := (Propagator{}).Inject(With(context.Background(), "corr-12345678"), h); err != nil {
		t.Fatal(err)
	}
	ctx, err := (Propagator{}).Extract(context.Background(), h)
	if err != nil || From(ctx) != "corr-12345678" {
		t.Fatalf("extract: %q %v", From(ctx), err)
	}
	empty := headers{}
	if err := (Propagator{}).Inject(context.Background(), empty); err != nil || len(empty) != 0 {
		t.Fatal("no id, no header")
	}
}

func TestTransportSetsHeader(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Get(Header) }))
	defer srv.Close()
	c := &http.Client{Transport: Transport{}}
	req, _ := http.NewRequestWithContext(With(context.Background(), "corr-abcdefgh"), "GET", srv.URL, nil)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got != "corr-abcdefgh" {
		t.Fatalf("outbound header: %q", got)
	}
	if req.Header.Get(Header) != "" {
		t.Fatal("the caller's request must not be mutated")
	}
}
