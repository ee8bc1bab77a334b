// Package config is the one place configuration is read: environment
// variables with defaults, validated at start so a bad value stops the
// process instead of surfacing at the first request.
package config

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/contrib/envconfig"

	"remediator/internal/auth"
	"remediator/internal/codec"
	"remediator/internal/policy"
	"remediator/internal/ratelimit"
	"remediator/internal/sandbox"
	"remediator/internal/vote"
)

// Mode separates the all-in-one dev process from production processes;
// dev credentials and the embedded server exist only in ModeDev.
type Mode string

// Modes.
const (
	ModeDev        Mode = "dev"
	ModeProduction Mode = "production"
)

// Roles a principal can hold.
var Roles = []string{"developer", "approver", "admin"}

// Temporal says how to reach the cluster: the SDK's client profile (the
// TEMPORAL_* environment conventions and the optional TOML profile file),
// with Address and Namespace resolved to their defaults.
type Temporal struct {
	Address   string
	Namespace string
	// TLS is on when the profile asks for it (a TLS setting or an API key).
	TLS bool
	// Profile is what envconfig loaded; the client is dialled from it.
	Profile envconfig.ClientConfigProfile
	// Deprecated names the old variables that were used, for one warning
	// line at start.
	Deprecated []string
}

// Dev configures the embedded server of `remediator dev`.
type Dev struct {
	FrontendPort int
	UIPort       int
	Retention    time.Duration
}

// Config is the whole configuration.
type Config struct {
	Mode            Mode
	DataDir         string
	HTTPAddr        string
	PublicURL       string
	UIURL           string
	LogFormat       string
	LogLevel        string
	Temporal        Temporal
	Tokens          []auth.StaticToken
	APIKeys         []auth.APIKey
	JWT             *auth.JWTConfig
	RedisURL        string
	RateLimitPrefix string
	RateLimits      string
	TrustedProxies  []string
	GitHubSecret    []byte
	SlackSecret     []byte
	SlackUsers      map[string]auth.Principal
	WebhookMaxBytes int64
	GitRoots        []string
	RecipesFile     string
	MaxDiffBytes    int
	DeniedPaths     []string
	ApprovalTimeout time.Duration
	MaxBodyBytes    int64
	ShutdownTimeout time.Duration
	Dev             Dev
	// RecipeSandbox says whether recipe commands must run in bubblewrap.
	RecipeSandbox sandbox.Mode
	// VoteSigningKey signs every vote the API delivers (API side only; dev
	// generates one into the data dir). Nil when not configured.
	VoteSigningKey ed25519.PrivateKey
	// VotePublicKeys are what workers verify votes with (dev adds the
	// public half of its own signing key).
	VotePublicKeys []vote.PublicKey
	// GitHub and GitLab are the hosted forges; nil when not configured.
	GitHub *GitHub
	GitLab *GitLab
	// OutboundAllowHosts may be dialled besides the configured bases (public
	// addresses only), e.g. the hosts GitHub redirects log downloads to.
	OutboundAllowHosts []string
	// OutboundTrustedHosts may be dialled at any address, like the
	// configured bases: a GitHub Enterprise's internal log storage.
	OutboundTrustedHosts []string
	// ChangeLabels and ChangeReviewers are put on every pull/merge request.
	ChangeLabels, ChangeReviewers []string
	// AlertRepoLabel is the alert label naming the repository; AlertRoutes
	// map alert names to repositories for alerts without it.
	AlertRepoLabel string
	AlertRoutes    map[string]string
	// Dragon, Incident, Slack and LLM are the governance integrations; nil
	// when not configured (the built-in ledger, no incident, no Slack
	// message, recipes only).
	Dragon   *Dragon
	Incident *Incident
	Slack    *Slack
	LLM      *LLM
	// GenerateWait bounds how long POST /api/generate waits for the fix.
	GenerateWait time.Duration
	// MetricsAddr is where `remediator worker` serves /livez, /readyz and
	// /metrics ("off" = none; the API serves its own on its listener).
	MetricsAddr string
	// DatabaseURL is the PostgreSQL database of the built-in decision
	// ledger shared by every replica ("" = the file store, dev only).
	DatabaseURL string
	// AuditFile is REMEDIATOR_AUDIT_FILE, the audit store's JSON lines file
	// when there is no database ("": <data dir>/audit.jsonl, dev only).
	AuditFile string
	// Worker tunes `remediator worker`.
	Worker Worker
	// Policy is the risk policy (REMEDIATOR_POLICY_FILE); nil: built-in.
	Policy *policy.Policy
	// RepoMaxActive and RepoMaxPerHour cap each repository's remediations
	// (running; started in the last hour; 0: no cap); the policy's caps:
	// override them per repository.
	RepoMaxActive, RepoMaxPerHour int
	// HistoryLimit is the history length (events) after which a
	// remediation awaiting approval continues as new.
	HistoryLimit int
	// Codec encrypts the payloads every Temporal client of the service
	// writes (internal/codec).
	Codec Codec
	// OIDC signs people in to the approver console (/ui/) with OpenID
	// Connect (REMEDIATOR_OIDC_*); nil: not configured.
	OIDC *OIDC
}

// OIDC configures the approver console's OpenID Connect sign-in. Roles and
// repositories come from the ID token's claims named by
// REMEDIATOR_JWT_ROLES_CLAIM and REMEDIATOR_JWT_REPOS_CLAIM, as for JWTs.
type OIDC struct {
	Issuer, ClientID, ClientSecret, RedirectURL string
	RolesClaim, ReposClaim                      string
	DefaultRepos, Scopes                        []string
}

// Codec configures the payload codec: AES-256-GCM over every payload the
// service writes into workflow history (log excerpts, diffs, comments).
type Codec struct {
	// Keys: the first encrypts, all decrypt (REMEDIATOR_CODEC_KEYS or
	// REMEDIATOR_CODEC_KEYS_FILE). Empty in dev until StartDev loads the
	// data dir's key.
	Keys []codec.Key
	// Off is REMEDIATOR_CODEC=off: payloads are written in clear (insecure;
	// a warning at start).
	Off bool
	// CORSOrigins may call the codec endpoint from a browser (the Temporal
	// Web UI), as scheme://host[:port].
	CORSOrigins []string
}

// Ring is the key ring of the configured keys; nil when the codec is off
// or no key is configured.
func (c Codec) Ring() (*codec.KeyRing, error) {
	if c.Off || len(c.Keys) == 0 {
		return nil, nil
	}
	return codec.NewKeyRing(c.Keys...)
}

// Worker tunes the worker's pollers, concurrency, cache and stop.
type Worker struct {
	WorkflowPollers  int
	ActivityPollers  int
	MaxActivities    int
	MaxWorkflowTasks int
	StickyCacheSize  int
	StopTimeout      time.Duration
}

// Dragon configures the decision service (the seed's names).
type Dragon struct {
	BaseURL, Token, Org, Region string
	// WebhookSecret verifies Dragon's callbacks; empty refuses them all.
	WebhookSecret []byte
	// PollInterval is how often a waiting remediation reads its decision.
	PollInterval time.Duration
	// Users links Dragon identities (lower case) to principals: only a
	// linked identity with an approver role and the repository in scope
	// approves through Dragon.
	Users map[string]auth.Principal
}

// Incident configures the incident API.
type Incident struct {
	BaseURL, Token string
}

// Slack configures where approval requests are posted: an incoming
// webhook, or a bot token and channel (which can also update the message
// and open the reject dialog).
type Slack struct {
	WebhookURL, BotToken, Channel, APIURL string
}

// LLM configures fixes written by an OpenAI-compatible model.
type LLM struct {
	BaseURL, APIKey, APIVersion, Model string
	Timeout                            time.Duration
	MaxTokens, MaxAttempts             int
	// Check is the command run (sandboxed) after a model's diff is applied;
	// it must pass for the fix to be proposed.
	Check string
}

// GitHub configures the GitHub (or GitHub Enterprise) provider.
type GitHub struct {
	APIURL        string
	Token         string
	AppID         int64
	PrivateKeyPEM []byte
}

// GitLab configures the GitLab provider.
type GitLab struct {
	URL          string
	Token        string
	WebhookToken []byte
}

// Bounds for approval deadlines set per remediation.
const (
	MinApprovalTimeout = time.Minute
	MaxApprovalTimeout = 30 * 24 * time.Hour
)

var subjectPattern = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,128}$`)

// Load reads the configuration for mode from getenv.
func Load(mode Mode, getenv func(string) string) (Config, error) {
	env := func(key, def string) string {
		if v := strings.TrimSpace(getenv(key)); v != "" {
			return v
		}
		return def
	}
	var errs []error
	intVar := func(key string, def int) int {
		v := env(key, strconv.Itoa(def))
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a non-negative integer", key, v))
			return def
		}
		return n
	}
	durVar := func(key string, def time.Duration) time.Duration {
		v := env(key, def.String())
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a positive duration", key, v))
			return def
		}
		return d
	}

	c := Config{
		Mode:            mode,
		DataDir:         env("REMEDIATOR_DATA_DIR", "./.data"),
		HTTPAddr:        env("REMEDIATOR_HTTP_ADDR", "127.0.0.1:8080"),
		LogFormat:       env("REMEDIATOR_LOG_FORMAT", map[Mode]string{ModeDev: "text"}[mode]),
		LogLevel:        env("REMEDIATOR_LOG_LEVEL", "info"),
		RecipesFile:     env("REMEDIATOR_RECIPES_FILE", ""),
		MaxDiffBytes:    intVar("REMEDIATOR_MAX_DIFF_BYTES", 256<<10),
		DeniedPaths:     splitList(env("REMEDIATOR_DENIED_PATHS", ".github/workflows/**"), ","),
		ApprovalTimeout: durVar("REMEDIATOR_APPROVAL_TIMEOUT", 24*time.Hour),
		MaxBodyBytes:    int64(intVar("REMEDIATOR_MAX_BODY_BYTES", 1<<20)),
		ShutdownTimeout: durVar("REMEDIATOR_SHUTDOWN_TIMEOUT", 20*time.Second),
		Dev: Dev{
			FrontendPort: intVar("REMEDIATOR_DEV_FRONTEND_PORT", 7233),
			UIPort:       intVar("REMEDIATOR_DEV_UI_PORT", 8233),
			Retention:    durVar("REMEDIATOR_DEV_RETENTION", 7*24*time.Hour),
		},
	}
	if c.LogFormat == "" {
		c.LogFormat = "json" // production: one JSON object per line
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		errs = append(errs, fmt.Errorf("REMEDIATOR_DATA_DIR: %w", err))
	}
	c.DataDir = abs
	tc, err := loadTemporal(mode, getenv)
	if err != nil {
		errs = append(errs, err)
	}
	c.Temporal = tc
	c.PublicURL = strings.TrimRight(env("REMEDIATOR_PUBLIC_URL", "http://"+c.HTTPAddr), "/")
	defaultUI := ""
	if mode == ModeDev && c.Dev.UIPort != 0 {
		defaultUI = fmt.Sprintf("http://127.0.0.1:%d", c.Dev.UIPort)
	}
	c.UIURL = strings.TrimRight(env("TEMPORAL_UI_URL", defaultUI), "/")

	roots := env("REMEDIATOR_GIT_ROOTS", "")
	if roots == "" && mode == ModeDev {
		roots = c.DataDir
	}
	for _, r := range splitList(roots, string(filepath.ListSeparator)) {
		if !filepath.IsAbs(r) {
			errs = append(errs, fmt.Errorf("REMEDIATOR_GIT_ROOTS: %q is not absolute", r))
			continue
		}
		c.GitRoots = append(c.GitRoots, filepath.Clean(r))
	}
	tokens, err := ParseTokens(getenv("REMEDIATOR_API_TOKENS"))
	if err != nil {
		errs = append(errs, err)
	}
	c.Tokens = tokens
	if c.APIKeys, err = auth.ParseAPIKeys(getenv("REMEDIATOR_API_KEYS")); err != nil {
		errs = append(errs, fmt.Errorf("REMEDIATOR_API_KEYS: %w", err))
	}
	if c.JWT, err = loadJWT(env, durVar); err != nil {
		errs = append(errs, err)
	}
	if c.OIDC, err = loadOIDC(env, getenv); err != nil {
		errs = append(errs, err)
	}
	c.RedisURL = env("REDIS_URL", "")
	c.RateLimitPrefix = env("REMEDIATOR_RATE_LIMIT_PREFIX", "remediator:rl")
	c.RateLimits = env("REMEDIATOR_RATE_LIMITS", "")
	if _, err := ratelimit.ParseRules(c.RateLimits, ratelimit.DefaultRules()); err != nil {
		errs = append(errs, fmt.Errorf("REMEDIATOR_RATE_LIMITS: %w", err))
	}
	for _, p := range splitList(env("REMEDIATOR_TRUSTED_PROXIES", ""), ",") {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			errs = append(errs, fmt.Errorf("REMEDIATOR_TRUSTED_PROXIES: %q is neither an IP nor a CIDR", p))
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, p)
	}
	c.GitHubSecret = []byte(getenv("GITHUB_WEBHOOK_SECRET"))
	c.SlackSecret = []byte(getenv("SLACK_SIGNING_SECRET"))
	if c.SlackUsers, err = ParseSlackUsers(getenv("REMEDIATOR_SLACK_USERS")); err != nil {
		errs = append(errs, err)
	}
	c.WebhookMaxBytes = int64(intVar("REMEDIATOR_WEBHOOK_MAX_BODY_BYTES", 25<<20))
	if c.RecipeSandbox, err = sandbox.ParseMode(env("REMEDIATOR_RECIPE_SANDBOX", string(sandbox.ModeAuto))); err != nil {
		errs = append(errs, fmt.Errorf("REMEDIATOR_RECIPE_SANDBOX: %w", err))
	}
	if c.VoteSigningKey, err = loadSigningKey(getenv); err != nil {
		errs = append(errs, err)
	}
	if c.VotePublicKeys, err = loadPublicKeys(getenv); err != nil {
		errs = append(errs, err)
	}
	if c.GitHub, err = loadGitHub(env, getenv); err != nil {
		errs = append(errs, err)
	}
	if c.GitLab, err = loadGitLab(env, getenv); err != nil {
		errs = append(errs, err)
	}
	c.OutboundAllowHosts = splitList(env("REMEDIATOR_OUTBOUND_ALLOW_HOSTS", ""), ",")
	c.OutboundTrustedHosts = splitList(env("REMEDIATOR_OUTBOUND_TRUSTED_HOSTS", ""), ",")
	c.ChangeLabels = splitList(env("REMEDIATOR_CHANGE_LABELS", "autofix"), ",")
	c.ChangeReviewers = splitList(env("REMEDIATOR_CHANGE_REVIEWERS", ""), ",")
	c.AlertRepoLabel = env("REMEDIATOR_ALERT_REPO_LABEL", "repository")
	c.AlertRoutes = map[string]string{}
	for _, entry := range splitList(env("REMEDIATOR_ALERT_ROUTES", ""), ",") {
		name, repo, ok := strings.Cut(entry, "=")
		name, repo = strings.TrimSpace(name), strings.TrimSpace(repo)
		if !ok || name == "" || repo == "" {
			errs = append(errs, fmt.Errorf("REMEDIATOR_ALERT_ROUTES: %q is not alertname=repository", entry))
			continue
		}
		c.AlertRoutes[name] = repo
	}

	c.GenerateWait = durVar("REMEDIATOR_GENERATE_WAIT", 20*time.Second)
	defaultMetrics := "127.0.0.1:9090"
	if mode == ModeDev {
		defaultMetrics = "off" // dev serves everything on its API listener
	}
	c.MetricsAddr = env("REMEDIATOR_METRICS_ADDR", defaultMetrics)
	if c.MetricsAddr == "off" {
		c.MetricsAddr = ""
	}
	if f := env("REMEDIATOR_POLICY_FILE", ""); f != "" {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("REMEDIATOR_POLICY_FILE: %w", err))
		} else if p, err := policy.Parse(data, f); err != nil {
			errs = append(errs, fmt.Errorf("REMEDIATOR_POLICY_FILE: %w", err))
		} else {
			c.Policy = &p
		}
	}
	c.HistoryLimit = intVar("REMEDIATOR_HISTORY_LIMIT", 2000)
	if c.HistoryLimit < 50 || c.HistoryLimit > 40000 {
		errs = append(errs, fmt.Errorf("REMEDIATOR_HISTORY_LIMIT must be between 50 and 40000 events (the server refuses histories of 51200), not %d", c.HistoryLimit))
	}
	c.RepoMaxActive = intVar("REMEDIATOR_REPO_MAX_ACTIVE", 20)
	c.RepoMaxPerHour = intVar("REMEDIATOR_REPO_MAX_PER_HOUR", 60)
	if c.RepoMaxActive > policy.MaxCap || c.RepoMaxPerHour > policy.MaxCap {
		errs = append(errs, fmt.Errorf("REMEDIATOR_REPO_MAX_ACTIVE and REMEDIATOR_REPO_MAX_PER_HOUR must be between 0 (no cap) and %d", policy.MaxCap))
	}
	c.DatabaseURL = env("REMEDIATOR_DATABASE_URL", "")
	if c.DatabaseURL != "" {
		if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			errs = append(errs, errors.New("REMEDIATOR_DATABASE_URL: not a postgres:// URL"))
		}
	}
	if f := env("REMEDIATOR_AUDIT_FILE", ""); f != "" {
		if c.DatabaseURL != "" {
			errs = append(errs, errors.New("REMEDIATOR_AUDIT_FILE and REMEDIATOR_DATABASE_URL: set one (with a database the audit store is its audit_events table)"))
		} else if c.AuditFile, err = filepath.Abs(f); err != nil {
			errs = append(errs, fmt.Errorf("REMEDIATOR_AUDIT_FILE: %w", err))
		}
	}
	c.Worker = Worker{
		WorkflowPollers:  intVar("REMEDIATOR_WORKER_WORKFLOW_POLLERS", 4),
		ActivityPollers:  intVar("REMEDIATOR_WORKER_ACTIVITY_POLLERS", 4),
		MaxActivities:    intVar("REMEDIATOR_WORKER_MAX_ACTIVITIES", 20),
		MaxWorkflowTasks: intVar("REMEDIATOR_WORKER_MAX_WORKFLOW_TASKS", 100),
		StickyCacheSize:  intVar("REMEDIATOR_WORKER_STICKY_CACHE", 10000),
		StopTimeout:      durVar("REMEDIATOR_WORKER_STOP_TIMEOUT", 30*time.Second),
	}
	if c.Worker.WorkflowPollers < 2 || c.Worker.ActivityPollers < 1 || c.Worker.MaxActivities < 1 || c.Worker.MaxWorkflowTasks < 2 {
		errs = append(errs, errors.New("REMEDIATOR_WORKER_*: workflow pollers and workflow tasks need at least 2, activity pollers and activities at least 1"))
	}
	if c.Dragon, err = loadDragon(env, getenv, durVar); err != nil {
		errs = append(errs, err)
	}
	if c.Incident, err = loadIncident(env, getenv); err != nil {
		errs = append(errs, err)
	}
	if c.Slack, err = loadSlack(env, getenv); err != nil {
		errs = append(errs, err)
	}
	if c.LLM, err = loadLLM(env, getenv, intVar, durVar); err != nil {
		errs = append(errs, err)
	}
	var devOrigins []string
	if mode == ModeDev && c.Dev.UIPort != 0 {
		// The embedded Web UI, however the browser names loopback.
		devOrigins = []string{fmt.Sprintf("http://127.0.0.1:%d", c.Dev.UIPort), fmt.Sprintf("http://localhost:%d", c.Dev.UIPort)}
	}
	if c.Codec, err = loadCodec(env, getenv, devOrigins); err != nil {
		errs = append(errs, err)
	}

	if c.GenerateWait > 50*time.Second {
		// It must end before the HTTP server's 60s write timeout.
		errs = append(errs, errors.New("REMEDIATOR_GENERATE_WAIT must be at most 50s"))
	}
	if !slices.Contains([]string{"text", "json"}, c.LogFormat) {
		errs = append(errs, fmt.Errorf("REMEDIATOR_LOG_FORMAT: %q is not text or json", c.LogFormat))
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		errs = append(errs, fmt.Errorf("REMEDIATOR_LOG_LEVEL: %q is not debug, info, warn or error", c.LogLevel))
	}
	if c.ApprovalTimeout < MinApprovalTimeout || c.ApprovalTimeout > MaxApprovalTimeout {
		errs = append(errs, fmt.Errorf("REMEDIATOR_APPROVAL_TIMEOUT must be between %s and %s", MinApprovalTimeout, MaxApprovalTimeout))
	}
	if c.Dev.Retention < 24*time.Hour {
		errs = append(errs, errors.New("REMEDIATOR_DEV_RETENTION must be at least 24h"))
	}
	if c.Dev.FrontendPort < 1024 || c.Dev.FrontendPort > 65000 {
		errs = append(errs, errors.New("REMEDIATOR_DEV_FRONTEND_PORT must be between 1024 and 65000"))
	}
	if c.MaxDiffBytes < 1024 || c.MaxDiffBytes > 1<<20 {
		// The diff travels in workflow history; Temporal refuses payloads over 2 MB.
		errs = append(errs, errors.New("REMEDIATOR_MAX_DIFF_BYTES must be between 1024 and 1048576"))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, errors.New("REMEDIATOR_MAX_BODY_BYTES must be at least 1024"))
	}
	return c, errors.Join(errs...)
}

// ValidateAPI fails closed: outside dev mode the API refuses to start without
// at least one verifier (JWT, API keys or static tokens), or without the key
// that signs votes.
func (c Config) ValidateAPI() error {
	if c.Mode == ModeDev {
		return nil
	}
	var errs []error
	if len(c.Tokens) == 0 && len(c.APIKeys) == 0 && c.JWT == nil {
		errs = append(errs, errors.New("no API credentials configured: set REMEDIATOR_JWT_*, REMEDIATOR_API_KEYS or REMEDIATOR_API_TOKENS (see README, Authentication)"))
	}
	if c.VoteSigningKey == nil {
		errs = append(errs, errors.New("no vote signing key: set REMEDIATOR_VOTE_SIGNING_KEY_FILE (mint one with `remediator votekey create`)"))
	}
	if err := c.validateLedger(); err != nil {
		errs = append(errs, err)
	}
	if err := c.validateAudit(); err != nil {
		errs = append(errs, err)
	}
	if err := c.validateCodec(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validateCodec fails closed: outside dev mode payloads are encrypted, so
// the keys must be configured, unless REMEDIATOR_CODEC=off says explicitly
// that history may hold them in clear.
func (c Config) validateCodec() error {
	if c.Mode == ModeDev || c.Codec.Off || len(c.Codec.Keys) > 0 {
		return nil
	}
	return errors.New("no payload codec keys: set REMEDIATOR_CODEC_KEYS (or REMEDIATOR_CODEC_KEYS_FILE) to id:base64key, " +
		"the same keys on every api and worker (a key: openssl rand -base64 32; see README, Encrypted payloads), " +
		"or REMEDIATOR_CODEC=off to write log excerpts, diffs and comments into workflow history in clear (insecure)")
}

// validateAudit: outside dev the audit store is the database's table, or a
// JSON lines file named explicitly; the default file in the data dir is for
// `remediator dev`.
func (c Config) validateAudit() error {
	if c.Mode == ModeDev || c.DatabaseURL != "" || c.AuditFile != "" {
		return nil
	}
	return errors.New("no audit store: set REMEDIATOR_DATABASE_URL (PostgreSQL, shared by every replica) or REMEDIATOR_AUDIT_FILE (a JSON lines file on this host); the audit file in the data dir is for `remediator dev` only")
}

// validateLedger: outside dev the built-in decision ledger lives in
// PostgreSQL, which every replica shares; a directory on one host is not a
// ledger other replicas can read.
func (c Config) validateLedger() error {
	if c.Mode == ModeDev || c.Dragon != nil || c.DatabaseURL != "" {
		return nil
	}
	return errors.New("no decision store: set REMEDIATOR_DATABASE_URL (PostgreSQL, shared by every replica) or KLYNX_DRAGON_BASE_URL; the file ledger is for `remediator dev` only")
}

// ValidateWorker fails closed: outside dev mode a worker refuses to start
// without keys to verify votes with (it could open no change anyway).
func (c Config) ValidateWorker() error {
	var errs []error
	if c.Mode != ModeDev && len(c.VotePublicKeys) == 0 {
		errs = append(errs, errors.New("no vote verification keys: set REMEDIATOR_VOTE_PUBLIC_KEYS or REMEDIATOR_VOTE_PUBLIC_KEYS_FILE to the API's public key"))
	}
	if err := c.validateLedger(); err != nil {
		errs = append(errs, err)
	}
	if err := c.validateAudit(); err != nil {
		errs = append(errs, err)
	}
	if err := c.validateCodec(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// loadGitHub returns nil when neither a token nor an App is configured.
func loadGitHub(env func(string, string) string, getenv func(string) string) (*GitHub, error) {
	token, appID := strings.TrimSpace(getenv("GITHUB_TOKEN")), env("GITHUB_APP_ID", "")
	keyPEM, keyFile := getenv("GITHUB_APP_PRIVATE_KEY_PEM"), env("GITHUB_APP_PRIVATE_KEY_FILE", "")
	if token == "" && appID == "" && keyPEM == "" && keyFile == "" {
		return nil, nil
	}
	g := &GitHub{APIURL: env("GITHUB_API_URL", "https://api.github.com/"), Token: token}
	if err := checkBaseURL(g.APIURL); err != nil {
		return nil, fmt.Errorf("GITHUB_API_URL: %w", err)
	}
	if appID != "" {
		id, err := strconv.ParseInt(appID, 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("GITHUB_APP_ID: %q is not an App id", appID)
		}
		g.AppID = id
		switch {
		case keyPEM != "" && keyFile != "":
			return nil, errors.New("GITHUB_APP_PRIVATE_KEY_PEM and GITHUB_APP_PRIVATE_KEY_FILE: set one")
		case keyFile != "":
			b, err := os.ReadFile(keyFile)
			if err != nil {
				return nil, fmt.Errorf("GITHUB_APP_PRIVATE_KEY_FILE: %w", err)
			}
			g.PrivateKeyPEM = b
		default:
			// Literal \n sequences (one-line environment values) are newlines.
			g.PrivateKeyPEM = []byte(strings.ReplaceAll(keyPEM, `\n`, "\n"))
		}
	}
	switch {
	case g.Token != "" && g.AppID != 0:
		return nil, errors.New("GITHUB_TOKEN and GITHUB_APP_ID: configure a token or an App, not both")
	case g.AppID != 0 && len(g.PrivateKeyPEM) == 0:
		return nil, errors.New("GITHUB_APP_ID needs GITHUB_APP_PRIVATE_KEY_PEM or GITHUB_APP_PRIVATE_KEY_FILE")
	case g.Token == "" && g.AppID == 0:
		return nil, errors.New("GITHUB_APP_PRIVATE_KEY_* needs GITHUB_APP_ID")
	}
	return g, nil
}

// loadGitLab returns nil when no GitLab token is configured.
func loadGitLab(env func(string, string) string, getenv func(string) string) (*GitLab, error) {
	token := strings.TrimSpace(getenv("GITLAB_TOKEN"))
	if token == "" {
		if getenv("GITLAB_WEBHOOK_TOKEN") != "" {
			return nil, errors.New("GITLAB_WEBHOOK_TOKEN needs GITLAB_TOKEN")
		}
		return nil, nil
	}
	g := &GitLab{URL: env("GITLAB_URL", "https://gitlab.com"), Token: token, WebhookToken: []byte(getenv("GITLAB_WEBHOOK_TOKEN"))}
	if err := checkBaseURL(g.URL); err != nil {
		return nil, fmt.Errorf("GITLAB_URL: %w", err)
	}
	return g, nil
}

// loadDragon returns nil without KLYNX_DRAGON_BASE_URL (the built-in
// ledger decides). A base without a token is an error: there is no default
// credential.
func loadDragon(env func(string, string) string, getenv func(string) string, durVar func(string, time.Duration) time.Duration) (*Dragon, error) {
	base := env("KLYNX_DRAGON_BASE_URL", "")
	secret := []byte(getenv("KLYNX_DRAGON_WEBHOOK_SECRET"))
	if base == "" {
		if len(secret) > 0 || strings.TrimSpace(getenv("KLYNX_DRAGON_TOKEN")) != "" {
			return nil, errors.New("KLYNX_DRAGON_TOKEN and KLYNX_DRAGON_WEBHOOK_SECRET need KLYNX_DRAGON_BASE_URL")
		}
		return nil, nil
	}
	d := &Dragon{BaseURL: strings.TrimRight(base, "/"), Token: strings.TrimSpace(getenv("KLYNX_DRAGON_TOKEN")),
		Org: env("KLYNX_DRAGON_ORG", "default-org"), Region: env("KLYNX_DRAGON_REGION", "global"), WebhookSecret: secret,
		PollInterval: durVar("KLYNX_DRAGON_POLL_INTERVAL", 30*time.Second)}
	var errs []error
	if err := checkBaseURL(d.BaseURL); err != nil {
		errs = append(errs, fmt.Errorf("KLYNX_DRAGON_BASE_URL: %w", err))
	}
	users, err := parseLinkedUsers("REMEDIATOR_DRAGON_USERS", dragonUserPattern, getenv("REMEDIATOR_DRAGON_USERS"))
	if err != nil {
		errs = append(errs, err)
	}
	d.Users = map[string]auth.Principal{}
	for k, p := range users {
		p.Method = "dragon"
		d.Users[strings.ToLower(k)] = p
	}
	if d.Token == "" {
		errs = append(errs, errors.New("KLYNX_DRAGON_BASE_URL needs KLYNX_DRAGON_TOKEN (there is no default token)"))
	}
	if len(secret) > 0 && len(secret) < 16 {
		errs = append(errs, errors.New("KLYNX_DRAGON_WEBHOOK_SECRET must be at least 16 bytes"))
	}
	if d.PollInterval < time.Second || d.PollInterval > time.Hour {
		errs = append(errs, errors.New("KLYNX_DRAGON_POLL_INTERVAL must be between 1s and 1h"))
	}
	return d, errors.Join(errs...)
}

// loadCodec reads the payload codec's keys (inline or a file, one of them)
// and the browser origins allowed to call the codec endpoint. An error
// never quotes a key.
func loadCodec(env func(string, string) string, getenv func(string) string, defaultOrigins []string) (Codec, error) {
	var c Codec
	var errs []error
	switch v := strings.ToLower(env("REMEDIATOR_CODEC", "on")); v {
	case "on":
	case "off":
		c.Off = true
	default:
		errs = append(errs, fmt.Errorf("REMEDIATOR_CODEC: %q is not on or off", v))
	}
	inline, file := strings.TrimSpace(getenv("REMEDIATOR_CODEC_KEYS")), env("REMEDIATOR_CODEC_KEYS_FILE", "")
	switch {
	case inline != "" && file != "":
		errs = append(errs, errors.New("REMEDIATOR_CODEC_KEYS and REMEDIATOR_CODEC_KEYS_FILE: set one"))
	case inline != "":
		keys, err := codec.ParseKeys(inline)
		if err != nil {
			errs = append(errs, fmt.Errorf("REMEDIATOR_CODEC_KEYS: %w", err))
		}
		c.Keys = keys
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, fmt.Errorf("REMEDIATOR_CODEC_KEYS_FILE: %w", err))
			break
		}
		keys, err := codec.ParseKeys(string(b))
		if err != nil {
			errs = append(errs, fmt.Errorf("REMEDIATOR_CODEC_KEYS_FILE %s: %w", file, err))
		}
		c.Keys = keys
	}
	if c.Off && (inline != "" || file != "") {
		errs = append(errs, errors.New("REMEDIATOR_CODEC=off and REMEDIATOR_CODEC_KEYS*: set one (off writes payloads in clear; keys encrypt them)"))
	}
	origins := splitList(getenv("REMEDIATOR_CODEC_CORS_ORIGINS"), ",")
	if len(origins) == 0 {
		origins = defaultOrigins
	}
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("REMEDIATOR_CODEC_CORS_ORIGINS: %q is not an origin (scheme://host[:port])", o))
			continue
		}
		c.CORSOrigins = append(c.CORSOrigins, strings.ToLower(u.Scheme+"://"+u.Host))
	}
	return c, errors.Join(errs...)
}

// loadIncident returns nil without KLYNX_INCIDENT_API_BASE.
func loadIncident(env func(string, string) string, getenv func(string) string) (*Incident, error) {
	base := env("KLYNX_INCIDENT_API_BASE", "")
	if base == "" {
		if getenv("KLYNX_INCIDENT_API_TOKEN") != "" {
			return nil, errors.New("KLYNX_INCIDENT_API_TOKEN needs KLYNX_INCIDENT_API_BASE")
		}
		return nil, nil
	}
	i := &Incident{BaseURL: strings.TrimRight(base, "/"), Token: strings.TrimSpace(getenv("KLYNX_INCIDENT_API_TOKEN"))}
	if err := checkBaseURL(i.BaseURL); err != nil {
		return nil, fmt.Errorf("KLYNX_INCIDENT_API_BASE: %w", err)
	}
	return i, nil
}

// loadSlack returns nil when neither an incoming webhook nor a bot token
// is configured.
func loadSlack(env func(string, string) string, getenv func(string) string) (*Slack, error) {
	s := &Slack{WebhookURL: env("KLYNX_SLACK_WEBHOOK_URL", ""), BotToken: strings.TrimSpace(getenv("SLACK_BOT_TOKEN")),
		Channel: env("SLACK_CHANNEL", ""), APIURL: env("SLACK_API_URL", "https://slack.com/api/")}
	if s.WebhookURL == "" && s.BotToken == "" {
		if s.Channel != "" {
			return nil, errors.New("SLACK_CHANNEL needs SLACK_BOT_TOKEN")
		}
		return nil, nil
	}
	var errs []error
	if s.BotToken != "" && s.Channel == "" {
		errs = append(errs, errors.New("SLACK_BOT_TOKEN needs SLACK_CHANNEL (a channel id such as C0123ABCD)"))
	}
	if s.WebhookURL != "" {
		if u, err := url.Parse(s.WebhookURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			errs = append(errs, errors.New("KLYNX_SLACK_WEBHOOK_URL is not an http(s) URL"))
		}
	}
	if err := checkBaseURL(s.APIURL); err != nil {
		errs = append(errs, fmt.Errorf("SLACK_API_URL: %w", err))
	}
	return s, errors.Join(errs...)
}

// loadLLM returns nil without REMEDIATOR_LLM_BASE_URL (fixes come from
// recipes only).
func loadLLM(env func(string, string) string, getenv func(string) string, intVar func(string, int) int, durVar func(string, time.Duration) time.Duration) (*LLM, error) {
	base := env("REMEDIATOR_LLM_BASE_URL", "")
	if base == "" {
		return nil, nil
	}
	l := &LLM{BaseURL: strings.TrimRight(base, "/"), APIKey: strings.TrimSpace(getenv("REMEDIATOR_LLM_API_KEY")),
		APIVersion: env("REMEDIATOR_LLM_API_VERSION", ""), Model: env("REMEDIATOR_LLM_MODEL", ""),
		Timeout: durVar("REMEDIATOR_LLM_TIMEOUT", 120*time.Second), MaxTokens: intVar("REMEDIATOR_LLM_MAX_TOKENS", 4096),
		MaxAttempts: intVar("REMEDIATOR_LLM_MAX_ATTEMPTS", 3), Check: env("REMEDIATOR_LLM_CHECK", "")}
	var errs []error
	if err := checkBaseURL(l.BaseURL); err != nil {
		errs = append(errs, fmt.Errorf("REMEDIATOR_LLM_BASE_URL: %w", err))
	}
	if l.Model == "" {
		errs = append(errs, errors.New("REMEDIATOR_LLM_BASE_URL needs REMEDIATOR_LLM_MODEL"))
	}
	if l.MaxAttempts < 1 || l.MaxAttempts > 10 {
		errs = append(errs, errors.New("REMEDIATOR_LLM_MAX_ATTEMPTS must be between 1 and 10"))
	}
	if l.MaxTokens < 256 || l.MaxTokens > 1<<20 {
		errs = append(errs, errors.New("REMEDIATOR_LLM_MAX_TOKENS must be between 256 and 1048576"))
	}
	if l.Timeout > 10*time.Minute {
		errs = append(errs, errors.New("REMEDIATOR_LLM_TIMEOUT must be at most 10m (it runs inside the fix activity)"))
	}
	return l, errors.Join(errs...)
}

// checkBaseURL accepts an http(s) URL without credentials, query or fragment.
func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an http(s) base URL", s)
	}
	return nil
}

// loadSigningKey reads the API's vote signing key: a file (PKCS#8 PEM
// Ed25519, or a base64 seed) or the value itself.
func loadSigningKey(getenv func(string) string) (ed25519.PrivateKey, error) {
	file, inline := strings.TrimSpace(getenv("REMEDIATOR_VOTE_SIGNING_KEY_FILE")), strings.TrimSpace(getenv("REMEDIATOR_VOTE_SIGNING_KEY"))
	switch {
	case file != "" && inline != "":
		return nil, errors.New("REMEDIATOR_VOTE_SIGNING_KEY and REMEDIATOR_VOTE_SIGNING_KEY_FILE: set one")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("REMEDIATOR_VOTE_SIGNING_KEY_FILE: %w", err)
		}
		k, err := vote.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("REMEDIATOR_VOTE_SIGNING_KEY_FILE: %w", err)
		}
		return k, nil
	case inline != "":
		k, err := vote.ParsePrivateKey([]byte(inline))
		if err != nil {
			return nil, fmt.Errorf("REMEDIATOR_VOTE_SIGNING_KEY: %w", err)
		}
		return k, nil
	}
	return nil, nil
}

// loadPublicKeys reads the workers' verification keys from the variable and
// the file, both optional, merged.
func loadPublicKeys(getenv func(string) string) ([]vote.PublicKey, error) {
	var keys []vote.PublicKey
	if v := strings.TrimSpace(getenv("REMEDIATOR_VOTE_PUBLIC_KEYS")); v != "" {
		k, err := vote.ParsePublicKeys([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("REMEDIATOR_VOTE_PUBLIC_KEYS: %w", err)
		}
		keys = append(keys, k...)
	}
	if f := strings.TrimSpace(getenv("REMEDIATOR_VOTE_PUBLIC_KEYS_FILE")); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("REMEDIATOR_VOTE_PUBLIC_KEYS_FILE: %w", err)
		}
		k, err := vote.ParsePublicKeys(b)
		if err != nil {
			return nil, fmt.Errorf("REMEDIATOR_VOTE_PUBLIC_KEYS_FILE: %w", err)
		}
		keys = append(keys, k...)
	}
	return keys, nil
}

// loadJWT returns nil when no JWT key source is configured.
func loadJWT(env func(string, string) string, durVar func(string, time.Duration) time.Duration) (*auth.JWTConfig, error) {
	secret, jwks, pemFile := env("REMEDIATOR_JWT_HS256_SECRET", ""), env("REMEDIATOR_JWT_JWKS_URL", ""), env("REMEDIATOR_JWT_PUBLIC_KEY_FILE", "")
	if secret == "" && jwks == "" && pemFile == "" {
		return nil, nil
	}
	cfg := &auth.JWTConfig{
		HS256Secret:  []byte(secret),
		JWKSURL:      jwks,
		Issuer:       env("REMEDIATOR_JWT_ISSUER", ""),
		Audience:     env("REMEDIATOR_JWT_AUDIENCE", ""),
		RolesClaim:   env("REMEDIATOR_JWT_ROLES_CLAIM", auth.DefaultRolesClaim),
		ReposClaim:   env("REMEDIATOR_JWT_REPOS_CLAIM", auth.DefaultReposClaim),
		DefaultRepos: splitList(env("REMEDIATOR_JWT_DEFAULT_REPOS", ""), ","),
		Leeway:       durVar("REMEDIATOR_JWT_LEEWAY", auth.DefaultLeeway),
	}
	if secret == "" {
		cfg.HS256Secret = nil
	}
	if pemFile != "" {
		b, err := os.ReadFile(pemFile)
		if err != nil {
			return nil, fmt.Errorf("REMEDIATOR_JWT_PUBLIC_KEY_FILE: %w", err)
		}
		cfg.PublicKeyPEM = b
	}
	return cfg, nil
}

// loadOIDC returns nil unless REMEDIATOR_OIDC_ISSUER or _CLIENT_ID is set;
// then the issuer, client id and redirect URL (this API's
// /ui/oidc/callback) are required.
func loadOIDC(env func(string, string) string, getenv func(string) string) (*OIDC, error) {
	issuer, clientID := env("REMEDIATOR_OIDC_ISSUER", ""), env("REMEDIATOR_OIDC_CLIENT_ID", "")
	if issuer == "" && clientID == "" {
		return nil, nil
	}
	o := &OIDC{
		Issuer: issuer, ClientID: clientID, ClientSecret: getenv("REMEDIATOR_OIDC_CLIENT_SECRET"),
		RedirectURL:  env("REMEDIATOR_OIDC_REDIRECT_URL", ""),
		RolesClaim:   env("REMEDIATOR_JWT_ROLES_CLAIM", auth.DefaultRolesClaim),
		ReposClaim:   env("REMEDIATOR_JWT_REPOS_CLAIM", auth.DefaultReposClaim),
		DefaultRepos: splitList(env("REMEDIATOR_JWT_DEFAULT_REPOS", ""), ","),
		Scopes:       splitList(env("REMEDIATOR_OIDC_SCOPES", "profile,email"), ","),
	}
	var errs []error
	if clientID == "" {
		errs = append(errs, errors.New("REMEDIATOR_OIDC_CLIENT_ID: required with REMEDIATOR_OIDC_ISSUER"))
	}
	if u, err := url.Parse(issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, errors.New("REMEDIATOR_OIDC_ISSUER: must be the provider's issuer URL (https://…)"))
	}
	if u, err := url.Parse(o.RedirectURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "/ui/oidc/callback" {
		errs = append(errs, errors.New("REMEDIATOR_OIDC_REDIRECT_URL: must be this API's absolute /ui/oidc/callback URL (e.g. https://remediator.example.com/ui/oidc/callback)"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return o, nil
}

// ParseTokens reads "subject:role|role:token" entries separated by commas.
// Static tokens may act on every repository; use API keys or JWT claims for
// repository scoping.
func ParseTokens(s string) ([]auth.StaticToken, error) {
	var out []auth.StaticToken
	for _, entry := range splitList(s, ",") {
		parts := strings.SplitN(entry, ":", 3)
		if len(parts) != 3 || parts[2] == "" {
			return nil, errors.New("REMEDIATOR_API_TOKENS: entries look like subject:role|role:token")
		}
		if !subjectPattern.MatchString(parts[0]) {
			return nil, fmt.Errorf("REMEDIATOR_API_TOKENS: invalid subject %q", parts[0])
		}
		if len(parts[2]) < 16 {
			return nil, fmt.Errorf("REMEDIATOR_API_TOKENS: the token of %s is shorter than 16 characters", parts[0])
		}
		roles := splitList(parts[1], "|")
		for _, r := range roles {
			if !slices.Contains(Roles, r) {
				return nil, fmt.Errorf("REMEDIATOR_API_TOKENS: unknown role %q for %s", r, parts[0])
			}
		}
		if len(roles) == 0 {
			return nil, fmt.Errorf("REMEDIATOR_API_TOKENS: %s has no role", parts[0])
		}
		tok, err := auth.NewStaticToken(parts[0], parts[2], roles, []string{"*"})
		if err != nil {
			return nil, fmt.Errorf("REMEDIATOR_API_TOKENS: %w", err)
		}
		out = append(out, tok)
	}
	return out, nil
}

var (
	slackUserPattern  = regexp.MustCompile(`^[UW][A-Z0-9]{2,20}$`)
	dragonUserPattern = regexp.MustCompile(`^[A-Za-z0-9._@+-]{1,128}$`)
)

// ParseSlackUsers links Slack user ids to principals:
// "U012AB3CD=alice:approver|admin:acme/*|tools/*" entries separated by commas.
// Only linked users can approve or reject from Slack buttons, with the roles
// and repositories given here.
func ParseSlackUsers(s string) (map[string]auth.Principal, error) {
	out, err := parseLinkedUsers("REMEDIATOR_SLACK_USERS", slackUserPattern, s)
	for k, p := range out {
		p.Method = "slack"
		out[k] = p
	}
	return out, err
}

// parseLinkedUsers reads "identity=subject:role|role:repoglob|repoglob"
// entries separated by commas, for the identities of another system (Slack
// users, Dragon users) that act as principals here.
func parseLinkedUsers(name string, identity *regexp.Regexp, s string) (map[string]auth.Principal, error) {
	out := map[string]auth.Principal{}
	for _, entry := range splitList(s, ",") {
		user, rest, ok := strings.Cut(entry, "=")
		parts := strings.Split(rest, ":")
		if !ok || !identity.MatchString(user) || len(parts) != 3 || !subjectPattern.MatchString(parts[0]) {
			return nil, fmt.Errorf("%s: entries look like identity=subject:role|role:repoglob|repoglob", name)
		}
		roles, repos := splitList(parts[1], "|"), splitList(parts[2], "|")
		for _, r := range roles {
			if !slices.Contains(Roles, r) {
				return nil, fmt.Errorf("%s: unknown role %q for %s", name, r, user)
			}
		}
		if len(roles) == 0 || len(repos) == 0 {
			return nil, fmt.Errorf("%s: %s needs at least one role and one repository glob", name, user)
		}
		if _, dup := out[user]; dup {
			return nil, fmt.Errorf("%s: %s is listed twice", name, user)
		}
		out[user] = auth.Principal{Subject: parts[0], Roles: roles, Repos: repos}
	}
	return out, nil
}

// String describes the configuration with every secret masked.
func (c Config) String() string {
	subjects := make([]string, 0, len(c.Tokens))
	for _, t := range c.Tokens {
		subjects = append(subjects, t.Subject+"(***)")
	}
	keyIDs := make([]string, 0, len(c.VotePublicKeys))
	for _, k := range c.VotePublicKeys {
		keyIDs = append(keyIDs, k.ID)
	}
	github, gitlab := "off", "off"
	if c.GitHub != nil {
		github = c.GitHub.APIURL
		if c.GitHub.AppID != 0 {
			github += fmt.Sprintf(" (app %d)", c.GitHub.AppID)
		}
	}
	if c.GitLab != nil {
		gitlab = c.GitLab.URL
	}
	integrations := []string{}
	if c.Dragon != nil {
		integrations = append(integrations, "dragon="+c.Dragon.BaseURL)
	}
	if c.Incident != nil {
		integrations = append(integrations, "incident="+c.Incident.BaseURL)
	}
	if c.Slack != nil {
		integrations = append(integrations, fmt.Sprintf("slack(bot=%t,webhook=%t)", c.Slack.BotToken != "", c.Slack.WebhookURL != ""))
	}
	if c.LLM != nil {
		integrations = append(integrations, "llm="+c.LLM.BaseURL+"/"+c.LLM.Model)
	}
	codecKeys := "off"
	if !c.Codec.Off {
		ids := make([]string, 0, len(c.Codec.Keys))
		for _, k := range c.Codec.Keys {
			ids = append(ids, k.ID)
		}
		codecKeys = fmt.Sprintf("%v", ids)
	}
	return fmt.Sprintf("integrations=%v codec=%s codec_cors=%v ", integrations, codecKeys, c.Codec.CORSOrigins) + fmt.Sprintf("mode=%s data_dir=%s http=%s temporal=%s/%s tls=%t temporal_api_key=%t database=%t tokens=[%s] api_keys=%d jwt=%t redis=%t trusted_proxies=%v github_webhook=%t slack=%t git_roots=%v approval_timeout=%s recipe_sandbox=%s vote_signing_key=%t vote_public_keys=%v github=%s gitlab=%s outbound_allow=%v",
		c.Mode, c.DataDir, c.HTTPAddr, c.Temporal.Address, c.Temporal.Namespace, c.Temporal.TLS, c.Temporal.Profile.APIKey != "", c.DatabaseURL != "",
		strings.Join(subjects, ","), len(c.APIKeys), c.JWT != nil, c.RedisURL != "", c.TrustedProxies,
		len(c.GitHubSecret) > 0, len(c.SlackSecret) > 0, c.GitRoots, c.ApprovalTimeout,
		c.RecipeSandbox, c.VoteSigningKey != nil, keyIDs, github, gitlab, c.OutboundAllowHosts)
}

func splitList(s, sep string) []string {
	var out []string
	for _, p := range strings.Split(s, sep) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
