//go:build !production

package devserver

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// testLogger shows server warnings on stderr (not t.Log: server goroutines may
// still log after the test returned).
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	begin := time.Now()
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("Start took %v", time.Since(begin).Round(time.Millisecond))
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

func dial(t *testing.T, s *Server) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{
		HostPort:  s.FrontendAddress(),
		Namespace: s.Namespace(),
		Logger:    sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	})
	if err != nil {
		t.Fatalf("dial %s: %v", s.FrontendAddress(), err)
	}
	t.Cleanup(c.Close)
	return c
}

func customSearchAttributes(t *testing.T, c client.Client, ns string) map[string]enumspb.IndexedValueType {
	t.Helper()
	resp, err := c.OperatorService().ListSearchAttributes(context.Background(),
		&operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		t.Fatalf("ListSearchAttributes: %v", err)
	}
	return resp.GetCustomAttributes()
}

func httpGet(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200", url, resp.StatusCode)
	}
}

func TestStartConfiguresNamespaceSearchAttributesAndUI(t *testing.T) {
	ports, err := FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data") // does not exist yet: Start creates it
	s := startServer(t, Config{
		DataDir:          dir,
		Ports:            ports,
		SearchAttributes: map[string]enumspb.IndexedValueType{"RemediationPhase": enumspb.INDEXED_VALUE_TYPE_KEYWORD},
		Logger:           testLogger(),
	})
	if s.Namespace() != "default" {
		t.Errorf("Namespace() = %q, want default", s.Namespace())
	}
	c := dial(t, s)

	ns, err := c.WorkflowService().DescribeNamespace(context.Background(),
		&workflowservice.DescribeNamespaceRequest{Namespace: "default"})
	if err != nil {
		t.Fatalf("DescribeNamespace: %v", err)
	}
	if got := ns.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration(); got < 7*24*time.Hour {
		t.Errorf("retention = %v, want >= 7 days", got)
	}

	if got, ok := customSearchAttributes(t, c, "default")["RemediationPhase"]; !ok || got != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
		t.Errorf("RemediationPhase = %v (present %v), want Keyword", got, ok)
	}

	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("data dir mode = %o, want 700", perm)
	}
	for _, name := range []string{"temporal.db", "temporal.db-wal"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	if s.UIAddress() == "" {
		t.Fatal("UIAddress() is empty")
	}
	httpGet(t, s.UIAddress()+"/")
	httpGet(t, s.UIAddress()+"/api/v1/namespaces/default/workflows")

	if err := s.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

const (
	testTaskQueue = "devserver-test"
	testSignal    = "proceed"
)

// waitForSignal is the workflow under test: it blocks until the signal arrives.
func waitForSignal(ctx workflow.Context) (string, error) {
	var v string
	workflow.GetSignalChannel(ctx, testSignal).Receive(ctx, &v)
	return "got " + v, nil
}

func startWorker(t *testing.T, c client.Client) worker.Worker {
	t.Helper()
	w := worker.New(c, testTaskQueue, worker.Options{})
	w.RegisterWorkflow(waitForSignal)
	if err := w.Start(); err != nil {
		t.Fatalf("worker start: %v", err)
	}
	return w
}

func TestRestartKeepsWorkflowsAndAddsSearchAttributes(t *testing.T) {
	ports, err := FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	ports.UI = 0 // not needed here; also covers the disabled-UI path
	cfg := Config{
		DataDir:          t.TempDir(),
		Ports:            ports,
		SearchAttributes: map[string]enumspb.IndexedValueType{"RemediationPhase": enumspb.INDEXED_VALUE_TYPE_KEYWORD},
		Logger:           testLogger(),
	}

	// First life: start a workflow and let the worker run its first task.
	s1 := startServer(t, cfg)
	if s1.UIAddress() != "" {
		t.Errorf("UIAddress() = %q with UI disabled", s1.UIAddress())
	}
	c1 := dial(t, s1)
	w1 := startWorker(t, c1)
	run, err := c1.ExecuteWorkflow(context.Background(),
		client.StartWorkflowOptions{ID: "wait-for-signal", TaskQueue: testTaskQueue}, waitForSignal)
	if err != nil {
		t.Fatalf("ExecuteWorkflow: %v", err)
	}
	waitFor(t, 30*time.Second, func() bool {
		d, err := c1.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
		// Started, task scheduled, task started, task completed.
		return err == nil && d.GetWorkflowExecutionInfo().GetHistoryLength() >= 4
	})
	w1.Stop()
	c1.Close()
	if err := s1.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	// Second life: same file and ports, one more search attribute.
	cfg.SearchAttributes = map[string]enumspb.IndexedValueType{
		"RemediationPhase": enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"RemediationRepo":  enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	}
	restart := time.Now()
	s2 := startServer(t, cfg)
	c2 := dial(t, s2)
	sas := customSearchAttributes(t, c2, s2.Namespace())
	for _, name := range []string{"RemediationPhase", "RemediationRepo"} {
		if sas[name] != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
			t.Errorf("search attribute %s = %v, want Keyword (all: %v)", name, sas[name], sas)
		}
	}
	// The new attribute is usable in a visibility query right away.
	if _, err := c2.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{
		Namespace: s2.Namespace(), Query: "RemediationRepo = 'x'",
	}); err != nil {
		t.Errorf("query on RemediationRepo: %v", err)
	}

	w2 := startWorker(t, c2)
	defer w2.Stop()
	if err := c2.SignalWorkflow(context.Background(), run.GetID(), "", testSignal, "go"); err != nil {
		t.Fatalf("SignalWorkflow: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var result string
	if err := c2.GetWorkflow(ctx, run.GetID(), run.GetRunID()).Get(ctx, &result); err != nil {
		t.Fatalf("workflow result after restart: %v", err)
	}
	if result != "got go" {
		t.Errorf("result = %q, want %q", result, "got go")
	}
	t.Logf("restart to workflow completion took %v", time.Since(restart).Round(time.Millisecond))
}

// crashChildEnv carries the child's Config (as JSON) in TestCrashRestart.
const crashChildEnv = "DEVSERVER_CRASH_CHILD"

// TestCrashChild is not a test on its own: TestCrashRestart runs the test
// binary again with only this test selected, as a server process to kill -9.
func TestCrashChild(t *testing.T) {
	raw := os.Getenv(crashChildEnv)
	if raw == "" {
		t.Skip("helper process for TestCrashRestart")
	}
	var cfg Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, cfg)
	c := dial(t, s)
	startWorker(t, c)
	for i := range crashWorkflows {
		run, err := c.ExecuteWorkflow(context.Background(),
			client.StartWorkflowOptions{ID: fmt.Sprint("crash-", i), TaskQueue: testTaskQueue}, waitForSignal)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, func() bool {
			d, err := c.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
			return err == nil && d.GetWorkflowExecutionInfo().GetHistoryLength() >= 4
		})
	}
	fmt.Println("READY")
	// Wait to be killed; exit if the parent goes away (stdin closes).
	_, _ = io.Copy(io.Discard, os.Stdin)
}

const crashWorkflows = 5

// TestCrashRestart kills a server process with SIGKILL and restarts on the same
// file and ports: the waiting workflows must complete within seconds (random
// ports made the first progress take ~51 s).
func TestCrashRestart(t *testing.T) {
	ports, err := FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	ports.UI = 0
	cfg := Config{DataDir: t.TempDir(), Ports: ports}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0], "-test.run", "^TestCrashChild$", "-test.count=1")
	child.Env = append(os.Environ(), crashChildEnv+"="+string(raw))
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = child.Process.Kill()
		_ = child.Wait()
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "READY" {
				ready <- true
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("child server exited before READY")
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("child server not READY within 2 minutes")
	}
	if err := child.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = child.Wait()

	killed := time.Now()
	cfg.Logger = testLogger()
	s := startServer(t, cfg)
	c := dial(t, s)
	w := startWorker(t, c)
	defer w.Stop()
	for i := range crashWorkflows {
		if err := c.SignalWorkflow(context.Background(), fmt.Sprint("crash-", i), "", testSignal, "go"); err != nil {
			t.Fatalf("signal crash-%d: %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range crashWorkflows {
		var result string
		if err := c.GetWorkflow(ctx, fmt.Sprint("crash-", i), "").Get(ctx, &result); err != nil {
			t.Fatalf("crash-%d after restart: %v", i, err)
		}
	}
	elapsed := time.Since(killed)
	t.Logf("kill -9 to all %d workflows completed: %v", crashWorkflows, elapsed.Round(time.Millisecond))
	if elapsed > 15*time.Second {
		t.Errorf("progress after crash took %v, want seconds (stale membership?)", elapsed)
	}
}

func TestConfigValidation(t *testing.T) {
	ports := DefaultPorts()
	dup := ports
	dup.History = dup.Frontend
	for name, cfg := range map[string]Config{
		"no data dir":    {},
		"short retain":   {DataDir: t.TempDir(), Retention: time.Hour},
		"host not an IP": {DataDir: t.TempDir(), Host: "localhost"},
		"wildcard host":  {DataDir: t.TempDir(), Host: "0.0.0.0"},
		"duplicate port": {DataDir: t.TempDir(), Ports: dup},
	} {
		if _, err := Start(context.Background(), cfg); err == nil {
			t.Errorf("%s: Start succeeded, want error", name)
		}
	}
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
