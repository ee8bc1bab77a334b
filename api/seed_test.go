package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"remediator/activities"
	"remediator/internal/orchestrator"
	"remediator/workflows"
)

// fixDigest is the digest of the fix proposed() reports.
var fixDigest = strings.Repeat("b", 64)

// proposed is a remediation in phase with a validated fix, its risk and
// decision dec_1.
func proposed(id string, phase workflows.Phase) orchestrator.Status {
	st := status(id)
	st.Phase = phase
	st.FailureSummary = "lint: gofmt"
	st.DecisionID = "dec_1"
	st.Fix = &workflows.FixSummary{Recipe: "gofmt", Summary: "gofmt -w main.go", Files: []string{"main.go"}, Digest: fixDigest,
		BaseSHA: "0123456789abcdef0123456789abcdef01234567", Validated: true, Source: "recipe", Validation: "gofmt -l: clean"}
	st.Risk = &workflows.Risk{Level: "LOW", Score: 20, Gate: "ALLOW", Reason: "formatting only"}
	return st
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func decodeInto[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	return v
}

func TestGenerateAnswersLinksUntilTheFixIsReady(t *testing.T) {
	orch := &fakeOrch{}
	h := newTestHandler(t, orch)
	rec, _ := do(t, h, "POST", "/api/generate", devTok,
		`{"repo":"acme/api","prompt":"\n   go vet failed  \nmain.go:3: unreachable code","language":"go"}`)
	if rec.Code != 202 {
		t.Fatalf("not ready: want 202, got %d %s", rec.Code, rec.Body)
	}
	out := decodeInto[generateResponse](t, rec.Body.Bytes())
	if out.ID != "rem-1" || out.DraftID != "rem-1" || out.Ready || out.Fix != nil || out.DecisionGate.Status != "pending" || out.DecisionGate.Approved {
		t.Fatalf("a pending answer: %s", rec.Body)
	}
	if out.Links.Self != "http://x/api/remediations/rem-1" || out.Links.UI != "http://ui/namespaces/default/workflows/rem-1" ||
		rec.Header().Get("Location") != "/api/remediations/rem-1" {
		t.Fatalf("the answer links the remediation: %s (Location %q)", rec.Body, rec.Header().Get("Location"))
	}
	if len(orch.started) != 1 {
		t.Fatalf("one remediation starts: %+v", orch.started)
	}
	s := orch.started[0]
	if s.FailureSummary != "go vet failed" || s.LogExcerpt != "\n   go vet failed  \nmain.go:3: unreachable code" || s.Repo != "acme/api" || s.Requester != "dev" {
		t.Fatalf("the prompt's first line is the failure summary and the prompt the excerpt: %+v", s)
	}
	rec, _ = do(t, h, "POST", "/api/generate", devTok, `{"repo":"acme/api","prompt":"build failed","log_excerpt":"error: x"}`)
	if rec.Code != 202 || orch.started[1].LogExcerpt != "error: x" || orch.started[1].FailureSummary != "build failed" {
		t.Fatalf("a log excerpt given is kept: %d %+v", rec.Code, orch.started[1])
	}
	if len(orch.votes) != 0 {
		t.Fatalf("generating votes nothing: %+v", orch.votes)
	}
}

func TestGenerateAnswersTheFixWhenReady(t *testing.T) {
	orch := &fakeOrch{generateReady: true, statuses: map[string]orchestrator.Status{"rem-1": proposed("rem-1", workflows.PhaseAwaitingApproval)}}
	h := newTestHandler(t, orch)
	rec, _ := do(t, h, "POST", "/api/generate", devTok, `{"repo":"acme/api","prompt":"lint: gofmt"}`)
	if rec.Code != 200 {
		t.Fatalf("ready: want 200, got %d %s", rec.Code, rec.Body)
	}
	out := decodeInto[generateResponse](t, rec.Body.Bytes())
	if !out.Ready || out.DraftID != "rem-1" || out.Phase != workflows.PhaseAwaitingApproval || out.DecisionID != "dec_1" {
		t.Fatalf("ready answer: %s", rec.Body)
	}
	if out.Fix == nil || out.Fix.Digest != fixDigest || out.Fix.Source != "recipe" || out.Risk == nil || out.Risk.Level != "LOW" || out.Risk.Gate != "ALLOW" {
		t.Fatalf("the fix and its risk: %s", rec.Body)
	}
	if out.Summary != "gofmt -w main.go" || !slices.Equal(out.Files, []string{"main.go"}) {
		t.Fatalf("the seed's summary and files: %s", rec.Body)
	}
	if out.DecisionGate != (decisionGate{DecisionID: "dec_1", Status: "pending"}) {
		t.Fatalf("decision gate while awaiting approval: %+v", out.DecisionGate)
	}

	orch.statuses["rem-1"] = proposed("rem-1", workflows.PhaseOpeningPR)
	rec, _ = do(t, h, "POST", "/api/generate", devTok, `{"repo":"acme/api","prompt":"lint: gofmt"}`)
	if out := decodeInto[generateResponse](t, rec.Body.Bytes()); rec.Code != 200 || out.DecisionGate != (decisionGate{DecisionID: "dec_1", Approved: true, Status: "approved"}) {
		t.Fatalf("decision gate once approved: %d %s", rec.Code, rec.Body)
	}

	failed := status("rem-1")
	failed.Phase, failed.Reason = workflows.PhaseFailed, "no recipe applies"
	orch.statuses["rem-1"] = failed
	rec, _ = do(t, h, "POST", "/api/generate", devTok, `{"repo":"acme/api","prompt":"lint: gofmt"}`)
	out = decodeInto[generateResponse](t, rec.Body.Bytes())
	if rec.Code != 200 || out.Fix != nil || out.Summary != "No fix: no recipe applies" || out.Reason != "no recipe applies" ||
		out.DecisionGate.Status != "failed" || out.Files == nil || len(out.Files) != 0 {
		t.Fatalf("an end without a fix: %d %s", rec.Code, rec.Body)
	}
}

func TestGenerateNeedsAPrompt(t *testing.T) {
	orch := &fakeOrch{}
	h := newTestHandler(t, orch)
	big := NewHandler(quietLogger(), orch, Options{Auth: testAuth(t), MaxBodyBytes: 1 << 20, Repos: testRepos()})
	for name, body := range map[string]string{
		"absent":             `{"repo":"acme/api"}`,
		"blank":              `{"repo":"acme/api","prompt":"  \n\t "}`,
		"control characters": `{"repo":"acme/api","prompt":"go vet\u0000 failed"}`,
		"over 64 KiB":        `{"repo":"acme/api","prompt":"` + strings.Repeat("x", 65<<10) + `"}`,
	} {
		rec, eb := do(t, big, "POST", "/api/generate", devTok, body)
		details, _ := eb.Details.(map[string]any)
		if rec.Code != 422 || eb.Error != "validation_failed" || details["prompt"] == nil {
			t.Errorf("%s: want 422 naming prompt, got %d %s", name, rec.Code, rec.Body)
		}
		if _, ok := details["failure_summary"]; ok {
			t.Errorf("%s: the problem is named after the seed's field: %s", name, rec.Body)
		}
	}
	if rec, eb := do(t, h, "POST", "/api/generate", devTok, `{"prompt":"x"}`); rec.Code != 422 || !strings.Contains(rec.Body.String(), `"repo"`) {
		t.Errorf("repo is required: %d %+v", rec.Code, eb)
	}
	if rec, eb := do(t, h, "POST", "/api/generate", devTok, `{"repo":"acme/api","prompt":"x","draft":true}`); rec.Code != 422 || eb.Error != "unknown_field" {
		t.Errorf("unknown fields are refused: %d %+v", rec.Code, eb)
	}
	if len(orch.started) != 0 {
		t.Fatalf("nothing may start: %+v", orch.started)
	}
}

func TestGenerateScopeAndRoles(t *testing.T) {
	orch := &fakeOrch{}
	h := newTestHandler(t, orch)
	body := `{"repo":"acme/api","prompt":"lint: gofmt"}`
	if rec, eb := do(t, h, "POST", "/api/generate", approverTok, body); rec.Code != 403 || eb.Error != "forbidden" {
		t.Fatalf("an approver may not generate: %d %s", rec.Code, rec.Body)
	}
	if rec, _ := do(t, h, "POST", "/api/generate", "", body); rec.Code != 401 {
		t.Fatalf("no credential: %d", rec.Code)
	}
	if rec, eb := do(t, h, "POST", "/api/generate", devTok, `{"repo":"acme/missing","prompt":"x"}`); rec.Code != 422 || eb.Error != "invalid_repository" {
		t.Fatalf("an unknown repository: %d %s", rec.Code, rec.Body)
	}
	if rec, eb := do(t, h, "POST", "/api/generate", teamTok, `{"repo":"other/service","prompt":"x"}`); rec.Code != 422 || eb.Error != "invalid_repository" {
		t.Fatalf("a repository outside the scope answers like an unknown one: %d %s", rec.Code, rec.Body)
	}
	if len(orch.started) != 0 {
		t.Fatalf("nothing may start: %+v", orch.started)
	}

	scoped := &fakeOrch{}
	sh := scopedHandler(t, scoped)
	link := `{"repo":"/srv/git/teamA/linkB","prompt":"gofmt"}`
	if rec, eb := do(t, sh, "POST", "/api/generate", "teamA-token-0123456789abcd", link); rec.Code != 422 || eb.Error != "invalid_repository" {
		t.Fatalf("team A through a link into team B: %d %s", rec.Code, rec.Body)
	}
	if len(scoped.started) != 0 {
		t.Fatal("nothing may start through the link")
	}
	if rec, _ := do(t, sh, "POST", "/api/generate", "teamB-token-0123456789abcd", link); rec.Code != 202 {
		t.Fatalf("team B: %d %s", rec.Code, rec.Body)
	}
	if len(scoped.started) != 1 || scoped.started[0].Repo != "/srv/git/teamB/repo2" {
		t.Fatalf("the workflow gets the canonical repository: %+v", scoped.started)
	}
}

func TestPRAnswersWithTheChangeAndNeverOpensOne(t *testing.T) {
	opened := proposed("rem-pr", workflows.PhaseCompleted)
	opened.PR = &activities.PullRequest{ID: "7", URL: "https://github.com/acme/api/pull/7", Branch: "autofix/rem-pr", HeadSHA: "abc1234", Created: true}
	rejected := proposed("rem-rej", workflows.PhaseRejected)
	rejected.Reason = "rejected by alice: breaks the build"
	generating := status("rem-gen")
	generating.Phase = workflows.PhaseGeneratingFix
	orch := &fakeOrch{statuses: map[string]orchestrator.Status{
		"rem-pr": opened, "rem-rej": rejected, "rem-gen": generating,
		"rem-open": proposed("rem-open", workflows.PhaseOpeningPR),
	}}
	h := newTestHandler(t, orch)

	rec, _ := do(t, h, "POST", "/api/pr", devTok, `{"remediation_id":"rem-pr","repo":"acme/api","branch":"main","title":"Fix","description":"x"}`)
	out := decodeInto[prResponse](t, rec.Body.Bytes())
	if rec.Code != 200 || out.Status != "opened" || out.PRURL != "https://github.com/acme/api/pull/7" || out.PRID != "7" || out.RemediationID != "rem-pr" ||
		!out.DecisionGate.Approved || out.Links.Self != "http://x/api/remediations/rem-pr" {
		t.Fatalf("an opened change: %d %s", rec.Code, rec.Body)
	}
	for id, want := range map[string]string{"rem-1": "pending_approval", "rem-open": "opening", "rem-gen": "generating"} {
		rec, _ := do(t, h, "POST", "/api/pr", approverTok, `{"draft_id":"`+id+`"}`)
		out := decodeInto[prResponse](t, rec.Body.Bytes())
		if rec.Code != 202 || out.Status != want || out.PRURL != "" || out.RemediationID != id {
			t.Errorf("%s: want 202 %s, got %d %s", id, want, rec.Code, rec.Body)
		}
	}
	rec, eb := do(t, h, "POST", "/api/pr", devTok, `{"remediation_id":"rem-rej"}`)
	details, _ := eb.Details.(map[string]any)
	if rec.Code != 409 || eb.Error != "already_ended" || details["phase"] != "Rejected" || details["reason"] != rejected.Reason {
		t.Fatalf("a rejected remediation: %d %s", rec.Code, rec.Body)
	}
	if rec, eb := do(t, h, "POST", "/api/pr", devTok, `{"title":"Fix"}`); rec.Code != 422 || !strings.Contains(rec.Body.String(), "remediation_id") {
		t.Fatalf("an id is required: %d %+v", rec.Code, eb)
	}
	if rec, eb := do(t, h, "POST", "/api/pr", teamTok, `{"remediation_id":"rem-other"}`); rec.Code != 404 || eb.Error != "not_found" {
		t.Fatalf("another team's remediation: %d %s", rec.Code, rec.Body)
	}
	if rec, _ := do(t, h, "POST", "/api/pr", teamTok, `{"draft_id":"rem-pr"}`); rec.Code != 200 {
		t.Fatalf("the team's own remediation: %d %s", rec.Code, rec.Body)
	}
	if len(orch.votes) != 0 || len(orch.started) != 0 || len(orch.cancelled) != 0 {
		t.Fatalf("/api/pr acts on nothing: votes %+v started %+v cancelled %v", orch.votes, orch.started, orch.cancelled)
	}
}

func TestApprovalsVoteAsTheCaller(t *testing.T) {
	orch := &fakeOrch{}
	h := newTestHandler(t, orch)
	digest := strings.Repeat("a", 64)
	body := `{"remediation_id":"rem-1","decision_id":"dec_1","diff_digest":"` + digest + `","base_sha":"` + testBase + `","approved":true,"approver":"root","comment":"lgtm"}`
	if rec, eb := do(t, h, "POST", "/api/approvals", devTok, body); rec.Code != 403 || eb.Error != "forbidden" {
		t.Fatalf("a developer may not vote: %d %s", rec.Code, rec.Body)
	}
	rec, _ := do(t, h, "POST", "/api/approvals", approverTok, body, "Idempotency-Key", "seed-vote-7")
	if rec.Code != 200 || len(orch.votes) != 1 {
		t.Fatalf("approve: %d %s", rec.Code, rec.Body)
	}
	v := orch.votes[0]
	if v.Actor != "alice" || !slices.Equal(v.Roles, []string{"approver"}) || !v.Approve || v.ID != "rem-1" || v.DecisionID != "dec_1" ||
		v.DiffDigest != digest || v.Comment != "lgtm" || v.Reason != "" || v.RequestID != "seed-vote-7" {
		t.Fatalf("the vote is the caller's, whatever the body's approver says: %+v", v)
	}
	if st := decodeInto[statusResponse](t, rec.Body.Bytes()); st.ID != "rem-1" || st.Links.Self != "http://x/api/remediations/rem-1" {
		t.Fatalf("answered with the status: %s", rec.Body)
	}
	if rec, eb := do(t, h, "POST", "/api/approvals", teamTok, strings.Replace(body, "rem-1", "rem-other", 1)); rec.Code != 404 || eb.Error != "not_found" {
		t.Fatalf("another team's remediation: %d %s", rec.Code, rec.Body)
	}
	if len(orch.votes) != 1 {
		t.Fatalf("refused requests vote nothing: %+v", orch.votes[1:])
	}
}

func TestApprovalsRejectionNeedsAReason(t *testing.T) {
	orch := &fakeOrch{}
	h := newTestHandler(t, orch)
	base := `{"remediation_id":"rem-1","decision_id":"dec_1","diff_digest":"` + strings.Repeat("a", 64) + `","base_sha":"` + testBase + `","approved":false`
	for _, body := range []string{base + `}`, base + `,"reason":"  "}`} {
		rec, eb := do(t, h, "POST", "/api/approvals", approverTok, body)
		details, _ := eb.Details.(map[string]any)
		if rec.Code != 422 || details["reason"] == nil {
			t.Errorf("%s: want 422 naming reason, got %d %s", body, rec.Code, rec.Body)
		}
	}
	if len(orch.votes) != 0 {
		t.Fatalf("a rejection without a reason votes nothing: %+v", orch.votes)
	}
	for field, want := range map[string]string{
		`,"reason":"breaks the build"`:                   "breaks the build",
		`,"justification":"flaky"`:                       "flaky",
		`,"comment":"not this way"`:                      "not this way",
		`,"comment":"c","justification":"j","reason":""`: "j",
	} {
		orch.votes = nil
		rec, _ := do(t, h, "POST", "/api/approvals", approverTok, base+field+`}`)
		if rec.Code != 200 || len(orch.votes) != 1 || orch.votes[0].Approve || orch.votes[0].Reason != want {
			t.Errorf("%s: want a reject with reason %q, got %d %+v", field, want, rec.Code, orch.votes)
		}
	}
	if rec, eb := do(t, h, "POST", "/api/approvals", approverTok, `{"remediation_id":"rem-1","decision_id":"dec_1"}`); rec.Code != 422 || !strings.Contains(rec.Body.String(), `"approved"`) {
		t.Fatalf("approved is required: %d %+v", rec.Code, eb)
	}
}

func TestApprovalsFindTheRemediationAndItsDigest(t *testing.T) {
	orch := &fakeOrch{statuses: map[string]orchestrator.Status{"rem-1": proposed("rem-1", workflows.PhaseAwaitingApproval),
		"rem-inc": proposed("rem-inc", workflows.PhaseAwaitingApproval)}}
	h := newTestHandler(t, orch)
	digest := strings.Repeat("a", 64)
	rec, _ := do(t, h, "POST", "/api/approvals", approverTok, `{"incident_id":"INC-1","decision_id":"dec_1","diff_digest":"`+digest+`","approved":true}`)
	if rec.Code != 200 || len(orch.votes) != 1 || orch.votes[0].ID != "rem-inc" {
		t.Fatalf("the incident names the remediation: %d %s %+v", rec.Code, rec.Body, orch.votes)
	}
	if rec, eb := do(t, h, "POST", "/api/approvals", approverTok, `{"incident_id":"INC-404","decision_id":"dec_1","approved":true}`); rec.Code != 404 || eb.Error != "not_found" {
		t.Fatalf("an incident without a remediation: %d %s", rec.Code, rec.Body)
	}
	if rec, _ := do(t, h, "POST", "/api/approvals", approverTok, `{"decision_id":"dec_1","approved":true}`); rec.Code != 422 || !strings.Contains(rec.Body.String(), "remediation_id") {
		t.Fatalf("a remediation or incident is required: %d %s", rec.Code, rec.Body)
	}

	orch.votes = nil
	rec, _ = do(t, h, "POST", "/api/approvals", approverTok, `{"remediation_id":"rem-1","decision_id":"dec_1","approved":true}`)
	if rec.Code != 200 || len(orch.votes) != 1 || orch.votes[0].DiffDigest != fixDigest || orch.votes[0].DecisionID != "dec_1" {
		t.Fatalf("without a digest the vote is for the decision's fix: %d %s %+v", rec.Code, rec.Body, orch.votes)
	}
	for _, body := range []string{
		`{"remediation_id":"rem-1","decision_id":"dec_2","approved":true}`, // another decision
		`{"remediation_id":"rem-2","decision_id":"dec_1","approved":true}`, // no fix yet
	} {
		if rec, eb := do(t, h, "POST", "/api/approvals", approverTok, body); rec.Code != 409 || eb.Error != "stale_vote" {
			t.Errorf("%s: want 409 stale_vote, got %d %s", body, rec.Code, rec.Body)
		}
	}
	if len(orch.votes) != 1 {
		t.Fatalf("stale requests vote nothing: %+v", orch.votes[1:])
	}
}
