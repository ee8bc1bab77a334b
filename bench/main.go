//go:build !production

// Command bench measures remediator against raw Temporal in the same run, on
// the same machine: the service is started exactly as `make run` starts it
// (config.Load in dev mode, app.StartDev: embedded Temporal on SQLite, the
// worker and the API), served over a real 127.0.0.1 http.Server, and every
// figure is set next to what the raw Temporal SDK does against the same
// embedded server. It prints a table and writes the same figures as JSON
// under bench/results/<timestamp>.json.
//
//	go run ./bench            # full run (a few minutes on 2 cores)
//	go run ./bench -quick     # everything small (~1–2 minutes)
//	go run ./bench -only starts,burst -burst-n 1000
//	go run ./bench -only webhook,restart
//
// Everything targets 127.0.0.1, is bounded in count and time, and stops by
// itself; the data directory is a temporary one, removed at the end. The
// restart scenario runs `remediator dev` (and `temporal server start-dev`,
// when bin/temporal exists) as child processes with their own temporary
// data directories and ports.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"remediator/internal/app"
	"remediator/workflows"
)

// scenarioNames in the order they run. The webhook scenario runs last: the
// thousands of remediations its deliveries start take minutes to end, and
// nothing should run beside them (the restart scenario's child processes
// share the machine with the in-process stack).
var scenarioNames = []string{"starts", "approval", "history", "burst", "restart", "webhook"}

// stackScenarios run against the in-process stack; the restart scenario
// runs its own processes.
var stackScenarios = []string{"starts", "approval", "history", "burst", "webhook"}

type options struct {
	quick   bool
	only    string
	out     string
	keep    bool
	verbose bool
	timeout time.Duration

	starts   startsConfig
	approval approvalConfig
	burst    burstConfig
	webhook  webhookConfig
	restart  restartConfig
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.BoolVar(&o.quick, "quick", false, "run every scenario small (~1–2 minutes); flags set explicitly still win")
	fs.StringVar(&o.only, "only", strings.Join(scenarioNames, ","), "comma-separated scenarios to run: "+strings.Join(scenarioNames, ", "))
	fs.StringVar(&o.out, "out", "bench/results", "directory of the JSON results")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary data directory (SQLite file, demo repository, service log)")
	fs.BoolVar(&o.verbose, "v", false, "service logs to stderr instead of a file in the data directory")
	fs.DurationVar(&o.timeout, "timeout", 9*time.Minute, "bound of the whole run; scenarios still running then are cut short")

	fs.IntVar(&o.starts.PerSide, "starts-n", 1000, "scenario 1: measured starts per side (REST and raw)")
	fs.IntVar(&o.starts.Batch, "starts-batch", 100, "scenario 1: starts per interleaved batch")
	fs.IntVar(&o.starts.Callers, "starts-callers", 16, "scenario 1: concurrent callers")
	fs.IntVar(&o.starts.Warmup, "starts-warmup", 32, "scenario 1: uncounted warm-up starts per side")
	fs.IntVar(&o.starts.Serial, "starts-serial", 50, "scenario 1: extra starts per side from one caller (context: cost without queueing)")
	fs.DurationVar(&o.starts.Drain, "starts-drain", 3*time.Minute, "scenario 1: longest wait for the started remediations to end")

	fs.IntVar(&o.approval.N, "approval-n", 30, "scenario 2: approvals measured (and as many raw signals and raw Updates)")
	fs.DurationVar(&o.approval.PrepTimeout, "approval-prep-timeout", 3*time.Minute, "scenario 2: longest wait for the remediations to reach AwaitingApproval")

	fs.IntVar(&o.burst.N, "burst-n", 200, "scenario 5 (burst): remediations in the burst (the issue's full size is 1000)")
	fs.IntVar(&o.burst.Callers, "burst-callers", 16, "scenario 5 (burst): concurrent callers sending the burst")
	fs.DurationVar(&o.burst.Timeout, "burst-timeout", 4*time.Minute, "scenario 5 (burst): longest wait for all to reach AwaitingApproval")

	fs.IntVar(&o.webhook.Rate, "webhook-rate", 200, "scenario 3 (webhook): signed workflow_run deliveries per second (open loop)")
	fs.DurationVar(&o.webhook.Duration, "webhook-duration", 30*time.Second, "scenario 3 (webhook): how long deliveries are sent")
	fs.IntVar(&o.webhook.DupEvery, "webhook-redeliver-every", 20, "scenario 3 (webhook): every n-th send redelivers the delivery of one second earlier (0: none)")
	fs.IntVar(&o.webhook.MaxInFlight, "webhook-max-in-flight", 4096, "scenario 3 (webhook): most deliveries awaiting an answer (a send finding it reached is late)")
	fs.DurationVar(&o.webhook.Drain, "webhook-drain", time.Minute, "scenario 3 (webhook): longest wait for the started remediations to end (a context figure: the scenario runs last)")

	fs.IntVar(&o.restart.N, "restart-n", 200, "scenario 6 (restart): remediations AwaitingApproval at the kill -9, and as many no-op workflows on the temporal server start-dev side (the issue's full size is 500; preparing and approving them runs the real gofmt recipe and OpenPR, so 500 adds about 1.5 minutes: the default is scaled to keep `make bench` within its 9-minute timeout)")
	fs.IntVar(&o.restart.Callers, "restart-callers", 32, "scenario 6 (restart): concurrent approvals after the restart")
	fs.DurationVar(&o.restart.PrepTimeout, "restart-prep-timeout", 4*time.Minute, "scenario 6 (restart): longest wait for the remediations to reach AwaitingApproval before the kill")
	fs.DurationVar(&o.restart.Timeout, "restart-timeout", 2*time.Minute, "scenario 6 (restart): longest wait after the restart for all to complete")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		small := map[string]string{
			"starts-n": "192", "starts-batch": "48", "starts-warmup": "16", "starts-serial": "20", "starts-drain": "90s",
			"approval-n": "10", "approval-prep-timeout": "90s",
			"burst-n": "50", "burst-timeout": "90s", "timeout": "4m",
			"webhook-rate": "50", "webhook-duration": "5s", "webhook-drain": "30s",
			"restart-n": "50", "restart-prep-timeout": "90s",
		}
		for name, v := range small {
			if !set[name] {
				if err := fs.Set(name, v); err != nil {
					return o, err
				}
			}
		}
	}
	for _, n := range strings.Split(o.only, ",") {
		if !slices.Contains(scenarioNames, strings.TrimSpace(n)) {
			return o, fmt.Errorf("-only: unknown scenario %q (have %s)", n, strings.Join(scenarioNames, ", "))
		}
	}
	if o.starts.PerSide < 1 || o.starts.Batch < 1 || o.starts.Callers < 1 || o.starts.Warmup < 0 || o.starts.Serial < 0 ||
		o.approval.N < 1 || o.burst.N < 1 || o.burst.Callers < 1 ||
		o.webhook.Rate < 1 || o.webhook.Duration <= 0 || o.webhook.DupEvery < 0 || o.webhook.MaxInFlight < 1 ||
		o.restart.N < 1 || o.restart.Callers < 1 {
		return o, fmt.Errorf("counts must be positive")
	}
	// Bounded load: nothing here is meant to be a stress test.
	if o.starts.PerSide > 20000 || o.burst.N > 5000 || o.approval.N > 1000 || o.timeout > time.Hour ||
		o.webhook.Rate > 2000 || o.webhook.Duration > 5*time.Minute || o.webhook.MaxInFlight > 10000 || o.restart.N > 5000 {
		return o, fmt.Errorf("refusing sizes above starts-n 20000, burst-n 5000, approval-n 1000, webhook-rate 2000, webhook-duration 5m, webhook-max-in-flight 10000, restart-n 5000, timeout 1h")
	}
	return o, nil
}

func (o options) runs(name string) bool {
	for _, n := range strings.Split(o.only, ",") {
		if strings.TrimSpace(n) == name {
			return true
		}
	}
	return false
}

func main() {
	if hp := os.Getenv(rawWorkerEnv); hp != "" {
		rawWorkerMain(hp) // the restart scenario's raw worker process
		return
	}
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run(o options) error {
	began := time.Now()
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	dataDir, err := os.MkdirTemp("", "remediator-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		defer logf("data directory kept: %s", dataDir)
	} else {
		defer os.RemoveAll(dataDir)
	}
	rep := &report{
		Timestamp: began.UTC(), Machine: describeMachine(), Source: describeSource(),
		Flags: map[string]any{
			"quick": o.quick, "only": o.only, "timeout": o.timeout.String(),
			"starts": o.starts, "starts_drain": o.starts.Drain.String(),
			"approval_n": o.approval.N, "burst_n": o.burst.N, "burst_callers": o.burst.Callers,
			"burst_timeout": o.burst.Timeout.String(),
			"webhook_rate":  o.webhook.Rate, "webhook_duration": o.webhook.Duration.String(),
			"webhook_redeliver_every": o.webhook.DupEvery, "webhook_max_in_flight": o.webhook.MaxInFlight,
			"restart_n": o.restart.N, "restart_callers": o.restart.Callers,
		},
	}
	runID := time.Now().UTC().Format("150405") + "-" + randomHex(3)
	rep.Notes = append(rep.Notes,
		"FAKES exist only in this benchmark program: the workflow "+noopWorkflowName+" with the no-op activity "+noopActivityName+
			" on task queue "+noopTaskQueue+" (raw side of scenarios 2 and restart), registered by this program's own workers"+
			" and, for the webhook scenario only, a fake GitHub API (internal/github/githubtest) the service is pointed at."+
			" The service runs unchanged: real local git provider, real recipes, real ledger.",
		"figures are ratios and timings on this machine, in one run; compare runs only on the same machine",
	)

	var s *stack
	if slices.ContainsFunc(stackScenarios, o.runs) {
		var gh *fakeGitHub
		extra := map[string]string{}
		if o.runs("webhook") {
			gh = startFakeGitHub(runID)
			defer gh.stop()
			extra = gh.env()
		}
		logf("starting the service as `make run` does (data in %s)", dataDir)
		s, err = startStack(ctx, stackOptions{dataDir: dataDir, verbose: o.verbose, extraEnv: extra})
		if err != nil {
			return fmt.Errorf("starting the stack: %w", err)
		}
		defer s.stop()
		s.github = gh
		logf("up in %.1f s: API %s, Temporal %s, service log %s", time.Since(began).Seconds(), s.baseURL, s.dev.Server.FrontendAddress(), s.logPath)
		rep.Service = map[string]any{
			"version": app.Version(), "mode": string(s.cfg.Mode), "api": s.baseURL, "temporal": s.dev.Server.FrontendAddress(),
			"task_queue": workflows.TaskQueue, "rate_limits": benchRateLimits, "recipe_sandbox": string(s.cfg.RecipeSandbox),
			"log_level": s.cfg.LogLevel, "log": s.logPath, "startup_seconds": round(time.Since(began).Seconds(), 2),
			"demo_repo": s.repo, "data_dir_kept": o.keep,
		}
		cfgNote := "service configured as `make run`: config.Load(ModeDev) from the environment with REMEDIATOR_DATA_DIR=<temp dir>, " +
			"REMEDIATOR_HTTP_ADDR=<free 127.0.0.1 port>, REMEDIATOR_RATE_LIMITS=" + benchRateLimits + "; embedded server (Web UI included) on devserver.FreePorts"
		if gh != nil {
			cfgNote += "; for the webhook scenario also GITHUB_API_URL=<the fake>, GITHUB_TOKEN=<fake token>, GITHUB_WEBHOOK_SECRET=<bench secret>"
		}
		rep.Notes = append(rep.Notes, cfgNote)
		for _, l := range s.sandboxLines() {
			rep.Notes = append(rep.Notes, "service log: "+l)
		}
	}

	timed := func(name string, f func() *scenario) {
		if !o.runs(name) {
			return
		}
		if ctx.Err() != nil {
			rep.Scenarios = append(rep.Scenarios, &scenario{Name: name, Title: name, Error: "not run: " + ctx.Err().Error()})
			return
		}
		logf("scenario %s …", name)
		t0 := time.Now()
		sc := f()
		sc.Seconds = round(time.Since(t0).Seconds(), 2)
		if ctx.Err() != nil && sc.Error == "" {
			sc.Error = "cut short: " + ctx.Err().Error()
		}
		logf("scenario %s done in %.1f s", name, sc.Seconds)
		rep.Scenarios = append(rep.Scenarios, sc)
	}
	timed("starts", func() *scenario { return runStarts(ctx, s, o.starts, runID) })
	var approved approvalResult
	timed("approval", func() *scenario {
		sc, res := runApproval(ctx, s, o.approval, runID)
		approved = res
		return sc
	})
	timed("history", func() *scenario { return runHistory(ctx, s, approved, runID) })
	timed("burst", func() *scenario { return runBurst(ctx, s, o.burst, runID) })
	o.restart.Keep = o.keep
	timed("restart", func() *scenario { return runRestart(ctx, o.restart, runID) })
	timed("webhook", func() *scenario { return runWebhook(ctx, s, s.github, o.webhook, runID) })

	rep.Seconds = round(time.Since(began).Seconds(), 1)
	rep.printTable(os.Stdout)
	path, err := rep.writeJSON(o.out)
	if err != nil {
		return fmt.Errorf("writing the results: %w", err)
	}
	fmt.Printf("\nresults: %s (total %.0f s)\n", path, rep.Seconds)
	var failed []string
	for _, sc := range rep.Scenarios {
		if sc.Error != "" {
			failed = append(failed, sc.Name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("scenarios with errors: %s", strings.Join(failed, ", "))
	}
	return nil
}
