package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// readyCacheTTL is how long /readyz and /health reuse one check of Temporal
// and the rate-limit store, so that probes from every kubelet and load
// balancer do not become a stream of calls to both.
const readyCacheTTL = 2 * time.Second

// readyCheckTimeout bounds one check of both dependencies.
const readyCheckTimeout = 3 * time.Second

// readiness caches the dependency checks. The mutex is held during a check,
// so callers arriving meanwhile wait for that one check and share its result.
type readiness struct {
	ttl time.Duration
	now func() time.Time

	mu       sync.Mutex
	checked  time.Time // zero: never checked
	temporal error
	store    error
	extra    map[string]error // Options.ReadyChecks by name
}

// dependencies reports whether Temporal and the rate-limit store answer,
// checking at most once per readyCacheTTL.
func (h *handler) dependencies(ctx context.Context) (temporal, store error) {
	r := &h.ready
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.checked.IsZero() && r.now().Sub(r.checked) < r.ttl {
		return r.temporal, r.store
	}
	// One caller checks for everyone: its disconnect must not become their answer.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyCheckTimeout)
	defer cancel()
	// The checks run side by side, each with the whole budget: a slow one
	// must not make the others look unreachable.
	var wg sync.WaitGroup
	var mu sync.Mutex
	extra := make(map[string]error, len(h.opts.ReadyChecks))
	wg.Go(func() { r.temporal = h.orch.Ready(ctx) })
	r.store = nil
	if h.opts.LimitStore != nil {
		wg.Go(func() { r.store = h.opts.LimitStore.Ping(ctx) })
	}
	for name, check := range h.opts.ReadyChecks {
		wg.Go(func() {
			err := check(ctx)
			mu.Lock()
			extra[name] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	r.extra = extra
	for name, err := range extra {
		if err != nil {
			h.logger.Warn("not ready: "+name, "error", err)
		}
	}
	if r.temporal != nil {
		h.logger.Warn("not ready: temporal", "error", r.temporal)
	}
	if r.store != nil {
		h.logger.Warn("not ready: rate limit store", "error", r.store)
	}
	r.checked = r.now()
	return r.temporal, r.store
}

// extraChecks is the last result of Options.ReadyChecks (call dependencies
// first).
func (h *handler) extraChecks() map[string]error {
	h.ready.mu.Lock()
	defer h.ready.mu.Unlock()
	return h.ready.extra
}

func (h *handler) livez(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }

// readyz fails when Temporal or the shared rate-limit store is unreachable
// (checked at most every readyCacheTTL); webhook secrets that are missing are
// reported (their deliveries are rejected) without making the instance
// unready.
func (h *handler) readyz(c *gin.Context) {
	if h.opts.Draining != nil && h.opts.Draining() {
		// Shutting down: load balancers take this instance out while it
		// still answers the requests already routed to it.
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "draining"})
		return
	}
	temporalErr, storeErr := h.dependencies(c.Request.Context())
	checks := gin.H{"temporal": "ok", "rate_limit_store": "ok",
		"github_webhook": secretState(h.opts.GitHubSecret), "slack_webhook": secretState(h.opts.SlackSecret)}
	ready := true
	if temporalErr != nil {
		checks["temporal"], ready = "unreachable", false
	}
	if storeErr != nil {
		checks["rate_limit_store"], ready = "unreachable", false
	}
	for name, err := range h.extraChecks() {
		checks[name] = "ok"
		if err != nil {
			checks[name], ready = "unreachable", false
		}
	}
	if !ready {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "checks": checks})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready", "checks": checks})
}

func secretState(secret []byte) string {
	if len(secret) == 0 {
		return "disabled: no secret configured, every delivery is rejected"
	}
	return "ok"
}

type healthResponse struct {
	Status       string            `json:"status"`
	Service      string            `json:"service"`
	Version      string            `json:"version"`
	Dependencies map[string]string `json:"dependencies"`
}

// health summarises the same (cached) checks for people and dashboards.
func (h *handler) health(c *gin.Context) {
	temporalErr, storeErr := h.dependencies(c.Request.Context())
	res := healthResponse{Status: "healthy", Service: "remediator", Version: h.opts.Version, Dependencies: map[string]string{}}
	if temporalErr != nil {
		res.Status = "degraded"
		res.Dependencies["temporal"] = "unhealthy"
	} else {
		res.Dependencies["temporal"] = "healthy"
	}
	if h.opts.Decisions != nil {
		res.Dependencies["decision_ledger"] = "built-in"
	}
	for name, err := range h.extraChecks() {
		res.Dependencies[name] = "healthy"
		if err != nil {
			res.Status, res.Dependencies[name] = "degraded", "unhealthy"
		}
	}
	if h.opts.LimitStore != nil {
		res.Dependencies["rate_limit_store"] = "healthy"
		if storeErr != nil {
			res.Status = "degraded"
			res.Dependencies["rate_limit_store"] = "unhealthy"
		}
	}
	// Always 200: this is a summary for people and dashboards; /readyz is the probe.
	c.JSON(http.StatusOK, res)
}
