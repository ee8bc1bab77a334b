//go:build !production

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"remediator/api"
	"remediator/internal/app"
	"remediator/internal/codec"
	"remediator/internal/config"
	"remediator/internal/devserver"
	"remediator/internal/logging"
	"remediator/internal/vote"
)

// benchRateLimits lifts every per-principal budget the benchmark touches far
// above what it sends, so the figures measure the path, not the limiter's
// refusals (the limiter itself still runs on every request).
const benchRateLimits = "generate=1000000-H,approvals=1000000-H,general=1000000-H,webhooks=1000000-H"

// stack is the service exactly as `make run` starts it (internal/app.StartDev
// over config.Load(config.ModeDev, ...)), served over a real 127.0.0.1
// http.Server, plus the benchmark's own raw SDK client and worker.
type stack struct {
	cfg     config.Config
	dev     *app.Dev
	srv     *http.Server
	serveCh chan error
	baseURL string
	http    *http.Client
	logPath string
	dataDir string
	repo    string // the demo repository, canonical (what the API hands the workflow)

	// raw is a plain SDK client of the benchmark (no interceptors, no
	// propagators): the "raw Temporal" side of every comparison.
	raw       client.Client
	rawWorker sdkworker.Worker
	signer    *vote.Signer
	env       map[string]string
	// github is the fake GitHub the webhook scenario's deliveries name
	// (nil when that scenario does not run).
	github *fakeGitHub
}

type stackOptions struct {
	dataDir string
	verbose bool
	// extraEnv is configuration beyond `make run`'s (the webhook
	// scenario's GitHub settings).
	extraEnv map[string]string
}

func startStack(ctx context.Context, o stackOptions) (*stack, error) {
	s := &stack{dataDir: o.dataDir}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("API listener: %w", err)
	}
	s.env = map[string]string{
		"REMEDIATOR_DATA_DIR":    o.dataDir,
		"REMEDIATOR_HTTP_ADDR":   ln.Addr().String(),
		"REMEDIATOR_RATE_LIMITS": benchRateLimits,
		// The bursts start thousands of remediations of one repository:
		// the per-repository caps are off, like the rate limits are high.
		"REMEDIATOR_REPO_MAX_ACTIVE":   "0",
		"REMEDIATOR_REPO_MAX_PER_HOUR": "0",
	}
	for k, v := range o.extraEnv {
		s.env[k] = v
	}
	getenv := func(k string) string {
		if v, ok := s.env[k]; ok {
			return v
		}
		// Everything else as `make run` would see it.
		return os.Getenv(k)
	}
	cfg, err := config.Load(config.ModeDev, getenv)
	if err != nil {
		ln.Close()
		return nil, err
	}
	var logOut io.Writer = os.Stderr
	s.logPath = "(stderr)"
	if !o.verbose {
		s.logPath = filepath.Join(o.dataDir, "remediator.log")
		f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			ln.Close()
			return nil, err
		}
		logOut = f // closed at process exit
	}
	logger := logging.New(logOut, cfg.LogFormat, cfg.LogLevel)
	ports, err := devserver.FreePorts()
	if err != nil {
		ln.Close()
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	d, err := app.StartDev(sctx, cfg, ports, logger)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s.dev, s.cfg = d, d.Config
	if s.repo, err = filepath.EvalSymlinks(d.Demo.Path); err != nil {
		s.stop()
		ln.Close()
		return nil, err
	}
	if s.signer, err = vote.NewSigner(d.Config.VoteSigningKey); err != nil {
		s.stop()
		ln.Close()
		return nil, err
	}
	s.srv = api.NewServer(cfg.HTTPAddr, d.Handler)
	s.serveCh = make(chan error, 1)
	go func() { s.serveCh <- s.srv.Serve(ln) }()
	s.baseURL = "http://" + ln.Addr().String()
	s.http = &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{
			Proxy:               nil, // loopback only, never through a proxy
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	// The raw client reads remediations' results, so it has the dev
	// payload codec key (the raw side's own workflows pay the codec too).
	ring, err := d.Config.Codec.Ring()
	if err != nil {
		s.stop()
		return nil, err
	}
	rawOpts := client.Options{
		HostPort:  d.Server.FrontendAddress(),
		Namespace: cfg.Temporal.Namespace,
		Logger:    logging.SDK(logger.With("component", "bench-raw-client")),
	}
	if ring != nil {
		rawOpts.DataConverter = codec.DataConverter(ring)
		rawOpts.FailureConverter = codec.FailureConverter(rawOpts.DataConverter)
	}
	s.raw, err = client.DialContext(ctx, rawOpts)
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("benchmark client: %w", err)
	}
	s.rawWorker = newNoopWorker(s.raw)
	if err := s.rawWorker.Start(); err != nil {
		s.rawWorker = nil
		s.stop()
		return nil, fmt.Errorf("benchmark worker: %w", err)
	}
	return s, nil
}

func (s *stack) stop() {
	if s.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = s.srv.Shutdown(ctx)
		cancel()
		if err := <-s.serveCh; err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "bench: API server:", err)
		}
		s.srv = nil
	}
	if s.http != nil {
		s.http.CloseIdleConnections()
	}
	if s.rawWorker != nil {
		s.rawWorker.Stop()
		s.rawWorker = nil
	}
	if s.raw != nil {
		s.raw.Close()
		s.raw = nil
	}
	if s.dev != nil {
		s.dev.Stop()
		s.dev = nil
	}
}

// logLines counts the service's log lines holding substr and returns the
// first max of them (truncated).
func (s *stack) logLines(substr string, max int) (int, []string) {
	f, err := os.Open(s.logPath)
	if err != nil {
		return 0, nil
	}
	defer f.Close()
	n := 0
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(l, substr) {
			n++
			if len(out) < max {
				out = append(out, truncate(l, 600))
			}
		}
	}
	return n, out
}

// sandboxLines returns the service's log lines about the recipe sandbox
// (whether bubblewrap is in use), so the report says how recipes really ran.
func (s *stack) sandboxLines() []string {
	f, err := os.Open(s.logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() && len(out) < 3 {
		if l := sc.Text(); strings.Contains(strings.ToLower(l), "sandbox") {
			out = append(out, truncate(l, 300))
		}
	}
	return out
}
