//go:build !production

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"remediator/internal/app"
	"remediator/internal/codec"
	"remediator/internal/demo"
	"remediator/internal/logging"
	"remediator/workflows"
)

// The targets after a kill -9 of `remediator dev`: the first
// approved remediation completes within 1.0 s of the new process's start
// and within 0.3 s of its /readyz answering 200.
const (
	restartGoalFromStart = 1.0 // s
	restartGoalFromReady = 0.3 // s
)

// rawWorkerEnv makes this program a worker of the benchmark-only no-op
// workflow (the raw side of the restart comparison), in a child process
// that is killed with the server it polls.
const rawWorkerEnv = "REMEDIATOR_BENCH_RAW_WORKER_HOSTPORT"

type restartConfig struct {
	N           int
	Callers     int
	PrepTimeout time.Duration
	Timeout     time.Duration
	Keep        bool
}

// runRestart: N remediations AwaitingApproval in a `remediator dev` child
// process (the binary built as `make build` builds it), kill -9 of its
// process group, a restart on the same data directory, then: restart →
// /readyz 200, → the first approved remediation Completed (approved as
// soon as /readyz answers), → all N approved (concurrently) and Completed.
// Beside it, in the same run, the same with `temporal server start-dev`
// (bin/temporal) and a raw SDK worker of a no-op approval workflow.
func runRestart(ctx context.Context, cfg restartConfig, runID string) *scenario {
	sc := &scenario{Name: "restart", Title: fmt.Sprintf("6 restart, %d waiting", cfg.N), Params: map[string]any{
		"n": cfg.N, "approve_callers": cfg.Callers,
	}}
	root, err := moduleRoot()
	if err != nil {
		sc.Error = err.Error()
		return sc
	}
	tmp, err := os.MkdirTemp("", "remediator-bench-restart-")
	if err != nil {
		sc.Error = err.Error()
		return sc
	}
	if cfg.Keep {
		sc.note("restart scenario directory kept: %s", tmp)
	} else {
		defer removeAll(tmp)
	}
	sc.Details = map[string]any{}

	// Build the binary as `make build` does (go build -o … .).
	bin := filepath.Join(tmp, "remediator")
	t0 := time.Now()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		sc.Error = fmt.Sprintf("go build -o %s .: %v\n%s", bin, err, truncate(string(out), 2000))
		return sc
	}
	sc.Details["build_seconds"] = round(time.Since(t0).Seconds(), 1)
	logf("restart: built %s in %.1f s", bin, time.Since(t0).Seconds())

	rem, err := restartRemediator(ctx, cfg, bin, tmp, runID, sc)
	if err != nil {
		sc.Error = "remediator dev: " + err.Error()
		return sc
	}
	sc.Details["remediator_dev"] = rem

	cli := filepath.Join(root, "bin", "temporal")
	if st, err := os.Stat(cli); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		msg := fmt.Sprintf("temporal server start-dev comparison SKIPPED: no Temporal CLI at %s (`make temporal-cli` installs v1.5.1)", cli)
		sc.note("%s", msg)
		logf("restart: %s", msg)
		return sc
	}
	raw, err := restartTemporalCLI(ctx, cfg, cli, tmp)
	if err != nil {
		sc.note("temporal server start-dev comparison failed: %v", err)
		sc.Error = "temporal server start-dev: " + err.Error()
		return sc
	}
	sc.Details["temporal_cli"] = raw
	sc.add(figure{Name: "CLI: restart → ready (gRPC health + namespace)", Value: raw.Ready, Unit: "s"})
	sc.add(figure{Name: "CLI: restart → raw worker polling (context)", Value: raw.WorkerUp, Unit: "s"})
	sc.add(figure{Name: "CLI: restart → first signalled workflow Completed", Value: raw.First, Unit: "s"})
	sc.add(figure{Name: "CLI: ready → first Completed", Value: round(raw.First-raw.Ready, 3), Unit: "s"})
	sc.add(figure{Name: fmt.Sprintf("CLI: restart → all %d signalled and Completed", cfg.N), Value: raw.All, Unit: "s"})
	if raw.First > 0 {
		sc.add(figure{Name: "ratio remediator/CLI, restart → first Completed (context)", Value: round(rem.First/raw.First, 3), Unit: "x"})
	}
	if raw.All > 0 {
		sc.add(figure{Name: "ratio remediator/CLI, restart → all Completed (context)", Value: round(rem.All/raw.All, 3), Unit: "x"})
	}
	sc.note("CLI side: `%s server start-dev --db-filename <file>` (%s; its default dynamic config and SQLite settings, Web UI on) with a raw SDK worker of the benchmark-only no-op workflow %q in a child process; both killed with kill -9 and restarted together; 'ready' = gRPC health check and DescribeNamespace answer; approval = SignalWorkflow",
		cli, raw.Version, noopWorkflowName)
	return sc
}

// restartResult is one side's figures, in seconds from the restart.
type restartResult struct {
	Version       string  `json:"version,omitempty"`
	ColdReady     float64 `json:"cold_start_to_ready_s"`
	Prep          float64 `json:"prep_s"`
	Ready         float64 `json:"restart_to_ready_s"`
	WorkerUp      float64 `json:"restart_to_worker_started_s,omitempty"`
	FirstApproved float64 `json:"restart_to_first_approve_answered_s"`
	First         float64 `json:"restart_to_first_completed_s"`
	All           float64 `json:"restart_to_all_completed_s"`
	Completed     int     `json:"completed"`
	// FirstTimeline is the first workflow's history after the restart:
	// "<seconds since the restart> <event type>".
	FirstTimeline []string `json:"first_timeline,omitempty"`
	Log           string   `json:"log,omitempty"`
}

func restartRemediator(ctx context.Context, cfg restartConfig, bin, tmp, runID string, sc *scenario) (restartResult, error) {
	var res restartResult
	dataDir := filepath.Join(tmp, "data")
	frontend, ui, apiPort, err := app.FreeDevPorts()
	if err != nil {
		return res, err
	}
	env := append(os.Environ(),
		"REMEDIATOR_DATA_DIR="+dataDir,
		"REMEDIATOR_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(apiPort),
		"REMEDIATOR_DEV_FRONTEND_PORT="+strconv.Itoa(frontend),
		"REMEDIATOR_DEV_UI_PORT="+strconv.Itoa(ui),
		"REMEDIATOR_RATE_LIMITS="+benchRateLimits,
		"REMEDIATOR_REPO_MAX_ACTIVE=0", "REMEDIATOR_REPO_MAX_PER_HOUR=0",
	)
	// The payload codec key, given to remediator dev explicitly so the
	// benchmark's own clients read what it writes.
	key, err := codec.GenerateKey("bench-restart")
	if err != nil {
		return res, err
	}
	ring, err := codec.NewKeyRing(key)
	if err != nil {
		return res, err
	}
	env = append(env, "REMEDIATOR_CODEC_KEYS="+key.Encode())
	res.Log = filepath.Join(tmp, "remediator-dev.log")
	apiURL := "http://127.0.0.1:" + strconv.Itoa(apiPort)
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{Proxy: nil, MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	defer hc.CloseIdleConnections()

	t0 := time.Now()
	p, err := startChild(bin, []string{"dev"}, env, res.Log)
	if err != nil {
		return res, err
	}
	defer func() { p.stop() }()
	if _, err := waitReadyz(ctx, hc, apiURL, p, 4*time.Minute); err != nil {
		return res, fmt.Errorf("first start: %w\n%s", err, logTail(res.Log, 40))
	}
	res.ColdReady = round(time.Since(t0).Seconds(), 3)
	vars, err := readDevEnv(filepath.Join(dataDir, "dev.env"))
	if err != nil {
		return res, err
	}
	if vars["REMEDIATOR_URL"] != apiURL {
		return res, fmt.Errorf("dev.env names the API at %q, want %q", vars["REMEDIATOR_URL"], apiURL)
	}
	tokens := map[string]string{"dev": vars["DEV_TOKEN"], "alice": vars["ALICE_TOKEN"]}
	temporalAddr, demoRepo := vars["TEMPORAL_ADDRESS"], vars["DEMO_REPO"]
	// The demo failure's text, as the dev banner prints it.
	d, err := demo.Ensure(ctx, filepath.Join(tmp, "demo-text"))
	if err != nil {
		return res, err
	}
	c, err := dialCodec(ctx, temporalAddr, 30*time.Second, ring)
	if err != nil {
		return res, err
	}
	api := &remoteAPI{base: apiURL, tokens: tokens, http: hc}

	// N remediations of the demo repository's gofmt failure, to AwaitingApproval.
	marker := "bench-restart-" + runID
	t1 := time.Now()
	body, _ := json.Marshal(map[string]string{
		"repo": demoRepo, "ref": d.Branch, "failure_summary": d.FailureSummary, "log_excerpt": d.LogExcerpt, "incident_id": marker,
	})
	ids, err := api.startMany(ctx, body, marker, cfg.N, 16)
	if err != nil {
		c.Close()
		return res, err
	}
	awaiting := incidentQuery(marker, fmt.Sprintf("%s = '%s'", workflows.SearchAttrPhase, workflows.PhaseAwaitingApproval))
	if _, err := waitCountOn(ctx, c, devNamespace, awaiting, int64(cfg.N), cfg.PrepTimeout); err != nil {
		c.Close()
		return res, fmt.Errorf("not all AwaitingApproval: %w", err)
	}
	res.Prep = round(time.Since(t1).Seconds(), 2)
	votes := make([][]byte, len(ids))
	for i, id := range ids {
		var st apiStatus
		code, err := api.call(ctx, http.MethodGet, "/api/remediations/"+id, "dev", nil, &st)
		if err != nil || code != http.StatusOK || st.Fix == nil || st.DecisionID == "" {
			c.Close()
			return res, fmt.Errorf("status of %s: %d %v %+v", id, code, err, st)
		}
		votes[i], _ = json.Marshal(map[string]string{"decision_id": st.DecisionID, "diff_digest": st.Fix.Digest, "base_sha": st.Fix.BaseSHA, "comment": "benchmark"})
	}
	for _, id := range ids {
		if err := waitQuiet(ctx, c, id, 30*time.Second); err != nil {
			c.Close()
			return res, err
		}
	}
	c.Close()
	logf("restart: %d remediations AwaitingApproval in remediator dev (%.1f s); kill -9", cfg.N, res.Prep)

	// kill -9 of the whole process group, then the same command again.
	p.kill()
	t0 = time.Now()
	if p, err = startChild(bin, []string{"dev"}, env, res.Log); err != nil {
		return res, err
	}
	ready, err := waitReadyz(ctx, hc, apiURL, p, 2*time.Minute)
	if err != nil {
		return res, fmt.Errorf("restart: %w\n%s", err, logTail(res.Log, 40))
	}
	code, err := api.call(ctx, http.MethodPost, "/api/remediations/"+ids[0]+"/approve", "alice", votes[0], nil)
	approved := time.Now()
	if err != nil || code != http.StatusOK {
		return res, fmt.Errorf("approving %s after the restart: %d %v", ids[0], code, err)
	}
	res.Ready = round(ready.Sub(t0).Seconds(), 3)
	res.FirstApproved = round(approved.Sub(t0).Seconds(), 3)
	if at, ok := lastLogTime(res.Log, "msg=\"Started Worker\""); ok {
		res.WorkerUp = round(at.Sub(t0).Seconds(), 3)
	}
	if c, err = dialCodec(ctx, temporalAddr, 30*time.Second, ring); err != nil {
		return res, err
	}
	defer c.Close()
	closed, err := completedAt(ctx, c, ids[0])
	if err != nil {
		return res, err
	}
	res.First = round(closed.Sub(t0).Seconds(), 3)
	res.FirstTimeline = timeline(ctx, c, ids[0], t0)

	// The rest, approved concurrently.
	if err := forEach(ctx, len(ids)-1, cfg.Callers, func(i int) error {
		code, err := api.call(ctx, http.MethodPost, "/api/remediations/"+ids[i+1]+"/approve", "alice", votes[i+1], nil)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("approve %s: %d", ids[i+1], code)
		}
		return err
	}); err != nil {
		return res, err
	}
	last, n, err := lastClose(ctx, c, incidentQuery(marker, ""), cfg.N, cfg.Timeout)
	res.Completed = n
	if err != nil {
		return res, err
	}
	res.All = round(last.Sub(t0).Seconds(), 3)
	completed, _ := countOn(ctx, c, devNamespace, incidentQuery(marker, fmt.Sprintf("%s = '%s'", workflows.SearchAttrPhase, workflows.PhaseCompleted)))
	res.Completed = int(completed)

	sc.add(figure{Name: "remediator dev: cold start → /readyz 200 (context)", Value: res.ColdReady, Unit: "s"})
	sc.add(figure{Name: fmt.Sprintf("%d remediations to AwaitingApproval (prep, context)", cfg.N), Value: res.Prep, Unit: "s"})
	sc.add(figure{Name: "restart → worker started, per its log (context)", Value: res.WorkerUp, Unit: "s"})
	sc.add(figure{Name: "restart → /readyz 200", Value: res.Ready, Unit: "s"})
	sc.add(figure{Name: "restart → first approved remediation Completed", Value: res.First, Unit: "s",
		Goal: fmt.Sprintf("≤ %.1f s", restartGoalFromStart), Met: met(res.First <= restartGoalFromStart)})
	fromReady := round(res.First-res.Ready, 3)
	sc.add(figure{Name: "ready → first approved remediation Completed", Value: fromReady, Unit: "s",
		Goal: fmt.Sprintf("≤ %.1f s", restartGoalFromReady), Met: met(fromReady <= restartGoalFromReady)})
	sc.add(figure{Name: fmt.Sprintf("restart → all %d approved and Completed", cfg.N), Value: res.All, Unit: "s"})
	sc.add(figure{Name: "of them Completed", Value: float64(res.Completed), Unit: fmt.Sprintf("of %d", cfg.N)})
	sc.note("remediator dev is the binary `go build -o <tmp> .` builds (built in %.0f s, not counted), run as `remediator dev` with its own data directory and ports (frontend %d, UI %d, API %d) and REMEDIATOR_RATE_LIMITS=%s; kill -9 of its process group, then the same command on the same data directory",
		sc.Details["build_seconds"], frontend, ui, apiPort, benchRateLimits)
	sc.note("times from the restarted process's start: /readyz polled every 5 ms; the first remediation approved (REST, alice) as soon as /readyz answered 200 (answer %.3f s after the restart); completion = its close time in Temporal; the other %d approved concurrently by %d callers after the first completed, 'all' = the last close time",
		res.FirstApproved, cfg.N-1, cfg.Callers)
	return res, nil
}

// restartTemporalCLI is the raw side: `temporal server start-dev` with N
// no-op approval workflows waiting for a signal, kill -9, restart.
func restartTemporalCLI(ctx context.Context, cfg restartConfig, cli, tmp string) (restartResult, error) {
	var res restartResult
	if out, err := exec.CommandContext(ctx, cli, "--version").Output(); err == nil {
		res.Version = strings.TrimSpace(string(out))
	}
	ports, err := freePorts(4)
	if err != nil {
		return res, err
	}
	hostPort := "127.0.0.1:" + strconv.Itoa(ports[0])
	args := []string{"server", "start-dev", "--db-filename", filepath.Join(tmp, "temporal-cli.db"), "--ip", "127.0.0.1",
		"--port", strconv.Itoa(ports[0]), "--ui-port", strconv.Itoa(ports[1]), "--http-port", strconv.Itoa(ports[2]),
		"--metrics-port", strconv.Itoa(ports[3])}
	env := os.Environ()
	res.Log = filepath.Join(tmp, "temporal-cli.log")
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	workerEnv := append(os.Environ(), rawWorkerEnv+"="+hostPort)
	workerLog := filepath.Join(tmp, "raw-worker.log")

	t0 := time.Now()
	srv, err := startChild(cli, args, env, res.Log)
	if err != nil {
		return res, err
	}
	defer func() { srv.stop() }()
	w, err := startChild(self, nil, workerEnv, workerLog)
	if err != nil {
		return res, err
	}
	defer func() { w.stop() }()
	c, _, err := waitTemporalReady(ctx, hostPort, srv, 2*time.Minute)
	if err != nil {
		return res, fmt.Errorf("first start: %w\n%s", err, logTail(res.Log, 40))
	}
	res.ColdReady = round(time.Since(t0).Seconds(), 3)
	t1 := time.Now()
	ids := make([]string, cfg.N)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-restart-raw-%d", i)
	}
	if err := forEach(ctx, cfg.N, 16, func(i int) error {
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: ids[i], TaskQueue: noopTaskQueue}, noopWorkflowName)
		return err
	}); err != nil {
		c.Close()
		return res, err
	}
	for _, id := range ids {
		if err := waitIdleOn(ctx, c, id, time.Minute); err != nil {
			c.Close()
			return res, fmt.Errorf("%w\nworker log:\n%s", err, logTail(workerLog, 20))
		}
	}
	res.Prep = round(time.Since(t1).Seconds(), 2)
	c.Close()
	logf("restart: %d no-op workflows waiting in temporal server start-dev (%.1f s); kill -9", cfg.N, res.Prep)

	srv.kill()
	w.kill()
	t0 = time.Now()
	if srv, err = startChild(cli, args, env, res.Log); err != nil {
		return res, err
	}
	if w, err = startChild(self, nil, workerEnv, workerLog); err != nil {
		return res, err
	}
	c, ready, err := waitTemporalReady(ctx, hostPort, srv, 2*time.Minute)
	if err != nil {
		return res, fmt.Errorf("restart: %w\n%s", err, logTail(res.Log, 40))
	}
	defer c.Close()
	if err := c.SignalWorkflow(ctx, ids[0], "", noopSignal, nil); err != nil {
		return res, err
	}
	res.FirstApproved = round(time.Since(t0).Seconds(), 3)
	res.Ready = round(ready.Sub(t0).Seconds(), 3)

	closed, err := completedAt(ctx, c, ids[0])
	if err != nil {
		return res, err
	}
	res.First = round(closed.Sub(t0).Seconds(), 3)
	res.FirstTimeline = timeline(ctx, c, ids[0], t0)
	if err := forEach(ctx, len(ids)-1, cfg.Callers, func(i int) error {
		return c.SignalWorkflow(ctx, ids[i+1], "", noopSignal, nil)
	}); err != nil {
		return res, err
	}
	last, n, err := lastClose(ctx, c, fmt.Sprintf("WorkflowType = '%s'", noopWorkflowName), cfg.N, cfg.Timeout)
	res.Completed = n
	if err != nil {
		return res, err
	}
	res.All = round(last.Sub(t0).Seconds(), 3)
	if at, ok := lastLogTime(workerLog, "bench raw worker: polling"); ok {
		res.WorkerUp = round(at.Sub(t0).Seconds(), 3)
	}
	return res, nil
}

// rawWorkerMain is this program as the raw side's worker process: it dials
// until the server answers, then polls until it is killed.
func rawWorkerMain(hostPort string) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := context.Background()
	c, err := dialRetry(ctx, hostPort, 2*time.Minute)
	if err != nil {
		logger.Error("raw worker: dial", "error", err)
		os.Exit(1)
	}
	w := newNoopWorker(c)
	if err := w.Start(); err != nil {
		logger.Error("raw worker: start", "error", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "bench raw worker: polling %s since %s\n", hostPort, time.Now().Format(time.RFC3339Nano))
	<-sdkworker.InterruptCh()
	w.Stop()
}

// --- child processes ---

type child struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// startChild starts name in a process group of its own, output appended
// to logPath.
func startChild(name string, args, env []string, logPath string) (*child, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "\n===== bench: starting %s %s at %s\n", name, strings.Join(args, " "), time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	c := &child{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		close(c.exited)
	}()
	return c, nil
}

func (c *child) done() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// kill is kill -9 of the child's process group.
func (c *child) kill() {
	if c == nil || c.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.exited
}

// stop asks the process group to end (SIGTERM), then kills it.
func (c *child) stop() {
	if c == nil || c.cmd.Process == nil || c.done() {
		return
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(20 * time.Second):
	}
	c.kill()
}

// waitReadyz polls /readyz every 5 ms until it answers 200; it returns
// when the answer arrived.
func waitReadyz(ctx context.Context, hc *http.Client, base string, p *child, timeout time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	probe := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	last := "no answer"
	for {
		if p.done() {
			return time.Time{}, errors.New("the process exited")
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if res, err := probe.Do(req); err == nil {
			b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return time.Now(), nil
			}
			last = fmt.Sprintf("%d %s", res.StatusCode, truncate(string(b), 300))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("/readyz not 200 within %v (last: %s)", timeout, last)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitTemporalReady dials until the server answers its health check and
// DescribeNamespace for default; it returns the client and when it was ready.
func waitTemporalReady(ctx context.Context, hostPort string, p *child, timeout time.Duration) (client.Client, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if p.done() {
			return nil, time.Time{}, errors.New("the process exited")
		}
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := client.DialContext(actx, client.Options{HostPort: hostPort, Logger: quietSDKLogger()})
		if err == nil {
			if _, err = c.CheckHealth(actx, &client.CheckHealthRequest{}); err == nil {
				_, err = c.WorkflowService().DescribeNamespace(actx, &workflowservice.DescribeNamespaceRequest{Namespace: "default"})
			}
			if err == nil {
				acancel()
				return c, time.Now(), nil
			}
			c.Close()
		}
		acancel()
		last = err
		select {
		case <-ctx.Done():
			return nil, time.Time{}, fmt.Errorf("not ready within %v: %v", timeout, last)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func quietSDKLogger() sdklog.Logger {
	return logging.SDK(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func dialRetry(ctx context.Context, hostPort string, timeout time.Duration) (client.Client, error) {
	return dialCodec(ctx, hostPort, timeout, nil)
}

// dialCodec is dialRetry with the payload codec of ring (nil: none).
func dialCodec(ctx context.Context, hostPort string, timeout time.Duration, ring *codec.KeyRing) (client.Client, error) {
	opts := client.Options{HostPort: hostPort, Logger: quietSDKLogger()}
	if ring != nil {
		opts.DataConverter = codec.DataConverter(ring)
		opts.FailureConverter = codec.FailureConverter(opts.DataConverter)
	}
	deadline := time.Now().Add(timeout)
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := client.DialContext(actx, opts)
		cancel()
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("dialling %s: %w", hostPort, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// --- Temporal helpers on any client ---

// devNamespace is the namespace of the `remediator dev` (and start-dev)
// child processes.
const devNamespace = "default"

// countOn counts query's executions in namespace ns.
func countOn(ctx context.Context, c client.Client, ns, query string) (int64, error) {
	resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: ns, Query: query})
	if err != nil {
		return 0, err
	}
	return resp.GetCount(), nil
}

// waitCountOn polls visibility until query counts want (or more), the
// timeout passes or ctx ends; it returns the last count.
func waitCountOn(ctx context.Context, c client.Client, ns, query string, want int64, timeout time.Duration) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last int64
	for {
		if n, err := countOn(ctx, c, ns, query); err == nil {
			last = n
			if n >= want {
				return n, nil
			}
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("%d of %d after %v (%s)", last, want, timeout, query)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitQuiet waits until a workflow has nothing pending: no workflow task,
// no activity (it is blocked at its approval gate).
func waitQuiet(ctx context.Context, c client.Client, id string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		d, err := c.DescribeWorkflowExecution(ctx, id, "")
		if err == nil && d.GetPendingWorkflowTask() == nil && len(d.GetPendingActivities()) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s still has pending work after %v", id, timeout)
}

// waitIdleOn is waitQuiet for the no-op workflow, which must also have run
// its first workflow task.
func waitIdleOn(ctx context.Context, c client.Client, id string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		d, err := c.DescribeWorkflowExecution(ctx, id, "")
		if err == nil && d.GetPendingWorkflowTask() == nil && d.GetWorkflowExecutionInfo().GetHistoryLength() >= 4 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not reach its wait within %v", id, timeout)
}

// completedAt waits for a workflow to close and returns its close time; it
// fails unless it completed.
func completedAt(ctx context.Context, c client.Client, id string) (time.Time, error) {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := c.GetWorkflow(wctx, id, "").Get(wctx, nil); err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", id, err)
	}
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return time.Time{}, err
	}
	info := d.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		return time.Time{}, fmt.Errorf("%s closed %s", id, info.GetStatus())
	}
	return info.GetCloseTime().AsTime(), nil
}

// lastClose waits until visibility counts n completed executions of query
// and returns the latest close time among them.
func lastClose(ctx context.Context, c client.Client, query string, n int, timeout time.Duration) (time.Time, int, error) {
	q := query
	if q != "" {
		q += " AND "
	}
	q += "ExecutionStatus = 'Completed'"
	got, err := waitCountOn(ctx, c, devNamespace, q, int64(n), timeout)
	if err != nil {
		return time.Time{}, int(got), err
	}
	var last time.Time
	var token []byte
	count := 0
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default", Query: q, PageSize: 1000, NextPageToken: token})
		if err != nil {
			return last, count, err
		}
		for _, e := range resp.GetExecutions() {
			count++
			if t := e.GetCloseTime().AsTime(); t.After(last) {
				last = t
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	return last, count, nil
}

// timeline lists a workflow's events from t0 on, as seconds since t0.
func timeline(ctx context.Context, c client.Client, id string, t0 time.Time) []string {
	it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out []string
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return append(out, "error: "+err.Error())
		}
		if t := e.GetEventTime().AsTime(); !t.Before(t0) {
			name := strings.TrimPrefix(e.GetEventType().String(), "EVENT_TYPE_")
			if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
				name += " " + a.GetActivityType().GetName()
			}
			out = append(out, fmt.Sprintf("%.3f %s", t.Sub(t0).Seconds(), name))
		}
	}
	return out
}

// forEach runs f(0..n-1) over callers goroutines; the first error wins.
func forEach(ctx context.Context, n, callers int, f func(i int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := make(chan int)
	for range max(1, callers) {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// --- the child's API ---

type remoteAPI struct {
	base   string
	tokens map[string]string
	http   *http.Client
}

func (a *remoteAPI) call(ctx context.Context, method, path, who string, body []byte, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+a.tokens[who])
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := a.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, err
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return res.StatusCode, fmt.Errorf("decoding %s %s (%d): %w", method, path, res.StatusCode, err)
		}
	}
	return res.StatusCode, nil
}

// startMany starts n remediations with body and distinct Idempotency-Keys.
func (a *remoteAPI) startMany(ctx context.Context, body []byte, marker string, n, callers int) ([]string, error) {
	ids := make([]string, n)
	err := forEach(ctx, n, callers, func(i int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/api/remediations", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+a.tokens["dev"])
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", fmt.Sprintf("%s-%d", marker, i))
		res, err := a.http.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var out struct {
			ID string `json:"id"`
		}
		if res.StatusCode != http.StatusAccepted || json.Unmarshal(b, &out) != nil || out.ID == "" {
			return fmt.Errorf("POST /api/remediations: %d %s", res.StatusCode, truncate(string(b), 200))
		}
		ids[i] = out.ID
		return nil
	})
	return ids, err
}

// --- files and ports ---

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run the benchmark from the repository")
		}
		dir = parent
	}
}

func readDevEnv(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
		if k, v, ok := strings.Cut(line, "="); ok {
			vars[k] = v
		}
	}
	for _, k := range []string{"REMEDIATOR_URL", "DEV_TOKEN", "ALICE_TOKEN", "DEMO_REPO", "TEMPORAL_ADDRESS"} {
		if vars[k] == "" {
			return nil, fmt.Errorf("%s has no %s", path, k)
		}
	}
	return vars, nil
}

// lastLogTime is the time on the last line of the log holding marker:
// slog's time=… or the raw worker's "since …".
func lastLogTime(path, marker string) (time.Time, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, false
	}
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if !strings.Contains(l, marker) {
			continue
		}
		var ts string
		if v, ok := strings.CutPrefix(l, "time="); ok {
			ts, _, _ = strings.Cut(v, " ")
		} else if _, v, ok := strings.Cut(l, " since "); ok {
			ts = strings.TrimSpace(v)
		}
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			return t, true
		}
		return time.Time{}, false
	}
	return time.Time{}, false
}

func logTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// removeAll also removes what a recipe sandbox left read-only.
func removeAll(dir string) {
	if os.RemoveAll(dir) == nil {
		return
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}
