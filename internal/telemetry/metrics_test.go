package telemetry

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestSDKMetricsHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, err := SDKMetricsHandler(reg)
	if err != nil {
		t.Fatal(err)
	}
	tagged := h.WithTags(map[string]string{"namespace": "default", "task_queue": "remediations"})
	tagged.Counter("temporal_request").Inc(2)
	tagged.Counter("temporal_request").Inc(1)
	tagged.Timer("temporal_workflow_task_schedule_to_start_latency").Record(250 * time.Millisecond)
	tagged.Gauge("temporal_worker_task_slots_available").Update(5)

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
		if n := f.GetName(); strings.HasPrefix(n, "otel_scope") || n == "target_info" {
			t.Errorf("unexpected series %s", n)
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.HasPrefix(l.GetName(), "otel_") {
					t.Errorf("%s: unexpected label %s=%q", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}

	one := func(name string, typ dto.MetricType) *dto.Metric {
		t.Helper()
		f, ok := byName[name]
		if !ok {
			names := make([]string, 0, len(byName))
			for n := range byName {
				names = append(names, n)
			}
			t.Fatalf("no series %s; have %v", name, names)
		}
		if f.GetType() != typ {
			t.Fatalf("%s: type %v, want %v", name, f.GetType(), typ)
		}
		if len(f.GetMetric()) != 1 {
			t.Fatalf("%s: %d series, want 1", name, len(f.GetMetric()))
		}
		m := f.GetMetric()[0]
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["namespace"] != "default" || labels["task_queue"] != "remediations" || len(labels) != 2 {
			t.Errorf("%s: labels %v", name, labels)
		}
		return m
	}

	if got := one("temporal_request_total", dto.MetricType_COUNTER).GetCounter().GetValue(); got != 3 {
		t.Errorf("temporal_request_total = %v, want 3", got)
	}
	hist := one("temporal_workflow_task_schedule_to_start_latency_seconds", dto.MetricType_HISTOGRAM).GetHistogram()
	if hist.GetSampleCount() != 1 || math.Abs(hist.GetSampleSum()-0.25) > 1e-9 {
		t.Errorf("latency histogram count=%d sum=%v, want 1 and 0.25", hist.GetSampleCount(), hist.GetSampleSum())
	}
	// Seconds-scale buckets: 0.25s lands in the 0.25 bucket, not the first
	// of OTel's millisecond-scale defaults.
	for _, b := range hist.GetBucket() {
		want := uint64(0)
		if b.GetUpperBound() >= 0.25 {
			want = 1
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	if len(hist.GetBucket()) != len(latencyBuckets) {
		t.Errorf("%d buckets, want %d", len(hist.GetBucket()), len(latencyBuckets))
	}
	if got := one("temporal_worker_task_slots_available", dto.MetricType_GAUGE).GetGauge().GetValue(); got != 5 {
		t.Errorf("temporal_worker_task_slots_available = %v, want 5", got)
	}
}

func TestSDKMetricsHandlerErrors(t *testing.T) {
	if _, err := SDKMetricsHandler(nil); err == nil {
		t.Error("nil registerer: want an error")
	}
}

// A second call with the same registry (api and worker of the dev command)
// must not register a second exporter, which would fail every scrape.
func TestSDKMetricsHandlerSameRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := SDKMetricsHandler(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := SDKMetricsHandler(reg)
	if err != nil {
		t.Fatal(err)
	}
	a.Counter("temporal_request").Inc(1)
	b.Counter("temporal_request").Inc(1)
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() == "temporal_request_total" {
			if got := f.GetMetric()[0].GetCounter().GetValue(); got != 2 {
				t.Errorf("temporal_request_total = %v, want 2", got)
			}
			return
		}
	}
	t.Error("no temporal_request_total")
}
