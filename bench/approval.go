//go:build !production

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"

	"remediator/workflows"
)

type approvalConfig struct {
	N           int
	PrepTimeout time.Duration
}

// approvalResult hands scenario 3 an approved, completed remediation.
type approvalResult struct {
	approvedID string
	rawID      string
}

// runApproval measures approve → the next activity starts: REST approve of a
// remediation waiting for approval → its OpenPR activity starts, against a
// raw SignalWorkflow (and, for context, a raw UpdateWorkflow) to a waiting
// benchmark-only workflow → its no-op activity starts. The start time is the
// ActivityTaskStarted event's time in history (the real start: the server
// stamps a retried activity's started event with the time it started).
func runApproval(ctx context.Context, s *stack, cfg approvalConfig, runID string) (*scenario, approvalResult) {
	sc := &scenario{Name: "approval", Title: "2 approve → activity", Params: map[string]any{"n": cfg.N}}
	var res approvalResult
	marker := "bench-approval-" + runID
	ids, err := s.startDemoRemediations(ctx, marker, cfg.N, 4)
	if err != nil {
		sc.Error = err.Error()
		return sc, res
	}
	if _, err := s.waitCount(ctx, incidentQuery(marker, fmt.Sprintf("%s = '%s'", workflows.SearchAttrPhase, workflows.PhaseAwaitingApproval)),
		int64(cfg.N), cfg.PrepTimeout); err != nil {
		sc.Error = "remediations did not all reach AwaitingApproval: " + err.Error()
		return sc, res
	}
	votes := make([][]byte, cfg.N)
	for i, id := range ids {
		st, err := s.status(ctx, id)
		if err != nil || st.Fix == nil || st.DecisionID == "" {
			sc.Error = fmt.Sprintf("status of %s: %v %+v", id, err, st)
			return sc, res
		}
		votes[i], _ = json.Marshal(map[string]string{"decision_id": st.DecisionID, "diff_digest": st.Fix.Digest, "base_sha": st.Fix.BaseSHA, "comment": "benchmark"})
	}
	sigIDs, updIDs := make([]string, cfg.N), make([]string, cfg.N)
	for i := range cfg.N {
		sigIDs[i] = fmt.Sprintf("bench-noop-%s-signal-%d", runID, i)
		updIDs[i] = fmt.Sprintf("bench-noop-%s-update-%d", runID, i)
	}
	for _, id := range slices.Concat(sigIDs, updIDs) {
		if _, err := s.raw.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: noopTaskQueue}, noopWorkflowName); err != nil {
			sc.Error = "starting the benchmark workflow: " + err.Error()
			return sc, res
		}
	}
	for _, id := range slices.Concat(sigIDs, updIDs) {
		if err := s.waitIdle(ctx, id, 30*time.Second); err != nil {
			sc.Error = err.Error()
			return sc, res
		}
	}

	restSent, sigSent, updSent := make([]time.Time, cfg.N), make([]time.Time, cfg.N), make([]time.Time, cfg.N)
	var restRTT, updRTT []time.Duration
	for i := range cfg.N {
		steps := []func() error{
			func() error { // REST approve
				req, err := s.request(ctx, http.MethodPost, "/api/remediations/"+ids[i]+"/approve", "alice", votes[i], "")
				if err != nil {
					return err
				}
				restSent[i] = time.Now()
				code, b, err := s.send(req)
				restRTT = append(restRTT, time.Since(restSent[i]))
				if err != nil {
					return err
				}
				if code != http.StatusOK {
					return fmt.Errorf("approve %s: %d %s", ids[i], code, truncate(string(b), 200))
				}
				var st workflows.Status
				if err := s.waitDone(ctx, ids[i], &st); err != nil {
					return err
				}
				if st.Phase != workflows.PhaseCompleted {
					return fmt.Errorf("%s ended %s: %s", ids[i], st.Phase, st.Reason)
				}
				return nil
			},
			func() error { // raw signal
				sigSent[i] = time.Now()
				if err := s.raw.SignalWorkflow(ctx, sigIDs[i], "", noopSignal, nil); err != nil {
					return err
				}
				return s.waitDone(ctx, sigIDs[i], nil)
			},
			func() error { // raw Update, as the service's approve uses one
				updSent[i] = time.Now()
				h, err := s.raw.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
					WorkflowID: updIDs[i], UpdateName: noopUpdate, WaitForStage: client.WorkflowUpdateStageCompleted,
				})
				if err == nil {
					err = h.Get(ctx, nil)
				}
				updRTT = append(updRTT, time.Since(updSent[i]))
				if err != nil {
					return err
				}
				return s.waitDone(ctx, updIDs[i], nil)
			},
		}
		// Rotate the order so no variant always follows the same one.
		for k := range steps {
			if err := steps[(i+k)%len(steps)](); err != nil {
				sc.Error = err.Error()
				return sc, res
			}
		}
	}

	restLat, err := s.startLatencies(ctx, ids, restSent, "OpenPR")
	if err != nil {
		sc.Error = err.Error()
		return sc, res
	}
	sigLat, err := s.startLatencies(ctx, sigIDs, sigSent, noopActivityName)
	if err != nil {
		sc.Error = err.Error()
		return sc, res
	}
	updLat, err := s.startLatencies(ctx, updIDs, updSent, noopActivityName)
	if err != nil {
		sc.Error = err.Error()
		return sc, res
	}
	rest, sig, upd := summarize(restLat), summarize(sigLat), summarize(updLat)
	rtt, urtt := summarize(restRTT), summarize(updRTT)
	ratio := rest.P50 / sig.P50
	sc.add(figure{Name: "REST approve → OpenPR started p50", Value: round(rest.P50, 3), Unit: "ms", Goal: "≤ 5 ms", Met: met(rest.P50 <= 5)})
	sc.add(figure{Name: "REST approve → OpenPR started p99", Value: round(rest.P99, 3), Unit: "ms"})
	sc.add(figure{Name: "raw signal → activity started p50", Value: round(sig.P50, 3), Unit: "ms"})
	sc.add(figure{Name: "raw signal → activity started p99", Value: round(sig.P99, 3), Unit: "ms"})
	sc.add(figure{Name: "ratio REST/raw signal (p50)", Value: round(ratio, 3), Unit: "x", Goal: "≤ 1.3×", Met: met(ratio <= 1.3)})
	sc.add(figure{Name: "raw Update → activity started p50 (context)", Value: round(upd.P50, 3), Unit: "ms"})
	sc.add(figure{Name: "REST approve round trip p50 (context)", Value: round(rtt.P50, 3), Unit: "ms"})
	sc.add(figure{Name: "raw Update round trip p50 (context)", Value: round(urtt.P50, 3), Unit: "ms"})
	sc.Details = map[string]any{
		"rest_approve_to_openpr_started": rest, "raw_signal_to_activity_started": sig,
		"raw_update_to_activity_started": upd, "rest_approve_round_trip": rtt, "raw_update_round_trip": urtt,
	}
	sc.note("latency = ActivityTaskStarted event time (history) − the moment the request was sent; one approval at a time, each run to completion before the next")
	sc.note("REST approvals are real: the gofmt recipe's fix, a signed vote by alice through the approve Update, OpenPR on the demo repository")
	sc.note("the raw side is a benchmark-only workflow %q with a no-op activity on task queue %q (worker in the benchmark program)", noopWorkflowName, noopTaskQueue)
	res.approvedID, res.rawID = ids[0], sigIDs[0]
	return sc, res
}

// runHistory measures the history of one approved remediation.
func runHistory(ctx context.Context, s *stack, prev approvalResult, runID string) *scenario {
	sc := &scenario{Name: "history", Title: "7 cost / approval", Params: map[string]any{}}
	id := prev.approvedID
	if id == "" {
		// Scenario 2 did not run: approve one remediation here.
		ar, err := s.approveOne(ctx, "bench-history-"+runID)
		if err != nil {
			sc.Error = err.Error()
			return sc
		}
		id = ar
	}
	events, err := s.history(ctx, id)
	if err != nil {
		sc.Error = err.Error()
		return sc
	}
	var size int
	types := map[string]int{}
	for _, e := range events {
		size += proto.Size(e)
		types[e.GetEventType().String()]++
	}
	sc.Params["remediation"] = id
	sc.add(figure{Name: "history events of one approved remediation", Value: float64(len(events)), Unit: "events", Goal: "≤ 40", Met: met(len(events) <= 40)})
	sc.add(figure{Name: "history bytes (sum of event proto sizes)", Value: float64(size), Unit: "B"})
	sc.Details = map[string]any{"event_types": types}
	if prev.rawID != "" {
		if raw, err := s.history(ctx, prev.rawID); err == nil {
			var rsize int
			for _, e := range raw {
				rsize += proto.Size(e)
			}
			sc.add(figure{Name: "raw no-op approval workflow events (context)", Value: float64(len(raw)), Unit: "events"})
			sc.add(figure{Name: "raw no-op approval workflow bytes (context)", Value: float64(rsize), Unit: "B"})
		}
	}
	sc.note("approved through the API: GenerateFix (gofmt) → CreateDecision → AwaitingApproval → approve Update → OpenPR → RecordOutcome → Completed")
	return sc
}

// approveOne starts one demo remediation, approves it and waits for it to complete.
func (s *stack) approveOne(ctx context.Context, marker string) (string, error) {
	ids, err := s.startDemoRemediations(ctx, marker, 1, 1)
	if err != nil {
		return "", err
	}
	if _, err := s.waitCount(ctx, incidentQuery(marker, fmt.Sprintf("%s = '%s'", workflows.SearchAttrPhase, workflows.PhaseAwaitingApproval)), 1, 2*time.Minute); err != nil {
		return "", err
	}
	st, err := s.status(ctx, ids[0])
	if err != nil || st.Fix == nil {
		return "", fmt.Errorf("status of %s: %v", ids[0], err)
	}
	code, err := s.call(ctx, http.MethodPost, "/api/remediations/"+ids[0]+"/approve", "alice",
		map[string]string{"decision_id": st.DecisionID, "diff_digest": st.Fix.Digest, "base_sha": st.Fix.BaseSHA}, "", nil)
	if err != nil || code != http.StatusOK {
		return "", fmt.Errorf("approve %s: %d %v", ids[0], code, err)
	}
	return ids[0], s.waitDone(ctx, ids[0], nil)
}

// startDemoRemediations starts n remediations of the demo repository's real
// gofmt failure through the API, with distinct Idempotency-Keys, over
// callers concurrent requests. marker becomes their incident id.
func (s *stack) startDemoRemediations(ctx context.Context, marker string, n, callers int) ([]string, error) {
	d := s.dev.Demo
	body, _ := json.Marshal(map[string]string{
		"repo": d.Path, "ref": d.Branch, "failure_summary": d.FailureSummary, "log_excerpt": d.LogExcerpt, "incident_id": marker,
	})
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, callers))
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			req, err := s.request(ctx, http.MethodPost, "/api/remediations", "dev", body, fmt.Sprintf("%s-%d", marker, i))
			if err != nil {
				errs[i] = err
				return
			}
			code, b, err := s.send(req)
			if err != nil {
				errs[i] = err
				return
			}
			if code != http.StatusAccepted {
				errs[i] = fmt.Errorf("POST /api/remediations: %d %s", code, truncate(string(b), 200))
				return
			}
			var out struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(b, &out); err != nil || out.ID == "" {
				errs[i] = fmt.Errorf("POST /api/remediations: no id in %s", truncate(string(b), 200))
				return
			}
			ids[i] = out.ID
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return ids, err
		}
	}
	return ids, nil
}

// waitIdle waits until a workflow's first workflow task completed and none
// is pending: it is blocked waiting, as a remediation at its approval gate.
func (s *stack) waitIdle(ctx context.Context, id string, timeout time.Duration) error {
	return waitIdleOn(ctx, s.raw, id, timeout)
}

// waitDone waits for a workflow's result.
func (s *stack) waitDone(ctx context.Context, id string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := s.raw.GetWorkflow(ctx, id, "").Get(ctx, out); err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	return nil
}

func (s *stack) history(ctx context.Context, id string) ([]*historypb.HistoryEvent, error) {
	it := s.raw.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out []*historypb.HistoryEvent
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", id, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// startLatencies reads, for each workflow, when the activity of the given
// type started (its ActivityTaskStarted event) and subtracts the send time.
func (s *stack) startLatencies(ctx context.Context, ids []string, sent []time.Time, activityType string) ([]time.Duration, error) {
	out := make([]time.Duration, 0, len(ids))
	for i, id := range ids {
		events, err := s.history(ctx, id)
		if err != nil {
			return nil, err
		}
		var scheduled int64
		var started time.Time
		for _, e := range events {
			switch e.GetEventType() {
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				if scheduled == 0 && e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == activityType {
					scheduled = e.GetEventId()
				}
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
				if scheduled != 0 && started.IsZero() && e.GetActivityTaskStartedEventAttributes().GetScheduledEventId() == scheduled {
					started = e.GetEventTime().AsTime()
				}
			}
		}
		if started.IsZero() {
			return nil, fmt.Errorf("%s: no started %s activity in its history", id, activityType)
		}
		out = append(out, started.Sub(sent[i]))
	}
	return out, nil
}
