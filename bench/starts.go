//go:build !production

package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/google/uuid"

	"remediator/internal/codec"
	"remediator/internal/orchestrator"
	"remediator/workflows"
)

// noMatchSummary matches none of the recipes (built in: gofmt, go-mod-tidy,
// trailing-whitespace): GenerateFix fails non-retryably at once and every
// remediation this scenario starts ends Failed within moments.
const noMatchSummary = "benchmark: synthetic start that no recipe matches"

type startsConfig struct {
	PerSide int           `json:"per_side"`
	Batch   int           `json:"batch"`
	Callers int           `json:"callers"`
	Warmup  int           `json:"warmup"`
	Serial  int           `json:"serial"`
	Drain   time.Duration `json:"-"`
}

// side is one way of starting a remediation; run performs one start.
type side struct {
	name    string
	run     func(ctx context.Context, i int) error
	lat     []time.Duration
	elapsed time.Duration
	errs    int
	firstEr string
	mu      sync.Mutex
}

// batch runs n starts over callers goroutines; when record is set it keeps
// their latencies and adds the wall time to the side's busy time.
func (sd *side) batch(ctx context.Context, next *atomic.Int64, n, callers int, record bool) {
	var wg sync.WaitGroup
	var done atomic.Int64
	t0 := time.Now()
	for range callers {
		wg.Go(func() {
			for done.Add(1) <= int64(n) {
				if ctx.Err() != nil {
					return
				}
				i := int(next.Add(1))
				st := time.Now()
				err := sd.run(ctx, i)
				d := time.Since(st)
				sd.mu.Lock()
				if err != nil {
					sd.errs++
					if sd.firstEr == "" {
						sd.firstEr = err.Error()
					}
				} else if record {
					sd.lat = append(sd.lat, d)
				}
				sd.mu.Unlock()
			}
		})
	}
	wg.Wait()
	if record {
		sd.elapsed += time.Since(t0)
	}
}

func runStarts(ctx context.Context, s *stack, cfg startsConfig, runID string) *scenario {
	sc := &scenario{Name: "starts", Title: "1 start @16", Params: map[string]any{
		"per_side": cfg.PerSide, "batch": cfg.Batch, "callers": cfg.Callers, "warmup_per_side": cfg.Warmup,
		"serial_per_side": cfg.Serial, "failure_summary": noMatchSummary,
	}}
	marker := "bench-starts-" + runID
	body, _ := json.Marshal(map[string]string{
		"repo": s.dev.Demo.Path, "ref": s.dev.Demo.Branch, "failure_summary": noMatchSummary, "incident_id": marker,
	})
	rest := &side{name: "REST"}
	rest.run = func(ctx context.Context, i int) error {
		req, err := s.request(ctx, http.MethodPost, "/api/remediations", "dev", body, fmt.Sprintf("%s-rest-%d", marker, i))
		if err != nil {
			return err
		}
		code, b, err := s.send(req)
		if err != nil {
			return err
		}
		if code != http.StatusAccepted {
			return fmt.Errorf("POST /api/remediations: %d %s", code, truncate(string(b), 200))
		}
		return nil
	}
	raw := &side{name: "raw"}
	raw.run = func(ctx context.Context, i int) error {
		return s.rawStart(ctx, fmt.Sprintf("%s-raw-%d", marker, i), marker)
	}

	var restNext, rawNext atomic.Int64
	if cfg.Warmup > 0 {
		raw.batch(ctx, &rawNext, cfg.Warmup, cfg.Callers, false)
		rest.batch(ctx, &restNext, cfg.Warmup, cfg.Callers, false)
	}
	// One caller, alternating request by request: the fixed cost of each
	// path without queueing, for context.
	var serialRaw, serialREST []time.Duration
	for i := range cfg.Serial {
		if ctx.Err() != nil {
			break
		}
		pair := []*side{raw, rest}
		next := []*atomic.Int64{&rawNext, &restNext}
		if i%2 == 1 {
			pair[0], pair[1], next[0], next[1] = rest, raw, &restNext, &rawNext
		}
		for j, sd := range pair {
			n := int(next[j].Add(1))
			t := time.Now()
			err := sd.run(ctx, n)
			d := time.Since(t)
			if err != nil {
				sd.errs++
				if sd.firstEr == "" {
					sd.firstEr = err.Error()
				}
				continue
			}
			if sd == raw {
				serialRaw = append(serialRaw, d)
			} else {
				serialREST = append(serialREST, d)
			}
		}
	}
	rounds := (cfg.PerSide + cfg.Batch - 1) / cfg.Batch
	for r := range rounds {
		n := min(cfg.Batch, cfg.PerSide-r*cfg.Batch)
		// Alternate which side goes first, so neither always runs on the
		// backlog the other left behind.
		first, second := raw, rest
		fn, sn := &rawNext, &restNext
		if r%2 == 1 {
			first, second, fn, sn = rest, raw, &restNext, &rawNext
		}
		first.batch(ctx, fn, n, cfg.Callers, true)
		second.batch(ctx, sn, n, cfg.Callers, true)
		if ctx.Err() != nil {
			break
		}
	}
	total := restNext.Load() + rawNext.Load() - int64(rest.errs+raw.errs)
	for _, sd := range []*side{raw, rest} {
		if sd.errs > 0 {
			sc.note("%s: %d failed starts, first: %s", sd.name, sd.errs, sd.firstEr)
		}
	}
	if len(raw.lat) == 0 || len(rest.lat) == 0 {
		sc.Error = "no successful starts on one side"
		return sc
	}
	rawRate := float64(len(raw.lat)) / raw.elapsed.Seconds()
	restRate := float64(len(rest.lat)) / rest.elapsed.Seconds()
	rawL, restL := summarize(raw.lat), summarize(rest.lat)
	ratio := restRate / rawRate
	overhead := restL.P50 - rawL.P50
	sc.add(figure{Name: "raw ExecuteWorkflow throughput", Value: round(rawRate, 1), Unit: "/s"})
	sc.add(figure{Name: "REST POST throughput", Value: round(restRate, 1), Unit: "/s"})
	sc.add(figure{Name: "ratio REST/raw starts per second", Value: round(ratio, 3), Unit: "x", Goal: "≥ 0.95", Met: met(ratio >= 0.95)})
	sc.add(figure{Name: "raw p50", Value: round(rawL.P50, 3), Unit: "ms"})
	sc.add(figure{Name: "raw p99", Value: round(rawL.P99, 3), Unit: "ms"})
	sc.add(figure{Name: "REST p50", Value: round(restL.P50, 3), Unit: "ms"})
	sc.add(figure{Name: "REST p99", Value: round(restL.P99, 3), Unit: "ms"})
	sc.add(figure{Name: "p50 overhead (REST − raw)", Value: round(overhead, 3), Unit: "ms", Goal: "≤ 0.5 ms", Met: met(overhead <= 0.5)})
	sc.Details = map[string]any{
		"raw":  map[string]any{"latency": rawL, "starts": len(raw.lat), "busy_seconds": round(raw.elapsed.Seconds(), 3), "errors": raw.errs},
		"rest": map[string]any{"latency": restL, "starts": len(rest.lat), "busy_seconds": round(rest.elapsed.Seconds(), 3), "errors": rest.errs},
	}
	if len(serialRaw) > 0 && len(serialREST) > 0 {
		sr, sR := summarize(serialRaw), summarize(serialREST)
		sc.add(figure{Name: "1 caller: raw p50 (context)", Value: round(sr.P50, 3), Unit: "ms"})
		sc.add(figure{Name: "1 caller: REST p50 (context)", Value: round(sR.P50, 3), Unit: "ms"})
		sc.add(figure{Name: "1 caller: p50 overhead (context)", Value: round(sR.P50-sr.P50, 3), Unit: "ms"})
		sc.Details["serial_raw"], sc.Details["serial_rest"] = sr, sR
	}
	sc.note("both sides start the real Remediation workflow (task queue %q) against the demo repository with a failure no recipe matches: they end Failed at once, nothing is cancelled", workflows.TaskQueue)
	sc.note("interleaved batches of %d per side at %d callers, order alternating each round; before them, %d uncounted warm-up starts per side at %d callers and, for context, %d starts per side from 1 caller, alternating",
		cfg.Batch, cfg.Callers, cfg.Warmup, cfg.Callers, cfg.Serial)
	sc.note("the REST path adds to the raw ExecuteWorkflow: auth, rate limit, validation, repository canonicalisation (gitlocal.Canonical, git asked once per repository per 10 s) and the start signature; a describe follows only a start that landed on an existing run")

	// Let the started remediations end so later scenarios run on a quiet
	// server; how long that took is itself a figure.
	t0 := time.Now()
	_, err := s.waitCount(ctx, incidentQuery(marker, "ExecutionStatus != 'Running'"), total, cfg.Drain)
	drain := time.Since(t0)
	failed, _ := s.count(ctx, incidentQuery(marker, fmt.Sprintf("%s = '%s'", workflows.SearchAttrPhase, workflows.PhaseFailed)))
	sc.add(figure{Name: "started remediations ended Failed", Value: float64(failed), Unit: fmt.Sprintf("of %d", total)})
	sc.add(figure{Name: "drain: until all of them ended", Value: round(drain.Seconds(), 1), Unit: "s"})
	if err != nil {
		sc.note("drain incomplete: %v", err)
	}
	return sc
}

// rawStart is what orchestrator.Start hands the SDK, minus the Describe
// that follows it: the same workflow type, task queue, ID scheme, policies,
// memo (with a real start signature) and search attributes.
func (s *stack) rawStart(ctx context.Context, key, marker string) error {
	const requester = "dev"
	repo := s.repo
	id := orchestrator.IDFor(orchestrator.StartRequest{IdempotencyKey: key, Requester: requester})
	correlationID := randomHex(16)
	b, _ := json.Marshal([]string{repo, s.dev.Demo.Branch, "", noMatchSummary, "", marker, ""})
	sum := sha256.Sum256(b)
	hash := hex.EncodeToString(sum[:])
	sig := s.signer.SignStart(id, repo, requester)
	timeout := s.cfg.ApprovalTimeout
	opts := client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		// The memo stays in clear under the payload codec, as the API writes it.
		Memo: codec.ClearMemo(map[string]any{
			workflows.MemoCorrelationID: correlationID,
			workflows.MemoRequestHash:   hash,
			workflows.MemoRequester:     requester,
			"start_token":               uuid.NewString(),
			"generation":                int64(0),
			"start_signature":           &sig,
		}),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.PhaseKey.ValueSet(string(workflows.PhaseReceived)),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrRepo).ValueSet(repo),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrRequester).ValueSet(requester),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrIncident).ValueSet(marker),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrCorrelationID).ValueSet(correlationID),
		),
	}
	in := workflows.RemediationInput{
		ID: id, Repo: repo, Ref: s.dev.Demo.Branch, FailureSummary: noMatchSummary, IncidentID: marker,
		Requester: requester, CorrelationID: correlationID, ApprovalTimeout: timeout, RequiredApprovals: 1,
		Deadline: time.Now().Add(timeout).UTC().Truncate(time.Second),
	}
	_, err := s.raw.ExecuteWorkflow(ctx, opts, workflows.WorkflowName, in)
	if err != nil {
		return errors.New("ExecuteWorkflow: " + err.Error())
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
