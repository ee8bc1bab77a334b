package workflows

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
)

// capturingMetrics records what the workflow emits through the SDK's
// metrics handler.
type capturingMetrics struct {
	tags map[string]string
	s    *metricStore
}

type metricStore struct {
	mu       sync.Mutex
	counters map[string]int64
	timers   map[string][]time.Duration
}

func newCapturingMetrics() *capturingMetrics {
	return &capturingMetrics{s: &metricStore{counters: map[string]int64{}, timers: map[string][]time.Duration{}}}
}

func (m *capturingMetrics) key(name string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m.tags)) {
		// The SDK adds its own tags (namespace, task queue, workflow type);
		// only ours are compared.
		if k == "outcome" {
			parts = append(parts, k+"="+m.tags[k])
		}
	}
	return name + "|" + strings.Join(parts, ",")
}

func (m *capturingMetrics) WithTags(tags map[string]string) client.MetricsHandler {
	merged := maps.Clone(m.tags)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, tags)
	return &capturingMetrics{tags: merged, s: m.s}
}

func (m *capturingMetrics) Counter(name string) client.MetricsCounter { return counter{m, m.key(name)} }
func (m *capturingMetrics) Gauge(string) client.MetricsGauge {
	return client.MetricsNopHandler.Gauge("")
}
func (m *capturingMetrics) Timer(name string) client.MetricsTimer { return timer{m, m.key(name)} }

type counter struct {
	m   *capturingMetrics
	key string
}

func (c counter) Inc(n int64) {
	c.m.s.mu.Lock()
	defer c.m.s.mu.Unlock()
	c.m.s.counters[c.key] += n
}

type timer struct {
	m   *capturingMetrics
	key string
}

func (t timer) Record(d time.Duration) {
	t.m.s.mu.Lock()
	defer t.m.s.mu.Unlock()
	t.m.s.timers[t.key] = append(t.m.s.timers[t.key], d)
}

func (m *capturingMetrics) counter(name, tags string) int64 {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	return m.s.counters[name+"|"+tags]
}

func (m *capturingMetrics) timers(name string) []time.Duration {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	return m.s.timers[name+"|"]
}
