//go:build !production

// Package devserver runs a complete Temporal server (frontend, history,
// matching and worker services) plus the Temporal Web UI inside the calling
// process, persisting to a single SQLite file.
//
// It exists so that `remediator dev` and the end-to-end tests need neither
// Docker nor a separately installed Temporal CLI: one binary brings its own
// workflow engine. The configuration is tuned for a single developer machine
// (one history shard, fast task processing, fixed ports so that restarts on
// the same data file make progress within seconds).
package devserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"
	enumspb "go.temporal.io/api/enums/v1"
	namespacepb "go.temporal.io/api/namespace/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"google.golang.org/protobuf/types/known/durationpb"
)

const (
	// dbFileName is the SQLite file inside Config.DataDir.
	dbFileName = "temporal.db"
	// clusterName is the name of the single, local cluster.
	clusterName = "active"
	// minRetention is the smallest retention the server accepts for a namespace.
	minRetention = 24 * time.Hour
	// readinessPoll is the pause between readiness probes while starting.
	readinessPoll = 100 * time.Millisecond
	// defaultStartTimeout bounds Start when ctx has no deadline.
	defaultStartTimeout = 2 * time.Minute
)

// Ports lists every port the embedded server binds. All of them are fixed and
// configurable: with random ports a restarted server first waits out its own
// stale membership records (measured: ~51 s before the first task ran), with
// fixed ports it makes progress within a fraction of a second.
type Ports struct {
	// Frontend is the frontend gRPC port that SDK clients and the CLI dial.
	Frontend int
	// FrontendHTTP is the frontend HTTP API port; 0 disables the HTTP API.
	FrontendHTTP int
	// History, Matching and Worker are the internal gRPC ports of those services.
	History, Matching, Worker int
	// The *Membership ports carry the ringpop gossip of each service.
	FrontendMembership, HistoryMembership, MatchingMembership, WorkerMembership int
	// UI is the Web UI HTTP port; 0 disables the Web UI.
	UI int
}

// DefaultPorts returns the well-known ports of a local Temporal dev server
// (the same frontend and UI ports as `temporal server start-dev`), so that the
// Temporal CLI and other tools work against `remediator dev` without flags.
func DefaultPorts() Ports {
	return Ports{
		Frontend:           7233,
		FrontendHTTP:       7243,
		History:            7234,
		Matching:           7235,
		Worker:             7236,
		FrontendMembership: 6933,
		HistoryMembership:  6934,
		MatchingMembership: 6935,
		WorkerMembership:   6936,
		UI:                 8233,
	}
}

// FreePorts picks a distinct free loopback port for every field, so that
// parallel tests do not collide. The caller then passes the result as fixed
// ports to Start (and again to a restart, which must reuse the same ports).
// The ports are only free at the time of the call; another process may take
// one before Start binds it.
func FreePorts() (Ports, error) {
	const n = 10
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return Ports{}, fmt.Errorf("devserver: pick free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return Ports{
		Frontend:           ports[0],
		FrontendHTTP:       ports[1],
		History:            ports[2],
		Matching:           ports[3],
		Worker:             ports[4],
		FrontendMembership: ports[5],
		HistoryMembership:  ports[6],
		MatchingMembership: ports[7],
		WorkerMembership:   ports[8],
		UI:                 ports[9],
	}, nil
}

// Config configures an embedded server. The zero value of every field except
// DataDir has a usable default.
type Config struct {
	// DataDir holds the SQLite file DataDir/temporal.db (plus its -wal and -shm
	// companions). It is created with mode 0o700 if missing. Required.
	DataDir string
	// Host is the IP address every service and the UI bind to and advertise.
	// It must be a concrete IP literal (not 0.0.0.0). Default "127.0.0.1".
	Host string
	// Ports are the fixed ports to bind. The zero value means DefaultPorts().
	Ports Ports
	// Namespace is created if missing. Default "default".
	Namespace string
	// Retention of closed workflows in Namespace. Default 7 days; the server
	// rejects less than 24 h. An existing namespace with a lower retention is
	// raised to this value; a higher one is left alone.
	Retention time.Duration
	// SearchAttributes are custom search attributes registered on Namespace at
	// start (missing ones are added; existing ones must have the same type).
	SearchAttributes map[string]enumspb.IndexedValueType
	// Logger receives the server's logs at warn level and above. nil discards them.
	Logger *slog.Logger
	// CodecEndpoint is the remote payload codec the Web UI decodes payloads
	// with (the browser calls CodecEndpoint/decode, passing the UI user's
	// access token); empty shows payloads as stored.
	CodecEndpoint string
}

// Server is a running embedded Temporal server with its Web UI.
type Server struct {
	frontendAddr string
	uiAddr       string
	namespace    string

	server   temporal.Server
	logMuted *atomic.Bool
	ui       *uiserver.Server
	uiDone   chan struct{}

	stopOnce sync.Once
	stopErr  error
}

// Start starts the server and the UI. It returns once the frontend answers
// health checks, the namespace exists with at least the configured retention
// and every custom search attribute is registered and usable in queries, so
// callers can start workers and workflows immediately.
//
// On a new data file the schema is created and the namespace is written with
// its retention and search attributes before the server starts; on an existing
// file the schema and data are reused, missing search attributes are added via
// the operator service and a lower retention is raised.
//
// ctx bounds the whole start-up (2 minutes if it has no deadline); if it ends
// first, everything started so far is stopped again and an error wrapping the
// context's error is returned.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}

	sqlCfg, err := prepareDatabase(cfg)
	if err != nil {
		return nil, err
	}

	muted := new(atomic.Bool)
	logger := newServerLogger(cfg.Logger, muted)
	serverCfg := buildServerConfig(cfg, sqlCfg)
	authorizer, err := authorization.GetAuthorizerFromConfig(&serverCfg.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("devserver: authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&serverCfg.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("devserver: claim mapper: %w", err)
	}
	if err := checkPortsFree(cfg.Host, cfg.Ports); err != nil {
		return nil, err
	}

	srv, err := temporal.NewServer(
		temporal.WithConfig(serverCfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dynamicConfig()),
	)
	if err != nil {
		return nil, fmt.Errorf("devserver: create server: %w", err)
	}

	s := &Server{
		frontendAddr: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Ports.Frontend)),
		namespace:    cfg.Namespace,
		server:       srv,
		logMuted:     muted,
	}

	// temporal.Server.Start takes no context; run it aside so ctx can end the
	// wait, but always wait for it before stopping, since Stop must not race Start.
	startErr := make(chan error, 1)
	go func() { startErr <- srv.Start() }()
	select {
	case err := <-startErr:
		if err != nil {
			return nil, fmt.Errorf("devserver: start server: %w", err)
		}
	case <-ctx.Done():
		if err := <-startErr; err == nil {
			_ = srv.Stop()
		}
		return nil, fmt.Errorf("devserver: start server: %w", ctx.Err())
	}

	if cfg.Ports.UI > 0 {
		s.startUI(cfg)
	}

	if err := s.awaitReady(ctx, cfg); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// FrontendAddress is the host:port of the frontend gRPC API, e.g.
// "127.0.0.1:7233", for client.Options.HostPort.
func (s *Server) FrontendAddress() string { return s.frontendAddr }

// UIAddress is the Web UI base URL, e.g. "http://127.0.0.1:8233", or "" when
// the UI is disabled.
func (s *Server) UIAddress() string { return s.uiAddr }

// Namespace is the namespace that Start created or verified.
func (s *Server) Namespace() string { return s.namespace }

// Stop stops the UI and then gracefully stops all server services. It is safe
// to call more than once; later calls return the first call's result. Server
// logs are muted from here on: shutdown produces only unactionable noise.
//
// Known limitation of server v1.32.1: a few of its internal system workers
// (scanners, parent-close-policy processor) are never stopped and keep polling
// the frontend address until the process exits; this only matters when a test
// restarts the server inside one process.
//
// The SQLite file handle stays open until the process exits: the server's
// SQLite plugin keeps one shared connection per file for the process lifetime.
// A later Start on the same DataDir in the same process reuses it.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.logMuted.Store(true)
		if s.ui != nil {
			s.ui.Stop()
			<-s.uiDone
		}
		if err := s.server.Stop(); err != nil {
			s.stopErr = fmt.Errorf("devserver: stop server: %w", err)
		}
	})
	return s.stopErr
}

// withDefaults validates cfg and fills in defaults.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.DataDir == "" {
		return cfg, errors.New("devserver: Config.DataDir is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if ip := net.ParseIP(cfg.Host); ip == nil || ip.IsUnspecified() {
		// The services advertise Host to each other (membership), so it must
		// be a concrete address, not a wildcard such as 0.0.0.0.
		return cfg, fmt.Errorf("devserver: Config.Host %q is not a concrete IP address", cfg.Host)
	}
	if cfg.Ports == (Ports{}) {
		cfg.Ports = DefaultPorts()
	}
	if err := cfg.Ports.validate(); err != nil {
		return cfg, err
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	if cfg.Retention == 0 {
		cfg.Retention = 7 * 24 * time.Hour
	}
	if cfg.Retention < minRetention {
		return cfg, fmt.Errorf("devserver: Config.Retention %v is below the minimum of %v", cfg.Retention, minRetention)
	}
	for name, typ := range cfg.SearchAttributes {
		if name == "" {
			return cfg, errors.New("devserver: empty search attribute name")
		}
		if typ == enumspb.INDEXED_VALUE_TYPE_UNSPECIFIED {
			return cfg, fmt.Errorf("devserver: search attribute %q has no type", name)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// named returns the ports with their names, for validation and messages.
func (p Ports) named() []namedPort {
	return []namedPort{
		{"Frontend", p.Frontend},
		{"FrontendHTTP", p.FrontendHTTP},
		{"History", p.History},
		{"Matching", p.Matching},
		{"Worker", p.Worker},
		{"FrontendMembership", p.FrontendMembership},
		{"HistoryMembership", p.HistoryMembership},
		{"MatchingMembership", p.MatchingMembership},
		{"WorkerMembership", p.WorkerMembership},
		{"UI", p.UI},
	}
}

type namedPort struct {
	name string
	port int
}

// optional reports whether a port may be 0 (meaning: that listener is disabled).
func (n namedPort) optional() bool { return n.name == "UI" || n.name == "FrontendHTTP" }

func (p Ports) validate() error {
	seen := make(map[int]string)
	for _, np := range p.named() {
		if np.port == 0 && np.optional() {
			continue
		}
		if np.port <= 0 || np.port > 65535 {
			return fmt.Errorf("devserver: port %s=%d out of range", np.name, np.port)
		}
		if other, dup := seen[np.port]; dup {
			return fmt.Errorf("devserver: ports %s and %s are both %d", other, np.name, np.port)
		}
		seen[np.port] = np.name
	}
	return nil
}

// checkPortsFree fails fast with a clear message if a port is taken, instead
// of a server start-up error deep inside a service (or, for the UI, a process
// exit from inside the UI library).
func checkPortsFree(host string, p Ports) error {
	for _, np := range p.named() {
		if np.port == 0 {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(np.port)))
		if err != nil {
			return fmt.Errorf("devserver: port %s=%d is not available: %w", np.name, np.port, err)
		}
		_ = l.Close()
	}
	return nil
}

// prepareDatabase creates the data directory and, on a new file, the schema;
// then it makes sure the namespace exists (a no-op when it already does).
func prepareDatabase(cfg Config) (*config.SQL, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("devserver: create data dir: %w", err)
	}
	dbPath := filepath.Join(cfg.DataDir, dbFileName)
	sqlCfg := &config.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: dbPath,
		// One connection: with more, even in WAL mode, concurrent writers
		// wait on SQLite's lock and throughput drops several-fold.
		MaxConns:     1,
		MaxIdleConns: 1,
		ConnectAttributes: map[string]string{
			"mode": "rwc",
			// Pragmas (the plugin turns these into _pragma=k=v): WAL with
			// NORMAL sync is ~3x the start rate of the rollback-journal default
			// and still survives a process crash.
			"journal_mode": "wal",
			"synchronous":  "NORMAL",
			"busy_timeout": "5000",
		},
	}

	fi, err := os.Stat(dbPath)
	switch {
	case errors.Is(err, os.ErrNotExist) || (err == nil && fi.Size() == 0):
		if err := sqliteschema.SetupSchema(sqlCfg); err != nil {
			return nil, fmt.Errorf("devserver: create schema in %s: %w", dbPath, err)
		}
		if err := os.Chmod(dbPath, 0o600); err != nil {
			return nil, fmt.Errorf("devserver: restrict %s: %w", dbPath, err)
		}
	case err != nil:
		return nil, fmt.Errorf("devserver: stat %s: %w", dbPath, err)
	}

	nsCfg, err := sqliteschema.NewNamespaceConfig(clusterName, cfg.Namespace, false, cfg.SearchAttributes)
	if err != nil {
		return nil, fmt.Errorf("devserver: namespace config: %w", err)
	}
	nsCfg.Detail.Config.Retention = durationpb.New(cfg.Retention)
	if err := sqliteschema.CreateNamespaces(sqlCfg, nsCfg); err != nil {
		return nil, fmt.Errorf("devserver: create namespace %q: %w", cfg.Namespace, err)
	}
	return sqlCfg, nil
}

// buildServerConfig is the static server configuration: one local cluster, one
// history shard, SQLite for both persistence and visibility, every service on
// a fixed gRPC and membership port bound to cfg.Host.
func buildServerConfig(cfg Config, sqlCfg *config.SQL) *config.Config {
	hostPort := func(port int) string { return net.JoinHostPort(cfg.Host, strconv.Itoa(port)) }
	service := func(grpcPort, membershipPort, httpPort int) config.Service {
		return config.Service{RPC: config.RPC{
			GRPCPort:       grpcPort,
			MembershipPort: membershipPort,
			BindOnIP:       cfg.Host,
			HTTPPort:       httpPort,
		}}
	}
	clusterInfo := cluster.ClusterInformation{
		Enabled:                true,
		InitialFailoverVersion: 1,
		RPCAddress:             hostPort(cfg.Ports.Frontend),
	}
	if cfg.Ports.FrontendHTTP > 0 {
		clusterInfo.HTTPAddress = hostPort(cfg.Ports.FrontendHTTP)
	}

	var c config.Config
	c.Global.Membership = config.Membership{
		MaxJoinDuration:  30 * time.Second,
		BroadcastAddress: cfg.Host,
	}
	// No metrics listener and no pprof: nothing binds beyond Config.Ports.
	c.Persistence = config.Persistence{
		DefaultStore:     sqliteplugin.PluginName,
		VisibilityStore:  sqliteplugin.PluginName,
		NumHistoryShards: 1,
		DataStores: map[string]config.DataStore{
			sqliteplugin.PluginName: {SQL: sqlCfg},
		},
	}
	c.ClusterMetadata = &cluster.Config{
		EnableGlobalNamespace:    false,
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation:       map[string]cluster.ClusterInformation{clusterName: clusterInfo},
	}
	c.DCRedirectionPolicy.Policy = "noop"
	c.Services = map[string]config.Service{
		"frontend": service(cfg.Ports.Frontend, cfg.Ports.FrontendMembership, cfg.Ports.FrontendHTTP),
		"history":  service(cfg.Ports.History, cfg.Ports.HistoryMembership, 0),
		"matching": service(cfg.Ports.Matching, cfg.Ports.MatchingMembership, 0),
		"worker":   service(cfg.Ports.Worker, cfg.Ports.WorkerMembership, 0),
	}
	c.Archival.History.State = "disabled"
	c.Archival.Visibility.State = "disabled"
	c.NamespaceDefaults.Archival.History.State = "disabled"
	c.NamespaceDefaults.Archival.Visibility.State = "disabled"
	// The worker service's system workflows dial the frontend through this.
	c.PublicClient.HostPort = hostPort(cfg.Ports.Frontend)
	return &c
}

// dynamicConfig holds the dev tunings. With one history shard the queue
// processors' default of 20 polls/s per shard made every task hop wait
// 25-50 ms; at 1000 a signal-to-next-activity hop took ~3.5 ms, with idle CPU
// staying around 1-2 % of a core.
func dynamicConfig() dynamicconfig.StaticClient {
	return dynamicconfig.StaticClient{
		dynamicconfig.TransferProcessorMaxPollRPS.Key():   1000,
		dynamicconfig.TimerProcessorMaxPollRPS.Key():      1000,
		dynamicconfig.VisibilityProcessorMaxPollRPS.Key(): 1000,
		// Workflow Updates (approvals use them); already the default in
		// v1.32, pinned so a server upgrade cannot silently turn them off.
		dynamicconfig.FrontendEnableUpdateWorkflowExecution.Key():              true,
		dynamicconfig.FrontendEnableUpdateWorkflowExecutionAsyncAccepted.Key(): true,
		// Search attributes added at start are usable immediately.
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): true,
		// As the Temporal CLI dev server: a larger mutable-state cache and
		// enough visibility RPS for the Web UI's polling list views.
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 8096,
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
	}
}

// startUI starts the Web UI in the background. The UI library's Start blocks
// and exits the process on a listen error, which checkPortsFree guards against.
func (s *Server) startUI(cfg Config) {
	s.uiAddr = "http://" + net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Ports.UI))
	s.ui = uiserver.NewServer(uiserveroptions.WithConfigProvider(&uiconfig.Config{
		TemporalGRPCAddress: s.frontendAddr,
		Host:                cfg.Host,
		Port:                cfg.Ports.UI,
		EnableUI:            true,
		DefaultNamespace:    cfg.Namespace,
		// Plain HTTP on loopback: the CSRF cookie must not require HTTPS.
		CORS:             uiconfig.CORS{CookieInsecure: true},
		HideLogs:         true,
		DisableNewsFetch: true, // no internet needed
		Codec:            uiconfig.Codec{Endpoint: cfg.CodecEndpoint, PassAccessToken: cfg.CodecEndpoint != ""},
	}))
	s.uiDone = make(chan struct{})
	go func() {
		defer close(s.uiDone)
		_ = s.ui.Start()
	}()
}

// awaitReady waits for the frontend and the UI, then reconciles the
// namespace's retention and search attributes.
func (s *Server) awaitReady(ctx context.Context, cfg Config) error {
	c, err := dialUntilReady(ctx, s.frontendAddr, cfg.Namespace)
	if err != nil {
		return err
	}
	defer c.Close()

	if err := ensureRetention(ctx, c, cfg); err != nil {
		return err
	}
	if err := ensureSearchAttributes(ctx, c, cfg); err != nil {
		return err
	}
	if s.uiAddr != "" {
		if err := waitHTTP(ctx, s.uiAddr+"/healthz"); err != nil {
			return fmt.Errorf("devserver: web UI not ready: %w", err)
		}
	}
	return nil
}

// dialUntilReady retries until an SDK client connects, passes a health check
// and can describe the namespace.
func dialUntilReady(ctx context.Context, addr, namespace string) (client.Client, error) {
	var lastErr error
	for {
		c, err := client.DialContext(ctx, client.Options{
			HostPort:  addr,
			Namespace: namespace,
			Logger:    sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
		})
		if err == nil {
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			if err == nil {
				_, err = c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace})
			}
			if err == nil {
				return c, nil
			}
			c.Close()
		}
		lastErr = err
		if err := sleepCtx(ctx, readinessPoll); err != nil {
			return nil, fmt.Errorf("devserver: frontend %s not ready: %w (last error: %v)", addr, err, lastErr)
		}
	}
}

// ensureRetention raises the namespace retention to cfg.Retention if lower.
func ensureRetention(ctx context.Context, c client.Client, cfg Config) error {
	resp, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: cfg.Namespace})
	if err != nil {
		return fmt.Errorf("devserver: describe namespace %q: %w", cfg.Namespace, err)
	}
	if resp.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration() >= cfg.Retention {
		return nil
	}
	_, err = c.WorkflowService().UpdateNamespace(ctx, &workflowservice.UpdateNamespaceRequest{
		Namespace: cfg.Namespace,
		Config:    &namespacepb.NamespaceConfig{WorkflowExecutionRetentionTtl: durationpb.New(cfg.Retention)},
	})
	if err != nil {
		return fmt.Errorf("devserver: raise retention of namespace %q to %v: %w", cfg.Namespace, cfg.Retention, err)
	}
	return nil
}

// ensureSearchAttributes adds the configured custom search attributes that the
// namespace lacks (an existing data file from an older configuration), then
// waits until visibility queries accept them.
func ensureSearchAttributes(ctx context.Context, c client.Client, cfg Config) error {
	if len(cfg.SearchAttributes) == 0 {
		return nil
	}
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: cfg.Namespace})
	if err != nil {
		return fmt.Errorf("devserver: list search attributes: %w", err)
	}
	missing := make(map[string]enumspb.IndexedValueType)
	for name, want := range cfg.SearchAttributes {
		have, ok := resp.GetCustomAttributes()[name]
		if !ok {
			if _, system := resp.GetSystemAttributes()[name]; system {
				return fmt.Errorf("devserver: search attribute %q is a system attribute", name)
			}
			missing[name] = want
			continue
		}
		if have != want {
			return fmt.Errorf("devserver: search attribute %q exists as %v, configured as %v", name, have, want)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace:        cfg.Namespace,
		SearchAttributes: missing,
	})
	if err != nil {
		return fmt.Errorf("devserver: add search attributes %s: %w", strings.Join(sortedKeys(missing), ", "), err)
	}
	// The frontend learns the new aliases on its next namespace-cache refresh
	// (every few seconds); wait for it so that callers can use them at once.
	for _, name := range sortedKeys(missing) {
		if err := waitQueryable(ctx, c, cfg.Namespace, name); err != nil {
			return err
		}
	}
	return nil
}

// waitQueryable polls until a visibility query naming the attribute is accepted.
func waitQueryable(ctx context.Context, c client.Client, namespace, name string) error {
	query := fmt.Sprintf("`%s` IS NULL", name)
	for {
		_, err := c.WorkflowService().CountWorkflowExecutions(ctx, &workflowservice.CountWorkflowExecutionsRequest{
			Namespace: namespace,
			Query:     query,
		})
		if err == nil {
			return nil
		}
		var invalid *serviceerror.InvalidArgument
		if !errors.As(err, &invalid) {
			return fmt.Errorf("devserver: check search attribute %q: %w", name, err)
		}
		if err := sleepCtx(ctx, readinessPoll); err != nil {
			return fmt.Errorf("devserver: search attribute %q not usable: %w", name, err)
		}
	}
}

// waitHTTP polls url until it answers 200.
func waitHTTP(ctx context.Context, url string) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := sleepCtx(ctx, readinessPoll); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
