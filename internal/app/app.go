// Package app assembles the long-lived pieces (Temporal client, worker, API,
// providers) from configuration. The commands, the dev stack and the
// end-to-end tests all use it, so they run the same wiring.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"remediator/activities"
	"remediator/api"
	"remediator/internal/auth"
	"remediator/internal/config"
	"remediator/internal/forge"
	"remediator/internal/gitlocal"
	"remediator/internal/ledger"
	"remediator/internal/logging"
	"remediator/internal/orchestrator"
	"remediator/internal/ratelimit"
	"remediator/internal/recipe"
	"remediator/internal/sandbox"
	"remediator/internal/vote"
	"remediator/worker"
)

// Components are the long-lived pieces every command assembles from config.
type Components struct {
	Acts   *activities.Activities
	Ledger *ledger.Store
}

// BuildActivities wires the local providers: git repositories on disk under
// the configured roots, recipe fixes in the recipe sandbox, the built-in
// decision ledger, and the keys votes are verified with. Without a working
// sandbox it warns loudly (auto) or refuses to build (required).
//
// reg receives the model's metrics (tokens, latency); nil keeps them
// unregistered.
func BuildActivities(ctx context.Context, cfg config.Config, logger *slog.Logger, reg prometheus.Registerer) (Components, error) {
	git, err := gitlocal.New(gitlocal.Options{Roots: cfg.GitRoots, ScratchDir: filepath.Join(cfg.DataDir, "scratch")})
	if err != nil {
		return Components{}, err
	}
	sb, err := sandbox.New(ctx, sandbox.Options{Mode: cfg.RecipeSandbox})
	if err != nil {
		return Components{}, fmt.Errorf("REMEDIATOR_RECIPE_SANDBOX=%s: %w", cfg.RecipeSandbox, err)
	}
	if w := sb.Warning(); w != "" {
		logger.Warn("RECIPE COMMANDS ARE NOT SANDBOXED: "+w, "mode", cfg.RecipeSandbox)
	} else {
		logger.Info("recipe sandbox ready", "mode", cfg.RecipeSandbox)
	}
	recipes := recipe.Builtin()
	if cfg.RecipesFile != "" {
		extra, err := recipe.LoadFile(cfg.RecipesFile)
		if err != nil {
			return Components{}, fmt.Errorf("REMEDIATOR_RECIPES_FILE: %w", err)
		}
		recipes = append(extra, recipes...)
	}
	store, err := ledger.Open(filepath.Join(cfg.DataDir, "decisions"))
	if err != nil {
		return Components{}, err
	}
	model, err := buildModel(cfg, reg)
	if err != nil {
		return Components{}, err
	}
	if model != nil && sb.Warning() != "" {
		// Code a model wrote runs in the check: never outside the sandbox,
		// where it could read the worker's secrets.
		logger.Error("MODEL FIXES ARE OFF: they need the recipe sandbox, which is not working here", "mode", cfg.RecipeSandbox)
		model = nil
	}
	generator := func(checkout recipe.Checkouter) *recipe.Generator {
		g := &recipe.Generator{Checkout: checkout, Recipes: recipes, MaxDiffBytes: cfg.MaxDiffBytes, DeniedPaths: cfg.DeniedPaths, Sandbox: sb}
		if model != nil {
			g.Model, g.ModelCheck, g.ModelAttempts = model, cfg.LLM.Check, cfg.LLM.MaxAttempts
		}
		return g
	}
	local := &activities.LocalFixer{Git: git, Recipes: generator(git)}
	clients, hosts, err := buildForges(cfg)
	if err != nil {
		return Components{}, err
	}
	// Forge repositories are mirrored (bare, from archives) under their own
	// root, which only this provider may touch.
	mirrorRoot := filepath.Join(cfg.DataDir, "forges")
	mirrors, err := gitlocal.New(gitlocal.Options{Roots: []string{mirrorRoot}, ScratchDir: filepath.Join(cfg.DataDir, "scratch")})
	if err != nil {
		return Components{}, err
	}
	forges := &activities.Forges{
		Clients: clients, Hosts: hosts, Mirrors: mirrors, MirrorRoot: mirrorRoot,
		Recipes: generator(mirrors),
		Local:   local, LocalGit: &activities.LocalGit{Git: git},
		Labels: cfg.ChangeLabels, Reviewers: cfg.ChangeReviewers,
		PublicURL: cfg.PublicURL, UIURL: cfg.UIURL, Namespace: cfg.Temporal.Namespace,
	}
	acts := &activities.Activities{
		Fixer:     forges,
		Decisions: &activities.LedgerDecisions{Store: store},
		Git:       forges,
		VoteKeys:  cfg.VotePublicKeys,
		PublicURL: cfg.PublicURL, UIURL: cfg.UIURL, Namespace: cfg.Temporal.Namespace,
	}
	ints, err := buildIntegrations(cfg)
	if err != nil {
		return Components{}, err
	}
	ints.wire(acts, cfg, &forge.Resolver{Local: git, Hosts: hosts})
	return Components{Acts: acts, Ledger: store}, nil
}

// NewWorker builds the worker with every workflow and activity registered;
// onFatal (may be nil) learns that the worker stopped polling for good.
func NewWorker(c client.Client, acts *activities.Activities, logger *slog.Logger, onFatal func(error)) sdkworker.Worker {
	return worker.New(c, acts, sdkworker.Options{
		MaxConcurrentActivityExecutionSize: 20,
		WorkerStopTimeout:                  10 * time.Second,
		OnFatalError: func(err error) {
			logger.Error("worker stopped on a fatal error", "error", err)
			if onFatal != nil {
				onFatal(err)
			}
		},
	})
}

// APIDeps are the long-lived pieces of the HTTP edge that need closing.
type APIDeps struct {
	Handler http.Handler
	closers []func()
}

// Close releases the rate-limit store and stops the JWKS refresh.
func (d *APIDeps) Close() {
	for _, f := range d.closers {
		f()
	}
}

// NewAPI builds the HTTP handler: authenticator (JWT/JWKS, API keys, static
// tokens), rate limits (memory, or Redis shared across replicas), metrics,
// webhook secrets, and an orchestrator over c. extra adds credentials such as
// the dev tokens.
//
// reg is the registry /metrics serves (NewRegistry); the worker's metrics
// join it when both run in one process.
func NewAPI(ctx context.Context, cfg config.Config, c client.Client, store *ledger.Store, extra []auth.StaticToken, logger *slog.Logger, reg *prometheus.Registry) (*APIDeps, error) {
	deps := &APIDeps{}
	ok := false
	defer func() {
		if !ok { // release what was built before the failure
			deps.Close()
		}
	}()
	authn := &auth.Authenticator{APIKeys: cfg.APIKeys, Tokens: append(append([]auth.StaticToken{}, cfg.Tokens...), extra...)}
	if cfg.JWT != nil {
		v, err := auth.NewJWTVerifier(ctx, *cfg.JWT)
		if err != nil {
			return nil, fmt.Errorf("JWT verifier: %w", err)
		}
		authn.JWT = v
		deps.closers = append(deps.closers, v.Close)
	}
	if !authn.Configured() {
		return nil, errors.New("no API credentials configured")
	}
	limitStore, err := ratelimit.NewStore(cfg.RedisURL, cfg.RateLimitPrefix)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	deps.closers = append(deps.closers, func() { _ = limitStore.Close() })
	if err := limitStore.Ping(ctx); err != nil {
		logger.Error("rate limit store unreachable at start: writes are refused until it is back", "error", err)
	}
	rules, err := ratelimit.ParseRules(cfg.RateLimits, ratelimit.DefaultRules())
	if err != nil {
		return nil, fmt.Errorf("REMEDIATOR_RATE_LIMITS: %w", err)
	}
	limiter, err := ratelimit.New(limitStore, rules, reg)
	if err != nil {
		return nil, err
	}
	var signer *vote.Signer
	if cfg.VoteSigningKey != nil {
		if signer, err = vote.NewSigner(cfg.VoteSigningKey); err != nil {
			return nil, err
		}
	}
	// The API canonicalises repositories: local ones under the same roots as
	// the worker, forge ones against the forge.
	local, err := gitlocal.New(gitlocal.Options{Roots: cfg.GitRoots, ScratchDir: filepath.Join(cfg.DataDir, "scratch")})
	if err != nil {
		return nil, err
	}
	forges, hosts, err := buildForges(cfg)
	if err != nil {
		return nil, err
	}
	checkers := map[forge.Kind]forge.Checker{}
	for k, f := range forges {
		checkers[k] = f
	}
	glToken := []byte(nil)
	if cfg.GitLab != nil {
		glToken = cfg.GitLab.WebhookToken
	}
	repos := &forge.Resolver{Local: local, Forges: checkers, Hosts: hosts}
	ints, err := buildIntegrations(cfg)
	if err != nil {
		return nil, err
	}
	var decisions api.DecisionReader = store
	var dragonClient api.DragonClient
	var dragonSecret []byte
	if ints.Dragon != nil {
		decisions, dragonClient, dragonSecret = dragonDecisions{ints.Dragon}, ints.Dragon, cfg.Dragon.WebhookSecret
	}
	dragonUsers := activities.DragonUsers{ScopeNames: repos.ScopeNames}
	if cfg.Dragon != nil {
		dragonUsers.Users = cfg.Dragon.Users
	}
	var slackClient api.SlackClient
	if ints.Slack != nil {
		slackClient = ints.Slack
	}
	orch := orchestrator.New(c, cfg.Temporal.Namespace, cfg.ApprovalTimeout, signer)
	deps.Handler = api.NewHandler(logger.With("component", "api"), orch, api.Options{
		Auth: authn, Limiter: limiter, LimitStore: limitStore, TrustedProxies: cfg.TrustedProxies,
		GitHubSecret: cfg.GitHubSecret, SlackSecret: cfg.SlackSecret, GitLabWebhookToken: glToken,
		AlertRepoLabel: cfg.AlertRepoLabel, AlertRoutes: cfg.AlertRoutes, SlackUsers: cfg.SlackUsers, WebhookMaxBytes: cfg.WebhookMaxBytes,
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), Registerer: reg,
		Decisions: decisions, Repos: repos, MaxBodyBytes: cfg.MaxBodyBytes, PublicURL: cfg.PublicURL,
		UIURL: cfg.UIURL, DefaultApprovalTimeout: cfg.ApprovalTimeout, Version: Version(),
		Dragon: dragonClient, DragonWebhookSecret: dragonSecret, DragonUsers: dragonUsers, Slack: slackClient, GenerateWait: cfg.GenerateWait,
	})
	ok = true
	return deps, nil
}

// NewRegistry is the Prometheus registry of one process, with the Go
// runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Serve runs srv until ctx ends, then shuts it down gracefully.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// boot is the common start of the production commands: configuration (and
// an optional extra check of it), the logger, and a Temporal client.
func boot(ctx context.Context, what string, getenv func(string) string, stderr io.Writer,
	check func(config.Config) error) (config.Config, *slog.Logger, client.Client, error) {
	cfg, err := config.Load(config.ModeProduction, getenv)
	if err == nil && check != nil {
		err = check(cfg)
	}
	if err != nil {
		return config.Config{}, nil, nil, err
	}
	logger := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)
	logger.Info("starting "+what, "config", cfg.String())
	c, err := orchestrator.Dial(ctx, cfg.Temporal, logger)
	if err != nil {
		return config.Config{}, nil, nil, err
	}
	return cfg, logger, c, nil
}

// RunWorker is `remediator worker`.
func RunWorker(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	cfg, logger, c, err := boot(ctx, "worker", getenv, stderr, config.Config.ValidateWorker)
	if err != nil {
		return err
	}
	defer c.Close()
	reg := NewRegistry()
	comps, err := BuildActivities(ctx, cfg, logger, reg)
	if err != nil {
		return err
	}
	if cfg.MetricsAddr != "" {
		// The worker's own metrics (the model's tokens and latency, the Go
		// runtime) on their own listener.
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("REMEDIATOR_METRICS_ADDR: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = Serve(ctx, srv, ln, cfg.ShutdownTimeout) }()
		logger.Info("worker metrics listening", "addr", ln.Addr().String())
	}
	// A worker that stopped polling must not look alive: exit with its error.
	fatal := make(chan error, 1)
	w := NewWorker(c, comps.Acts, logger, func(err error) {
		select {
		case fatal <- err:
		default:
		}
	})
	if err := w.Start(); err != nil {
		return fmt.Errorf("starting worker: %w", err)
	}
	select {
	case <-ctx.Done():
		logger.Info("stopping worker")
		w.Stop()
		return nil
	case err := <-fatal:
		return fmt.Errorf("worker stopped: %w", err)
	}
}

// RunAPI is `remediator api`: it refuses to start without credentials.
func RunAPI(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	cfg, logger, c, err := boot(ctx, "api", getenv, stderr, config.Config.ValidateAPI)
	if err != nil {
		return err
	}
	defer c.Close()
	store, err := ledger.Open(filepath.Join(cfg.DataDir, "decisions"))
	if err != nil {
		return err
	}
	deps, err := NewAPI(ctx, cfg, c, store, nil, logger, NewRegistry())
	if err != nil {
		return err
	}
	defer deps.Close()
	srv := api.NewServer(cfg.HTTPAddr, deps.Handler)
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return err
	}
	logger.Info("api listening", "addr", ln.Addr().String())
	return Serve(ctx, srv, ln, cfg.ShutdownTimeout)
}

// Version is the module version from the build information ("(devel)" for
// local builds), reported by /health.
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
