package api

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"remediator/internal/orchestrator"
)

// Per-repository admission caps: a start the repository's cap refuses is
// an orchestrator.AdmissionRefusedError (repo_cap_reached, 429). REST
// answers carry Retry-After and the counts in details; Alertmanager
// deliveries answer it per alert ("refused", code repo_cap_reached). Every
// refusal is counted in remediator_admission_refused_total{reason} (the
// cap: max_active or max_per_hour); the repository's coordinator workflow
// records it (its state query keeps the last 50).

// admissionCounting wraps the orchestrator so that every refused start,
// whichever route asked for it, is counted once.
type admissionCounting struct {
	Orchestrator
	refused *prometheus.CounterVec
	logger  *slog.Logger
}

func (o admissionCounting) Start(ctx context.Context, req orchestrator.StartRequest) (orchestrator.StartResult, error) {
	res, err := o.Orchestrator.Start(ctx, req)
	o.count(ctx, err)
	return res, err
}

func (o admissionCounting) Generate(ctx context.Context, req orchestrator.StartRequest, wait time.Duration) (orchestrator.StartResult, orchestrator.Status, bool, error) {
	res, st, ready, err := o.Orchestrator.Generate(ctx, req, wait)
	o.count(ctx, err)
	return res, st, ready, err
}

// count counts a refusal and logs it at debug level: a storm is refused
// by the hundreds, and the metric and the coordinator already record it.
func (o admissionCounting) count(ctx context.Context, err error) {
	var ar *orchestrator.AdmissionRefusedError
	if !errors.As(err, &ar) {
		return
	}
	o.refused.WithLabelValues(ar.Limit).Inc()
	o.logger.DebugContext(ctx, "start refused by the repository's cap", "repo", ar.Repo, "remediation_id", ar.RemediationID,
		"limit", ar.Limit, "active", ar.Active, "started_last_hour", ar.StartedLastHour, "retry_after", ar.RetryAfter)
}

// watchAdmissions registers remediator_admission_refused_total and wraps
// h.orch to count into it.
func (h *handler) watchAdmissions() {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "remediator_admission_refused_total",
		Help: "Starts refused because their repository reached its cap (reason: max_active or max_per_hour); nothing was started.",
	}, []string{"reason"})
	if h.opts.Registerer != nil {
		if err := h.opts.Registerer.Register(refused); err != nil {
			h.logger.Error("registering counters", "error", err)
		}
	}
	h.orch = admissionCounting{Orchestrator: h.orch, refused: refused, logger: h.logger}
}

// admissionDetails sets Retry-After (whole seconds, at least 1) for a cap
// refusal and returns the error's details; nil for other errors.
func admissionDetails(c *gin.Context, err error) map[string]any {
	var ar *orchestrator.AdmissionRefusedError
	if !errors.As(err, &ar) {
		return nil
	}
	wait := max(int64(math.Ceil(ar.RetryAfter.Seconds())), 1)
	c.Header("Retry-After", strconv.FormatInt(wait, 10))
	return map[string]any{
		"limit": ar.Limit, "active": ar.Active, "max_active": ar.MaxActive,
		"started_last_hour": ar.StartedLastHour, "max_per_hour": ar.MaxPerHour, "retry_after_seconds": wait,
	}
}
