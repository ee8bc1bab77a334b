package telemetry

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestTracingConfig(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      map[string]string
		on       bool
		protocol string
		err      string
	}{
		{name: "empty env", env: nil},
		{name: "exporter otlp", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, on: true, protocol: "grpc"},
		{name: "exporter OTLP with blanks", env: map[string]string{"OTEL_TRACES_EXPORTER": " OTLP "}, on: true, protocol: "grpc"},
		{name: "endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, on: true, protocol: "grpc"},
		{name: "traces endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}, on: true, protocol: "grpc"},
		{name: "metrics endpoint only", env: map[string]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://collector:4317"}},
		{name: "blank endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}},
		{name: "sdk disabled wins", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}},
		{name: "sdk disabled TRUE", env: map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}},
		{name: "sdk disabled false", env: map[string]string{"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, on: true, protocol: "grpc"},
		{name: "exporter none wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}},
		{name: "none in a list wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp,none"}},
		{name: "unsupported exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, err: "zipkin"},
		{name: "protocol grpc", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, on: true, protocol: "grpc"},
		{name: "protocol http/protobuf", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, on: true, protocol: "http/protobuf"},
		{name: "traces protocol overrides", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, on: true, protocol: "http/protobuf"},
		{name: "protocol http/json", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, err: "http/json"},
		{name: "bad protocol ignored when off", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			on, protocol, err := tracingConfig(envOf(tc.env))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.err)
				}
				if on {
					t.Error("on with an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if on != tc.on || protocol != tc.protocol {
				t.Errorf("got (%v, %q), want (%v, %q)", on, protocol, tc.on, tc.protocol)
			}
		})
	}
}

// globals records the OTel globals and checks, or restores, them.
type globals struct {
	tp trace.TracerProvider
	tm propagation.TextMapPropagator
}

func saveGlobals(t *testing.T) globals {
	t.Helper()
	g := globals{tp: otel.GetTracerProvider(), tm: otel.GetTextMapPropagator()}
	t.Cleanup(func() { g.restore() })
	return g
}

// restore puts the saved globals back; setting OTel's own delegating global
// onto itself would only log an error, so unchanged ones are left alone.
func (g globals) restore() {
	if otel.GetTracerProvider() != g.tp {
		otel.SetTracerProvider(g.tp)
	}
	if otel.GetTextMapPropagator() != g.tm {
		otel.SetTextMapPropagator(g.tm)
	}
}

func (g globals) unchanged(t *testing.T) {
	t.Helper()
	if otel.GetTracerProvider() != g.tp {
		t.Errorf("global TracerProvider changed to %T", otel.GetTracerProvider())
	}
	if otel.GetTextMapPropagator() != g.tm {
		t.Errorf("global propagator changed to %T", otel.GetTextMapPropagator())
	}
}

func TestSetupTracingDisabled(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"empty env", nil},
		{"sdk disabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}},
		{"exporter none", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := saveGlobals(t)
			shutdown, enabled, err := SetupTracing(context.Background(), envOf(tc.env), "remediator-api", "1.2.3")
			if err != nil {
				t.Fatal(err)
			}
			if enabled {
				t.Error("enabled")
			}
			if shutdown == nil {
				t.Fatal("nil shutdown")
			}
			if err := shutdown(context.Background()); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			g.unchanged(t)
		})
	}
}

func TestSetupTracingRefusesUnsupportedProtocol(t *testing.T) {
	g := saveGlobals(t)
	shutdown, enabled, err := SetupTracing(context.Background(), envOf(map[string]string{
		"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json",
	}), "remediator-api", "1.2.3")
	if err == nil || !strings.Contains(err.Error(), "http/json") {
		t.Errorf("err = %v, want the protocol refused", err)
	}
	if enabled || shutdown == nil {
		t.Errorf("enabled=%v shutdown=%v", enabled, shutdown != nil)
	}
	g.unchanged(t)
}

// With an endpoint set, both protocols build an exporter (neither connects
// before the first export) and install the globals.
func TestSetupTracingEnabled(t *testing.T) {
	for _, protocol := range []string{"grpc", "http/protobuf"} {
		t.Run(protocol, func(t *testing.T) {
			saveGlobals(t)
			// The exporters read the process environment themselves.
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
			shutdown, enabled, err := SetupTracing(context.Background(), os.Getenv, "remediator-worker", "1.2.3")
			if err != nil {
				t.Fatal(err)
			}
			if !enabled {
				t.Fatal("not enabled")
			}
			if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); !ok {
				t.Errorf("global TracerProvider is %T", otel.GetTracerProvider())
			}
			fields := strings.Join(otel.GetTextMapPropagator().Fields(), ",")
			if !strings.Contains(fields, "traceparent") || !strings.Contains(fields, "baggage") {
				t.Errorf("propagator fields %s, want traceparent and baggage", fields)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
	}
}

func TestTracingResource(t *testing.T) {
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging,service.version=0.0.0")
	t.Setenv("OTEL_SERVICE_NAME", "")
	for _, tc := range []struct {
		name, serviceEnv, want string
	}{
		{"default name", "", "remediator-api"},
		{"OTEL_SERVICE_NAME", "remediator-api-eu", "remediator-api-eu"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tracingResource(context.Background(), envOf(map[string]string{"OTEL_SERVICE_NAME": tc.serviceEnv}), "remediator-api", "1.2.3")
			if err != nil {
				t.Fatal(err)
			}
			set := res.Set()
			for k, want := range map[attribute.Key]string{
				"service.name": tc.want, "service.version": "1.2.3", "deployment.environment.name": "staging",
			} {
				if v, _ := set.Value(k); v.AsString() != want {
					t.Errorf("%s = %q, want %q", k, v.AsString(), want)
				}
			}
		})
	}
}

func TestTemporalInterceptors(t *testing.T) {
	is, err := TemporalInterceptors()
	if err != nil {
		t.Fatal(err)
	}
	if len(is) != 1 || is[0] == nil {
		t.Fatalf("interceptors %v, want one", is)
	}
}

// installTracing sets an in-memory, synchronous TracerProvider and the W3C
// propagator as the globals until the test ends.
func installTracing(t *testing.T) *tracetest.InMemoryExporter {
	t.Helper()
	saveGlobals(t)
	exp := tracetest.NewInMemoryExporter()
	// As SetupTracing builds it: URLs redacted on export.
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(redactingExporter{next: exp}))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return exp
}
