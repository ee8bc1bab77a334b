package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
)

// OTLP protocols SetupTracing can export with.
const (
	ProtocolGRPC         = "grpc"
	ProtocolHTTPProtobuf = "http/protobuf"
)

// SetupTracing turns on OpenTelemetry tracing when, and only when, the
// standard OTel environment (read through getenv) asks for it:
//
//   - OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none: off, whatever else is set;
//   - OTEL_TRACES_EXPORTER=otlp: on;
//   - OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set: on;
//   - otherwise off.
//
// The protocol is OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else
// OTEL_EXPORTER_OTLP_PROTOCOL, else grpc; grpc and http/protobuf are
// supported, anything else (http/json, or an exporter other than otlp) is an
// error. The service name is OTEL_SERVICE_NAME, else service; version becomes
// service.version (other attributes come from OTEL_RESOURCE_ATTRIBUTES).
//
// Only the decision above uses getenv: the OTLP exporter reads endpoint,
// headers, TLS, timeout and compression (OTEL_EXPORTER_OTLP_*), and the SDK
// reads the sampler (OTEL_TRACES_SAMPLER*) and batching (OTEL_BSP_*), from the
// process environment itself. Pass os.Getenv.
//
// When enabled it sets the global TracerProvider (batching, OTLP) and the
// global propagator (W3C TraceContext + Baggage); call shutdown before exit to
// flush the spans. When disabled it returns a no-op shutdown and touches no
// globals: the global provider stays OTel's no-op, so GinMiddleware,
// HTTPTransport and the Temporal interceptor record nothing.
func SetupTracing(ctx context.Context, getenv func(string) string, service, version string) (shutdown func(context.Context) error, enabled bool, err error) {
	noop := func(context.Context) error { return nil }
	on, protocol, err := tracingConfig(getenv)
	if err != nil || !on {
		return noop, false, err
	}

	res, err := tracingResource(ctx, getenv, service, version)
	if err != nil {
		return noop, false, err
	}

	var exp *otlptrace.Exporter
	switch protocol {
	case ProtocolGRPC:
		exp, err = otlptracegrpc.New(ctx)
	case ProtocolHTTPProtobuf:
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return noop, false, fmt.Errorf("telemetry: OTLP %s trace exporter: %w", protocol, err)
	}

	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(redactingExporter{next: exp}),
		sdktrace.WithResource(res),
	)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{}, propagation.Baggage{},
	))
	return tp.Shutdown, true, nil
}

// tracingResource describes this process on every span: service.name is
// OTEL_SERVICE_NAME, else service; service.version is version. They override
// what OTEL_RESOURCE_ATTRIBUTES (read from the process environment) says
// about them; its other attributes are kept.
func tracingResource(ctx context.Context, getenv func(string) string, service, version string) (*resource.Resource, error) {
	name := strings.TrimSpace(getenv("OTEL_SERVICE_NAME"))
	if name == "" {
		name = service
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	if version != "" {
		attrs = append(attrs, attribute.String("service.version", version))
	}
	// Later options win.
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
		resource.WithAttributes(attrs...),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: tracing resource: %w", err)
	}
	return res, nil
}

// tracingConfig decides from the OTel environment whether tracing is on and
// with which OTLP protocol (see SetupTracing). The protocol is only checked,
// and only returned, when tracing is on.
func tracingConfig(getenv func(string) string) (on bool, protocol string, err error) {
	env := func(k string) string { return strings.ToLower(strings.TrimSpace(getenv(k))) }

	if env("OTEL_SDK_DISABLED") == "true" {
		return false, "", nil
	}
	// OTEL_TRACES_EXPORTER is a comma-separated list; "none" anywhere wins.
	otlp := false
	for _, e := range strings.Split(env("OTEL_TRACES_EXPORTER"), ",") {
		switch e = strings.TrimSpace(e); e {
		case "":
		case "none":
			return false, "", nil
		case "otlp":
			otlp = true
		default:
			return false, "", fmt.Errorf("telemetry: OTEL_TRACES_EXPORTER=%q is not supported (use otlp or none)", e)
		}
	}
	if !otlp && env("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return false, "", nil
	}

	protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = env("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch protocol {
	case "":
		return true, ProtocolGRPC, nil
	case ProtocolGRPC, ProtocolHTTPProtobuf:
		return true, protocol, nil
	default:
		return false, "", fmt.Errorf("telemetry: OTLP protocol %q is not supported (use %s or %s)", protocol, ProtocolGRPC, ProtocolHTTPProtobuf)
	}
}

// TemporalInterceptors returns the Temporal SDK's OpenTelemetry tracing
// interceptor, for client.Options.Interceptors (worker interceptors are
// derived from the client's). Add it only when SetupTracing reported tracing
// enabled, and preferably after SetupTracing: it uses the global
// TracerProvider and writes W3C TraceContext+Baggage into Temporal headers.
func TemporalInterceptors() ([]interceptor.ClientInterceptor, error) {
	i, err := opentelemetry.NewTracingInterceptor(opentelemetry.TracerOptions{})
	if err != nil {
		return nil, fmt.Errorf("telemetry: Temporal tracing interceptor: %w", err)
	}
	return []interceptor.ClientInterceptor{i}, nil
}

// redactingExporter keeps credentials that live in URLs (Slack webhook and
// response_url paths, signed download links' queries) out of the exported
// spans: url.full (and the older http.url) become scheme://host/ only.
// otelhttp sets them after the span starts, so this is done on export.
type redactingExporter struct{ next sdktrace.SpanExporter }

func (e redactingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, s := range spans {
		out[i] = s
		attrs, copied := s.Attributes(), false
		for j, kv := range attrs {
			if kv.Key == "url.full" || kv.Key == "http.url" {
				if !copied {
					attrs, copied = append([]attribute.KeyValue(nil), attrs...), true
				}
				attrs[j] = attribute.String(string(kv.Key), RedactURL(kv.Value.AsString()))
			}
		}
		if copied {
			out[i] = redactedSpan{ReadOnlySpan: s, attrs: attrs}
		}
	}
	return e.next.ExportSpans(ctx, out)
}

func (e redactingExporter) Shutdown(ctx context.Context) error { return e.next.Shutdown(ctx) }

// redactedSpan is a span with its attributes replaced.
type redactedSpan struct {
	sdktrace.ReadOnlySpan
	attrs []attribute.KeyValue
}

func (r redactedSpan) Attributes() []attribute.KeyValue { return r.attrs }

// RedactURL keeps a URL's scheme and host.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "[REDACTED]"
	}
	return u.Scheme + "://" + u.Host + "/"
}
