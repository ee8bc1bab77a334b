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
//
// Everything targets 127.0.0.1, is bounded in count and time, and stops by
// itself; the data directory is a temporary one, removed at the end.
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

var scenarioNames = []string{"starts", "approval", "history", "burst"}

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

	fs.IntVar(&o.burst.N, "burst-n", 200, "scenario 4: remediations in the burst (the issue's full size is 1000)")
	fs.IntVar(&o.burst.Callers, "burst-callers", 16, "scenario 4: concurrent callers sending the burst")
	fs.DurationVar(&o.burst.Timeout, "burst-timeout", 4*time.Minute, "scenario 4: longest wait for all to reach AwaitingApproval")
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
		o.approval.N < 1 || o.burst.N < 1 || o.burst.Callers < 1 {
		return o, fmt.Errorf("counts must be positive")
	}
	// Bounded load: nothing here is meant to be a stress test.
	if o.starts.PerSide > 20000 || o.burst.N > 5000 || o.approval.N > 1000 || o.timeout > time.Hour {
		return o, fmt.Errorf("refusing sizes above starts-n 20000, burst-n 5000, approval-n 1000, timeout 1h")
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
		},
	}
	logf("starting the service as `make run` does (data in %s)", dataDir)
	s, err := startStack(ctx, stackOptions{dataDir: dataDir, verbose: o.verbose})
	if err != nil {
		return fmt.Errorf("starting the stack: %w", err)
	}
	defer s.stop()
	logf("up in %.1f s: API %s, Temporal %s, service log %s", time.Since(began).Seconds(), s.baseURL, s.dev.Server.FrontendAddress(), s.logPath)
	rep.Service = map[string]any{
		"version": app.Version(), "mode": string(s.cfg.Mode), "api": s.baseURL, "temporal": s.dev.Server.FrontendAddress(),
		"task_queue": workflows.TaskQueue, "rate_limits": benchRateLimits, "recipe_sandbox": string(s.cfg.RecipeSandbox),
		"log_level": s.cfg.LogLevel, "log": s.logPath, "startup_seconds": round(time.Since(began).Seconds(), 2),
		"demo_repo": s.repo, "data_dir_kept": o.keep,
	}
	rep.Notes = append(rep.Notes,
		"FAKES: the only fake is the benchmark-only workflow "+noopWorkflowName+" with the no-op activity "+noopActivityName+
			" on task queue "+noopTaskQueue+" (raw side of scenario 2), registered by this program's own worker; it exists only in the benchmark. "+
			"The service runs unchanged: real local git provider, real recipes, real ledger.",
		"service configured as `make run`: config.Load(ModeDev) from the environment with REMEDIATOR_DATA_DIR=<temp dir>, "+
			"REMEDIATOR_HTTP_ADDR=<free 127.0.0.1 port>, REMEDIATOR_RATE_LIMITS="+benchRateLimits+"; embedded server (Web UI included) on devserver.FreePorts",
		"figures are ratios and timings on this machine, in one run; compare runs only on the same machine",
	)
	for _, l := range s.sandboxLines() {
		rep.Notes = append(rep.Notes, "service log: "+l)
	}
	runID := time.Now().UTC().Format("150405") + "-" + randomHex(3)

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
