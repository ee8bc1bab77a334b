package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/ulule/limiter/v3"
)

// ErrStoreUnavailable is wrapped by every error Take returns when the store
// could not be consulted (Redis down, timeout, cancelled context). The
// request's budget is then unknown: callers fail closed for writes.
var ErrStoreUnavailable = errors.New("rate limit store unavailable")

// ErrUnknownRule is wrapped by the error Take returns for a rule name that was
// not configured: a programming error, never silently unlimited.
var ErrUnknownRule = errors.New("unknown rate limit rule")

// Outcome label values of the remediator_ratelimit_requests_total counter.
const (
	OutcomeAllowed = "allowed"
	OutcomeLimited = "limited"
	OutcomeError   = "error"
)

// MetricName is the name of the counter Limiter registers.
const MetricName = "remediator_ratelimit_requests_total"

// Rule is one named budget, e.g. {"generate", 50 per hour}; see Limiter.Rules.
type Rule struct {
	Name string
	Rate limiter.Rate
}

// DefaultRules returns the built-in budgets, in limiter's formatted syntax,
// to be passed to ParseRules as defaults. Each call returns a fresh map.
//
//	generate       50-H    expensive LLM-backed generation
//	approvals      20-H    human approval actions
//	webhooks       1000-H  inbound webhook deliveries
//	general        1000-H  everything else
//	auth_failures  20-M    failed authentications per client IP (checked with
//	                       Peek before credentials are evaluated, counted with
//	                       Take after a failure)
func DefaultRules() map[string]string {
	return map[string]string{
		"generate":      "50-H",
		"approvals":     "20-H",
		"pr":            "100-H",
		"webhooks":      "1000-H",
		"general":       "1000-H",
		"auth_failures": "20-M",
	}
}

// ParseRules parses a comma-separated override list such as
// "generate=50-H,approvals=5-M" and merges it over defaults (name → formatted
// rate), so operators only spell out what they change. Rates use limiter's
// formatted syntax "<limit>-<S|M|H|D>" (per second, minute, hour, day).
// Whitespace around entries is ignored and an empty spec yields the defaults;
// names not in defaults add new rules.
//
// It fails, rather than guess, on a malformed entry, a duplicate name in
// spec, a name that is not [A-Za-z0-9_-]+ (names end up in Redis keys and
// metric labels), an invalid rate, or a limit below 1 — in spec and in
// defaults alike — so that a typo in configuration stops the service at
// start-up instead of silently changing a budget.
func ParseRules(spec string, defaults map[string]string) (map[string]limiter.Rate, error) {
	out := make(map[string]limiter.Rate, len(defaults))
	for name, formatted := range defaults {
		r, err := parseRule(name, formatted)
		if err != nil {
			return nil, fmt.Errorf("ratelimit: default rule: %w", err)
		}
		out[name] = r
	}
	seen := make(map[string]bool)
	for entry := range strings.SplitSeq(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, formatted, ok := strings.Cut(entry, "=")
		if !ok {
			return nil, fmt.Errorf("ratelimit: rule %q: want name=rate, e.g. generate=50-H", entry)
		}
		name, formatted = strings.TrimSpace(name), strings.TrimSpace(formatted)
		if seen[name] {
			return nil, fmt.Errorf("ratelimit: rule %q given twice", name)
		}
		seen[name] = true
		r, err := parseRule(name, formatted)
		if err != nil {
			return nil, fmt.Errorf("ratelimit: %w", err)
		}
		out[name] = r
	}
	return out, nil
}

func parseRule(name, formatted string) (limiter.Rate, error) {
	if err := validName(name); err != nil {
		return limiter.Rate{}, err
	}
	r, err := limiter.NewRateFromFormatted(formatted)
	if err != nil {
		return limiter.Rate{}, fmt.Errorf("rule %q: invalid rate %q (want e.g. 50-H, 5-M, 10-S): %v", name, formatted, err)
	}
	if r.Limit < 1 {
		return limiter.Rate{}, fmt.Errorf("rule %q: limit must be at least 1, got %q", name, formatted)
	}
	return r, nil
}

func validName(name string) error {
	if name == "" {
		return errors.New("empty rule name")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("rule name %q: only letters, digits, '_' and '-' are allowed", name)
		}
	}
	return nil
}

// Result is the outcome of one Take, with what is needed for the
// X-RateLimit-* and Retry-After response headers.
type Result struct {
	// Limit is the rule's budget per period.
	Limit int64
	// Remaining is what is left of the budget in the current period (0 when
	// Limited).
	Remaining int64
	// Reset is when the current period ends and the budget is restored
	// (whole-second precision).
	Reset time.Time
	// Limited is true when this request is over budget and must be refused
	// (typically with 429).
	Limited bool
}

// Limiter applies the configured rules over one Store. It is safe for
// concurrent use.
type Limiter struct {
	limiters map[string]*limiter.Limiter
	requests *prometheus.CounterVec
}

// New builds one limiter.Limiter per rule over store. Every rule/outcome
// counter series is created up front so dashboards see zeros rather than
// gaps. reg may be nil: the counters are then kept (Count still works) but
// not exported. If reg already has a compatible counter with MetricName
// (e.g. a second Limiter in the same process), that counter is shared.
func New(store *Store, rules map[string]limiter.Rate, reg prometheus.Registerer) (*Limiter, error) {
	if store == nil {
		return nil, errors.New("ratelimit: nil store")
	}
	if len(rules) == 0 {
		return nil, errors.New("ratelimit: no rules")
	}
	l := &Limiter{limiters: make(map[string]*limiter.Limiter, len(rules))}
	for name, rate := range rules {
		if err := validName(name); err != nil {
			return nil, fmt.Errorf("ratelimit: %w", err)
		}
		if rate.Limit < 1 || rate.Period <= 0 {
			return nil, fmt.Errorf("ratelimit: rule %q: invalid rate %+v", name, rate)
		}
		l.limiters[name] = limiter.New(store.backend, rate)
	}

	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricName,
		Help: "Rate-limit decisions by rule and outcome (allowed, limited, error).",
	}, []string{"rule", "outcome"})
	if reg != nil {
		if err := reg.Register(requests); err != nil {
			are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err)
			if !ok {
				return nil, fmt.Errorf("ratelimit: registering metrics: %w", err)
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, fmt.Errorf("ratelimit: registering metrics: %w", err)
			}
			requests = existing
		}
	}
	l.requests = requests
	for name := range rules {
		for _, outcome := range []string{OutcomeAllowed, OutcomeLimited, OutcomeError} {
			requests.WithLabelValues(name, outcome)
		}
	}
	return l, nil
}

// Take counts one request of key (typically the authenticated caller, or the
// client IP for anonymous routes) under rule and says whether it is allowed.
// Keys are namespaced by rule, so the same key has an independent budget per
// rule. Every call consumes budget, including refused ones: a client that
// keeps hammering stays limited until Reset.
//
// Errors: an unknown rule wraps ErrUnknownRule; any store failure wraps
// ErrStoreUnavailable (and the underlying error, so errors.Is also matches
// e.g. context.DeadlineExceeded). On error Result carries only Limit, and the
// caller must not treat the request as allowed unless it deliberately fails
// open for that route.
func (l *Limiter) Take(ctx context.Context, rule, key string) (Result, error) {
	res, err := l.consult(ctx, rule, key, (*limiter.Limiter).Get)
	if err != nil {
		return res, err
	}
	outcome := OutcomeAllowed
	if res.Limited {
		outcome = OutcomeLimited
	}
	l.requests.WithLabelValues(rule, outcome).Inc()
	return res, nil
}

// Peek reports key's budget under rule without consuming any of it. Limited
// is true once the budget is spent, that is when a Take now would be refused:
// it suits budgets that count something other than the request itself, such
// as failed authentications, which are checked before the request is
// evaluated and counted (with Take) only when it fails. A refusal is counted
// as OutcomeLimited and a store failure as OutcomeError; a Peek that finds
// budget left is not counted, since no request was charged.
//
// Errors are those of Take.
func (l *Limiter) Peek(ctx context.Context, rule, key string) (Result, error) {
	res, err := l.consult(ctx, rule, key, (*limiter.Limiter).Peek)
	if err != nil {
		return res, err
	}
	// Reached is only set past the limit; a spent budget refuses the next Take.
	res.Limited = res.Limited || res.Remaining <= 0
	if res.Limited {
		l.requests.WithLabelValues(rule, OutcomeLimited).Inc()
	}
	return res, nil
}

// consult asks the store for key's counter under rule with op (Get counts,
// Peek does not); store failures are counted and wrapped here, once.
func (l *Limiter) consult(ctx context.Context, rule, key string,
	op func(*limiter.Limiter, context.Context, string) (limiter.Context, error)) (Result, error) {
	lim, ok := l.limiters[rule]
	if !ok {
		return Result{}, fmt.Errorf("%w: %q", ErrUnknownRule, rule)
	}
	c, err := op(lim, ctx, rule+":"+key)
	if err != nil {
		l.requests.WithLabelValues(rule, OutcomeError).Inc()
		return Result{Limit: lim.Rate.Limit}, fmt.Errorf("%w: rule %q: %w", ErrStoreUnavailable, rule, err)
	}
	return Result{Limit: c.Limit, Remaining: c.Remaining, Reset: time.Unix(c.Reset, 0), Limited: c.Reached}, nil
}

// Rules returns the configured rules sorted by name, e.g. for /health or a
// start-up log line.
func (l *Limiter) Rules() []Rule {
	out := make([]Rule, 0, len(l.limiters))
	for _, name := range slices.Sorted(maps.Keys(l.limiters)) {
		out = append(out, Rule{Name: name, Rate: l.limiters[name].Rate})
	}
	return out
}

// Count reads back the remediator_ratelimit_requests_total value for rule and
// outcome (one of the Outcome constants), for tests and /health. It returns 0
// for an unknown rule or outcome rather than creating a new series.
func (l *Limiter) Count(rule, outcome string) float64 {
	if _, ok := l.limiters[rule]; !ok {
		return 0
	}
	switch outcome {
	case OutcomeAllowed, OutcomeLimited, OutcomeError:
	default:
		return 0
	}
	var m dto.Metric
	if err := l.requests.WithLabelValues(rule, outcome).Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
