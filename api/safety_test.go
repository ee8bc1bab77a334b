package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"remediator/internal/audit"
	"remediator/internal/errcode"
	"remediator/internal/orchestrator"
	"remediator/workflows"
)

// A vote names the base commit it was cast for; without one it never
// reaches the workflow, with one the workflow gets it.
func TestVoteNamesTheBase(t *testing.T) {
	orch := &fakeOrch{}
	h := newTestHandler(t, orch)
	noBase := `{"decision_id":"dec_1","diff_digest":"` + strings.Repeat("a", 64) + `"}`
	if rec, eb := do(t, h, "POST", "/api/remediations/rem-1/approve", approverTok, noBase); rec.Code != 422 || !strings.Contains(rec.Body.String(), "base_sha") {
		t.Fatalf("a vote without base_sha: %d %s %+v", rec.Code, rec.Body, eb)
	}
	short := `{"decision_id":"dec_1","diff_digest":"` + strings.Repeat("a", 64) + `","base_sha":"abc123"}`
	if rec, _ := do(t, h, "POST", "/api/remediations/rem-1/approve", approverTok, short); rec.Code != 422 {
		t.Fatalf("an abbreviated base: %d %s", rec.Code, rec.Body)
	}
	if len(orch.votes) != 0 {
		t.Fatalf("refused votes reached the workflow: %+v", orch.votes)
	}
	if rec, _ := do(t, h, "POST", "/api/remediations/rem-1/approve", approverTok, validVote); rec.Code != 200 || len(orch.votes) != 1 || orch.votes[0].BaseSHA != testBase ||
		orch.votes[0].Channel != workflows.ChannelAPI {
		t.Fatalf("the vote carries its base: %d %s %+v", rec.Code, rec.Body, orch.votes)
	}
	// The remediator client labels its votes; the label is all it sets.
	if rec, _ := do(t, h, "POST", "/api/remediations/rem-1/approve", approverTok, validVote, "X-Remediator-Channel", "cli"); rec.Code != 200 || orch.votes[1].Channel != workflows.ChannelCLI ||
		orch.votes[1].Actor != "alice" {
		t.Fatalf("a vote from the client: %d %+v", rec.Code, orch.votes)
	}
}

// regenerate: developers only, naming the fix it replaces; the caller is
// the actor.
func TestRegenerateRoute(t *testing.T) {
	orch := &fakeOrch{}
	h := newTestHandler(t, orch)
	body := `{"decision_id":"dec_1","diff_digest":"` + strings.Repeat("a", 64) + `","base_sha":"` + testBase + `","reason":"the fix misses a file","actor":"root"}`
	if rec, _ := do(t, h, "POST", "/api/remediations/rem-1/regenerate", devTok, body); rec.Code != 422 {
		t.Fatalf("the body cannot name the actor: %d %s", rec.Code, rec.Body)
	}
	body = `{"decision_id":"dec_1","diff_digest":"` + strings.Repeat("a", 64) + `","base_sha":"` + testBase + `","reason":"the fix misses a file"}`
	if rec, eb := do(t, h, "POST", "/api/remediations/rem-1/regenerate", approverTok, body); rec.Code != 403 {
		t.Fatalf("an approver may not regenerate: %d %+v", rec.Code, eb)
	}
	if rec, _ := do(t, h, "POST", "/api/remediations/rem-1/regenerate", devTok, `{"decision_id":"dec_1","diff_digest":"`+strings.Repeat("a", 64)+`"}`); rec.Code != 422 {
		t.Fatalf("without the base: %d %s", rec.Code, rec.Body)
	}
	if rec, _ := do(t, h, "POST", "/api/remediations/rem-1/regenerate", devTok, body); rec.Code != 200 {
		t.Fatalf("regenerate: %d %s", rec.Code, rec.Body)
	}
	if len(orch.regenerated) != 1 || orch.regenerated[0].Actor != "dev" || orch.regenerated[0].BaseSHA != testBase || orch.regenerated[0].Reason != "the fix misses a file" {
		t.Fatalf("regenerate requests: %+v", orch.regenerated)
	}
	if rec, _ := do(t, h, "POST", "/api/remediations/rem-other/regenerate", teamTok, body); rec.Code != 404 {
		t.Fatalf("out of scope: %d", rec.Code)
	}
}

// The audit route serves the workflow's events and the store's records of
// the remediation; a vote the workflow refused is recorded by the API.
func TestAuditRouteAndRefusalsRecorded(t *testing.T) {
	store, err := audit.OpenFile(filepath.Join(t.TempDir(), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	orch := &fakeOrch{audit: []workflows.AuditEvent{{ID: "rem-1/1", RemediationID: "rem-1", Seq: 1, Kind: "started", At: time.Now().UTC()}}}
	h := NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), orch, Options{Auth: testAuth(t), MaxBodyBytes: 4096, Repos: testRepos(), Audit: store})
	orch.err = &orchestrator.RejectedError{Code: errcode.SelfApproval, Message: "the requester cannot approve their own remediation"}
	if rec, _ := do(t, h, "POST", "/api/remediations/rem-1/approve", approverTok, validVote); rec.Code != 403 {
		t.Fatalf("refused vote: %d %s", rec.Code, rec.Body)
	}
	orch.err = nil
	rec, _ := do(t, h, "GET", "/api/remediations/rem-1/audit", devTok, "")
	if rec.Code != 200 {
		t.Fatalf("audit: %d %s", rec.Code, rec.Body)
	}
	var got auditResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Events) != 1 || got.Events[0].Kind != "started" {
		t.Fatalf("events: %+v", got.Events)
	}
	if len(got.Stored) != 1 || got.Stored[0].Kind != "refused" || got.Stored[0].Actor != "alice" || got.Stored[0].Channel != workflows.ChannelAPI ||
		!strings.Contains(got.Stored[0].Detail, "self_approval") || got.Stored[0].Hash == "" {
		t.Fatalf("the refusal is in the store: %+v", got.Stored)
	}
	rep, err := store.Verify(context.Background())
	if err != nil || !rep.OK {
		t.Fatalf("chain: %+v %v", rep, err)
	}
	if rec, _ := do(t, h, "GET", "/api/remediations/rem-other/audit", teamTok, ""); rec.Code != 404 {
		t.Fatalf("out of scope: %d", rec.Code)
	}
}

// A failed workflow_run names its line (repository, CI workflow, branch,
// time): a new remediation supersedes the older ones there; a duplicate
// delivery supersedes nothing.
func TestGitHubFailureSupersedesOlderOnItsLine(t *testing.T) {
	orch := &fakeOrch{}
	h := githubHandler(t, orch, "s3cret")
	run := `{"action":"completed","repository":{"full_name":"acme/api"},"workflow_run":{"id":43,"workflow_id":7,"name":"CI","conclusion":"failure","head_branch":"main","head_sha":"1123456789abcdef0123456789abcdef01234567","html_url":"https://example.invalid/run/43","created_at":"2026-12-01T10:00:00Z"}}`
	if rec := postGitHub(t, h, "workflow_run", "d-2", sign("s3cret", run), run); rec.Code != 202 {
		t.Fatalf("delivery: %d %s", rec.Code, rec.Body)
	}
	if len(orch.started) != 1 || orch.started[0].Line == nil || orch.started[0].Line.Branch != "main" || orch.started[0].Line.Workflow != "workflow:7" {
		t.Fatalf("start: %+v", orch.started)
	}
	if len(orch.superseded) != 1 || !orch.superseded[0].At.Equal(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("superseded: %+v", orch.superseded)
	}
	orch.existing = true
	if rec := postGitHub(t, h, "workflow_run", "d-3", sign("s3cret", run), run); rec.Code != 202 || len(orch.superseded) != 1 {
		t.Fatalf("a duplicate supersedes nothing: %d %+v", rec.Code, orch.superseded)
	}
}
