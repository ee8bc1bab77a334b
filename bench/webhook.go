//go:build !production

package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"remediator/internal/orchestrator"
	"remediator/workflows"
)

// webhookGoalP99 is the target for the ack of a delivery.
const webhookGoalP99 = 10.0 // ms

type webhookConfig struct {
	Rate     int
	Duration time.Duration
	// DupEvery: every DupEvery-th send (after the first second) redelivers
	// the delivery sent one second earlier, same delivery id and body, as
	// GitHub's "Redeliver" does; 0 sends only distinct deliveries.
	DupEvery int
	// MaxInFlight bounds the requests awaiting an answer; a send that finds
	// the bound reached waits (and is then late).
	MaxInFlight int
	Drain       time.Duration
}

// delivery is one signed GitHub delivery, built before the clock starts.
type delivery struct {
	id         string
	body       []byte
	sig        string
	workflowID string // the remediation its failure maps to
}

// sendResult is what one send saw.
type sendResult struct {
	due, sent time.Time
	ack       time.Duration
	code      int
	status    string
	wfID      string
	err       string
}

// runWebhook sends signed workflow_run deliveries of distinct failed runs
// to POST /webhooks/github at a fixed rate from an open-loop sender (each
// send goes out on its slot, whatever the earlier ones are doing), then
// checks that every distinct delivery started exactly one remediation and
// every redelivery was answered duplicate.
func runWebhook(ctx context.Context, s *stack, gh *fakeGitHub, cfg webhookConfig, runID string) *scenario {
	n := int(float64(cfg.Rate) * cfg.Duration.Seconds())
	sc := &scenario{Name: "webhook", Title: fmt.Sprintf("3 webhook @%d/s", cfg.Rate), Params: map[string]any{
		"rate_per_second": cfg.Rate, "duration_seconds": cfg.Duration.Seconds(), "sends": n,
		"redeliver_every": cfg.DupEvery, "max_in_flight": cfg.MaxInFlight, "repository": gh.repo,
	}}
	if n < 1 {
		sc.Error = "nothing to send: rate × duration < 1"
		return sc
	}
	// The schedule: slot i sends plan[i] (an index into distinct); a
	// redelivery repeats the delivery of the slot one second earlier.
	var distinct []delivery
	plan := make([]int, n)
	redelivered := map[int]bool{}
	for i := range n {
		if cfg.DupEvery > 0 && i >= cfg.Rate && i%cfg.DupEvery == cfg.DupEvery-1 {
			k := i - cfg.Rate
			for redelivered[plan[k]] || isDupSlot(cfg, k) {
				k--
			}
			plan[i] = plan[k]
			redelivered[plan[k]] = true
			continue
		}
		plan[i] = len(distinct)
		distinct = append(distinct, newDelivery(gh, len(distinct)))
	}
	sc.Params["distinct_deliveries"], sc.Params["redeliveries"] = len(distinct), n-len(distinct)

	hc := &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        cfg.MaxInFlight,
			MaxIdleConnsPerHost: cfg.MaxInFlight,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	defer hc.CloseIdleConnections()
	// Warm a few connections and the service's path (the repository's
	// existence is then cached by the resolver, as it is in steady state):
	// ping events, which start nothing.
	for i := range 8 {
		if _, _, err := postDelivery(ctx, hc, s.baseURL, "ping", fmt.Sprintf("bench-ping-%s-%d", runID, i), []byte(`{"zen":"bench"}`)); err != nil {
			sc.Error = "ping delivery: " + err.Error()
			return sc
		}
	}

	results := make([]sendResult, n)
	interval := float64(time.Second) / float64(cfg.Rate)
	lateAfter := time.Duration(interval)
	var late, waitedCap int
	var maxLag time.Duration
	sem := make(chan struct{}, cfg.MaxInFlight)
	var wg sync.WaitGroup
	start := time.Now().Add(20 * time.Millisecond)
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		due := start.Add(time.Duration(float64(i) * interval))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		select {
		case sem <- struct{}{}:
		default:
			waitedCap++
			sem <- struct{}{}
		}
		lag := time.Since(due)
		maxLag = max(maxLag, lag)
		if lag > lateAfter {
			late++
		}
		d := distinct[plan[i]]
		wg.Go(func() {
			defer func() { <-sem }()
			r := sendResult{due: due}
			r.sent = time.Now()
			code, b, err := postSigned(ctx, hc, s.baseURL, d)
			r.ack = time.Since(r.sent)
			r.code = code
			if err != nil {
				r.err = err.Error()
			} else {
				var out webhookAnswer
				if json.Unmarshal(b, &out) == nil {
					r.status, r.wfID = out.Status, out.WorkflowID
				}
				if code != http.StatusAccepted {
					r.err = fmt.Sprintf("%d %s", code, truncate(string(b), 200))
				}
			}
			results[i] = r
		})
	}
	sendEnd := time.Now()
	wg.Wait()
	allAcked := time.Now()

	// Acks.
	var acks, fromDue []time.Duration
	errs := 0
	firstErr := ""
	sentN := 0
	for _, r := range results {
		if r.sent.IsZero() {
			continue
		}
		sentN++
		if r.err != "" {
			errs++
			if firstErr == "" {
				firstErr = r.err
			}
			continue
		}
		acks = append(acks, r.ack)
		fromDue = append(fromDue, r.sent.Add(r.ack).Sub(r.due))
	}
	if len(acks) == 0 {
		sc.Error = "no delivery was acknowledged: " + firstErr
		return sc
	}
	lat, latDue := summarize(acks), summarize(fromDue)
	sendSecs := sendEnd.Sub(start).Seconds()
	sc.add(figure{Name: "deliveries sent", Value: float64(sentN), Unit: fmt.Sprintf("(%d distinct + %d redeliveries)", len(distinct), sentN-len(distinct))})
	sc.add(figure{Name: "send rate reached", Value: round(float64(sentN)/max(sendSecs, 1e-9), 1), Unit: "/s"})
	sc.add(figure{Name: fmt.Sprintf("late sends (> %.1f ms behind their slot)", ms(lateAfter)), Value: float64(late), Unit: fmt.Sprintf("of %d", sentN)})
	sc.add(figure{Name: "ack p50", Value: round(lat.P50, 3), Unit: "ms"})
	sc.add(figure{Name: "ack p99", Value: round(lat.P99, 3), Unit: "ms", Goal: "≤ 10 ms", Met: met(lat.P99 <= webhookGoalP99)})
	sc.add(figure{Name: "ack max", Value: round(lat.Max, 3), Unit: "ms"})
	sc.add(figure{Name: "ack p99 from the scheduled slot (context)", Value: round(latDue.P99, 3), Unit: "ms"})
	sc.add(figure{Name: "all answers in after the first send", Value: round(allAcked.Sub(start).Seconds(), 2), Unit: "s"})
	if errs > 0 {
		sc.add(figure{Name: "deliveries not answered 202", Value: float64(errs), Unit: fmt.Sprintf("of %d", sentN)})
		sc.note("failed deliveries: %d, first: %s", errs, firstErr)
	}
	sc.Details = map[string]any{
		"ack": lat, "ack_from_slot": latDue, "late_sends": late, "max_send_lag_ms": round(ms(maxLag), 3),
		"sends_that_waited_for_the_in_flight_bound": waitedCap, "errors": errs,
	}

	// Exactly once. The workflow a delivery starts is named by its failure
	// (api.githubWebhook: Idempotency-Key "github:<fingerprint>" of
	// requester webhook:github), so the benchmark knows each delivery's
	// workflow id, answered or not, and checks the answers name it. Then:
	// each distinct delivery has exactly one run in visibility, there is no
	// other run, and each delivery's answers are one accepted (plus one
	// duplicate for a redelivery).
	type seen struct{ accepted, duplicate, failed, wrongID int }
	per := make([]seen, len(distinct))
	for i, r := range results {
		if r.sent.IsZero() {
			continue
		}
		p := &per[plan[i]]
		d := distinct[plan[i]]
		switch {
		case r.err != "":
			p.failed++
		case r.wfID != d.workflowID:
			p.wrongID++
		case r.status == "accepted":
			p.accepted++
		case r.status == "duplicate":
			p.duplicate++
		default:
			p.failed++
		}
	}
	ids := make([]string, len(distinct))
	for i, d := range distinct {
		ids[i] = d.workflowID
	}
	runs, listErr := s.webhookRuns(ctx, gh.repo, ids)
	expected := map[string]bool{}
	var once, none, answeredOK, redeliveryOK, wrongIDs, failedStarted, failedLost int
	for i, d := range distinct {
		expected[d.workflowID] = true
		p := per[i]
		wrongIDs += p.wrongID
		switch len(runs[d.workflowID]) {
		case 0:
			none++
		case 1:
			once++
		}
		if p.accepted == 1 && p.failed == 0 && p.wrongID == 0 {
			answeredOK++
			if redelivered[i] && p.duplicate == 1 {
				redeliveryOK++
			}
		}
		if p.failed > 0 && p.accepted == 0 && p.duplicate == 0 {
			if len(runs[d.workflowID]) > 0 {
				failedStarted++
			} else {
				failedLost++
			}
		}
	}
	extraRuns, total := 0, 0
	var doubled []string
	for id, rs := range runs {
		total += len(rs)
		if !expected[id] {
			extraRuns += len(rs)
		} else if len(rs) > 1 {
			extraRuns += len(rs) - 1
			if len(doubled) < 5 {
				doubled = append(doubled, id+" runs "+strings.Join(setKeys(rs), ","))
			}
		}
	}
	sc.add(figure{Name: "distinct deliveries → exactly one remediation each", Value: float64(once), Unit: fmt.Sprintf("of %d", len(distinct)),
		Goal: "all", Met: met(once == len(distinct) && extraRuns == 0 && listErr == nil)})
	sc.add(figure{Name: "runs beyond one per delivery", Value: float64(extraRuns), Unit: "runs", Goal: "0", Met: met(extraRuns == 0 && listErr == nil)})
	sc.add(figure{Name: "distinct deliveries answered accepted once (+ duplicate)", Value: float64(answeredOK), Unit: fmt.Sprintf("of %d", len(distinct)),
		Goal: "all", Met: met(answeredOK == len(distinct))})
	if cfg.DupEvery > 0 {
		sc.add(figure{Name: "redeliveries answered duplicate (same workflow)", Value: float64(redeliveryOK), Unit: fmt.Sprintf("of %d", len(redelivered)),
			Goal: "all", Met: met(redeliveryOK == len(redelivered))})
	}
	if none > 0 {
		sc.add(figure{Name: "distinct deliveries that started nothing", Value: float64(none), Unit: fmt.Sprintf("of %d", len(distinct))})
	}
	sc.Details["exactly_once"] = map[string]any{
		"workflows_in_visibility": len(runs), "runs_in_visibility": total, "deliveries_with_one_run": once, "deliveries_without_run": none, "extra_runs": extraRuns,
		"answers_naming_another_workflow": wrongIDs, "failed_answers_but_started": failedStarted, "failed_answers_and_not_started": failedLost,
	}
	if failedStarted+failedLost > 0 {
		sc.note("deliveries whose every answer was an error: %d; of them %d were started anyway (the error hid a start) and %d started nothing (lost unless GitHub redelivers: it does not retry by itself)",
			failedStarted+failedLost, failedStarted, failedLost)
	}
	if wrongIDs > 0 {
		sc.note("%d answers named another workflow than the delivery's failure maps to (the benchmark's id derivation may be out of date)", wrongIDs)
	}
	if listErr != nil {
		sc.note("visibility: %v", listErr)
	}
	if len(doubled) > 0 {
		sc.Details["exactly_once"].(map[string]any)["workflows_with_several_runs"] = doubled
		sc.note("workflows with more than one run (distinct run ids) for one delivery, e.g. %s", strings.Join(doubled, "; "))
	}
	if n, lines := s.logLines(`msg="upstream unavailable"`, 2); n > 0 {
		sc.note("service log: %d × 'upstream unavailable' (answered 503 temporal_unavailable); first: %s", n, strings.Join(lines, " | "))
		sc.Details["upstream_unavailable_log_lines"] = n
	}
	if n, errs := gh.tb.problems(); n > 0 {
		sc.note("the fake GitHub saw %d requests GitHub would refuse; first: %v", n, errs)
	}

	// How long the started remediations take to end (each fails in
	// GenerateFix: no recipe matches), within the drain bound.
	query := fmt.Sprintf("WorkflowType = '%s' AND %s = '%s'", workflows.WorkflowName, workflows.SearchAttrRepo, gh.repo)
	t0 := time.Now()
	_, err := s.waitCount(ctx, query+" AND ExecutionStatus != 'Running'", int64(total), cfg.Drain)
	drain := time.Since(t0)
	failed, _ := s.count(ctx, query+fmt.Sprintf(" AND %s = '%s'", workflows.SearchAttrPhase, workflows.PhaseFailed))
	sc.add(figure{Name: "started remediations ended Failed (no recipe matches)", Value: float64(failed), Unit: fmt.Sprintf("of %d", total)})
	sc.add(figure{Name: "drain: until all of them ended (after the checks)", Value: round(drain.Seconds(), 1), Unit: "s"})
	if err != nil {
		sc.note("drain incomplete: %v", err)
	}
	sc.Details["fake_github_calls"] = gh.calls()

	sc.note("FAKE: deliveries name %s on the benchmark's fake GitHub (internal/github/githubtest on 127.0.0.1, configured as GITHUB_API_URL/GITHUB_TOKEN); a delivery cannot name a local repository (forge.Parse reads owner/name as GitHub)", gh.repo)
	sc.note("each distinct delivery is a failed workflow_run of its own workflow (distinct workflow_id → distinct fingerprint → its own remediation); the job log matches no recipe, so each remediation ends Failed in GenerateFix after fetching the run's jobs and log from the fake")
	sc.note("open loop: slot i at start + i/rate, each send on its own goroutine without waiting for earlier answers (at most %d in flight); ack = request written → answer read; 'from the scheduled slot' adds the sender's own lag", cfg.MaxInFlight)
	sc.note("X-Hub-Signature-256 = HMAC-SHA256 of the body with GITHUB_WEBHOOK_SECRET; bodies and signatures are built before the first send; REMEDIATOR_RATE_LIMITS raises the webhooks rule")
	sc.note("a webhook start of a new failure is one round trip (ExecuteWorkflow); DescribeWorkflowExecution runs only when an earlier run of the same fingerprint has closed (orchestrator.laterGeneration: the run attempt is a generation)")
	return sc
}

func isDupSlot(cfg webhookConfig, i int) bool {
	return cfg.DupEvery > 0 && i >= cfg.Rate && i%cfg.DupEvery == cfg.DupEvery-1
}

type webhookAnswer struct {
	Status     string `json:"status"`
	DeliveryID string `json:"delivery_id"`
	WorkflowID string `json:"workflow_id"`
}

// newDelivery is a failed workflow_run of workflow k of the fake's
// repository, on its one commit, signed with the benchmark's secret.
func newDelivery(gh *fakeGitHub, k int) delivery {
	runID := int64(700000 + k)
	body, _ := json.Marshal(map[string]any{
		"action":     "completed",
		"repository": map[string]any{"full_name": gh.repo, "default_branch": fakeGitHubBranch},
		"workflow_run": map[string]any{
			"id": runID, "workflow_id": int64(100000 + k), "run_attempt": 1, "name": "CI", "status": "completed",
			"conclusion": "failure", "head_branch": fakeGitHubBranch, "head_sha": gh.sha,
			"html_url": fmt.Sprintf("https://github.example/%s/actions/runs/%d", gh.repo, runID),
		},
	})
	// api.githubWebhook's key: the failure's fingerprint, without the attempt.
	fingerprint := fmt.Sprintf("%s@%s/workflow:%d", gh.repo, gh.sha, int64(100000+k))
	wf := orchestrator.IDFor(orchestrator.StartRequest{IdempotencyKey: "github:" + fingerprint, Requester: "webhook:github"})
	return delivery{id: uuid.NewString(), body: body, sig: sign(body), workflowID: wf}
}

func sign(body []byte) string {
	mac := hmac.New(sha256.New, []byte(benchWebhookKey))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func postSigned(ctx context.Context, hc *http.Client, base string, d delivery) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/webhooks/github", bytes.NewReader(d.body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "workflow_run")
	req.Header.Set("X-GitHub-Delivery", d.id)
	req.Header.Set("X-Hub-Signature-256", d.sig)
	res, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

func postDelivery(ctx context.Context, hc *http.Client, base, event, id string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/webhooks/github", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", id)
	req.Header.Set("X-Hub-Signature-256", sign(body))
	res, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s delivery: %d %s", event, res.StatusCode, truncate(string(b), 200))
	}
	return res.StatusCode, b, err
}

// webhookRuns waits until visibility shows as many remediations of repo
// as ids, or its count stopped growing for 3 s (some deliveries may have
// started nothing), then lists them: workflow id → its run ids. Listing
// pages while runs close (which reorders them) can show a run twice or
// skip one: runs are keyed by run id, and an id of ids listed without a
// run is looked up directly.
func (s *stack) webhookRuns(ctx context.Context, repo string, ids []string) (map[string]map[string]bool, error) {
	query := fmt.Sprintf("WorkflowType = '%s' AND %s = '%s'", workflows.WorkflowName, workflows.SearchAttrRepo, repo)
	deadline := time.Now().Add(time.Minute)
	var last int64 = -1
	stableSince := time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		n, err := s.count(ctx, query)
		if err == nil {
			if n >= int64(len(ids)) {
				break
			}
			if n != last {
				last, stableSince = n, time.Now()
			} else if time.Since(stableSince) > 3*time.Second {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Visibility is written asynchronously: a second look after the count
	// settled catches runs that would come late.
	time.Sleep(500 * time.Millisecond)
	runs := map[string]map[string]bool{}
	add := func(id, run string) {
		if runs[id] == nil {
			runs[id] = map[string]bool{}
		}
		runs[id][run] = true
	}
	var token []byte
	for {
		resp, err := s.raw.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: s.cfg.Temporal.Namespace, Query: query, PageSize: 1000, NextPageToken: token,
		})
		if err != nil {
			return runs, err
		}
		for _, e := range resp.GetExecutions() {
			add(e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId())
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	for _, id := range ids {
		if len(runs[id]) > 0 {
			continue
		}
		d, err := s.raw.DescribeWorkflowExecution(ctx, id, "")
		var nf *serviceerror.NotFound
		switch {
		case errors.As(err, &nf):
		case err != nil:
			return runs, err
		default:
			add(id, d.GetWorkflowExecutionInfo().GetExecution().GetRunId())
		}
	}
	return runs, nil
}

func setKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
