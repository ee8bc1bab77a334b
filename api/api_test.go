package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"remediator/activities"
	"remediator/internal/auth"
	"remediator/internal/config"
	"remediator/internal/errcode"
	"remediator/internal/orchestrator"
	"remediator/workflows"
)

// fakeOrch records what the handlers pass on; the real orchestrator is
// exercised against a real Temporal server in internal/e2e.
type fakeOrch struct {
	started   []orchestrator.StartRequest
	votes     []orchestrator.Vote
	cancelled []string
	lists     []orchestrator.ListFilter
	resolved  []string
	attached  []string
	existing  bool // Start answers that the remediation existed
	err       error
	// generateReady makes Generate answer with a proposal.
	generateReady bool
	// statuses replace the default status of these ids, in Get and in
	// Decide's answer.
	statuses map[string]orchestrator.Status
	// regenerated, audit and superseded serve the change-safety calls.
	regenerated []orchestrator.RegenerateRequest
	audit       []workflows.AuditEvent
	superseded  []orchestrator.Line
}

// statusOf is the status the fake reports for id.
func (f *fakeOrch) statusOf(id string) orchestrator.Status {
	if st, ok := f.statuses[id]; ok {
		return st
	}
	return status(id)
}

// repoOf: remediations whose id ends in "other" belong to another team.
func repoOf(id string) string {
	if strings.HasSuffix(id, "other") {
		return "other/service"
	}
	return "acme/api"
}

func (f *fakeOrch) Start(_ context.Context, r orchestrator.StartRequest) (orchestrator.StartResult, error) {
	f.started = append(f.started, r)
	return orchestrator.StartResult{ID: "rem-1", Phase: workflows.PhaseReceived, Existing: f.existing}, f.err
}

// status is what the workflow reports: phase, requester, times and an empty
// vote list are always set.
func status(id string) orchestrator.Status {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	return orchestrator.Status{ID: id, Phase: workflows.PhaseAwaitingApproval, Repo: repoOf(id), Requester: "dev",
		RequiredApprovals: 1, Votes: []activities.Vote{}, CreatedAt: now, UpdatedAt: now}
}

func (f *fakeOrch) Get(_ context.Context, id string) (orchestrator.Status, error) {
	return f.statusOf(id), f.err
}

// RepoOf succeeds so that error-mapping tests reach the call under test.
func (f *fakeOrch) RepoOf(_ context.Context, id string) (string, error) { return repoOf(id), nil }
func (f *fakeOrch) Decide(_ context.Context, v orchestrator.Vote) (orchestrator.Status, error) {
	f.votes = append(f.votes, v)
	return f.statusOf(v.ID), f.err
}
func (f *fakeOrch) Cancel(_ context.Context, id string) error {
	f.cancelled = append(f.cancelled, id)
	return f.err
}
func (f *fakeOrch) List(_ context.Context, lf orchestrator.ListFilter) (orchestrator.ListResult, error) {
	f.lists = append(f.lists, lf)
	return orchestrator.ListResult{Items: []orchestrator.Summary{{ID: "rem-a", Repo: "acme/api"}, {ID: "rem-other", Repo: "other/service"}}}, f.err
}
func (f *fakeOrch) Ready(context.Context) error { return f.err }

// Generate starts like Start and, with ready set, answers with the status.
func (f *fakeOrch) Generate(ctx context.Context, r orchestrator.StartRequest, _ time.Duration) (orchestrator.StartResult, orchestrator.Status, bool, error) {
	res, err := f.Start(ctx, r)
	st := status(res.ID)
	return res, st, f.generateReady, err
}

// FindByIncident finds "rem-inc" for incident INC-1 and nothing else.
func (f *fakeOrch) FindByIncident(_ context.Context, id string, _ orchestrator.Scope) (string, error) {
	if id == "INC-1" {
		return "rem-inc", nil
	}
	return "", orchestrator.ErrNotFound
}
func (f *fakeOrch) Namespace() string { return "default" }

const (
	devTok      = "developer-token-0123456789"
	approverTok = "approver-token-0123456789"
	adminTok    = "admin-token-0123456789abc"
)

// teamTok is an approver+admin token scoped to acme/* repositories.
const teamTok = "team-token-0123456789abcdef"

func testAuth(t *testing.T) *auth.Authenticator {
	t.Helper()
	toks, err := config.ParseTokens("dev:developer:" + devTok + ",alice:approver:" + approverTok + ",root:admin:" + adminTok)
	if err != nil {
		t.Fatal(err)
	}
	team, err := auth.NewStaticToken("team-a", teamTok, []string{"developer", "approver", "admin"}, []string{"acme/*"})
	if err != nil {
		t.Fatal(err)
	}
	return &auth.Authenticator{Tokens: append(toks, team)}
}

func newTestHandler(t *testing.T, orch *fakeOrch) http.Handler {
	t.Helper()
	return NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), orch, Options{Auth: testAuth(t), MaxBodyBytes: 4096, PublicURL: "http://x", UIURL: "http://ui", Repos: testRepos()})
}

func do(t *testing.T, h http.Handler, method, path, token, body string, hdr ...string) (*httptest.ResponseRecorder, errorBody) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := serve(t, h, req)
	var eb errorBody
	_ = json.Unmarshal(rec.Body.Bytes(), &eb)
	return rec, eb
}

const validStart = `{"repo":"acme/api","ref":"main","failure_summary":"lint: gofmt","log_excerpt":"main.go"}`

// testBase is the base commit the test votes name.
var testBase = strings.Repeat("b", 40)

var validVote = `{"decision_id":"dec_1","diff_digest":"` + strings.Repeat("a", 64) + `","base_sha":"` + testBase + `"}`

func TestRolesPerRoute(t *testing.T) {
	h := newTestHandler(t, &fakeOrch{})
	reject := `{"decision_id":"dec_1","diff_digest":"` + strings.Repeat("a", 64) + `","base_sha":"` + testBase + `","reason":"no"}`
	cases := []struct {
		method, path, body string
		want               map[string]int // token -> status
	}{
		{"POST", "/api/remediations", validStart, map[string]int{"": 401, devTok: 202, approverTok: 403, adminTok: 202}},
		{"GET", "/api/remediations", "", map[string]int{"": 401, devTok: 200, approverTok: 200, adminTok: 200}},
		{"GET", "/api/remediations/rem-1", "", map[string]int{"": 401, devTok: 200, approverTok: 200, adminTok: 200}},
		{"POST", "/api/remediations/rem-1/approve", validVote, map[string]int{"": 401, devTok: 403, approverTok: 200, adminTok: 200}},
		{"POST", "/api/remediations/rem-1/reject", reject, map[string]int{"": 401, devTok: 403, approverTok: 200, adminTok: 200}},
		{"POST", "/api/remediations/rem-1/cancel", "", map[string]int{"": 401, devTok: 403, approverTok: 403, adminTok: 202}},
		{"GET", "/livez", "", map[string]int{"": 200}},
		{"GET", "/readyz", "", map[string]int{"": 200}},
		{"GET", "/health", "", map[string]int{"": 200}},
		{"GET", "/openapi.yaml", "", map[string]int{"": 200}},
		{"GET", "/api/decisions/dec_1", "", map[string]int{"": 401, devTok: 404, approverTok: 404, adminTok: 404}},
	}
	for _, tc := range cases {
		for tok, want := range tc.want {
			rec, eb := do(t, h, tc.method, tc.path, tok, tc.body)
			if rec.Code != want {
				t.Errorf("%s %s as %q: want %d, got %d %s", tc.method, tc.path, tok, want, rec.Code, rec.Body)
			}
			if rec.Code >= 400 && (eb.Error == "" || eb.CorrelationID == "") {
				t.Errorf("%s %s: error body lacks code or correlation id: %s", tc.method, tc.path, rec.Body)
			}
			if rec.Code == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		}
	}
	if rec, _ := do(t, h, "GET", "/api/remediations", "wrong-token-0123456789", ""); rec.Code != 401 {
		t.Errorf("unknown token: %d", rec.Code)
	}
}

func TestIdentityComesFromTheToken(t *testing.T) {
	orch := &fakeOrch{}
	h := newTestHandler(t, orch)
	rec, eb := do(t, h, "POST", "/api/remediations/rem-1/approve", approverTok,
		`{"decision_id":"dec_1","diff_digest":"`+strings.Repeat("a", 64)+`","base_sha":"`+testBase+`","actor":"root"}`)
	if rec.Code != 422 || eb.Error != "unknown_field" {
		t.Fatalf("a body naming an actor must be refused: %d %s", rec.Code, rec.Body)
	}
	rec, _ = do(t, h, "POST", "/api/remediations/rem-1/approve", approverTok, validVote, "Idempotency-Key", "k1")
	if rec.Code != 200 || len(orch.votes) != 1 {
		t.Fatalf("approve: %d %s", rec.Code, rec.Body)
	}
	v := orch.votes[0]
	if v.Actor != "alice" || v.Roles[0] != "approver" || !v.Approve || v.RequestID != "k1" {
		t.Fatalf("vote: %+v", v)
	}
	rec, _ = do(t, h, "POST", "/api/remediations", devTok, validStart)
	if rec.Code != 202 || orch.started[0].Requester != "dev" {
		t.Fatalf("start: %d %+v", rec.Code, orch.started)
	}
}

func TestBodiesAreStrict(t *testing.T) {
	h := newTestHandler(t, &fakeOrch{})
	cases := []struct {
		name, body, ctype string
		want              int
	}{
		{"over the cap", `{"repo":"` + strings.Repeat("a", 5000) + `"}`, "", 413},
		{"trailing junk after valid object", validStart + `garbage`, "", 400},
		{"second object", validStart + `{}`, "", 400},
		{"unknown field", `{"repo":"/x","failure_summary":"y","extra":1}`, "", 422},
		{"malformed", `{"repo":`, "", 400},
		{"wrong type", `{"repo":5}`, "", 422},
		{"not json", `repo=x`, "application/x-www-form-urlencoded", 415},
		{"no content type", validStart, "none", 415},
		{"null", `null`, "", 400},
		{"array", `[]`, "", 400},
		{"missing fields", `{}`, "", 422},
		{"bad sha", `{"repo":"/x","failure_summary":"y","sha":"XYZ"}`, "", 422},
		{"bad ref", `{"repo":"/x","failure_summary":"y","ref":"a..b"}`, "", 422},
		{"traversal", `{"repo":"/data/../etc","failure_summary":"y"}`, "", 422},
		{"NUL in repo", `{"repo":"/x\u0000","failure_summary":"y"}`, "", 422},
		{"deadline too short", `{"repo":"/x","failure_summary":"y","deadline":"5s"}`, "", 422},
		{"deadline garbage", `{"repo":"/x","failure_summary":"y","deadline":"tomorrow"}`, "", 422},
	}
	for _, tc := range cases {
		req := httptest.NewRequest("POST", "/api/remediations", strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+devTok)
		ct := tc.ctype
		if ct == "" {
			ct = "application/json"
		}
		if ct != "none" {
			req.Header.Set("Content-Type", ct)
		}
		rec := serve(t, h, req)
		if rec.Code != tc.want {
			t.Errorf("%s: want %d, got %d %s", tc.name, tc.want, rec.Code, rec.Body)
		}
	}
	rec, eb := do(t, h, "POST", "/api/remediations/rem-1/reject", approverTok, validVote)
	if rec.Code != 422 || eb.Details == nil {
		t.Fatalf("reject without reason: %d %s", rec.Code, rec.Body)
	}
}

func TestErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
		code string
	}{
		{&orchestrator.RejectedError{Code: errcode.SelfApproval, Message: "no"}, 403, "self_approval"},
		{&orchestrator.RejectedError{Code: errcode.DuplicateVote, Message: "no"}, 409, "duplicate_vote"},
		{&orchestrator.RejectedError{Code: errcode.InvalidVote, Message: "no"}, 422, "invalid_vote"},
		{&orchestrator.RejectedError{Message: "a refusal without a code is a bug"}, 500, "internal"},
		{orchestrator.ErrNotFound, 404, "not_found"},
		{orchestrator.ErrUnavailable, 503, "temporal_unavailable"},
		{io.ErrUnexpectedEOF, 500, "internal"},
	} {
		h := newTestHandler(t, &fakeOrch{err: tc.err})
		rec, eb := do(t, h, "POST", "/api/remediations/rem-1/approve", approverTok, validVote)
		if rec.Code != tc.want || eb.Error != tc.code {
			t.Errorf("%v: want %d %s, got %d %s", tc.err, tc.want, tc.code, rec.Code, rec.Body)
		}
		if tc.want == 500 && strings.Contains(rec.Body.String(), "unexpected EOF") {
			t.Errorf("500 body leaks the internal error: %s", rec.Body)
		}
	}
	h := newTestHandler(t, &fakeOrch{err: &orchestrator.RejectedError{Code: errcode.InvalidPageToken, Message: "page_token is not valid"}})
	if rec, eb := do(t, h, "GET", "/api/remediations?page_token=zz", approverTok, ""); rec.Code != 400 || eb.Error != "invalid_page_token" {
		t.Errorf("a bad page token: want 400 invalid_page_token, got %d %s", rec.Code, rec.Body)
	}
	// Callers that only ask which kind of refusal it was keep working.
	for code, sentinel := range map[errcode.Code]error{errcode.StaleVote: orchestrator.ErrConflict, errcode.SelfApproval: orchestrator.ErrForbidden,
		errcode.InvalidVote: orchestrator.ErrInvalid, errcode.InvalidPageToken: orchestrator.ErrInvalid} {
		if err := error(&orchestrator.RejectedError{Code: code}); !errors.Is(err, sentinel) {
			t.Errorf("%s: errors.Is(err, %v) must hold", code, sentinel)
		}
	}
	if errors.Is(&orchestrator.RejectedError{Code: errcode.StaleVote}, orchestrator.ErrForbidden) {
		t.Error("a conflict is not forbidden")
	}
	h = newTestHandler(t, &fakeOrch{err: orchestrator.ErrUnavailable})
	if rec, _ := do(t, h, "GET", "/readyz", "", ""); rec.Code != 503 {
		t.Errorf("readyz must fail when Temporal is down: %d", rec.Code)
	}
}

func TestCorrelationID(t *testing.T) {
	orch := &fakeOrch{}
	h := newTestHandler(t, orch)
	rec, _ := do(t, h, "POST", "/api/remediations", devTok, validStart, "X-Correlation-ID", "req-12345678")
	if rec.Header().Get(HeaderCorrelationID) != "req-12345678" || orch.started[0].CorrelationID != "req-12345678" {
		t.Fatalf("a safe correlation id is kept and passed on: %q", rec.Header().Get(HeaderCorrelationID))
	}
	rec, _ = do(t, h, "GET", "/livez", "", "", "X-Correlation-ID", "bad id with spaces <script>")
	if got := rec.Header().Get(HeaderCorrelationID); got == "" || strings.Contains(got, " ") {
		t.Fatalf("an unsafe correlation id must be replaced, got %q", got)
	}
	if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatal("security headers missing")
	}
}

func TestRepoScopingHidesOtherTeams(t *testing.T) {
	orch := &fakeOrch{}
	h := newTestHandler(t, orch)
	reject := `{"decision_id":"dec_1","diff_digest":"` + strings.Repeat("a", 64) + `","base_sha":"` + testBase + `","reason":"no"}`
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/api/remediations/rem-other", ""},
		{"POST", "/api/remediations/rem-other/approve", validVote},
		{"POST", "/api/remediations/rem-other/reject", reject},
		{"POST", "/api/remediations/rem-other/cancel", ""},
	} {
		rec, eb := do(t, h, tc.method, tc.path, teamTok, tc.body)
		if rec.Code != 404 || eb.Error != "not_found" {
			t.Errorf("%s %s for another team: want 404, got %d %s", tc.method, tc.path, rec.Code, rec.Body)
		}
		if rec, _ := do(t, h, tc.method, strings.Replace(tc.path, "rem-other", "rem-mine", 1), teamTok, tc.body); rec.Code >= 300 {
			t.Errorf("%s %s on its own repo: %d %s", tc.method, tc.path, rec.Code, rec.Body)
		}
	}
	if len(orch.votes) != 2 || len(orch.cancelled) != 1 {
		t.Fatalf("only the team's own remediations may be acted on: votes %v cancelled %v", orch.votes, orch.cancelled)
	}
	rec, _ := do(t, h, "GET", "/api/remediations", teamTok, "")
	if strings.Contains(rec.Body.String(), "rem-other") || !strings.Contains(rec.Body.String(), "rem-a") {
		t.Fatalf("list must filter by repository: %s", rec.Body)
	}
	rec, _ = do(t, h, "GET", "/api/remediations", adminTok, "")
	if !strings.Contains(rec.Body.String(), "rem-other") {
		t.Fatalf("an unscoped admin sees everything: %s", rec.Body)
	}
	rec, eb := do(t, h, "POST", "/api/remediations", teamTok, `{"repo":"other/service","failure_summary":"x"}`)
	if rec.Code != 422 || eb.Error != "invalid_repository" {
		t.Fatalf("starting on a repository outside the scope answers like an unknown one: %d %s", rec.Code, rec.Body)
	}
}

// fakeRepos canonicalises the way the local provider does, for tests: a link
// resolves to its target, and names it does not know fail.
type fakeRepos struct {
	links   map[string]string
	unknown map[string]bool
	roots   []string
}

func testRepos() *fakeRepos {
	return &fakeRepos{
		links:   map[string]string{"teamA/linkB": "teamB/repo2", "/srv/git/teamA/linkB": "/srv/git/teamB/repo2"},
		unknown: map[string]bool{"acme/missing": true, "/etc": true, "/srv/git/teamA/missing": true, "gitlab:acme/missing": true},
		roots:   []string{"/srv/git"},
	}
}

func (f *fakeRepos) Canonical(_ context.Context, repo string) (string, error) {
	if f.unknown[repo] {
		return "", errors.New("lstat " + repo + ": no such file or directory")
	}
	if target, ok := f.links[repo]; ok {
		return target, nil
	}
	return repo, nil
}

func (f *fakeRepos) ScopeNames(canonical string) []string {
	names := []string{canonical}
	for _, r := range f.roots {
		if rel, ok := strings.CutPrefix(canonical, r+"/"); ok {
			names = append(names, rel)
		}
	}
	return names
}

func (f *fakeRepos) ForgeScopeNames(string) ([]string, bool) { return nil, false }

func (f *fakeRepos) ScopeBases() []string {
	bases := []string{""}
	for _, r := range f.roots {
		bases = append(bases, r+"/")
	}
	return bases
}

func (f *fakeOrch) Attach(_ context.Context, id, _ string, _ time.Time) error {
	f.attached = append(f.attached, id)
	return f.err
}

func (f *fakeOrch) AlertResolved(_ context.Context, id, _ string, _ time.Time) error {
	f.resolved = append(f.resolved, id)
	return f.err
}

func (f *fakeOrch) Regenerate(_ context.Context, r orchestrator.RegenerateRequest) (orchestrator.Status, error) {
	f.regenerated = append(f.regenerated, r)
	return f.statusOf(r.ID), f.err
}

func (f *fakeOrch) Audit(_ context.Context, id string) ([]workflows.AuditEvent, error) {
	return f.audit, f.err
}

func (f *fakeOrch) Supersede(_ context.Context, id, sha string, line orchestrator.Line) ([]string, error) {
	f.superseded = append(f.superseded, line)
	return nil, f.err
}
