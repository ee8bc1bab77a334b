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
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.temporal.io/sdk/client"

	"remediator/activities"
	"remediator/api"
	"remediator/internal/auth"
	"remediator/internal/codec"
	"remediator/internal/config"
	"remediator/internal/console"
	"remediator/internal/forge"
	"remediator/internal/gitlocal"
	"remediator/internal/ledger"
	"remediator/internal/logging"
	"remediator/internal/orchestrator"
	"remediator/internal/ratelimit"
	"remediator/internal/recipe"
	"remediator/internal/sandbox"
	"remediator/internal/telemetry"
	"remediator/internal/vote"
)

// Components are the long-lived pieces every command assembles from config.
type Components struct {
	Acts   *activities.Activities
	Ledger ledger.Ledger
	// Audit is the append-only audit store (an audit.Store), also Acts.Audit.
	Audit activities.AuditStore
	// Close releases the ledger's and the audit store's connections.
	Close func()
}

// openLedger opens the built-in decision ledger: PostgreSQL when
// REMEDIATOR_DATABASE_URL is set (migrations applied at open), otherwise the
// file store under the data dir, which configuration allows in dev only
// (or when Dragon holds the decisions).
func openLedger(ctx context.Context, cfg config.Config, logger *slog.Logger) (ledger.Ledger, func(), error) {
	if cfg.DatabaseURL != "" {
		pg, err := ledger.OpenPostgres(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, nil, fmt.Errorf("REMEDIATOR_DATABASE_URL: %w", err)
		}
		logger.Info("decision ledger: postgresql")
		return pg, pg.Close, nil
	}
	store, err := ledger.Open(filepath.Join(cfg.DataDir, "decisions"))
	if err != nil {
		return nil, nil, err
	}
	return store, func() {}, nil
}

// pinger is a ledger that can say whether it is reachable (PostgreSQL).
type pinger interface{ Ping(context.Context) error }

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
		Git:       forges,
		VoteKeys:  cfg.VotePublicKeys,
		PublicURL: cfg.PublicURL, UIURL: cfg.UIURL, Namespace: cfg.Temporal.Namespace,
		Policy: cfg.Policy, HistoryLimit: cfg.HistoryLimit,
	}
	ints, err := buildIntegrations(cfg)
	if err != nil {
		return Components{}, err
	}
	store, closeStore, err := openLedger(ctx, cfg, logger)
	if err != nil {
		return Components{}, err
	}
	acts.Decisions = &activities.LedgerDecisions{Store: store}
	auditStore, closeAudit, err := openAudit(ctx, cfg, logger)
	if err != nil {
		closeStore()
		return Components{}, err
	}
	acts.Audit = auditStore
	ints.wire(acts, cfg, &forge.Resolver{Local: git, Hosts: hosts})
	return Components{Acts: acts, Ledger: store, Audit: auditStore, Close: func() { closeAudit(); closeStore() }}, nil
}

// APIDeps are the long-lived pieces of the HTTP edge that need closing.
type APIDeps struct {
	Handler http.Handler
	// Draining makes /readyz answer 503 while the process shuts down.
	Draining atomic.Bool
	closers  []func()
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
//
// auditStore serves the audit route and records the refusals the workflow
// cannot (nil: neither).
func NewAPI(ctx context.Context, cfg config.Config, c client.Client, store ledger.Ledger, auditStore api.AuditStore, extra []auth.StaticToken, logger *slog.Logger, reg *prometheus.Registry, tracing bool) (*APIDeps, error) {
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
	// Without git roots (a forge-only deployment) the API needs no git at
	// all, and local repositories are refused.
	var local forge.LocalRepos
	if len(cfg.GitRoots) > 0 {
		p, err := gitlocal.New(gitlocal.Options{Roots: cfg.GitRoots, ScratchDir: filepath.Join(cfg.DataDir, "scratch")})
		if err != nil {
			return nil, err
		}
		local = p
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
	orch.SetCaps(orchestrator.Caps{MaxActive: cfg.RepoMaxActive, MaxPerHour: cfg.RepoMaxPerHour}, policyCaps(cfg.Policy))
	ring, err := cfg.Codec.Ring()
	if err != nil {
		return nil, fmt.Errorf("REMEDIATOR_CODEC_KEYS: %w", err)
	}
	codecOpts := api.CodecOptions{CORSOrigins: cfg.Codec.CORSOrigins}
	if ring != nil {
		codecOpts.Handler = codec.HTTPHandler(ring)
	}
	readyChecks := map[string]func(context.Context) error{}
	if p, ok := store.(pinger); ok && decisions == api.DecisionReader(store) {
		readyChecks["decision_ledger"] = p.Ping
	}
	var middleware []gin.HandlerFunc
	if tracing {
		middleware = append(middleware, telemetry.GinMiddleware("remediator-api"), telemetry.CorrelationAttribute())
	}
	var sessions console.SessionStore
	if cfg.RedisURL != "" {
		ropts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		rc := redis.NewClient(ropts)
		deps.closers = append(deps.closers, func() { _ = rc.Close() })
		sessions = console.RedisSessions{Client: rc, Prefix: cfg.RateLimitPrefix + ":ui-session:"}
	}
	deps.Handler = api.NewHandler(logger.With("component", "api"), orch, api.Options{
		Audit: auditStore,
		Auth:  authn, Limiter: limiter, LimitStore: limitStore, TrustedProxies: cfg.TrustedProxies,
		GitHubSecret: cfg.GitHubSecret, SlackSecret: cfg.SlackSecret, GitLabWebhookToken: glToken,
		AlertRepoLabel: cfg.AlertRepoLabel, AlertRoutes: cfg.AlertRoutes, SlackUsers: cfg.SlackUsers, WebhookMaxBytes: cfg.WebhookMaxBytes,
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), Registerer: reg,
		Decisions: decisions, Repos: repos, MaxBodyBytes: cfg.MaxBodyBytes, PublicURL: cfg.PublicURL,
		UIURL: cfg.UIURL, DefaultApprovalTimeout: cfg.ApprovalTimeout, Version: Version(),
		Dragon: dragonClient, DragonWebhookSecret: dragonSecret, DragonUsers: dragonUsers, Slack: slackClient, GenerateWait: cfg.GenerateWait,
		ReadyChecks: readyChecks, Middleware: middleware, Draining: deps.Draining.Load, Codec: codecOpts,
		UI: consoleUI(cfg, orch, extra, sessions, logger),
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

// process is what every production command starts with: configuration,
// the logger, the metrics registry with the SDK's metrics in it, tracing
// when the OTEL_* environment asks for it, and a Temporal client.
type process struct {
	cfg      config.Config
	logger   *slog.Logger
	client   client.Client
	reg      *prometheus.Registry
	tracing  bool
	shutdown func(context.Context) error
}

// close flushes the traces and closes the client.
func (p *process) close() {
	p.client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.shutdown(ctx); err != nil {
		p.logger.Warn("flushing traces", "error", err)
	}
}

// boot is the common start of the production commands.
func boot(ctx context.Context, what string, getenv func(string) string, stderr io.Writer,
	check func(config.Config) error) (*process, error) {
	cfg, err := config.Load(config.ModeProduction, getenv)
	if err == nil && check != nil {
		err = check(cfg)
	}
	if err != nil {
		return nil, err
	}
	logger := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)
	logger.Info("starting "+what, "version", Version(), "config", cfg.String())
	for _, d := range cfg.Temporal.Deprecated {
		logger.Warn("deprecated setting: " + d)
	}
	p := &process{cfg: cfg, logger: logger, reg: NewRegistry()}
	sdkMetrics, err := telemetry.SDKMetricsHandler(p.reg)
	if err != nil {
		return nil, fmt.Errorf("SDK metrics: %w", err)
	}
	extras := orchestrator.Extras{MetricsHandler: sdkMetrics}
	if extras.Codec, err = codecRing(cfg, logger); err != nil {
		return nil, err
	}
	p.shutdown, p.tracing, err = telemetry.SetupTracing(ctx, getenv, "remediator-"+what, Version())
	if err != nil {
		return nil, fmt.Errorf("tracing (OTEL_*): %w", err)
	}
	if p.tracing {
		logger.Info("tracing on: spans go to the OTLP exporter the OTEL_* variables configure")
		if extras.Interceptors, err = telemetry.TemporalInterceptors(); err != nil {
			return nil, err
		}
	}
	if p.client, err = orchestrator.Dial(ctx, cfg.Temporal, logger, extras); err != nil {
		_ = p.shutdown(context.Background())
		return nil, err
	}
	return p, nil
}

// codecRing is the payload codec's key ring, or nil (with a loud warning)
// when REMEDIATOR_CODEC=off writes payloads in clear.
func codecRing(cfg config.Config, logger *slog.Logger) (*codec.KeyRing, error) {
	if cfg.Codec.Off {
		logger.Warn("PAYLOADS ARE NOT ENCRYPTED: REMEDIATOR_CODEC=off writes log excerpts, diffs and comments into workflow history in clear")
		return nil, nil
	}
	ring, err := cfg.Codec.Ring()
	if err != nil {
		return nil, fmt.Errorf("REMEDIATOR_CODEC_KEYS: %w", err)
	}
	if ring != nil {
		logger.Info("payload codec on", "current_key", ring.CurrentID(), "keys", ring.IDs())
	}
	return ring, nil
}

// RunAPI is `remediator api`: it refuses to start without credentials, a
// vote signing key, or (unless Dragon holds the decisions) the shared
// PostgreSQL ledger.
func RunAPI(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	p, err := boot(ctx, "api", getenv, stderr, config.Config.ValidateAPI)
	if err != nil {
		return err
	}
	defer p.close()
	cfg, logger := p.cfg, p.logger
	store, closeStore, err := openLedger(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeStore()
	auditStore, closeAudit, err := openAudit(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeAudit()
	deps, err := NewAPI(ctx, cfg, p.client, store, auditStore, nil, logger, p.reg, p.tracing)
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
	// On SIGTERM /readyz turns 503 first, so load balancers stop sending
	// new requests, then the server drains and shuts down.
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	go func() {
		select {
		case <-ctx.Done():
		case <-serveCtx.Done():
			return
		}
		deps.Draining.Store(true)
		drain := min(apiDrainDelay, cfg.ShutdownTimeout/2)
		logger.Info("shutting down: /readyz answers 503 before the listener closes", "drain", drain)
		time.Sleep(drain)
		stopServing()
	}()
	return Serve(serveCtx, srv, ln, cfg.ShutdownTimeout)
}

// apiDrainDelay is how long a stopping API keeps serving with /readyz at
// 503, for endpoints to be removed before the listener closes.
const apiDrainDelay = 5 * time.Second

// Version is the module version from the build information ("(devel)" for
// local builds), reported by /health.
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// consoleUI builds the approver console (/ui/) over the API's orchestrator
// and access rules. The dev credentials (extra: only `remediator dev`
// passes any) become the sign-in page's dev users; OpenID Connect is
// offered when REMEDIATOR_OIDC_* is set. Sessions live in Redis when
// REDIS_URL is set (shared by replicas), else in this process.
func consoleUI(cfg config.Config, orch *orchestrator.Orchestrator, extra []auth.StaticToken, sessions console.SessionStore, logger *slog.Logger) func(api.Access) http.Handler {
	return func(a api.Access) http.Handler {
		opts := console.Options{
			Orch: orch, Scope: a.ListScope, MayAccess: a.MayAccess, Canonical: a.Canonical,
			ValidSubject: a.ValidSubject, WebUIURL: a.WebUIURL, Refused: a.Refused, TakeVote: a.TakeVote,
			Logger: logger.With("component", "console"), Sessions: sessions,
		}
		for _, t := range extra {
			opts.DevUsers = append(opts.DevUsers, auth.Principal{Subject: t.Subject, Roles: t.Roles, Repos: t.Repos, Method: auth.MethodToken})
		}
		if o := cfg.OIDC; o != nil {
			opts.OIDC = &console.OIDC{Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret, RedirectURL: o.RedirectURL,
				RolesClaim: o.RolesClaim, ReposClaim: o.ReposClaim, DefaultRepos: o.DefaultRepos, Scopes: o.Scopes}
		}
		c, err := console.New(opts)
		if err != nil {
			logger.Error("the approver console is unavailable", "error", err)
			return http.NotFoundHandler()
		}
		return c
	}
}
