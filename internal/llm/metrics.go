package llm

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the model costs and how it behaves, so operators can
// see spend (tokens), failure rates and latency next to the service's other
// metrics. A nil *Metrics records nothing.
type Metrics struct {
	requests *prometheus.CounterVec
	tokens   *prometheus.CounterVec
	duration prometheus.Histogram
}

// NewMetrics creates the collectors and registers them with reg (nil: kept
// but not exported). A collector already registered under the same name,
// such as one of a second client in the same process, is shared.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_llm_requests_total",
			Help: "Chat completion requests to the model provider by outcome (ok, error).",
		}, []string{"outcome"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_llm_tokens_total",
			Help: "Tokens the model provider reported, by kind (prompt, completion).",
		}, []string{"kind"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "remediator_llm_request_duration_seconds",
			Help:    "Duration of chat completion requests, errors included.",
			Buckets: []float64{0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300},
		}),
	}
	m.requests = register(reg, m.requests)
	m.tokens = register(reg, m.tokens)
	m.duration = register(reg, m.duration)
	for _, o := range []string{"ok", "error"} {
		m.requests.WithLabelValues(o)
	}
	for _, k := range []string{"prompt", "completion"} {
		m.tokens.WithLabelValues(k)
	}
	return m
}

// register registers c, or returns the compatible collector registered
// before it. Any other failure leaves c unexported rather than failing the
// client: metrics are an aid, not a dependency.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	return c
}

func (m *Metrics) observe(err error, d time.Duration, prompt, completion int) {
	if m == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.requests.WithLabelValues(outcome).Inc()
	m.duration.Observe(d.Seconds())
	if prompt > 0 {
		m.tokens.WithLabelValues("prompt").Add(float64(prompt))
	}
	if completion > 0 {
		m.tokens.WithLabelValues("completion").Add(float64(completion))
	}
}
