package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"remediator/internal/correlation"
)

// withCorrelationID stands in for the api package's middleware of the same
// name: it keeps the id on the gin context and in the request context.
func withCorrelationID(id string) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Set(ginCorrelationKey, id)
		c.Request = c.Request.WithContext(correlation.With(c.Request.Context(), id))
		c.Next()
	}
}

func attrOf(s tracetest.SpanStub, k attribute.Key) (string, bool) {
	for _, a := range s.Attributes {
		if a.Key == k {
			return a.Value.String(), true
		}
	}
	return "", false
}

func TestGinMiddlewareSpanCarriesCorrelationID(t *testing.T) {
	gin.SetMode(gin.TestMode)
	const id = "corr-12345678"
	// The order the api wiring must use.
	documented := func() []gin.HandlerFunc {
		return []gin.HandlerFunc{GinMiddleware("remediator-api"), withCorrelationID(id), CorrelationAttribute()}
	}
	for _, tc := range []struct {
		name   string
		chain  func() []gin.HandlerFunc
		parent bool
	}{
		{"documented order", documented, false},
		{"continues the caller's trace", documented, true},
		// An id set further down is still recorded once the handler returns.
		{"id set after", func() []gin.HandlerFunc {
			return []gin.HandlerFunc{GinMiddleware("remediator-api"), CorrelationAttribute(), withCorrelationID(id)}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp := installTracing(t)
			r := gin.New()
			// otelgin takes the global provider when it is built.
			r.Use(tc.chain()...)
			var handlerSpan trace.SpanContext
			r.GET("/v1/remediations/:id", func(c *gin.Context) {
				handlerSpan = trace.SpanContextFromContext(c.Request.Context())
				c.JSON(http.StatusOK, gin.H{"ok": true})
			})

			req := httptest.NewRequest(http.MethodGet, "/v1/remediations/r-1", nil)
			const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
			if tc.parent {
				req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
			}
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d", w.Code)
			}

			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1: %v", len(spans), spans)
			}
			s := spans[0]
			if s.SpanKind != trace.SpanKindServer {
				t.Errorf("span kind %v, want server", s.SpanKind)
			}
			if s.Name != "GET /v1/remediations/:id" {
				t.Errorf("span name %q", s.Name)
			}
			if got, ok := attrOf(s, CorrelationAttributeKey); !ok || got != id {
				t.Errorf("%s = %q (present %v), want %q", CorrelationAttributeKey, got, ok, id)
			}
			if got, _ := attrOf(s, "http.route"); got != "/v1/remediations/:id" {
				t.Errorf("http.route = %q", got)
			}
			if handlerSpan.SpanID() != s.SpanContext.SpanID() {
				t.Error("the handler's request context does not carry the server span")
			}
			if tc.parent {
				if s.SpanContext.TraceID().String() != traceID || !s.Parent.IsRemote() {
					t.Errorf("trace %s parent remote=%v, want the caller's trace %s", s.SpanContext.TraceID(), s.Parent.IsRemote(), traceID)
				}
			} else if s.Parent.IsValid() {
				t.Error("unexpected parent")
			}
		})
	}
}

func TestCorrelationAttributeWithoutTracing(t *testing.T) {
	gin.SetMode(gin.TestMode)
	saveGlobals(t)
	r := gin.New()
	r.Use(GinMiddleware("remediator-api"), withCorrelationID("corr-12345678"), CorrelationAttribute())
	r.GET("/", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d", w.Code)
	}
}

func TestHTTPTransportClientSpan(t *testing.T) {
	exp := installTracing(t)
	var gotTraceparent, gotCorrelation string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotTraceparent = r.Header.Get("traceparent")
		gotCorrelation = r.Header.Get(correlation.Header)
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()

	c := &http.Client{Transport: HTTPTransport(correlation.Transport{Base: srv.Client().Transport})}
	ctx := correlation.With(context.Background(), "corr-12345678")
	// A Slack webhook's path and a signed link's query are credentials.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/services/T0/B0/s3cretpath?sig=s3cretsig", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close() // ends the client span

	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1: %v", len(spans), spans)
	}
	s := spans[0]
	if s.SpanKind != trace.SpanKindClient {
		t.Errorf("span kind %v, want client", s.SpanKind)
	}
	if s.Name != "HTTP GET" {
		t.Errorf("span name %q", s.Name)
	}
	if got, _ := attrOf(s, "http.response.status_code"); got != "200" {
		t.Errorf("http.response.status_code = %q", got)
	}
	if got, _ := attrOf(s, "url.full"); got != srv.URL+"/" {
		t.Errorf("url.full = %q, want only scheme and host %q", got, srv.URL+"/")
	}
	for _, a := range s.Attributes {
		if v := a.Value.String(); strings.Contains(v, "s3cret") {
			t.Errorf("attribute %s carries the URL's secret: %q", a.Key, v)
		}
	}
	want := "00-" + s.SpanContext.TraceID().String() + "-" + s.SpanContext.SpanID().String() + "-01"
	if gotTraceparent != want {
		t.Errorf("server saw traceparent %q, want %q", gotTraceparent, want)
	}
	if gotCorrelation != "corr-12345678" {
		t.Errorf("server saw %s %q", correlation.Header, gotCorrelation)
	}
}

func TestHTTPTransportWithoutTracing(t *testing.T) {
	saveGlobals(t)
	var gotTraceparent string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotTraceparent = r.Header.Get("traceparent")
	}))
	defer srv.Close()
	c := &http.Client{Transport: HTTPTransport(nil)}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if gotTraceparent != "" {
		t.Errorf("traceparent %q sent without tracing", gotTraceparent)
	}
}
