//go:build cluster

package clustertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/types/known/durationpb"

	"remediator/internal/codec"
	"remediator/internal/demo"
	"remediator/internal/github/githubtest"
	"remediator/workflows"
)

const (
	pgAddr     = "127.0.0.1:5432"
	pgAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	redisAddr  = "127.0.0.1:6379"
	namespace  = "default"
	jwtIssuer  = "rmcl-issuer"
	jwtAud     = "remediator"

	// GitHub fake: octo/widgets on branch trunk holds the demo's files.
	ghOwner  = "octo"
	ghRepo   = "widgets"
	ghBranch = "trunk"
	ghToken  = "ghp_clusterFAKEtoken0123456789"

	// rateLimits: everything high for the bursts, except the pr rule
	// (POST /api/pr), which only the shared-limit check uses.
	prLimit    = 20
	rateLimits = "generate=100000-H,approvals=100000-H,general=1000000-H,webhooks=100000-H,pr=20-H"
)

// skipOrFail skips loudly, or fails under CI=true where every dependency
// must be there.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: %s", msg)
	}
	t.Skipf("SKIPPED (not a pass): %s", msg)
}

// serverPorts are the Temporal services' fixed ports: a restarted server
// binds the same ones, so its membership recovers at once.
type serverPorts struct {
	frontend, frontendMember, history, historyMember, matching, matchingMember, worker, workerMember int
}

// Cluster is the running system under test.
type Cluster struct {
	dir    string
	prefix string // rmcl_<rand>: databases and the Redis key prefix
	bins   struct{ server, sqlTool, remediator string }
	// shadowMod is a copy of go.mod and go.sum the Temporal binaries are
	// built in.
	shadowMod string

	dbTemporal, dbVisibility, dbLedger string
	ledgerURL                          string
	redisPrefix                        string

	ports      serverPorts
	serverConf string
	server     *proc

	apis, workers      []*proc
	apiURLs            []string
	workerMetricsAddrs []string
	workerReadyz       bool // the workers' listener answers /readyz

	repo      demo.Repo // local repository under the git roots
	gitRoot   string
	gh        *githubtest.Server
	ghFiles   map[string]string
	ghSHA     string
	ghProxies []*forgeProxy // one per worker: which worker called

	tokens map[string]string
	tc     client.Client
	// codecKey is the payload codec key of every remediator process
	// (REMEDIATOR_CODEC_KEYS); tc decodes with it too.
	codecKey codec.Key

	mu    sync.Mutex
	procs []*proc
	dbs   []string
}

// newCluster builds the binaries, prepares PostgreSQL, starts Temporal and
// the four remediator processes, and registers a cleanup that kills every
// process and drops every database even when the test fails.
func newCluster(t *testing.T) *Cluster {
	t.Helper()
	for _, dep := range []struct{ name, addr string }{{"PostgreSQL", pgAddr}, {"Redis", redisAddr}} {
		conn, err := net.DialTimeout("tcp", dep.addr, 3*time.Second)
		if err != nil {
			skipOrFail(t, "%s is unreachable at %s: %v", dep.name, dep.addr, err)
		}
		conn.Close()
	}
	c := &Cluster{dir: t.TempDir(), prefix: "rmcl_" + randHex(6), tokens: map[string]string{}}
	var err error
	if c.codecKey, err = codec.GenerateKey("cluster-" + randHex(4)); err != nil {
		t.Fatal(err)
	}
	c.redisPrefix = "remediator:rl:" + c.prefix
	// Registered after TempDir: runs before the directory is removed.
	t.Cleanup(func() { c.cleanup(t) })

	c.build(t)
	c.createDatabases(t)
	c.startServer(t)
	c.setupNamespace(t)
	c.prepareRepos(t)
	c.prepareCaps(t)
	c.startRemediator(t)
	return c
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// cleanup kills every process group, prints the logs' tails on failure,
// drops the databases and deletes the Redis keys.
func (c *Cluster) cleanup(t *testing.T) {
	c.mu.Lock()
	procs, dbs := append([]*proc(nil), c.procs...), append([]string(nil), c.dbs...)
	c.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	if c.tc != nil {
		c.tc.Close()
	}
	if t.Failed() {
		for _, p := range procs {
			t.Logf("----- last lines of %s (%s) -----\n%s", p.name, p.log, p.tail(40))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if len(dbs) > 0 {
		conn, err := connectPG(ctx, pgAdminURL)
		if err != nil {
			t.Errorf("cleanup: cannot drop databases %v: %v", dbs, err)
		} else {
			for _, db := range dbs {
				if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)"); err != nil {
					t.Errorf("cleanup: drop database %s: %v", db, err)
				}
			}
			conn.Close(ctx)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	iter := rdb.Scan(ctx, 0, c.redisPrefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		if err := rdb.Del(ctx, keys...).Err(); err != nil {
			t.Errorf("cleanup: delete %d Redis keys under %s: %v", len(keys), c.redisPrefix, err)
		}
	}
}

func (c *Cluster) track(p *proc) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.procs = append(c.procs, p)
	return p
}

// connectPG connects, retrying for a while (PostgreSQL may be restarting).
func connectPG(ctx context.Context, u string) (*pgx.Conn, error) {
	var err error
	for {
		var conn *pgx.Conn
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err = pgx.Connect(cctx, u)
		cancel()
		if err == nil {
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// moduleRoot is the directory of remediator's go.mod.
func moduleRoot(t testing.TB) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// build builds remediator's production binary in this module, and the
// Temporal server and its SQL tool (v1.32.1, already in this module's graph)
// in a shadow copy of this module: same go.mod and go.sum, so the same
// versions and the warm build cache, but the go.sum lines only those two
// commands need (urfave/cli, ...) are added to the copy, never to the
// repository (where `go mod tidy` would drop them again).
func (c *Cluster) build(t *testing.T) {
	t.Helper()
	root := moduleRoot(t)
	bin := filepath.Join(c.dir, "bin")
	shadow := filepath.Join(c.dir, "shadowmod")
	if err := os.MkdirAll(shadow, 0o755); err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	gomod = regexp.MustCompile(`(?m)^module .*$`).ReplaceAll(gomod, []byte("module rmclshadow"))
	gosum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(shadow, "go.mod"), gomod, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(shadow, "go.sum"), gosum, 0o644); err != nil {
		t.Fatal(err)
	}
	c.shadowMod = shadow
	c.bins.server, c.bins.sqlTool, c.bins.remediator = filepath.Join(bin, "temporal-server"), filepath.Join(bin, "temporal-sql-tool"), filepath.Join(bin, "remediator")
	for _, b := range []struct{ out, pkg, dir string }{
		{c.bins.remediator, ".", root},
		{c.bins.server, "go.temporal.io/server/cmd/server", shadow},
		{c.bins.sqlTool, "go.temporal.io/server/cmd/tools/sql", shadow},
	} {
		start := time.Now()
		args := []string{"build", "-o", b.out}
		env := append(os.Environ(), "GOWORK=off")
		if b.dir == root {
			// The production build: no embedded dev server.
			args = append(args, "-tags", "production")
		} else {
			env = append(env, "GOFLAGS=-mod=mod")
		}
		cmd := exec.Command("go", append(args, b.pkg)...)
		cmd.Dir, cmd.Env = b.dir, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s (in %s): %v\n%s", strings.Join(cmd.Args[1:], " "), b.dir, err, out)
		}
		t.Logf("built %s in %s", filepath.Base(b.out), time.Since(start).Round(100*time.Millisecond))
	}
}

func (c *Cluster) createDatabases(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := connectPG(ctx, pgAdminURL)
	if err != nil {
		skipOrFail(t, "PostgreSQL at %s refuses connections as postgres: %v", pgAddr, err)
	}
	defer conn.Close(ctx)
	c.dbTemporal, c.dbVisibility, c.dbLedger = c.prefix+"_temporal", c.prefix+"_visibility", c.prefix+"_ledger"
	for _, db := range []string{c.dbTemporal, c.dbVisibility, c.dbLedger} {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
			t.Fatalf("create database %s: %v", db, err)
		}
		c.mu.Lock()
		c.dbs = append(c.dbs, db)
		c.mu.Unlock()
	}
	c.ledgerURL = "postgres://postgres@127.0.0.1:5432/" + c.dbLedger + "?sslmode=disable"

	list := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "go.temporal.io/server")
	list.Dir = c.shadowMod
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list -m go.temporal.io/server: %v", err)
	}
	schema := filepath.Join(strings.TrimSpace(string(out)), "schema", "postgresql", "v12")
	for _, s := range []struct{ db, dir string }{
		{c.dbTemporal, filepath.Join(schema, "temporal", "versioned")},
		{c.dbVisibility, filepath.Join(schema, "visibility", "versioned")},
	} {
		base := []string{"--plugin", "postgres12", "--ep", "127.0.0.1", "-p", "5432", "-u", "postgres", "--db", s.db}
		for _, args := range [][]string{{"setup-schema", "-v", "0.0"}, {"update-schema", "-d", s.dir}} {
			cmd := exec.CommandContext(ctx, c.bins.sqlTool, append(base, args...)...)
			out, err := cmd.CombinedOutput()
			if err != nil || !cmd.ProcessState.Success() {
				t.Fatalf("temporal-sql-tool %s on %s: %v\n%s", args[0], s.db, err, out)
			}
			if strings.Contains(string(out), "ERROR") || strings.Contains(string(out), "FATAL") {
				t.Fatalf("temporal-sql-tool %s on %s reported an error:\n%s", args[0], s.db, out)
			}
		}
	}
}

// lowPort picks a free loopback port in [20000, 32000): Temporal stores its
// services' ports in a smallint column (cluster_membership), so they must
// stay below 32768, and this range never collides with `make run` (7233,
// 8233, 8080 and nearby) nor with the kernel's ephemeral ports.
func lowPort(t testing.TB, taken map[int]bool) int {
	for range 1000 {
		var b [2]byte
		_, _ = rand.Read(b[:])
		p := 20000 + (int(b[0])<<8|int(b[1]))%12000
		if taken[p] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		taken[p] = true
		return p
	}
	t.Fatal("no free port in [20000, 32000)")
	return 0
}

// freePort asks the kernel for a free loopback port. Ports from the
// ephemeral range never collide with `make run` (7233, 8233, 8080, ...).
func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

const serverConfig = `log:
  stdout: true
  level: warn
persistence:
  defaultStore: default
  visibilityStore: visibility
  numHistoryShards: 4
  datastores:
    default:
      sql:
        pluginName: postgres12
        databaseName: %[1]s
        connectAddr: "127.0.0.1:5432"
        connectProtocol: tcp
        user: postgres
        password: ""
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h
    visibility:
      sql:
        pluginName: postgres12
        databaseName: %[2]s
        connectAddr: "127.0.0.1:5432"
        connectProtocol: tcp
        user: postgres
        password: ""
        maxConns: 10
        maxIdleConns: 10
        maxConnLifetime: 1h
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "127.0.0.1"
services:
  frontend:
    rpc:
      grpcPort: %[3]d
      membershipPort: %[4]d
      bindOnIP: "127.0.0.1"
  history:
    rpc:
      grpcPort: %[5]d
      membershipPort: %[6]d
      bindOnIP: "127.0.0.1"
  matching:
    rpc:
      grpcPort: %[7]d
      membershipPort: %[8]d
      bindOnIP: "127.0.0.1"
  worker:
    rpc:
      grpcPort: %[9]d
      membershipPort: %[10]d
      bindOnIP: "127.0.0.1"
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "127.0.0.1:%[3]d"
dcRedirectionPolicy:
  policy: noop
archival:
  history:
    state: disabled
  visibility:
    state: disabled
namespaceDefaults:
  archival:
    history:
      state: disabled
    visibility:
      state: disabled
publicClient:
  hostPort: "127.0.0.1:%[3]d"
dynamicConfigClient:
  filepath: %[11]q
  pollInterval: 10s
`

// dynamicConfig: queue processors polled at 1000/s (the default 20/s per
// shard adds 25-50 ms to every task hop), Updates pinned on (approvals use
// them; already the v1.32 default), search attributes usable at once, and
// enough visibility RPS for the test's list queries.
const dynamicConfig = `history.transferProcessorMaxPollRPS:
  - value: 1000
history.timerProcessorMaxPollRPS:
  - value: 1000
history.visibilityProcessorMaxPollRPS:
  - value: 1000
frontend.enableUpdateWorkflowExecution:
  - value: true
frontend.enableUpdateWorkflowExecutionAsyncAccepted:
  - value: true
system.forceSearchAttributesCacheRefreshOnRead:
  - value: true
system.namespaceCacheRefreshInterval:
  - value: 1s
frontend.namespaceRPS.visibility:
  - value: 500
`

func (c *Cluster) startServer(t *testing.T) {
	t.Helper()
	taken := map[int]bool{}
	c.ports = serverPorts{
		frontend: lowPort(t, taken), frontendMember: lowPort(t, taken), history: lowPort(t, taken), historyMember: lowPort(t, taken),
		matching: lowPort(t, taken), matchingMember: lowPort(t, taken), worker: lowPort(t, taken), workerMember: lowPort(t, taken),
	}
	dir := filepath.Join(c.dir, "temporal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dyn := filepath.Join(dir, "dynamicconfig.yaml")
	c.serverConf = filepath.Join(dir, "server.yaml")
	p := c.ports
	conf := fmt.Sprintf(serverConfig, c.dbTemporal, c.dbVisibility, p.frontend, p.frontendMember, p.history, p.historyMember,
		p.matching, p.matchingMember, p.worker, p.workerMember, dyn)
	if err := os.WriteFile(dyn, []byte(dynamicConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.serverConf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(c.bins.server, "validate-dynamic-config", dyn).CombinedOutput(); err != nil ||
		regexp.MustCompile(`(?i)warning|unregistered|unknown|error|invalid`).Match(out) {
		t.Fatalf("temporal-server validate-dynamic-config: %v\n%s", err, out)
	}
	c.server = c.track(newProc("temporal-server", c.bins.server, filepath.Join(c.dir, "logs", "temporal-server.log"),
		map[string]string{"PATH": os.Getenv("PATH"), "HOME": dir},
		"--config-file", c.serverConf, "--allow-no-auth", "start"))
	if err := os.MkdirAll(filepath.Join(c.dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.server.start(); err != nil {
		t.Fatal(err)
	}
	c.waitServer(t, 2*time.Minute)
}

// restartServer starts the server again with the same config (ports).
func (c *Cluster) restartServer(t testing.TB) {
	t.Helper()
	if err := c.server.start(); err != nil {
		t.Fatal(err)
	}
}

func (c *Cluster) frontendAddr() string { return "127.0.0.1:" + strconv.Itoa(c.ports.frontend) }

func quietLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// waitServer waits until the frontend answers a health check.
func (c *Cluster) waitServer(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-c.server.exited():
			t.Fatalf("temporal-server exited:\n%s", c.server.tail(40))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cl, err := client.DialContext(ctx, client.Options{HostPort: c.frontendAddr(), Namespace: namespace, Logger: quietLogger()})
		if err == nil {
			_, err = cl.CheckHealth(ctx, &client.CheckHealthRequest{})
			cl.Close()
		}
		cancel()
		if err == nil {
			return
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("temporal-server not healthy after %s: %v\n%s", timeout, last, c.server.tail(40))
}

// setupNamespace registers the namespace (1 day retention) and the
// workflows' Keyword search attributes, and waits until both are usable.
func (c *Cluster) setupNamespace(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nc, err := client.NewNamespaceClient(client.Options{HostPort: c.frontendAddr(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for {
		err := nc.Register(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace: namespace, WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
		})
		var exists *serviceerror.NamespaceAlreadyExists
		if err == nil || errors.As(err, &exists) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("register namespace: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	ring, err := codec.NewKeyRing(c.codecKey)
	if err != nil {
		t.Fatal(err)
	}
	dc := codec.DataConverter(ring)
	c.tc, err = client.DialContext(ctx, client.Options{HostPort: c.frontendAddr(), Namespace: namespace, Logger: quietLogger(),
		DataConverter: dc, FailureConverter: codec.FailureConverter(dc)})
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string]enumspb.IndexedValueType{}
	for _, n := range workflows.SearchAttributeNames {
		attrs[n] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
	}
	for {
		_, err := c.tc.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
			Namespace: namespace, SearchAttributes: attrs,
		})
		var exists *serviceerror.AlreadyExists
		if err == nil || errors.As(err, &exists) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("add search attributes: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	for {
		res, err := c.tc.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
		missing := 0
		if err == nil {
			for n := range attrs {
				if res.GetCustomAttributes()[n] != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
					missing++
				}
			}
		}
		if err == nil && missing == 0 {
			// And a visibility query naming them is accepted.
			_, err = c.tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				Namespace: namespace, Query: workflows.SearchAttrPhase + " = 'AwaitingApproval'",
			})
			if err == nil {
				return
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("search attributes not visible (%d missing): %v", missing, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// prepareRepos creates the local git repository (the demo, whose Go files
// fail gofmt) under the git roots, and the fake GitHub holding the same
// files as octo/widgets, with one forwarding proxy per worker.
func (c *Cluster) prepareRepos(t *testing.T) {
	t.Helper()
	c.gitRoot = filepath.Join(c.dir, "repos")
	var err error
	if c.repo, err = demo.Ensure(context.Background(), filepath.Join(c.gitRoot, "demo")); err != nil {
		t.Fatal(err)
	}
	if c.repo.Path, err = filepath.EvalSymlinks(c.repo.Path); err != nil {
		t.Fatal(err)
	}
	c.ghFiles = map[string]string{}
	ls, err := exec.Command("git", "-C", c.repo.Path, "ls-files", "-z").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Split(strings.TrimRight(string(ls), "\x00"), "\x00") {
		b, err := exec.Command("git", "-C", c.repo.Path, "show", c.repo.SHA+":"+p).Output()
		if err != nil {
			t.Fatal(err)
		}
		c.ghFiles[p] = string(b)
	}
	c.gh = githubtest.New(t)
	c.gh.Token = ghToken
	c.ghSHA = c.gh.SeedRepository(ghOwner, ghRepo, ghBranch, c.ghFiles)
	for i := range 2 {
		p, err := newForgeProxy(c.gh.URL(), i)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.close)
		c.ghProxies = append(c.ghProxies, p)
	}
}

// token mints an HS256 JWT for subject with roles, valid for every
// repository.
func (c *Cluster) token(subject string, roles ...string) string {
	if tok, ok := c.tokens[subject]; ok {
		return tok
	}
	claims := jwt.MapClaims{
		"sub": subject, "roles": roles, "repos": []string{"*"}, "iss": jwtIssuer, "aud": jwtAud,
		"iat": time.Now().Unix(), "exp": time.Now().Add(3 * time.Hour).Unix(),
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(c.jwtSecret()))
	if err != nil {
		panic(err)
	}
	c.tokens[subject] = tok
	return tok
}

func (c *Cluster) jwtSecret() string { return "cluster-test-hs256-secret-" + c.prefix + "-0123456789" }

var publicKeyLine = regexp.MustCompile(`(?m)^\s+(\S+)\s*$`)

// startRemediator mints the vote key and starts two workers and two APIs.
func (c *Cluster) startRemediator(t *testing.T) {
	t.Helper()
	keyFile := filepath.Join(c.dir, "vote-signing-key.pem")
	out, err := exec.Command(c.bins.remediator, "votekey", "create", "--out", keyFile).CombinedOutput()
	if err != nil {
		t.Fatalf("remediator votekey create: %v\n%s", err, out)
	}
	_, after, ok := strings.Cut(string(out), "REMEDIATOR_VOTE_PUBLIC_KEYS")
	m := publicKeyLine.FindStringSubmatch(after)
	if !ok || m == nil {
		t.Fatalf("no public key in the output of votekey create:\n%s", out)
	}
	publicKey := m[1]
	// The tokens the scenarios use: a developer who requests, two approvers,
	// and a developer only the shared rate-limit check uses.
	c.token("dev", "developer")
	c.token("alice", "approver")
	c.token("bob", "approver")
	c.token("rlprobe", "developer")

	common := func(name string) map[string]string {
		data := filepath.Join(c.dir, "data", name)
		home := filepath.Join(c.dir, "home", name)
		for _, d := range []string{data, home} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return map[string]string{
			"PATH": os.Getenv("PATH"), "HOME": home,
			"TEMPORAL_ADDRESS": c.frontendAddr(), "TEMPORAL_NAMESPACE": namespace,
			"REMEDIATOR_DATABASE_URL": c.ledgerURL,
			"REDIS_URL":               "redis://" + redisAddr + "/0", "REMEDIATOR_RATE_LIMIT_PREFIX": c.redisPrefix,
			"REMEDIATOR_RATE_LIMITS":      rateLimits,
			"REMEDIATOR_JWT_HS256_SECRET": c.jwtSecret(), "REMEDIATOR_JWT_ISSUER": jwtIssuer, "REMEDIATOR_JWT_AUDIENCE": jwtAud,
			"REMEDIATOR_GIT_ROOTS": c.gitRoot, "REMEDIATOR_DATA_DIR": data,
			"REMEDIATOR_LOG_FORMAT": "json", "REMEDIATOR_RECIPE_SANDBOX": "auto", "REMEDIATOR_CODEC_KEYS": c.codecKey.Encode(),
			"GITHUB_TOKEN": ghToken, "GITHUB_API_URL": c.gh.APIURL(),
			// Per-repository caps on, high; the policy caps one repository (caps.go).
			"REMEDIATOR_REPO_MAX_ACTIVE": strconv.Itoa(defaultCap), "REMEDIATOR_REPO_MAX_PER_HOUR": strconv.Itoa(defaultCap), "REMEDIATOR_POLICY_FILE": c.policyFile(),
		}
	}
	for i := range 2 {
		name := fmt.Sprintf("worker-%d", i)
		env := common(name)
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		env["REMEDIATOR_METRICS_ADDR"] = addr
		env["REMEDIATOR_VOTE_PUBLIC_KEYS"] = publicKey
		// Each worker reaches GitHub through its own proxy, which tells
		// which worker made a call.
		env["GITHUB_API_URL"] = c.ghProxies[i].url + "/"
		c.workers = append(c.workers, c.track(newProc(name, c.bins.remediator, filepath.Join(c.dir, "logs", name+".log"), env, "worker")))
		c.workerMetricsAddrs = append(c.workerMetricsAddrs, addr)
	}
	for i := range 2 {
		name := fmt.Sprintf("api-%d", i)
		env := common(name)
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		env["REMEDIATOR_HTTP_ADDR"] = addr
		env["REMEDIATOR_VOTE_SIGNING_KEY_FILE"] = keyFile
		c.apis = append(c.apis, c.track(newProc(name, c.bins.remediator, filepath.Join(c.dir, "logs", name+".log"), env, "api")))
		c.apiURLs = append(c.apiURLs, "http://"+addr)
	}
	for _, p := range append(append([]*proc{}, c.workers...), c.apis...) {
		if err := p.start(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range c.workers {
		c.waitWorker(t, i)
	}
	for i := range c.apis {
		c.waitAPI(t, i, time.Minute)
	}
}

// waitAPI waits for the API's /readyz.
func (c *Cluster) waitAPI(t testing.TB, i int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-c.apis[i].exited():
			t.Fatalf("%s exited:\n%s", c.apis[i].name, c.apis[i].tail(30))
		default:
		}
		code, body, err := httpGet(c.apiURLs[i] + "/readyz")
		if err == nil && code == http.StatusOK {
			return
		}
		last = fmt.Sprintf("%d %s %v", code, body, err)
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s /readyz not ready after %s: %s\n%s", c.apis[i].name, timeout, last, c.apis[i].tail(30))
}

// waitWorker waits for the worker's /readyz on its own listener. While that
// listener has no /readyz (it is being added), it falls back to Temporal:
// the worker is ready once its pollers (identity "<pid>@host@") appear on
// the task queue.
func (c *Cluster) waitWorker(t testing.TB, i int) {
	t.Helper()
	w := c.workers[i]
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-w.exited():
			t.Fatalf("%s exited:\n%s", w.name, w.tail(30))
		default:
		}
		code, body, err := httpGet("http://" + c.workerMetricsAddrs[i] + "/readyz")
		if err == nil && code == http.StatusOK {
			c.workerReadyz = true
			return
		}
		last = fmt.Sprintf("/readyz: %d %s %v", code, body, err)
		// No /readyz (404), or no listener for 15 s: fall back to pollers.
		if (err == nil && code == http.StatusNotFound) || (err != nil && time.Until(deadline) < 75*time.Second) {
			if c.pollersOf(w.pid()) {
				c.workerReadyz = false
				t.Logf("cluster: note: %s does not answer /readyz on REMEDIATOR_METRICS_ADDR (%s); ready by its pollers on the task queue instead", w.name, last)
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not ready after 90s: %s\n%s", w.name, last, w.tail(30))
}

// pollersOf reports whether a process with pid polls both the workflow and
// the activity task queue.
func (c *Cluster) pollersOf(pid int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, kind := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY} {
		res, err := c.tc.DescribeTaskQueue(ctx, workflows.TaskQueue, kind)
		if err != nil {
			return false
		}
		found := false
		for _, p := range res.GetPollers() {
			if strings.HasPrefix(p.GetIdentity(), strconv.Itoa(pid)+"@") {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// restartAPI starts API replica i again (same port, same environment).
func (c *Cluster) restartAPI(t testing.TB, i int) {
	t.Helper()
	if err := c.apis[i].start(); err != nil {
		t.Fatal(err)
	}
	c.waitAPI(t, i, time.Minute)
}

// restartWorker starts worker i again.
func (c *Cluster) restartWorker(t testing.TB, i int) {
	t.Helper()
	if err := c.workers[i].start(); err != nil {
		t.Fatal(err)
	}
	c.waitWorker(t, i)
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

func httpGet(u string) (int, string, error) {
	res, err := httpClient.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	return res.StatusCode, string(b), nil
}
