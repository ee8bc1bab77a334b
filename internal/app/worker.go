package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"remediator/activities"
	"remediator/internal/config"
	"remediator/worker"
	"remediator/workflows"
)

// stickyCacheOnce: the SDK's sticky workflow cache is process-wide and can
// be sized only before the first worker starts.
var stickyCacheOnce sync.Once

// NewWorker builds the worker with every workflow and activity registered,
// tuned by tuning (pollers, concurrency, sticky cache, graceful stop);
// onFatal (may be nil) learns that the worker stopped polling for good.
func NewWorker(c client.Client, acts *activities.Activities, logger *slog.Logger, tuning config.Worker, onFatal func(error)) sdkworker.Worker {
	if tuning.StickyCacheSize > 0 {
		stickyCacheOnce.Do(func() { sdkworker.SetStickyWorkflowCacheSize(tuning.StickyCacheSize) })
	}
	if acts != nil && acts.Workflows == nil {
		// The repository coordinator's reconcile describes remediations.
		acts.Workflows = c
	}
	return worker.New(c, acts, sdkworker.Options{
		MaxConcurrentActivityExecutionSize:     tuning.MaxActivities,
		MaxConcurrentWorkflowTaskExecutionSize: tuning.MaxWorkflowTasks,
		MaxConcurrentActivityTaskPollers:       tuning.ActivityPollers,
		MaxConcurrentWorkflowTaskPollers:       tuning.WorkflowPollers,
		// On stop, running activities get this long to finish; then their
		// contexts are cancelled and they end at their next heartbeat, to
		// be retried by another worker.
		WorkerStopTimeout: tuning.StopTimeout,
		OnFatalError: func(err error) {
			logger.Error("worker stopped on a fatal error", "error", err)
			if onFatal != nil {
				onFatal(err)
			}
		},
	})
}

// workerProbe answers the worker's /livez and /readyz: ready while the
// worker polls, Temporal answers and the shared ledger answers (each
// checked at most every readyCacheTTL).
type workerProbe struct {
	client  client.Client
	ledger  pinger // nil: nothing to check
	polling atomic.Bool

	mu      sync.Mutex
	checked time.Time
	checks  map[string]string
	ready   bool
}

const workerReadyTTL = 2 * time.Second

func (p *workerProbe) check(ctx context.Context) (bool, map[string]string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.checked.IsZero() && time.Since(p.checked) < workerReadyTTL && p.polling.Load() == p.ready {
		return p.ready, p.checks
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	checks, ready := map[string]string{"worker": "polling", "temporal": "ok"}, true
	if !p.polling.Load() {
		checks["worker"], ready = "not polling", false
	}
	// Side by side, each with the whole budget: a slow Temporal must not
	// make the ledger look unreachable.
	var temporalErr, ledgerErr error
	var wg sync.WaitGroup
	wg.Go(func() { _, temporalErr = p.client.CheckHealth(ctx, &client.CheckHealthRequest{}) })
	if p.ledger != nil {
		wg.Go(func() { ledgerErr = p.ledger.Ping(ctx) })
	}
	wg.Wait()
	if temporalErr != nil {
		checks["temporal"], ready = "unreachable", false
	}
	if p.ledger != nil {
		checks["decision_ledger"] = "ok"
		if ledgerErr != nil {
			checks["decision_ledger"], ready = "unreachable", false
		}
	}
	p.checked, p.checks, p.ready = time.Now(), checks, ready
	return ready, checks
}

// workerMux serves /livez, /readyz and /metrics.
func workerMux(p *workerProbe, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ready, checks := p.check(r.Context())
		if !ready {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "checks": checks})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "checks": checks})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// RunWorker is `remediator worker`: it refuses to start without vote keys
// or (unless Dragon holds the decisions) the shared PostgreSQL ledger; its
// own listener (REMEDIATOR_METRICS_ADDR) serves /livez, /readyz and
// /metrics. SIGTERM stops polling, lets running activities finish for
// REMEDIATOR_WORKER_STOP_TIMEOUT, then exits.
func RunWorker(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	p, err := boot(ctx, "worker", getenv, stderr, config.Config.ValidateWorker)
	if err != nil {
		return err
	}
	defer p.close()
	cfg, logger := p.cfg, p.logger
	comps, err := BuildActivities(ctx, cfg, logger, p.reg)
	if err != nil {
		return err
	}
	defer comps.Close()
	probe := &workerProbe{client: p.client}
	if pg, ok := comps.Ledger.(pinger); ok {
		if _, isLedger := comps.Acts.Decisions.(*activities.LedgerDecisions); isLedger {
			probe.ledger = pg
		}
	}
	if cfg.MetricsAddr != "" {
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("REMEDIATOR_METRICS_ADDR: %w", err)
		}
		srv := &http.Server{Handler: workerMux(probe, p.reg), ReadHeaderTimeout: 5 * time.Second}
		// The listener outlives the worker's stop, so /readyz says
		// "not polling" while activities drain.
		httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
		defer stopHTTP()
		go func() { _ = Serve(httpCtx, srv, ln, 5*time.Second) }()
		logger.Info("worker health and metrics listening", "addr", ln.Addr().String())
	}
	// A worker that stopped polling must not look alive: exit with its error.
	fatal := make(chan error, 1)
	w := NewWorker(p.client, comps.Acts, logger, cfg.Worker, func(err error) {
		probe.polling.Store(false)
		select {
		case fatal <- err:
		default:
		}
	})
	if err := w.Start(); err != nil {
		return fmt.Errorf("starting worker: %w", err)
	}
	probe.polling.Store(true)
	logger.Info("worker polling", "task_queue", workflows.TaskQueue, "workflow_pollers", cfg.Worker.WorkflowPollers,
		"activity_pollers", cfg.Worker.ActivityPollers, "max_activities", cfg.Worker.MaxActivities)
	select {
	case <-ctx.Done():
		probe.polling.Store(false)
		logger.Info("stopping worker: running activities get the stop timeout to finish", "stop_timeout", cfg.Worker.StopTimeout)
		w.Stop()
		logger.Info("worker stopped")
		return nil
	case err := <-fatal:
		return fmt.Errorf("worker stopped: %w", err)
	}
}
