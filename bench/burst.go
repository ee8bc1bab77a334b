//go:build !production

package main

import (
	"context"
	"fmt"
	"time"

	"remediator/workflows"
)

// burstGoalN and burstGoal are the target: 1000 remediations of the
// real gofmt recipe all AwaitingApproval within 20 s.
const (
	burstGoalN = 1000
	burstGoal  = 20 * time.Second
)

type burstConfig struct {
	N       int
	Callers int
	Timeout time.Duration
}

// runBurst starts N remediations of the demo repository's gofmt failure at
// once (distinct Idempotency-Keys, real local provider, real recipe) and
// measures the time from the first request until visibility counts all of
// them AwaitingApproval.
func runBurst(ctx context.Context, s *stack, cfg burstConfig, runID string) *scenario {
	sc := &scenario{Name: "burst", Title: fmt.Sprintf("5 burst of %d", cfg.N), Params: map[string]any{
		"n": cfg.N, "callers": cfg.Callers, "timeout_seconds": cfg.Timeout.Seconds(),
	}}
	marker := "bench-burst-" + runID
	awaiting := incidentQuery(marker, fmt.Sprintf("%s = '%s'", workflows.SearchAttrPhase, workflows.PhaseAwaitingApproval))
	t0 := time.Now()
	done := make(chan error, 1)
	var submitted time.Duration
	go func() {
		_, err := s.startDemoRemediations(ctx, marker, cfg.N, cfg.Callers)
		submitted = time.Since(t0)
		done <- err
	}()
	// Poll while the requests are still going out; stop early if some
	// ended instead (Failed), since then all can never be waiting.
	ended := incidentQuery(marker, "ExecutionStatus != 'Running'")
	var n, nEnded int64
	deadline := time.Now().Add(cfg.Timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if c, err := s.count(ctx, awaiting); err == nil {
			n = c
		}
		if n >= int64(cfg.N) {
			break
		}
		if c, err := s.count(ctx, ended); err == nil {
			nEnded = c
		}
		if n+nEnded >= int64(cfg.N) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	all := time.Since(t0)
	if err := <-done; err != nil {
		sc.Error = "starting: " + err.Error()
	}
	sc.add(figure{Name: "all 202 answers received", Value: round(submitted.Seconds(), 2), Unit: "s"})
	if n < int64(cfg.N) {
		sc.add(figure{Name: "AwaitingApproval at the end", Value: float64(n), Unit: fmt.Sprintf("of %d", cfg.N)})
		sc.add(figure{Name: "rate reached", Value: round(float64(n)/all.Seconds(), 1), Unit: "/s"})
		sc.note("not all reached AwaitingApproval within %v: %d waiting, %d ended instead", cfg.Timeout, n, nEnded)
		return sc
	}
	rate := float64(cfg.N) / all.Seconds()
	sc.add(figure{Name: fmt.Sprintf("time until all %d AwaitingApproval", cfg.N), Value: round(all.Seconds(), 2), Unit: "s"})
	sc.add(figure{Name: "rate (remediations to AwaitingApproval)", Value: round(rate, 1), Unit: "/s"})
	f := figure{Name: fmt.Sprintf("time for %d", burstGoalN), Unit: "s", Goal: "≤ 20 s for 1000"}
	if cfg.N == burstGoalN {
		f.Value = round(all.Seconds(), 2)
	} else {
		f.Value = round(float64(burstGoalN)/rate, 1)
		f.Note = fmt.Sprintf("EXTRAPOLATED linearly from %d, not measured", cfg.N)
	}
	f.Met = met(f.Value <= burstGoal.Seconds())
	sc.add(f)
	sc.note("real local git provider and the built-in gofmt recipe (sandbox per REMEDIATOR_RECIPE_SANDBOX) against the demo repository; counted by visibility (RemediationPhase), polled every 200 ms")
	sc.note("the worker runs at most 20 activities at once (internal/app.NewWorker); the remediations stay AwaitingApproval until the server stops")
	return sc
}
