package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"remediator/internal/errcode"
	"remediator/internal/orchestrator"
	"remediator/workflows"
)

// capRefusal is what the orchestrator returns when the repository's
// coordinator refuses a start that would create a run.
func capRefusal(limit string) error {
	return &orchestrator.AdmissionRefusedError{
		RejectedError: orchestrator.RejectedError{Code: errcode.RepoCapReached, Message: "the repository has reached its cap of 5 active remediations; retry when one ends"},
		Repo:          "acme/api", RemediationID: "rem-1", Limit: limit, RetryAfter: 90500 * time.Millisecond,
		Active: 5, MaxActive: 5, StartedLastHour: 7, MaxPerHour: 60,
	}
}

// refusedCount sums remediator_admission_refused_total{reason}.
func refusedCount(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "remediator_admission_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// TestRepoCapREST: over the repository's cap a start answers 429
// repo_cap_reached in the one error shape, with Retry-After and the counts,
// and the refusal is counted by cap.
func TestRepoCapREST(t *testing.T) {
	orch := &fakeOrch{err: capRefusal(workflows.CapMaxActive)}
	reg := prometheus.NewRegistry()
	h := NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), orch, Options{Auth: testAuth(t), Repos: testRepos(), Registerer: reg,
		GitLabWebhookToken: []byte("gl-hook-secret")})
	rec, eb := do(t, h, "POST", "/api/remediations", devTok, validStart)
	if rec.Code != 429 || eb.Error != "repo_cap_reached" || !strings.Contains(eb.Message, "cap of 5 active") || eb.CorrelationID == "" {
		t.Fatalf("start over the cap: %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get("Retry-After") != "91" {
		t.Fatalf("Retry-After rounds up to whole seconds: %q", rec.Header().Get("Retry-After"))
	}
	var body struct {
		Details map[string]any `json:"details"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	if body.Details["limit"] != "max_active" || body.Details["active"] != 5.0 || body.Details["max_active"] != 5.0 ||
		body.Details["started_last_hour"] != 7.0 || body.Details["max_per_hour"] != 60.0 || body.Details["retry_after_seconds"] != 91.0 {
		t.Fatalf("details: %v", body.Details)
	}
	// CI events and the generic alert answer the same way.
	generic := `{"source":"prom","severity":"page","title":"t","description":"d","repository":"acme/api"}`
	if rec := postIntake(t, h, "/api/observability/alert", devTok, generic); rec.Code != 429 || !strings.Contains(rec.Body.String(), `"repo_cap_reached"`) {
		t.Fatalf("generic alert: %d %s", rec.Code, rec.Body)
	}
	ci := `{"provider":"ci","status":"failed","project":"acme/api","pipeline_id":"7","sha":"` + sha40 + `"}`
	if rec := postIntake(t, h, "/api/ci/event", devTok, ci); rec.Code != 429 || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("ci event: %d %s", rec.Code, rec.Body)
	}
	if rec, eb := do(t, h, "POST", "/api/generate", devTok, `{"repo":"acme/api","prompt":"gofmt check failed"}`); rec.Code != 429 || eb.Error != "repo_cap_reached" {
		t.Fatalf("generate: %d %s", rec.Code, rec.Body)
	}
	if got := refusedCount(t, reg, workflows.CapMaxActive); got != 4 {
		t.Fatalf("refusals counted: %v, want 4", got)
	}
	// Other errors are not counted.
	orch.err = orchestrator.ErrUnavailable
	_, _ = do(t, h, "POST", "/api/remediations", devTok, validStart)
	if got := refusedCount(t, reg, workflows.CapMaxActive); got != 4 {
		t.Fatalf("an outage counted as a refusal: %v", got)
	}
}

// TestRepoCapAlertmanager: an Alertmanager delivery stays 202; each alert
// over the cap is refused in its result with code repo_cap_reached, so a
// client tells it from other refusals.
func TestRepoCapAlertmanager(t *testing.T) {
	orch := &fakeOrch{err: capRefusal(workflows.CapMaxPerHour)}
	reg := prometheus.NewRegistry()
	h := intakeHandler(t, orch, reg)
	body := `{"version":"4","status":"firing","alerts":[` +
		`{"status":"firing","labels":{"alertname":"LintBroken","repository":"acme/api"},"startsAt":"2026-11-26T10:00:00Z","fingerprint":"a1b2c3d4e5f60718"},` +
		`{"status":"firing","labels":{"alertname":"Orphan"},"startsAt":"2026-11-26T10:02:00Z","fingerprint":"c1b2c3d4e5f60718"}]}`
	rec := postIntake(t, h, "/api/observability/alert", devTok, body)
	if rec.Code != 202 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var out alertResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Results) != 2 {
		t.Fatalf("%v %s", err, rec.Body)
	}
	capped, unrouted := out.Results[0], out.Results[1]
	if capped.Status != "refused" || capped.Code != "repo_cap_reached" || !strings.Contains(capped.Reason, "cap of 5") || capped.WorkflowID != "" {
		t.Fatalf("the capped alert: %+v", capped)
	}
	if unrouted.Status != "refused" || unrouted.Code != "" {
		t.Fatalf("an unrouted alert has no cap code: %+v", unrouted)
	}
	if got := refusedCount(t, reg, workflows.CapMaxPerHour); got != 1 {
		t.Fatalf("refusals counted: %v", got)
	}
}
