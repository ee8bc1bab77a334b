package telemetry

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"remediator/internal/correlation"
)

// CorrelationAttributeKey is the span attribute that carries the request's
// correlation id (X-Correlation-ID), so traces join the logs.
const CorrelationAttributeKey = "remediator.correlation_id"

// ginCorrelationKey is where the api package's withCorrelationID middleware
// also keeps the id on the gin context (api.ctxCorrelation); the request
// context (correlation.From) is read first.
const ginCorrelationKey = "correlation_id"

// GinMiddleware returns the otelgin middleware: one server span per request,
// named after the route, continuing a W3C traceparent sent by the caller.
// service is the server name recorded on the span. With tracing disabled the
// global provider is a no-op and so are the spans.
//
// Order on the router (r.Use), so that the span covers every other
// middleware, including recovery and the 431 of the header limit, and
// CorrelationAttribute sees both the span and the id:
//
//	r.Use(telemetry.GinMiddleware(service), withCorrelationID(), telemetry.CorrelationAttribute(), recovery(logger), …)
func GinMiddleware(service string) gin.HandlerFunc {
	return otelgin.Middleware(service)
}

// CorrelationAttribute sets the request's correlation id as the span
// attribute remediator.correlation_id on the current (server) span. It must
// run after GinMiddleware (which puts the span into the request context) and
// after the api's withCorrelationID (which sets the id); see GinMiddleware
// for the order. Should the id only appear further down the chain, it is
// still recorded once the handlers return.
func CorrelationAttribute() gin.HandlerFunc {
	return func(c *gin.Context) {
		span := trace.SpanFromContext(c.Request.Context())
		if !span.IsRecording() {
			c.Next()
			return
		}
		if id := correlationOf(c); id != "" {
			span.SetAttributes(attribute.String(CorrelationAttributeKey, id))
			c.Next()
			return
		}
		c.Next()
		if id := correlationOf(c); id != "" {
			span.SetAttributes(attribute.String(CorrelationAttributeKey, id))
		}
	}
}

func correlationOf(c *gin.Context) string {
	if id := correlation.From(c.Request.Context()); id != "" {
		return id
	}
	return c.GetString(ginCorrelationKey)
}

// HTTPTransport wraps base (http.DefaultTransport when nil) in the otelhttp
// transport: a client span per outbound request, and the W3C trace headers
// on it, once SetupTracing has installed the global provider and propagator.
// Without them the spans are OTel's no-op and nothing is injected; the cost
// is a request clone per call. Compose it with correlation.Transport in
// either order, e.g. HTTPTransport(correlation.Transport{Base: base}). The
// client span ends when the response body is closed or read to EOF.
func HTTPTransport(base http.RoundTripper) http.RoundTripper {
	return otelhttp.NewTransport(base)
}
