package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

const (
	testToken  = "tok-secret-0123456789"
	testAPIKey = "rmk_secretkey0123456789"
	testID     = "rem-0123456789abcdef01234567"
	decisionID = "dec_rem-0123456789abcdef01234567"
)

// recorded is one request as the fake API received it.
type recorded struct {
	Method, Path string
	Query        url.Values
	Header       http.Header
	Body         []byte
}

// fakeAPI answers like the real API: the same routes, credential headers,
// JSON shapes (a status's fix carries patch as base64 bytes and diff as
// text), the one error shape and the correlation id echo.
type fakeAPI struct {
	t        *testing.T
	srv      *httptest.Server
	mu       sync.Mutex
	reqs     []recorded
	statuses map[string]map[string]any
	pages    map[string]map[string]any // page_token ("" = first) → page
	errorFor map[string]apiFailure     // "METHOD path" → forced error
}

type apiFailure struct {
	status  int
	code    string
	message string
	details any
}

var correlationPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{8,128}$`)

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, statuses: map[string]map[string]any{}, pages: map[string]map[string]any{}, errorFor: map[string]apiFailure{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/remediations/{id}", f.getStatus)
	mux.HandleFunc("POST /api/remediations/{id}/approve", f.vote(true))
	mux.HandleFunc("POST /api/remediations/{id}/reject", f.vote(false))
	mux.HandleFunc("GET /api/remediations", f.list)
	mux.HandleFunc("POST /api/remediations/{id}/regenerate", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		st := f.statuses[r.PathValue("id")]
		st["phase"] = "GeneratingFix"
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
		f.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		id := r.Header.Get("X-Correlation-ID")
		if !correlationPattern.MatchString(id) {
			id = "server-" + uuid.NewString()
		}
		w.Header().Set("X-Correlation-ID", id)
		if r.Header.Get("Authorization") != "Bearer "+testToken && r.Header.Get("X-API-Key") != testAPIKey {
			w.Header().Set("WWW-Authenticate", `Bearer realm="remediator"`)
			writeAPIError(w, id, apiFailure{http.StatusUnauthorized, "missing_credentials", "no valid credential", nil})
			return
		}
		if fail, ok := f.errorFor[r.Method+" "+r.URL.Path]; ok {
			writeAPIError(w, id, fail)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func writeAPIError(w http.ResponseWriter, correlationID string, fail apiFailure) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(fail.status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"error": fail.code, "message": fail.message, "details": fail.details, "correlation_id": correlationID,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeAPI) getStatus(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	st, ok := f.statuses[r.PathValue("id")]
	f.mu.Unlock()
	if !ok {
		writeAPIError(w, w.Header().Get("X-Correlation-ID"), apiFailure{http.StatusNotFound, "not_found", "no such remediation", nil})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// vote mirrors the handler and the Update validator: JSON only, unknown
// fields refused, decision id and digest must name the current fix.
func (f *fakeAPI) vote(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cid := w.Header().Get("X-Correlation-ID")
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			writeAPIError(w, cid, apiFailure{http.StatusUnsupportedMediaType, "unsupported_media_type", "send JSON", nil})
			return
		}
		var b struct {
			DecisionID string `json:"decision_id"`
			DiffDigest string `json:"diff_digest"`
			BaseSHA    string `json:"base_sha"`
			Comment    string `json:"comment"`
			Reason     string `json:"reason"`
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			writeAPIError(w, cid, apiFailure{http.StatusUnprocessableEntity, "unknown_field", err.Error(), nil})
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		st, ok := f.statuses[r.PathValue("id")]
		if !ok {
			writeAPIError(w, cid, apiFailure{http.StatusNotFound, "not_found", "no such remediation", nil})
			return
		}
		if !approve && strings.TrimSpace(b.Reason) == "" {
			writeAPIError(w, cid, apiFailure{http.StatusUnprocessableEntity, "validation_failed", "the request is invalid",
				map[string]string{"reason": "a rejection needs a reason"}})
			return
		}
		if b.DecisionID != st["decision_id"] || b.DiffDigest != st["fix"].(map[string]any)["digest"] || b.BaseSHA != st["fix"].(map[string]any)["base_sha"] {
			writeAPIError(w, cid, apiFailure{http.StatusConflict, "stale_vote", "the vote names another decision or diff", nil})
			return
		}
		v := map[string]any{"actor": "alice", "approved": approve, "channel": "api", "decision_id": b.DecisionID,
			"diff_digest": b.DiffDigest, "at": "2026-05-01T10:05:00Z"}
		if approve {
			v["comment"] = b.Comment
			st["phase"] = "OpeningPR"
		} else {
			v["reason"] = b.Reason
			st["phase"], st["reason"] = "Rejected", "rejected by alice: "+b.Reason
		}
		st["votes"] = append(st["votes"].([]any), v)
		writeJSON(w, http.StatusOK, st)
	}
}

func (f *fakeAPI) list(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	p, ok := f.pages[r.URL.Query().Get("page_token")]
	f.mu.Unlock()
	if !ok {
		writeAPIError(w, w.Header().Get("X-Correlation-ID"), apiFailure{http.StatusUnprocessableEntity, "validation_failed", "the request is invalid",
			map[string]string{"page_token": "invalid"}})
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (f *fakeAPI) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

func (f *fakeAPI) posts() []recorded {
	var out []recorded
	for _, r := range f.requests() {
		if r.Method == http.MethodPost {
			out = append(out, r)
		}
	}
	return out
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// addStatus stores a remediation awaiting approval whose fix is patch. The
// text diff is present only when withText, as the server omits it for bytes
// that are not valid UTF-8.
func (f *fakeAPI) addStatus(id string, patch []byte, withText bool) map[string]any {
	fx := map[string]any{
		"recipe": "gofmt", "summary": "gofmt -w on 1 file", "files": []string{"main.go"},
		"digest": digestOf(patch), "base_sha": "abc1234def", "base_branch": "main", "validated": true,
		"patch": patch, // []byte: base64, exactly as encoding/json writes the server's field
	}
	if withText {
		fx["diff"] = string(patch)
	}
	st := map[string]any{
		"id": id, "phase": "AwaitingApproval", "repo": "/srv/git/demo", "ref": "main", "requester": "dev",
		"correlation_id": "corr-start-0001", "fix": fx, "decision_id": decisionID, "required_approvals": 1,
		"votes":      []any{},
		"created_at": "2026-05-01T10:00:00Z", "updated_at": "2026-05-01T10:01:00Z", "deadline": "2026-05-02T10:00:00Z",
		"links": map[string]string{"self": f.srv.URL + "/api/remediations/" + id},
	}
	f.mu.Lock()
	f.statuses[id] = st
	f.mu.Unlock()
	return st
}

// env is the client's environment: the fake's URL and a bearer token;
// overrides are name, value pairs ("" unsets).
func (f *fakeAPI) env(overrides ...string) func(string) string {
	m := map[string]string{EnvURL: f.srv.URL, EnvToken: testToken}
	for i := 0; i+1 < len(overrides); i += 2 {
		m[overrides[i]] = overrides[i+1]
	}
	return func(k string) string { return m[k] }
}

// runCLI runs one command and fails the test if any output reveals a credential.
func runCLI(t *testing.T, getenv func(string) string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := Run(ctx, args, getenv, &out, &errOut)
	all := out.String() + errOut.String()
	if err != nil {
		all += err.Error()
	}
	for _, secret := range []string{testToken, testAPIKey, "hunter2"} {
		if strings.Contains(all, secret) {
			t.Fatalf("output reveals a credential:\n%s", all)
		}
	}
	return out.String(), errOut.String(), err
}

const gofmtPatch = "diff --git a/main.go b/main.go\n--- a/main.go\n+++ b/main.go\n@@ -1 +1 @@\n-func main(){}\n+func main() {}\n"

func TestStatusPrintsASummaryForReview(t *testing.T) {
	api := newFakeAPI(t)
	st := api.addStatus(testID, []byte(gofmtPatch), true)
	st["votes"] = []any{map[string]any{"actor": "bob", "approved": true, "comment": "fine", "channel": "slack",
		"decision_id": decisionID, "diff_digest": digestOf([]byte(gofmtPatch)), "at": "2026-05-01T10:02:03Z"}}
	st["pr"] = map[string]any{"id": "7", "url": "https://git.example/demo/pull/7", "branch": "autofix/" + testID, "head_sha": "f00", "created": true}

	out, _, err := runCLI(t, api.env(), "status", testID)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"id:           " + testID,
		"phase:        AwaitingApproval",
		"repo:         /srv/git/demo @ main",
		"requester:    dev",
		"decision_id:  " + decisionID,
		"recipe:     gofmt",
		"files:      main.go",
		"digest:     " + digestOf([]byte(gofmtPatch)) + "\n",
		"validated:  true",
		"bob approved via slack at 2026-05-01T10:02:03Z: fine",
		"pr:           https://git.example/demo/pull/7 (autofix/" + testID + ")",
		"deadline:     2026-05-02T10:00:00Z",
		"remediator status " + testID + " --diff",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	reqs := api.requests()
	if len(reqs) != 1 || reqs[0].Method != "GET" || reqs[0].Path != "/api/remediations/"+testID {
		t.Fatalf("requests: %+v", reqs)
	}
	h := reqs[0].Header
	if h.Get("Authorization") != "Bearer "+testToken || h.Get("X-API-Key") != "" {
		t.Errorf("credential headers: Authorization=%q X-API-Key=%q", h.Get("Authorization"), h.Get("X-API-Key"))
	}
	if _, err := uuid.Parse(h.Get("X-Correlation-ID")); err != nil {
		t.Errorf("X-Correlation-ID %q is not a uuid", h.Get("X-Correlation-ID"))
	}
}

func TestStatusWarnsWhenTheDigestDoesNotNameTheDiff(t *testing.T) {
	api := newFakeAPI(t)
	st := api.addStatus(testID, []byte(gofmtPatch), true)
	st["fix"].(map[string]any)["digest"] = strings.Repeat("ab", 32)
	out, _, err := runCLI(t, api.env(), "status", testID)
	if err != nil || !strings.Contains(out, "DOES NOT MATCH") {
		t.Fatalf("a digest of other bytes must be flagged: %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, api.env(), "status", testID, "--diff"); err == nil || !strings.Contains(err.Error(), "does not match its digest") {
		t.Fatalf("--diff must fail on a digest of other bytes: %v", err)
	}
}

func TestStatusDiffPrintsThePatchBytesExactly(t *testing.T) {
	api := newFakeAPI(t)
	// Latin-1 bytes are not valid UTF-8: the server sends them only as patch.
	patch := []byte("diff --git a/l1.txt b/l1.txt\n--- a/l1.txt\n+++ b/l1.txt\n@@ -1 +1 @@\n-caf\xe9 \n+caf\xe9\n\x00\xff\n")
	api.addStatus(testID, patch, false)

	out, _, err := runCLI(t, api.env(), "status", "--diff", testID) // flag before the id
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal([]byte(out), patch) {
		t.Fatalf("--diff changed the bytes:\n got %q\nwant %q", out, patch)
	}
}

func TestStatusDiffPrefersPatchAndFallsBackToText(t *testing.T) {
	api := newFakeAPI(t)
	st := api.addStatus(testID, []byte(gofmtPatch), true)
	st["fix"].(map[string]any)["diff"] = "a lossy rendering that is not what gets applied\n"
	out, _, err := runCLI(t, api.env(), "status", testID, "--diff")
	if err != nil || out != gofmtPatch {
		t.Fatalf("with both, patch must win: %v %q", err, out)
	}

	delete(st["fix"].(map[string]any), "patch")
	st["fix"].(map[string]any)["diff"] = gofmtPatch
	out, _, err = runCLI(t, api.env(), "status", testID, "--diff")
	if err != nil || out != gofmtPatch {
		t.Fatalf("without patch the text diff is the change: %v %q", err, out)
	}
}

func TestStatusJSONPrintsTheRawAnswer(t *testing.T) {
	api := newFakeAPI(t)
	api.addStatus(testID, []byte(gofmtPatch), true)
	out, _, err := runCLI(t, api.env(), "status", testID, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("--json is not JSON: %v\n%s", err, out)
	}
	if got["decision_id"] != decisionID || got["fix"].(map[string]any)["patch"] == nil {
		t.Fatalf("--json must be the API's answer unchanged: %s", out)
	}
	if _, _, err := runCLI(t, api.env(), "status", testID, "--json", "--diff"); err == nil {
		t.Fatal("--json with --diff must be refused")
	}
}

func TestApproveVotesForTheReviewedDigestWithAnIdempotencyKey(t *testing.T) {
	api := newFakeAPI(t)
	api.addStatus(testID, []byte(gofmtPatch), true)
	digest := digestOf([]byte(gofmtPatch))

	// Flags after the id, credential as an API key.
	out, _, err := runCLI(t, api.env(EnvToken, "", EnvAPIKey, testAPIKey), "approve", testID, "--digest", digest, "--comment", "looks right")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "approved "+testID+": phase OpeningPR") {
		t.Errorf("approve must print the new phase: %q", out)
	}
	reqs := api.requests()
	if len(reqs) != 2 || reqs[0].Method != "GET" || reqs[1].Method != "POST" || reqs[1].Path != "/api/remediations/"+testID+"/approve" {
		t.Fatalf("want GET status then POST approve, got %+v", reqs)
	}
	post := reqs[1]
	var body map[string]any
	if err := json.Unmarshal(post.Body, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"decision_id": decisionID, "diff_digest": digest, "base_sha": "abc1234def", "comment": "looks right"}
	if len(body) != len(want) {
		t.Errorf("body %v, want exactly %v", body, want)
	}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("body[%s] = %v, want %v", k, body[k], v)
		}
	}
	if ct := post.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if _, err := uuid.Parse(post.Header.Get("Idempotency-Key")); err != nil {
		t.Errorf("Idempotency-Key %q is not a fresh uuid", post.Header.Get("Idempotency-Key"))
	}
	if post.Header.Get("X-API-Key") != testAPIKey || post.Header.Get("Authorization") != "" {
		t.Errorf("credential: X-API-Key=%q Authorization=%q", post.Header.Get("X-API-Key"), post.Header.Get("Authorization"))
	}
	if c0, c1 := reqs[0].Header.Get("X-Correlation-ID"), post.Header.Get("X-Correlation-ID"); c0 == "" || c0 != c1 {
		t.Errorf("one correlation id per command: %q %q", c0, c1)
	}

	// A second approve is a new vote request with a new key.
	api.addStatus(testID, []byte(gofmtPatch), true)
	if _, _, err := runCLI(t, api.env(), "approve", "--digest", digest, testID); err != nil {
		t.Fatal(err)
	}
	posts := api.posts()
	if len(posts) != 2 || posts[0].Header.Get("Idempotency-Key") == posts[1].Header.Get("Idempotency-Key") {
		t.Errorf("every invocation needs its own Idempotency-Key")
	}
}

func TestApproveRefusesADigestThatWasNotReviewed(t *testing.T) {
	api := newFakeAPI(t)
	api.addStatus(testID, []byte(gofmtPatch), true)
	digest := digestOf([]byte(gofmtPatch))
	cases := map[string][]string{
		"missing":   {"approve", testID},
		"short":     {"approve", testID, "--digest", digest[:12]},
		"different": {"approve", testID, "--digest", digestOf([]byte("something else"))},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := runCLI(t, api.env(), args...)
			if err == nil || !strings.Contains(err.Error(), "remediator status "+testID+" --diff") {
				t.Fatalf("want an error pointing at status --diff, got %v", err)
			}
		})
	}
	if p := api.posts(); len(p) != 0 {
		t.Fatalf("nothing may be POSTed for an unreviewed digest: %+v", p)
	}
}

func TestApproveRefusesWhenTheDiffDoesNotMatchItsDigest(t *testing.T) {
	api := newFakeAPI(t)
	st := api.addStatus(testID, []byte(gofmtPatch), true)
	bogus := strings.Repeat("cd", 32)
	st["fix"].(map[string]any)["digest"] = bogus
	if _, _, err := runCLI(t, api.env(), "approve", testID, "--digest", bogus); err == nil {
		t.Fatal("a digest that does not name the shown bytes must not be voted for")
	}
	if p := api.posts(); len(p) != 0 {
		t.Fatalf("nothing may be POSTed: %+v", p)
	}
}

func TestRejectRequiresAReasonAndSendsIt(t *testing.T) {
	api := newFakeAPI(t)
	api.addStatus(testID, []byte(gofmtPatch), true)
	digest := digestOf([]byte(gofmtPatch))
	for _, args := range [][]string{
		{"reject", testID, "--digest", digest},
		{"reject", testID, "--digest", digest, "--reason", "   "},
	} {
		if _, _, err := runCLI(t, api.env(), args...); err == nil || !strings.Contains(err.Error(), "--reason is required") {
			t.Fatalf("%v: want reason required, got %v", args, err)
		}
	}
	if r := api.requests(); len(r) != 0 {
		t.Fatalf("a reject without reason must not reach the API: %+v", r)
	}

	out, _, err := runCLI(t, api.env(), "reject", testID, "--reason", "touches generated code", "--digest", digest)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "rejected "+testID+": phase Rejected") {
		t.Errorf("reject output %q", out)
	}
	out, _, err = runCLI(t, api.env(), "status", testID)
	if err != nil || !strings.Contains(out, "alice rejected via api at 2026-05-01T10:05:00Z: touches generated code") {
		t.Errorf("a rejection shows its reason: %v\n%s", err, out)
	}
	posts := api.posts()
	if len(posts) != 1 || posts[0].Path != "/api/remediations/"+testID+"/reject" {
		t.Fatalf("posts: %+v", posts)
	}
	var body map[string]any
	_ = json.Unmarshal(posts[0].Body, &body)
	if body["reason"] != "touches generated code" || body["decision_id"] != decisionID || body["diff_digest"] != digest || body["base_sha"] != "abc1234def" || len(body) != 4 {
		t.Fatalf("reject body %v", body)
	}
}

func TestListFollowsPageTokensWithAll(t *testing.T) {
	api := newFakeAPI(t)
	item := func(n string) map[string]any {
		return map[string]any{"id": "rem-" + n, "phase": "AwaitingApproval", "repo": "/srv/git/" + n, "requester": "dev",
			"execution_status": "Running", "started_at": "2026-05-01T10:00:00Z"}
	}
	api.pages[""] = map[string]any{"items": []any{item("aaa1"), item("aaa2")}, "next_page_token": "t2"}
	api.pages["t2"] = map[string]any{"items": []any{item("bbb1")}, "next_page_token": "t3"}
	api.pages["t3"] = map[string]any{"items": []any{item("ccc1")}}

	out, errOut, err := runCLI(t, api.env(), "list", "--all", "--phase", "AwaitingApproval", "--repo", "/srv/git/x", "--page-size", "2")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "ID") || !strings.Contains(out, "REQUESTER") {
		t.Errorf("table header missing:\n%s", out)
	}
	for _, id := range []string{"rem-aaa1", "rem-aaa2", "rem-bbb1", "rem-ccc1"} {
		if !strings.Contains(out, id) {
			t.Errorf("--all lost %s:\n%s", id, out)
		}
	}
	if !strings.Contains(out, "2026-05-01T10:00:00Z") || strings.Contains(errOut, "more results") {
		t.Errorf("out %q err %q", out, errOut)
	}
	reqs := api.requests()
	if len(reqs) != 3 {
		t.Fatalf("want 3 pages, got %d", len(reqs))
	}
	for i, tok := range []string{"", "t2", "t3"} {
		q := reqs[i].Query
		if reqs[i].Path != "/api/remediations" || strings.Join(q["page_token"], ",") != tok ||
			q.Get("phase") != "AwaitingApproval" || q.Get("repo") != "/srv/git/x" || q.Get("page_size") != "2" {
			t.Errorf("page %d: %s %v", i, reqs[i].Path, q)
		}
	}

	// Without --all: one page and a hint how to continue.
	out, errOut, err = runCLI(t, api.env(), "list")
	if err != nil || strings.Contains(out, "rem-bbb1") || !strings.Contains(errOut, "--page-token t2") {
		t.Fatalf("single page: %v\n%s\n%s", err, out, errOut)
	}
}

func TestListStopsOnARepeatedPageToken(t *testing.T) {
	api := newFakeAPI(t)
	api.pages[""] = map[string]any{"items": []any{}, "next_page_token": "loop"}
	api.pages["loop"] = map[string]any{"items": []any{}, "next_page_token": "loop"}
	if _, _, err := runCLI(t, api.env(), "list", "--all"); err == nil || !strings.Contains(err.Error(), "repeated a page token") {
		t.Fatalf("a looping server must not be followed forever: %v", err)
	}
	if n := len(api.requests()); n != 2 {
		t.Fatalf("want 2 requests before noticing the loop, got %d", n)
	}
}

func TestAPIErrorsArePrintedWithCodeAndCorrelationID(t *testing.T) {
	api := newFakeAPI(t)
	api.addStatus(testID, []byte(gofmtPatch), true)
	api.errorFor["POST /api/remediations/"+testID+"/approve"] = apiFailure{http.StatusConflict, "not_awaiting_approval",
		"the remediation is not awaiting approval", map[string]string{"phase": "Completed"}}

	_, errOut, err := runCLI(t, api.env(), "approve", testID, "--digest", digestOf([]byte(gofmtPatch)))
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict || apiErr.Code != "not_awaiting_approval" {
		t.Fatalf("want *APIError 409, got %v", err)
	}
	cid := api.requests()[1].Header.Get("X-Correlation-ID")
	for _, want := range []string{
		"remediator: 409 not_awaiting_approval: the remediation is not awaiting approval",
		"  phase: Completed",
		"correlation id: " + cid,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if !strings.Contains(err.Error(), cid) {
		t.Errorf("the error must name the correlation id: %v", err)
	}

	// A wrong credential: the server's 401 in the same shape.
	_, errOut, err = runCLI(t, api.env(EnvToken, "hunter2-wrong-token"), "status", testID)
	if !errors.As(err, &apiErr) || apiErr.Status != 401 || !strings.Contains(errOut, "401 missing_credentials") {
		t.Fatalf("401: %v\n%s", err, errOut)
	}
	// Unknown id: 404 not_found.
	_, errOut, err = runCLI(t, api.env(), "status", "rem-ffff")
	if !errors.As(err, &apiErr) || apiErr.Code != "not_found" || !strings.Contains(errOut, "404 not_found") {
		t.Fatalf("404: %v\n%s", err, errOut)
	}
}

func TestNonJSONErrorsPrintTheStatusLine(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>upstream down</html>", http.StatusBadGateway)
	}))
	defer srv.Close()
	_, errOut, err := runCLI(t, func(k string) string {
		return map[string]string{EnvURL: srv.URL, EnvToken: testToken}[k]
	}, "status", testID)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadGateway {
		t.Fatalf("want *APIError 502, got %v", err)
	}
	if !strings.Contains(errOut, "remediator: 502 Bad Gateway") || !strings.Contains(errOut, "correlation id: ") {
		t.Fatalf("stderr %q", errOut)
	}
}

func TestConfigurationIsCheckedBeforeAnyRequest(t *testing.T) {
	api := newFakeAPI(t)
	api.addStatus(testID, []byte(gofmtPatch), true)
	host := strings.TrimPrefix(api.srv.URL, "http://")
	cases := []struct {
		name string
		env  []string
		want string
	}{
		{"no url", []string{EnvURL, ""}, EnvURL + " is not set"},
		{"no credential", []string{EnvToken, ""}, "no credential"},
		{"both credentials", []string{EnvAPIKey, testAPIKey}, "set exactly one"},
		{"ftp scheme", []string{EnvURL, "ftp://" + host}, "http or https"},
		{"file scheme", []string{EnvURL, "file:///etc/passwd"}, "http or https"},
		{"no scheme", []string{EnvURL, host}, "http or https"},
		{"userinfo", []string{EnvURL, "http://ops:hunter2@" + host}, "must not carry credentials"},
		{"query", []string{EnvURL, api.srv.URL + "/?x=1"}, "must not have a query"},
		{"fragment", []string{EnvURL, api.srv.URL + "/#frag"}, "must not have a fragment"},
		{"no host", []string{EnvURL, "http:///api"}, "must name a host"},
		{"credential with newline", []string{EnvToken, "abc\r\nX-Evil: 1"}, "cannot be sent in a header"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCLI(t, api.env(tc.env...), "status", testID)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
		})
	}
	if r := api.requests(); len(r) != 0 {
		t.Fatalf("a bad configuration must not send anything: %+v", r)
	}

	// A path prefix (API behind a reverse proxy) is kept.
	out, _, err := runCLI(t, api.env(EnvURL, api.srv.URL+"/"), "status", testID)
	if err != nil || !strings.Contains(out, testID) {
		t.Fatalf("trailing slash: %v", err)
	}
}

func TestInvalidIDsAreRefusedLocally(t *testing.T) {
	api := newFakeAPI(t)
	for _, id := range []string{"rem-", "REM-ABC", "rem-ABC", "rem-../x", "rem-a/b", "abc", "rem-a%2f", "rem-" + strings.Repeat("a", 61)} {
		if _, _, err := runCLI(t, api.env(), "status", id); err == nil || !strings.Contains(err.Error(), "not a remediation id") {
			t.Errorf("%q: want a local refusal, got %v", id, err)
		}
	}
	for _, args := range [][]string{{"status"}, {"status", testID, testID}, {"approve", "--digest", "x"}} {
		if _, _, err := runCLI(t, api.env(), args...); err == nil {
			t.Errorf("%v must need exactly one id", args)
		}
	}
	if r := api.requests(); len(r) != 0 {
		t.Fatalf("invalid ids must not reach the API: %+v", r)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	var elsewhere int
	var mu sync.Mutex
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		elsewhere++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer other.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()

	_, errOut, err := runCLI(t, func(k string) string {
		return map[string]string{EnvURL: redirector.URL, EnvToken: testToken}[k]
	}, "status", testID)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusTemporaryRedirect {
		t.Fatalf("want the redirect as an error, got %v", err)
	}
	if !strings.Contains(errOut, "not followed") || !strings.Contains(errOut, other.URL) {
		t.Errorf("stderr %q", errOut)
	}
	mu.Lock()
	defer mu.Unlock()
	if elsewhere != 0 {
		t.Fatalf("the credential was carried to another host %d times", elsewhere)
	}
}

func TestParseInterspersed(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	d := fs.String("digest", "", "")
	b := fs.Bool("json", false, "")
	pos, err := parseInterspersed(fs, []string{"a", "--digest", "x", "b", "--json", "--", "--digest", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(pos, " ") != "a b --digest c" || *d != "x" || !*b {
		t.Fatalf("pos %q digest %q json %v", pos, *d, *b)
	}
	if _, err := parseInterspersed(fs, []string{"a", "--nope"}); err == nil {
		t.Fatal("an unknown flag after a positional must be refused")
	}
}

func TestHelpAndUnknownCommands(t *testing.T) {
	_, errOut, err := runCLI(t, func(string) string { return "" }, "approve", "-h")
	if err != nil || !strings.Contains(errOut, "usage: remediator approve ID --digest DIGEST") {
		t.Fatalf("help: %v %q", err, errOut)
	}
	if _, _, err := runCLI(t, func(string) string { return "" }, "bogus"); err == nil {
		t.Fatal("unknown command must fail")
	}
}

func TestServerTextCannotDriveTheTerminal(t *testing.T) {
	api := newFakeAPI(t)
	st := api.addStatus(testID, []byte(gofmtPatch), true)
	st["reason"] = "bad\x1b]0;pwned\x07 reason"
	out, _, err := runCLI(t, api.env(), "status", testID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsRune(out, 0x1b) || !strings.Contains(out, `\x1b]0;pwned\a`) {
		t.Fatalf("escape sequences must be shown quoted:\n%q", out)
	}
}

func TestListAllIsBounded(t *testing.T) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		tok := "t" + uuid.NewString()
		mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"items": []any{}, "next_page_token": tok})
	}))
	defer srv.Close()
	_, errOut, err := runCLI(t, func(k string) string {
		return map[string]string{EnvURL: srv.URL, EnvToken: testToken}[k]
	}, "list", "--all")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n != maxListPages || !strings.Contains(errOut, "more results: add --page-token t") {
		t.Fatalf("--all must stop after %d pages and say how to go on: %d requests, stderr %q", maxListPages, n, errOut)
	}
}

func TestPlainHTTPToARemoteHostWarns(t *testing.T) {
	var buf bytes.Buffer
	base, err := baseURL("http://api.example.com/remediator/", &buf)
	if err != nil || base != "http://api.example.com/remediator" || !strings.Contains(buf.String(), "unencrypted") {
		t.Fatalf("%q %v %q", base, err, buf.String())
	}
	buf.Reset()
	for _, u := range []string{"https://api.example.com", "http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"} {
		if _, err := baseURL(u, &buf); err != nil || buf.Len() != 0 {
			t.Fatalf("%s: %v %q", u, err, buf.String())
		}
	}
}

func TestTransportErrorsNameTheCorrelationID(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	_, errOut, err := runCLI(t, func(k string) string {
		return map[string]string{EnvURL: addr, EnvToken: testToken}[k]
	}, "status", testID)
	if err == nil || !strings.Contains(err.Error(), "correlation id ") || !strings.Contains(errOut, "correlation id ") {
		t.Fatalf("%v %q", err, errOut)
	}
}

// TestVisibleShowsEveryByte: on a terminal, a diff's escape sequences are
// shown, not interpreted.
func TestVisibleShowsEveryByte(t *testing.T) {
	in := []byte("+ok\n+evil\x1b[1A\x1b[2K\r\tcaf\xe9\u2028\n")
	got := string(visible(in))
	want := "+ok\n+evil\\u001b[1A\\u001b[2K\\u000d\tcaf\\xe9\\u2028\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if isTerminal(&bytes.Buffer{}) {
		t.Fatal("a buffer is no terminal")
	}
}

// regenerate names the fix it replaces: the operator's digest, the decision
// and base of a fresh status; a digest that is not the current fix's is
// refused before anything is sent.
func TestRegenerateNamesTheFixItReplaces(t *testing.T) {
	api := newFakeAPI(t)
	patch := []byte(gofmtPatch)
	api.addStatus(testID, patch, true)
	if _, _, err := runCLI(t, api.env(), "regenerate", testID, "--digest", strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("a stale digest: %v", err)
	}
	if len(api.posts()) != 0 {
		t.Fatal("a refused regenerate was sent")
	}
	out, _, err := runCLI(t, api.env(), "regenerate", testID, "--digest", digestOf(patch), "--reason", "misses a file")
	if err != nil || !strings.Contains(out, "regenerating "+testID+": phase GeneratingFix") {
		t.Fatalf("regenerate: %v %q", err, out)
	}
	posts := api.posts()
	var body map[string]any
	if len(posts) != 1 || json.Unmarshal(posts[0].Body, &body) != nil || body["base_sha"] != "abc1234def" || body["decision_id"] != decisionID ||
		body["diff_digest"] != digestOf(patch) || body["reason"] != "misses a file" || posts[0].Path != "/api/remediations/"+testID+"/regenerate" ||
		posts[0].Header.Get("X-Remediator-Channel") != "cli" {
		t.Fatalf("posts %+v body %v", posts, body)
	}
}
