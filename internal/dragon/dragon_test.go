package dragon_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"remediator/activities"
	"remediator/internal/correlation"
	"remediator/internal/dragon"
	"remediator/internal/dragon/dragontest"
)

const (
	testToken  = "dragon-S3CRET-t0ken-do-not-leak"
	testOrg    = "acme-org"
	testRegion = "eu-west"
)

func setup(t *testing.T) (*dragontest.Server, *dragon.Client) {
	t.Helper()
	f := dragontest.New(t, testToken, testOrg, testRegion)
	return f, newClient(t, f.URL())
}

func newClient(t *testing.T, base string) *dragon.Client {
	t.Helper()
	c, err := dragon.New(dragon.Config{BaseURL: base, Token: testToken, Org: testOrg, Region: testRegion, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// raw serves h as a Dragon whose lookup is unsupported unless h answers
// GET /api/decisions itself.
func raw(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func sampleRequest() dragon.DecisionRequest {
	return dragon.DecisionRequest{
		AlertID:         "rem-42",
		Proposer:        "remediator",
		ProposedAction:  "apply_autofix",
		Rationale:       "gofmt reformats two files so that the lint job passes.",
		ClientReference: "remediator/rem-42/decision",
		RemediationID:   "rem-42",
		Repo:            "acme/app",
		Requester:       "dev",
		IncidentID:      "INC-7",
		RiskLevel:       "low",
		RiskScore:       12,
		Impact:          "2 files, formatting only",
		DiffDigest:      "sha256:abc123",
		BaseSHA:         "0123456789abcdef0123456789abcdef01234567",
		Files:           []string{"main.go", "util.go"},
		FixSource:       "recipe:gofmt",
		Summary:         "Reformat Go files",
		Links:           map[string]string{"remediation": "https://remediator.example/r/rem-42"},
	}
}

func TestCreateSendsHeadersAndFields(t *testing.T) {
	f, c := setup(t)
	ctx := correlation.With(context.Background(), "corr-123")
	d, err := c.Create(ctx, sampleRequest())
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "dec-1" || d.Status != "pending" || d.Verdict() != dragon.VerdictPending {
		t.Fatalf("decision = %+v", d)
	}
	if d.ClientReference != "remediator/rem-42/decision" || d.RemediationID != "rem-42" || d.Repo != "acme/app" ||
		d.Requester != "dev" || d.DiffDigest != "sha256:abc123" || d.BaseSHA != sampleRequest().BaseSHA || d.UpdatedAt.IsZero() {
		t.Fatalf("echoed fields = %+v", d)
	}

	reqs := f.Requests()
	if len(reqs) != 2 {
		t.Fatalf("requests = %d, want a lookup and a create", len(reqs))
	}
	if reqs[0].Method != http.MethodGet || reqs[0].Path != "/api/decisions" || reqs[0].Query.Get("client_reference") != "remediator/rem-42/decision" {
		t.Fatalf("lookup = %s %s %v", reqs[0].Method, reqs[0].Path, reqs[0].Query)
	}
	post := reqs[1]
	if post.Method != http.MethodPost || post.Path != "/api/decisions" {
		t.Fatalf("create = %s %s", post.Method, post.Path)
	}
	for _, r := range reqs {
		for h, want := range map[string]string{
			"X-Token": testToken, "X-Org-Id": testOrg, "X-Region": testRegion, correlation.Header: "corr-123",
		} {
			if got := r.Header.Get(h); got != want {
				t.Errorf("%s %s: %s = %q, want %q", r.Method, r.Path, h, got, want)
			}
		}
	}
	if ct := post.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if k := post.Header.Get("Idempotency-Key"); k != "" {
		t.Errorf("Idempotency-Key sent although lookup works: %q", k)
	}

	var body map[string]any
	if err := json.Unmarshal(post.Body, &body); err != nil {
		t.Fatalf("create body is not JSON: %v", err)
	}
	want := map[string]any{
		"alert_id":         "rem-42",
		"proposer":         "remediator",
		"proposed_action":  "apply_autofix",
		"rationale":        "gofmt reformats two files so that the lint job passes.",
		"client_reference": "remediator/rem-42/decision",
		"remediation_id":   "rem-42",
		"repository":       "acme/app",
		"requester":        "dev",
		"incident_id":      "INC-7",
		"correlation_id":   "corr-123", // filled in from the context
		"risk_level":       "low",
		"risk_score":       float64(12),
		"impact":           "2 files, formatting only",
		"diff_digest":      "sha256:abc123",
		"base_sha":         "0123456789abcdef0123456789abcdef01234567",
		"files":            []any{"main.go", "util.go"},
		"fix_source":       "recipe:gofmt",
		"summary":          "Reformat Go files",
		"links":            map[string]any{"remediation": "https://remediator.example/r/rem-42"},
	}
	if !reflect.DeepEqual(body, want) {
		t.Fatalf("create body =\n%v\nwant\n%v", body, want)
	}

	stored, ok := f.Decision("dec-1")
	if !ok || stored["status"] != "pending" || stored["diff_digest"] != "sha256:abc123" {
		t.Fatalf("stored = %v", stored)
	}
}

func TestCreateSendsEmptyFilesAsList(t *testing.T) {
	f, c := setup(t)
	req := sampleRequest()
	req.Files, req.IncidentID, req.Links = nil, "", nil
	if _, err := c.Create(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	body := string(f.Requests()[1].Body)
	if !strings.Contains(body, `"files":[]`) || strings.Contains(body, "incident_id") || strings.Contains(body, "links") {
		t.Fatalf("body = %s", body)
	}
}

func TestCreateIsIdempotentAfterLostReply(t *testing.T) {
	f, c := setup(t)
	f.LoseNextReplies(1, http.MethodPost)
	ctx := context.Background()
	_, err := c.Create(ctx, sampleRequest())
	if err == nil {
		t.Fatal("Create succeeded although its reply was lost")
	}
	var ae *dragon.APIError
	if errors.As(err, &ae) {
		t.Fatalf("a lost reply is a network error, got APIError %v", ae)
	}
	assertRetryable(t, err)
	if f.Creates() != 1 {
		t.Fatalf("creates = %d, want the lost one recorded", f.Creates())
	}

	d, err := c.Create(ctx, sampleRequest())
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "dec-1" || f.Creates() != 1 || len(f.Decisions()) != 1 {
		t.Fatalf("retry created again: id %q, creates %d", d.ID, f.Creates())
	}
	var posts int
	for _, r := range f.Requests() {
		if r.Method == http.MethodPost {
			posts++
		}
	}
	if posts != 1 {
		t.Fatalf("POSTs = %d, want 1", posts)
	}
}

func TestCreateWithoutLookupStillCreates(t *testing.T) {
	f, c := setup(t)
	f.DisableLookup()
	ctx := context.Background()
	if _, _, err := c.Find(ctx, "remediator/rem-42/decision"); err != dragon.ErrLookupUnsupported {
		t.Fatalf("Find = %v, want ErrLookupUnsupported itself", err)
	}
	d, err := c.Create(ctx, sampleRequest())
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "dec-1" || f.Creates() != 1 {
		t.Fatalf("decision %+v, creates %d", d, f.Creates())
	}
	reqs := f.Requests()
	post := reqs[len(reqs)-1]
	if post.Method != http.MethodPost || post.Header.Get("Idempotency-Key") != "remediator/rem-42/decision" {
		t.Fatalf("create %s, Idempotency-Key %q", post.Method, post.Header.Get("Idempotency-Key"))
	}
}

func TestFindUnsupportedStatuses(t *testing.T) {
	for _, status := range []int{400, 404, 405, 501} {
		f, c := setup(t)
		f.FailNext(1, status, `{"error":"nope"}`, nil)
		if _, _, err := c.Find(context.Background(), "ref"); err != dragon.ErrLookupUnsupported {
			t.Errorf("%d: Find = %v, want ErrLookupUnsupported", status, err)
		}
	}
	f, c := setup(t)
	f.FailNext(1, 500, `{"error":"boom"}`, nil)
	_, _, err := c.Find(context.Background(), "ref")
	var ae *dragon.APIError
	if !errors.As(err, &ae) || ae.Status != 500 || errors.Is(err, dragon.ErrLookupUnsupported) {
		t.Fatalf("500: Find = %v", err)
	}
	// A failing lookup stops Create: creating blind could duplicate.
	f.FailNext(1, 500, `{"error":"boom"}`, nil)
	if _, err := c.Create(context.Background(), sampleRequest()); err == nil || f.Creates() != 0 {
		t.Fatalf("Create = %v with %d creates", err, f.Creates())
	}
}

func TestCreateReturnsExistingDecision(t *testing.T) {
	f, c := setup(t)
	f.Seed(map[string]any{"client_reference": "other"})
	id := f.Seed(map[string]any{"client_reference": "remediator/rem-42/decision", "status": "approved", "approver": "alice"})
	d, err := c.Create(context.Background(), sampleRequest())
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != id || d.Verdict() != dragon.VerdictApproved || d.Approver != "alice" || f.Creates() != 0 {
		t.Fatalf("decision %+v, creates %d", d, f.Creates())
	}
}

func TestFindReplyShapes(t *testing.T) {
	for name, body := range map[string]string{
		"array":     `[{"id":"x-1","client_reference":"other"},{"id":"x-2","client_reference":"ref","status":"pending"}]`,
		"decisions": `{"decisions":[{"id":"x-1","client_reference":"other"},{"id":"x-2","client_reference":"ref"}]}`,
		"items":     `{"items":[7,{"id":"x-2","client_reference":"ref"}],"next":null}`,
		"data":      `{"data":[{"id":"x-2","client_reference":"ref"}]}`,
		"results":   `{"results":[{"id":"x-2","client_reference":"ref"}]}`,
	} {
		url := raw(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(body)) })
		d, ok, err := newClient(t, url).Find(context.Background(), "ref")
		if err != nil || !ok || d.ID != "x-2" {
			t.Errorf("%s: Find = %+v, %v, %v", name, d, ok, err)
		}
	}
	for name, body := range map[string]string{
		"empty":     `[]`,
		"null list": `{"decisions":null}`,
		"no match":  `{"items":[{"id":"x-1","client_reference":"REF"}]}`,
	} {
		url := raw(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(body)) })
		_, ok, err := newClient(t, url).Find(context.Background(), "ref")
		if err != nil || ok {
			t.Errorf("%s: Find = %v, %v, want not found", name, ok, err)
		}
	}
	for name, body := range map[string]string{
		"html":       `<html>502</html>`,
		"object":     `{"unexpected":true}`,
		"invalid id": `[{"id":"../admin","client_reference":"ref"}]`,
	} {
		url := raw(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(body)) })
		_, _, err := newClient(t, url).Find(context.Background(), "ref")
		var ae *dragon.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusBadGateway {
			t.Errorf("%s: Find = %v, want a 502 APIError", name, err)
		}
	}
}

func TestCreateReplyShapes(t *testing.T) {
	for name, tc := range map[string]struct {
		body   string
		wantID string
		err    error
	}{
		"plain":          {body: `{"id":"d-1","status":"pending"}`, wantID: "d-1"},
		"wrapped data":   {body: `{"ok":true,"data":{"id":"d-2","status":"pending"}}`, wantID: "d-2"},
		"wrapped":        {body: `{"decision":{"id":"d-3"}}`, wantID: "d-3"},
		"numeric id":     {body: `{"id":42,"status":"pending"}`, wantID: "42"},
		"no id":          {body: `{"status":"pending"}`, err: dragon.ErrMalformedResponse},
		"null id":        {body: `{"id":null}`, err: dragon.ErrMalformedResponse},
		"path id":        {body: `{"id":"a/../b"}`, err: dragon.ErrInvalidID},
		"dot-dot id":     {body: `{"id":".."}`, err: dragon.ErrInvalidID},
		"html":           {body: `<html><body>oops</body></html>`, err: dragon.ErrMalformedResponse},
		"array":          {body: `[{"id":"d-1"}]`, err: dragon.ErrMalformedResponse},
		"trailing bytes": {body: `{"id":"d-1"} garbage`, err: dragon.ErrMalformedResponse},
	} {
		var posts int
		url := raw(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet {
				http.NotFound(w, r)
				return
			}
			posts++
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(tc.body))
		})
		d, err := newClient(t, url).Create(context.Background(), sampleRequest())
		if tc.err == nil {
			if err != nil || d.ID != tc.wantID {
				t.Errorf("%s: Create = %+v, %v", name, d, err)
			}
			continue
		}
		var ae *dragon.APIError
		if !errors.Is(err, tc.err) || !errors.As(err, &ae) || ae.Status != http.StatusBadGateway {
			t.Errorf("%s: Create = %v, want %v with status 502", name, err, tc.err)
		}
		if posts != 1 {
			t.Errorf("%s: posts = %d", name, posts)
		}
	}
}

func TestCreateConflictIsResolvedByLookup(t *testing.T) {
	f, c := setup(t)
	// Another attempt creates the decision between our lookup and our POST.
	f.FailNext(1, http.StatusOK, `{"decisions":[]}`, nil)
	f.FailNext(1, http.StatusConflict, `{"error":"duplicate","message":"client_reference already used"}`, nil)
	id := f.Seed(map[string]any{"client_reference": "remediator/rem-42/decision"})
	d, err := c.Create(context.Background(), sampleRequest())
	if err != nil || d.ID != id {
		t.Fatalf("Create = %+v, %v", d, err)
	}
}

func TestCreateRequiresClientReference(t *testing.T) {
	f, c := setup(t)
	req := sampleRequest()
	req.ClientReference = ""
	_, err := c.Create(context.Background(), req)
	var ae *dragon.APIError
	if !errors.Is(err, dragon.ErrInvalidRequest) || !errors.As(err, &ae) || ae.Status != 400 || len(f.Requests()) != 0 {
		t.Fatalf("Create = %v", err)
	}
}

func TestGetAfterDecide(t *testing.T) {
	f, c := setup(t)
	ctx := correlation.With(context.Background(), "corr-get")
	d, err := c.Create(ctx, sampleRequest())
	if err != nil {
		t.Fatal(err)
	}
	f.Decide(d.ID, "APPROVED", "alice", "looks right")
	got, err := c.Get(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != d.ID || got.Status != "APPROVED" || got.Verdict() != dragon.VerdictApproved ||
		got.Approver != "alice" || got.Reason != "looks right" || got.DiffDigest != "sha256:abc123" {
		t.Fatalf("Get = %+v", got)
	}
	reqs := f.Requests()
	last := reqs[len(reqs)-1]
	if last.Path != "/api/decisions/"+d.ID || last.Header.Get(correlation.Header) != "corr-get" {
		t.Fatalf("get request = %s, correlation %q", last.Path, last.Header.Get(correlation.Header))
	}
}

func TestGetReadsApproverAndReasonSpellings(t *testing.T) {
	f, c := setup(t)
	for name, tc := range map[string]struct {
		record           map[string]any
		approver, reason string
		updated          time.Time
	}{
		"approver and reason": {
			record:   map[string]any{"approver": "alice", "reason": "ok", "comment": "ignored", "reviewer": "bob"},
			approver: "alice", reason: "ok",
		},
		"decided_by object: the login, not the editable name": {
			record:   map[string]any{"decided_by": map[string]any{"name": "Bob", "login": "alice"}, "comment": "fine"},
			approver: "alice", reason: "fine",
		},
		"who decided wins over who was asked": {
			record:   map[string]any{"approver": "bob", "decided_by": "alice"},
			approver: "alice",
		},
		"name only as a last resort": {
			record:   map[string]any{"approved_by": map[string]any{"name": "Alice A"}},
			approver: "Alice A",
		},
		"approved_by login": {
			record:   map[string]any{"approver": "", "approved_by": map[string]any{"login": "alice"}, "decision_reason": "safe"},
			approver: "alice", reason: "safe",
		},
		"rejected_by email": {
			record:   map[string]any{"rejected_by": map[string]any{"email": "bob@example.com"}, "justification": "too risky"},
			approver: "bob@example.com", reason: "too risky",
		},
		"reviewer numeric id": {
			record:   map[string]any{"reviewer": map[string]any{"id": 7}},
			approver: "7",
		},
		"non-string reason skipped": {
			record:   map[string]any{"reviewer": "carol", "reason": map[string]any{"text": "x"}, "comment": "plain"},
			approver: "carol", reason: "plain",
		},
		"updated_at": {
			record:  map[string]any{"updated_at": "2026-01-02T03:04:05Z"},
			updated: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		},
		"decided_at unix": {
			record:  map[string]any{"updated_at": nil, "decided_at": 1767323045},
			updated: time.Unix(1767323045, 0).UTC(),
		},
	} {
		tc.record["status"] = "approved"
		id := f.Seed(tc.record)
		d, err := c.Get(context.Background(), id)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if d.Approver != tc.approver || d.Reason != tc.reason {
			t.Errorf("%s: approver %q reason %q, want %q %q", name, d.Approver, d.Reason, tc.approver, tc.reason)
		}
		if !tc.updated.IsZero() && !d.UpdatedAt.Equal(tc.updated) {
			t.Errorf("%s: updated %v, want %v", name, d.UpdatedAt, tc.updated)
		}
	}
}

func TestGetNumericAndWrappedReplies(t *testing.T) {
	for name, tc := range map[string]struct {
		id, body string
		err      error
	}{
		"numeric id":     {id: "42", body: `{"id":42,"status":"pending"}`},
		"wrapped":        {id: "d-1", body: `{"data":{"id":"d-1","status":"denied"}}`},
		"no id in reply": {id: "d-1", body: `{"status":"pending"}`},
		"no status":      {id: "d-1", body: `{"id":"d-1"}`, err: dragon.ErrMalformedResponse},
		"status number":  {id: "d-1", body: `{"id":"d-1","status":1}`, err: dragon.ErrMalformedResponse},
		"other decision": {id: "d-1", body: `{"id":"d-2","status":"approved"}`, err: dragon.ErrMalformedResponse},
	} {
		url := raw(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(tc.body)) })
		d, err := newClient(t, url).Get(context.Background(), tc.id)
		if tc.err == nil {
			if err != nil || d.ID != tc.id || d.Status == "" {
				t.Errorf("%s: Get = %+v, %v", name, d, err)
			}
			continue
		}
		var ae *dragon.APIError
		if !errors.Is(err, tc.err) || !errors.As(err, &ae) || ae.Status != 502 {
			t.Errorf("%s: Get = %v, want %v", name, err, tc.err)
		}
	}
}

func TestVerdictOf(t *testing.T) {
	for status, want := range map[string]dragon.Verdict{
		"approved": dragon.VerdictApproved, "APPROVED": dragon.VerdictApproved, "Approve": dragon.VerdictApproved,
		"allowed": dragon.VerdictApproved, "ALLOW": dragon.VerdictApproved,
		"rejected": dragon.VerdictRejected, "Denied": dragon.VerdictRejected, "BLOCKED": dragon.VerdictRejected,
		"declined": dragon.VerdictRejected, "Vetoed": dragon.VerdictRejected, "revoked": dragon.VerdictRejected, "cancelled": dragon.VerdictRejected, "canceled": dragon.VerdictRejected,
		"pending": dragon.VerdictPending, "pending_approval": dragon.VerdictPending, "": dragon.VerdictPending,
		" approved": dragon.VerdictPending, "approved!": dragon.VerdictPending, "not approved": dragon.VerdictPending,
		"auto_approved": dragon.VerdictPending, "expired": dragon.VerdictPending,
	} {
		if got := dragon.VerdictOf(status); got != want {
			t.Errorf("VerdictOf(%q) = %v, want %v", status, got, want)
		}
	}
}

// assertRetryable checks that the shared classifier retries err.
func assertRetryable(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(activities.Classify(err), &appErr) || appErr.NonRetryable() {
		t.Fatalf("Classify(%v) is not retryable", err)
	}
	return appErr
}

func TestErrorStatusesClassify(t *testing.T) {
	const id = "dec-1"
	for name, tc := range map[string]struct {
		status     int
		body       string
		header     http.Header
		wantStatus int
		wantCode   string
		wantType   string // non-retryable type, or "" for retryable
		wantDelay  time.Duration
		err        error
	}{
		"401":          {status: 401, body: `{"error":"unauthorized","message":"bad token"}`, wantStatus: 401, wantCode: "unauthorized", wantType: activities.ErrTypeUpstream},
		"403":          {status: 403, body: `{"error":{"code":"forbidden","message":"org not allowed"}}`, wantStatus: 403, wantCode: "forbidden", wantType: activities.ErrTypeUpstream},
		"404":          {status: 404, body: `{"error":"not_found","message":"decision not found"}`, wantStatus: 404, wantCode: "not_found", wantType: activities.ErrTypeNotFound},
		"409":          {status: 409, body: `{"code":409,"message":"conflict"}`, wantStatus: 409, wantCode: "409", wantType: activities.ErrTypeConflict},
		"429 seconds":  {status: 429, body: `{"message":"slow down"}`, header: http.Header{"Retry-After": {"7"}}, wantStatus: 429, wantDelay: 7 * time.Second},
		"429 capped":   {status: 429, header: http.Header{"Retry-After": {"999999"}}, wantStatus: 429, wantDelay: time.Hour},
		"503 no delay": {status: 503, body: "<html>maintenance</html>", wantStatus: 503},
		"500":          {status: 500, body: `{"error":"internal"}`, wantStatus: 500},
		"502 html":     {status: 502, body: "<html><h1>502 Bad Gateway</h1></html>", wantStatus: 502},
		"408":          {status: 408, wantStatus: 408},
		"200 garbage":  {status: 200, body: "\x00\x01not json", wantStatus: 502, err: dragon.ErrMalformedResponse},
		"200 html":     {status: 200, body: "<html>login page</html>", wantStatus: 502, err: dragon.ErrMalformedResponse},
		"200 empty":    {status: 200, body: "", wantStatus: 502, err: dragon.ErrMalformedResponse},
	} {
		f, c := setup(t)
		f.Seed(map[string]any{"id": id})
		f.FailNext(1, tc.status, tc.body, tc.header)
		_, err := c.Get(context.Background(), id)
		var ae *dragon.APIError
		if !errors.As(err, &ae) {
			t.Errorf("%s: Get = %v, want an APIError", name, err)
			continue
		}
		if ae.Status != tc.wantStatus || ae.Code != tc.wantCode || ae.RetryAfter != tc.wantDelay || ae.Op != "get decision" {
			t.Errorf("%s: APIError = %+v", name, ae)
		}
		if tc.err != nil && !errors.Is(err, tc.err) {
			t.Errorf("%s: %v is not %v", name, err, tc.err)
		}
		if strings.Contains(err.Error(), "<html") || strings.Contains(err.Error(), "<h1>") {
			t.Errorf("%s: error quotes the HTML page: %v", name, err)
		}
		var appErr *temporal.ApplicationError
		if !errors.As(activities.Classify(err), &appErr) {
			t.Errorf("%s: Classify did not make an application error", name)
			continue
		}
		if tc.wantType != "" {
			if !appErr.NonRetryable() || appErr.Type() != tc.wantType {
				t.Errorf("%s: classified %s (non-retryable %v), want non-retryable %s", name, appErr.Type(), appErr.NonRetryable(), tc.wantType)
			}
			continue
		}
		if appErr.NonRetryable() || appErr.NextRetryDelay() != tc.wantDelay {
			t.Errorf("%s: classified %s, non-retryable %v, delay %v", name, appErr.Type(), appErr.NonRetryable(), appErr.NextRetryDelay())
		}
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	f, c := setup(t)
	when := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	f.FailNext(1, 503, "", http.Header{"Retry-After": {when}})
	_, err := c.Get(context.Background(), "dec-1")
	var ae *dragon.APIError
	if !errors.As(err, &ae) || ae.RetryAfter < 25*time.Second || ae.RetryAfter > 31*time.Second {
		t.Fatalf("Get = %v", err)
	}
	if d := assertRetryable(t, err).NextRetryDelay(); d != ae.RetryAfter {
		t.Fatalf("NextRetryDelay = %v, want %v", d, ae.RetryAfter)
	}
	f.FailNext(1, 503, "", http.Header{"Retry-After": {"Mon, 02 Jan 2006 15:04:05 GMT"}})
	if _, err := c.Get(context.Background(), "dec-1"); !errors.As(err, &ae) || ae.RetryAfter != 0 {
		t.Fatalf("past date: %v", err)
	}
}

func TestErrorsNeverCarryTheToken(t *testing.T) {
	f, c := setup(t)
	f.FailNext(1, 401, `{"error":"unauthorized","message":"token `+testToken+` is revoked"}`, nil)
	_, err := c.Get(context.Background(), "dec-1")
	if err == nil || strings.Contains(err.Error(), testToken) || !strings.Contains(err.Error(), "[REDACTED]") {
		t.Fatalf("error = %v", err)
	}
	// The fake's own 401 for a wrong token.
	bad, err := dragon.New(dragon.Config{BaseURL: f.URL(), Token: "wrong-" + testToken, Org: testOrg, Region: testRegion})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Get(context.Background(), "dec-1")
	var ae *dragon.APIError
	if !errors.As(err, &ae) || ae.Status != 401 || strings.Contains(err.Error(), testToken) {
		t.Fatalf("wrong token: %v", err)
	}
}

func TestNetworkFailuresAreRetryable(t *testing.T) {
	block := make(chan struct{})
	url := raw(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(block) })
	c, err := dragon.New(dragon.Config{BaseURL: url, Token: testToken, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Get(context.Background(), "dec-1")
	var ae *dragon.APIError
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ae) {
		t.Fatalf("timeout: %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("the per-request timeout was not applied (%v)", time.Since(start))
	}
	assertRetryable(t, err)

	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	closed := newClient(t, srv.URL)
	_, err = closed.Get(context.Background(), "dec-1")
	if err == nil || errors.As(err, &ae) || strings.Contains(err.Error(), testToken) {
		t.Fatalf("connection refused: %v", err)
	}
	assertRetryable(t, err)
}

func TestOversizedReplyIsMalformed(t *testing.T) {
	url := raw(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"id":"d-1","status":"pending","pad":"` + strings.Repeat("x", 1<<20) + `"}`))
	})
	_, err := newClient(t, url).Get(context.Background(), "d-1")
	var ae *dragon.APIError
	if !errors.Is(err, dragon.ErrMalformedResponse) || !errors.As(err, &ae) || ae.Status != 502 {
		t.Fatalf("Get = %v", err)
	}
}

func TestInvalidIDsAreRefused(t *testing.T) {
	f, c := setup(t)
	for _, id := range []string{"", ".", "..", "a/b", "../admin", "a?b", "a#b", "a b", "a%2Fb", "dé", strings.Repeat("a", 129)} {
		_, err := c.Get(context.Background(), id)
		var ae *dragon.APIError
		if !errors.Is(err, dragon.ErrInvalidID) || !errors.As(err, &ae) || ae.Status != 400 {
			t.Errorf("Get(%q) = %v", id, err)
		}
		err = c.RecordOutcome(context.Background(), id, dragon.Outcome{Outcome: "completed", Status: "approved"})
		if !errors.Is(err, dragon.ErrInvalidID) {
			t.Errorf("RecordOutcome(%q) = %v", id, err)
		}
		assertPermanent(t, err)
	}
	if n := len(f.Requests()); n != 0 {
		t.Fatalf("%d requests reached Dragon", n)
	}
	// Every allowed character goes through unchanged.
	id := f.Seed(map[string]any{"id": "Ab9._:-z", "status": "pending"})
	if d, err := c.Get(context.Background(), id); err != nil || d.ID != id {
		t.Fatalf("Get(%q) = %+v, %v", id, d, err)
	}
}

func assertPermanent(t *testing.T, err error) {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(activities.Classify(err), &appErr) || !appErr.NonRetryable() {
		t.Errorf("Classify(%v) is retryable", err)
	}
}

func TestRecordOutcome(t *testing.T) {
	f, c := setup(t)
	ctx := correlation.With(context.Background(), "corr-out")
	d, err := c.Create(ctx, sampleRequest())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	o := dragon.Outcome{
		Outcome: "completed", Status: "approved", PRURL: "https://github.com/acme/app/pull/9",
		Votes:         []dragon.OutcomeVote{{Actor: "alice", Approved: true, Channel: "api", Comment: "ok", At: at}},
		RemediationID: "rem-42", At: at,
	}
	if err := c.RecordOutcome(ctx, d.ID, o); err != nil {
		t.Fatal(err)
	}
	got := f.Outcomes(d.ID)
	want := []map[string]any{{
		"outcome": "completed", "status": "approved", "pr_url": "https://github.com/acme/app/pull/9",
		"votes":          []any{map[string]any{"actor": "alice", "approved": true, "channel": "api", "comment": "ok", "at": "2026-03-04T05:06:07Z"}},
		"remediation_id": "rem-42", "at": "2026-03-04T05:06:07Z",
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("outcomes = %v\nwant %v", got, want)
	}
	reqs := f.Requests()
	last := reqs[len(reqs)-1]
	if last.Method != http.MethodPost || last.Path != "/api/decisions/"+d.ID+"/outcome" ||
		last.Header.Get("X-Token") != testToken || last.Header.Get(correlation.Header) != "corr-out" {
		t.Fatalf("outcome request = %s %s", last.Method, last.Path)
	}

	err = c.RecordOutcome(ctx, "dec-404", o)
	var ae *dragon.APIError
	if !errors.As(err, &ae) || ae.Status != 404 {
		t.Fatalf("unknown decision: %v", err)
	}
	for _, bad := range []dragon.Outcome{{Outcome: "done", Status: "approved"}, {Outcome: "completed", Status: "merged"}, {}} {
		if err := c.RecordOutcome(ctx, d.ID, bad); !errors.Is(err, dragon.ErrInvalidRequest) {
			t.Errorf("RecordOutcome(%+v) = %v", bad, err)
		}
	}
	if n := len(f.Outcomes(d.ID)); n != 1 {
		t.Fatalf("outcomes recorded = %d", n)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	for name, cfg := range map[string]dragon.Config{
		"no token":    {BaseURL: "https://dragon.example.com"},
		"no URL":      {Token: "t"},
		"ftp":         {BaseURL: "ftp://dragon.example.com", Token: "t"},
		"no host":     {BaseURL: "https:///api", Token: "t"},
		"relative":    {BaseURL: "dragon.example.com", Token: "t"},
		"userinfo":    {BaseURL: "https://user:pass@dragon.example.com", Token: "t"},
		"query":       {BaseURL: "https://dragon.example.com/?x=1", Token: "t"},
		"empty query": {BaseURL: "https://dragon.example.com/?", Token: "t"},
		"fragment":    {BaseURL: "https://dragon.example.com/#x", Token: "t"},
	} {
		_, err := dragon.New(cfg)
		if !errors.Is(err, dragon.ErrInvalidConfig) {
			t.Errorf("%s: New = %v", name, err)
			continue
		}
		if strings.Contains(err.Error(), "pass") {
			t.Errorf("%s: error echoes the URL: %v", name, err)
		}
	}
	if _, err := dragon.New(dragon.Config{BaseURL: "http://dragon.internal:8080/base/", Token: "t"}); err != nil {
		t.Fatal(err)
	}
}

func TestBaseURLPathIsKept(t *testing.T) {
	var path string
	url := raw(t, func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		_, _ = w.Write([]byte(`{"id":"d-1","status":"pending"}`))
	})
	if _, err := newClient(t, url+"/dragon/").Get(context.Background(), "d-1"); err != nil {
		t.Fatal(err)
	}
	if path != "/dragon/api/decisions/d-1" {
		t.Fatalf("path = %q", path)
	}
}
