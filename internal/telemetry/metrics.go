// Package telemetry holds the observability building blocks shared by
// `remediator api` and `remediator worker`: Temporal SDK metrics on the
// process's Prometheus registry, opt-in OpenTelemetry tracing configured from
// the standard OTEL_* environment, and the tracing middleware/transport for
// gin, outbound HTTP clients and the Temporal client.
package telemetry

import (
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/opentelemetry"
)

// sdkMeterName is the instrumentation scope of the Temporal SDK metrics; with
// scope info disabled it never shows up in the exported series.
const sdkMeterName = "temporal-sdk-go"

// latencyBuckets are the histogram boundaries, in seconds, of every Temporal
// SDK timer. OTel's default boundaries (0, 5, 10, 25 … 10000) are meant for
// milliseconds and would put every SDK latency into the first two buckets;
// these span a millisecond up to the ten minutes a long poll or a slow
// activity may take.
var latencyBuckets = []float64{
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30, 60, 120, 300, 600,
}

// businessBuckets are the boundaries, in seconds, of the workflow's own
// timers: a minute up to two days (the approval deadline is 24h by
// default).
var businessBuckets = []float64{60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 12 * 3600, 24 * 3600, 48 * 3600}

// SDKMetricsHandler returns a Temporal client.MetricsHandler (for
// client.Options.MetricsHandler) whose metrics are registered on reg and
// scraped with the rest of the process's metrics.
//
// The SDK names its metrics in Prometheus style already; the OTel Prometheus
// exporter keeps those names and adds the conventional suffixes:
//
//   - counters become monotonic counters with "_total":
//     temporal_request → temporal_request_total
//   - timers become histograms in seconds:
//     temporal_workflow_task_schedule_to_start_latency →
//     temporal_workflow_task_schedule_to_start_latency_seconds_{bucket,sum,count}
//   - gauges keep their name: temporal_worker_task_slots_available
//
// No otel_scope_* labels, otel_scope_info or target_info series are added.
//
// The exporter registers as an unchecked collector, so two exporters on one
// registry would not be refused at registration but would break every scrape
// with "collected before with the same name and label values". Calling
// SDKMetricsHandler again with the same registerer therefore returns the
// handler made the first time (the dev command runs api and worker on one
// registry); the SDK tells clients apart by the namespace/task_queue labels.
func SDKMetricsHandler(reg prometheus.Registerer) (client.MetricsHandler, error) {
	if reg == nil {
		return nil, errors.New("telemetry: SDKMetricsHandler needs a prometheus.Registerer")
	}
	memo := reflect.TypeOf(reg).Comparable()
	if memo {
		sdkHandlers.mu.Lock()
		defer sdkHandlers.mu.Unlock()
		if h, ok := sdkHandlers.m[reg]; ok {
			return h, nil
		}
	}
	h, err := newSDKMetricsHandler(reg)
	if err != nil {
		return nil, err
	}
	if memo {
		sdkHandlers.m[reg] = h
	}
	return h, nil
}

// sdkHandlers are the handlers made so far, by registerer.
var sdkHandlers = struct {
	mu sync.Mutex
	m  map[prometheus.Registerer]client.MetricsHandler
}{m: map[prometheus.Registerer]client.MetricsHandler{}}

func newSDKMetricsHandler(reg prometheus.Registerer) (client.MetricsHandler, error) {
	exp, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		otelprom.WithoutScopeInfo(),
		otelprom.WithoutTargetInfo(),
		otelprom.WithAggregationSelector(sdkAggregation),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter for Temporal SDK metrics: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(
		sdkmetric.WithReader(exp),
		// The workflow's business timers (time to first approval, time to
		// change) measure hours, not the SDK's milliseconds.
		sdkmetric.WithView(sdkmetric.NewView(
			sdkmetric.Instrument{Name: "remediator_*", Kind: sdkmetric.InstrumentKindHistogram},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: businessBuckets}},
		)),
		// target_info is disabled: the resource would only cost detection.
		sdkmetric.WithResource(resource.Empty()),
	)
	return opentelemetry.NewMetricsHandler(opentelemetry.MetricsHandlerOptions{
		Meter: mp.Meter(sdkMeterName),
		// client.MetricsCounter only ever increases: export Prometheus
		// counters (…_total), not gauges.
		UseMonotonicCounters: true,
		// The handler panics on instrument errors by default; a bad metric
		// must not take a worker down. otel.Handle logs through the global
		// OTel error handler.
		OnError: otel.Handle,
	}), nil
}

// sdkAggregation gives histograms (the SDK's timers) seconds-scale buckets and
// leaves every other instrument at the default.
func sdkAggregation(kind sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	if kind == sdkmetric.InstrumentKindHistogram {
		return sdkmetric.AggregationExplicitBucketHistogram{Boundaries: latencyBuckets}
	}
	return sdkmetric.DefaultAggregationSelector(kind)
}
