// Package api is the HTTP edge: Gin only, no Temporal SDK. It authenticates,
// authorises, validates and answers in one error shape; everything durable
// goes through the orchestrator.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"remediator/activities"
	"remediator/internal/audit"
	"remediator/internal/auth"
	"remediator/internal/ledger"
	"remediator/internal/orchestrator"
	"remediator/internal/ratelimit"
	"remediator/workflows"
)

// Orchestrator is what the handlers need from the workflow side.
type Orchestrator interface {
	Start(ctx context.Context, req orchestrator.StartRequest) (orchestrator.StartResult, error)
	Get(ctx context.Context, id string) (orchestrator.Status, error)
	Decide(ctx context.Context, v orchestrator.Vote) (orchestrator.Status, error)
	Cancel(ctx context.Context, id string) error
	RepoOf(ctx context.Context, id string) (string, error)
	List(ctx context.Context, f orchestrator.ListFilter) (orchestrator.ListResult, error)
	// AlertResolved records on a running remediation that its alert resolved.
	AlertResolved(ctx context.Context, id, fingerprint string, at time.Time) error
	// Attach records on a running remediation that a later event with its
	// fingerprint arrived.
	Attach(ctx context.Context, id, fingerprint string, at time.Time) error
	// Generate starts a remediation and waits at most wait for its fix.
	Generate(ctx context.Context, req orchestrator.StartRequest, wait time.Duration) (orchestrator.StartResult, orchestrator.Status, bool, error)
	// FindByIncident finds the remediation of an incident within scope.
	FindByIncident(ctx context.Context, incidentID string, scope orchestrator.Scope) (string, error)
	Ready(ctx context.Context) error
	Namespace() string
	// Regenerate asks for a new fix of a remediation awaiting approval.
	Regenerate(ctx context.Context, r orchestrator.RegenerateRequest) (orchestrator.Status, error)
	// Audit reads a remediation's audit events from the workflow.
	Audit(ctx context.Context, id string) ([]workflows.AuditEvent, error)
	// Supersede tells the remediations of older failures on line that id
	// replaces them.
	Supersede(ctx context.Context, id, sha string, line orchestrator.Line) ([]string, error)
}

// DecisionReader serves decision records (the built-in ledger).
type DecisionReader interface {
	Get(ctx context.Context, id string) (ledger.Decision, error)
}

// Options configure the handler.
type Options struct {
	// Auth authenticates every /api request; nil refuses them all.
	Auth *auth.Authenticator
	// Limiter enforces the per-route rules; nil disables rate limiting.
	Limiter *ratelimit.Limiter
	// LimitStore is pinged by /readyz (Redis outages make the API not ready).
	LimitStore *ratelimit.Store
	// Middleware runs right after the correlation id is set and before
	// everything else (tracing).
	Middleware []gin.HandlerFunc
	// Draining, when it says true, makes /readyz answer 503 "draining"
	// (the process is shutting down gracefully).
	Draining func() bool
	// ReadyChecks are further dependencies /readyz checks by name (e.g.
	// the PostgreSQL decision ledger), cached with the others.
	ReadyChecks map[string]func(context.Context) error
	// TrustedProxies may set X-Forwarded-For; empty trusts nobody.
	TrustedProxies []string
	// GitHubSecret and SlackSecret verify webhooks; empty rejects every delivery.
	GitHubSecret, SlackSecret []byte
	// GitLabWebhookToken authenticates GitLab pipeline hooks on /api/ci/event
	// (X-Gitlab-Token); empty refuses them.
	GitLabWebhookToken []byte
	// AlertRepoLabel names the alert label that holds the repository
	// (default "repository"); AlertRoutes maps alert names to repositories
	// for alerts without it.
	AlertRepoLabel string
	AlertRoutes    map[string]string
	// SlackUsers links Slack user ids to principals allowed to vote from buttons.
	SlackUsers      map[string]auth.Principal
	WebhookMaxBytes int64
	// Metrics serves /metrics (Prometheus text format); nil answers 404.
	Metrics http.Handler
	// Registerer receives the per-route rate-limit counters; nil keeps them unregistered.
	Registerer prometheus.Registerer
	Decisions  DecisionReader
	// Repos canonicalises repositories at the edge; nil refuses every start.
	Repos                  RepoResolver
	MaxBodyBytes           int64
	PublicURL              string
	UIURL                  string
	DefaultApprovalTimeout time.Duration
	Version                string
	// Dragon reads decisions for Dragon's callbacks; DragonWebhookSecret
	// verifies them (empty refuses every callback).
	Dragon              DragonClient
	DragonWebhookSecret []byte
	// DragonUsers decides whom a decision taken in Dragon counts as.
	DragonUsers activities.DragonUsers
	// Slack opens the reason dialog and answers clicks; nil without a Slack
	// client (buttons still vote).
	Slack SlackClient
	// GenerateWait bounds how long POST /api/generate waits for the fix.
	GenerateWait time.Duration
	// Codec serves /codec/decode and /codec/encode (codec.go).
	Codec CodecOptions
	// Audit is the audit store: GET /api/remediations/{id}/audit serves its
	// records, and refusals the workflow cannot record are appended (nil:
	// neither).
	Audit AuditStore
	// UI builds the approver console served under /ui/ (internal/console)
	// from the API's access rules; nil: no console.
	UI func(Access) http.Handler
}

// AuditStore is the part of the audit store the API uses.
type AuditStore interface {
	Append(ctx context.Context, events ...audit.Event) error
	List(ctx context.Context, remediationID string) ([]audit.Record, error)
}

type handler struct {
	logger *slog.Logger
	orch   Orchestrator
	opts   Options
	// limited counts rate-limit decisions per route and outcome.
	limited *prometheus.CounterVec
	// webhookRejected counts deliveries whose signature or token failed.
	webhookRejected *prometheus.CounterVec
	// unroutedAlerts counts alerts refused for naming no repository.
	unroutedAlerts prometheus.Counter
	// ready caches the dependency checks of /readyz and /health.
	ready readiness
}

// NewHandler builds the whole HTTP surface.
func NewHandler(logger *slog.Logger, orch Orchestrator, opts Options) http.Handler {
	r, _ := newHandler(logger, orch, opts)
	return r
}

// newHandler is NewHandler that also returns the handler state, for tests.
func newHandler(logger *slog.Logger, orch Orchestrator, opts Options) (*gin.Engine, *handler) {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.DefaultApprovalTimeout <= 0 {
		opts.DefaultApprovalTimeout = 24 * time.Hour
	}
	if opts.WebhookMaxBytes <= 0 {
		opts.WebhookMaxBytes = 25 << 20
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	if err := r.SetTrustedProxies(opts.TrustedProxies); err != nil {
		logger.Error("invalid trusted proxies; trusting none", "error", err)
		_ = r.SetTrustedProxies(nil)
	}
	h := &handler{logger: logger, orch: orch, opts: opts, limited: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "remediator_http_ratelimit_total",
		Help: "Rate-limit decisions per route: allowed, limited, or error (store unavailable).",
	}, []string{"method", "route", "outcome"}), ready: readiness{ttl: readyCacheTTL, now: time.Now},
		webhookRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_webhook_verification_failures_total",
			Help: "Webhook deliveries refused because their signature or token did not verify (reason: invalid, or not_configured when no secret is set).",
		}, []string{"source", "reason"}),
		unroutedAlerts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "remediator_alerts_unrouted_total",
			Help: "Alerts refused because they name no repository (label or route).",
		})}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{h.limited, h.unroutedAlerts, h.webhookRejected} {
			if err := opts.Registerer.Register(c); err != nil {
				logger.Error("registering counters", "error", err)
			}
		}
	}
	// The correlation id comes first so that every answer, even a refusal of
	// oversized headers, carries it; the header limit is the first check of
	// the request itself, after the bookkeeping that makes its 431 look and
	// log like every other answer.
	r.Use(withCorrelationID())
	// Tracing (when configured) starts its span here, after the correlation
	// id exists, so the span can carry it.
	r.Use(opts.Middleware...)
	r.Use(recovery(logger), securityHeaders(), accessLog(logger), limitHeaders(logger))
	h.watchAdmissions()
	routes(r, h)
	return r, h
}

// NewServer wraps h in an http.Server with timeouts on every phase; the write
// timeout leaves room for an approval Update to complete. net/http may read
// up to 1 MiB of headers so that the handler, not Go's bare 431, refuses
// requests over the documented 64 KiB (in the JSON error shape, with a
// correlation id); only headers beyond 1 MiB get Go's own answer.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    serverMaxHeaderBytes,
	}
}
