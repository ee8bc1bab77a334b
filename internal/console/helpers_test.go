package console

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"remediator/activities"
	"remediator/internal/auth"
	"remediator/internal/orchestrator"
	"remediator/workflows"
)

const (
	testDigest = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	testBase   = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// fakeOrch is the orchestrator as the console sees it, in memory.
type fakeOrch struct {
	mu        sync.Mutex
	statuses  map[string]orchestrator.Status
	audit     map[string][]workflows.AuditEvent
	excerpts  map[string]string
	votes     []orchestrator.Vote
	decideErr error
	filters   []orchestrator.ListFilter
}

func (f *fakeOrch) List(_ context.Context, lf orchestrator.ListFilter) (orchestrator.ListResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filters = append(f.filters, lf)
	var res orchestrator.ListResult
	res.Items = []orchestrator.Summary{}
	ids := make([]string, 0, len(f.statuses))
	for id := range f.statuses {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		st := f.statuses[id]
		if lf.Phase != "" && string(st.Phase) != lf.Phase || lf.Repo != "" && st.Repo != lf.Repo {
			continue
		}
		// Like a visibility store that over-approximates the scope: the
		// console must still filter exactly.
		res.Items = append(res.Items, orchestrator.Summary{ID: id, Phase: string(st.Phase), Repo: st.Repo, Requester: st.Requester, StartedAt: st.CreatedAt})
	}
	return res, nil
}

func (f *fakeOrch) Get(_ context.Context, id string) (orchestrator.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.statuses[id]
	if !ok {
		return orchestrator.Status{}, orchestrator.ErrNotFound
	}
	return st, nil
}

func (f *fakeOrch) Decide(_ context.Context, v orchestrator.Vote) (orchestrator.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.decideErr != nil {
		return orchestrator.Status{}, f.decideErr
	}
	f.votes = append(f.votes, v)
	st := f.statuses[v.ID]
	st.Votes = append(st.Votes, activities.Vote{Actor: v.Actor, Approved: v.Approve, Comment: v.Comment, Reason: v.Reason, Channel: v.Channel})
	f.statuses[v.ID] = st
	return st, nil
}

func (f *fakeOrch) Audit(_ context.Context, id string) ([]workflows.AuditEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.audit[id], nil
}

func (f *fakeOrch) RepoOf(_ context.Context, id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.statuses[id]
	if !ok {
		return "", orchestrator.ErrNotFound
	}
	return st.Repo, nil
}

func (f *fakeOrch) LogExcerpt(_ context.Context, id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.excerpts[id], nil
}

func (f *fakeOrch) delivered() []orchestrator.Vote {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.votes)
}

const testDiff = `diff --git a/go.mod b/go.mod
index 1111111..2222222 100644
--- a/go.mod
+++ b/go.mod
@@ -1,4 +1,4 @@
 module example.com/app
 
-go 1.21
+go 1.22
 require example.com/dep v1.0.0
`

func pendingStatus(id, repo, requester string) orchestrator.Status {
	now := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	return orchestrator.Status{
		ID: id, Phase: workflows.PhaseAwaitingApproval, Repo: repo, Requester: requester,
		FailureSummary: "go build fails: go.mod requires go >= 1.22",
		DecisionID:     "dec-" + id, RequiredApprovals: 2,
		Fix: &workflows.FixSummary{Recipe: "go-version", Summary: "Raise the go directive", Files: []string{"go.mod"},
			Digest: testDigest, BaseSHA: testBase, Validated: true, Validation: "go build ./... passed", Diff: testDiff},
		Risk:      &workflows.Risk{Level: "MEDIUM", Score: 55, Gate: "REVIEW", Reason: "touches the build", Rule: "build-files"},
		Votes:     []activities.Vote{{Actor: "bob", Approved: true, Comment: "looks right", Channel: "api"}},
		CreatedAt: now.Add(-3 * time.Hour), Deadline: now.Add(21 * time.Hour),
		PR: nil,
	}
}

func newFake() *fakeOrch {
	f := &fakeOrch{statuses: map[string]orchestrator.Status{}, audit: map[string][]workflows.AuditEvent{}, excerpts: map[string]string{}}
	f.statuses["rem-a1"] = pendingStatus("rem-a1", "teamA/app", "dev")
	high := pendingStatus("rem-a2", "teamA/infra", "carol")
	high.Risk = &workflows.Risk{Level: "HIGH", Score: 85, Gate: "COMMANDER", Reason: "infrastructure", Rule: "infra"}
	f.statuses["rem-a2"] = high
	f.statuses["rem-b1"] = pendingStatus("rem-b1", "teamB/secret-service", "mallory")
	f.audit["rem-a1"] = []workflows.AuditEvent{{Kind: "started", Actor: "dev", Channel: "api", At: time.Date(2026, 12, 8, 7, 0, 0, 0, time.UTC)}}
	f.excerpts["rem-a1"] = "error: go.mod requires go >= 1.22"
	return f
}

var testUsers = []auth.Principal{
	{Subject: "alice", Roles: []string{auth.RoleApprover}, Repos: []string{"teamA/*"}},
	{Subject: "carol", Roles: []string{auth.RoleDeveloper}, Repos: []string{"teamA/*"}},
	{Subject: "dev", Roles: []string{auth.RoleApprover}, Repos: []string{"teamA/*"}},
	{Subject: "eve", Roles: []string{auth.RoleApprover}, Repos: []string{"teamB/*"}},
}

func testOptions(f *fakeOrch) Options {
	return Options{
		Orch:      f,
		Scope:     func(p auth.Principal) orchestrator.Scope { return orchestrator.Scope{Prefixes: p.Repos} },
		MayAccess: func(p auth.Principal, repo string) bool { return p.CanAccessRepo(repo) },
		WebUIURL:  func(id string) string { return "http://127.0.0.1:8233/namespaces/default/workflows/" + id },
		DevUsers:  testUsers,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:       func() time.Time { return time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC) },
	}
}

func newConsole(t *testing.T, opts Options) *Console {
	t.Helper()
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// browser keeps a cookie jar over a handler, like a browser would.
type browser struct {
	t       *testing.T
	h       http.Handler
	host    string
	cookies map[string]*http.Cookie
}

func newBrowser(t *testing.T, h http.Handler) *browser {
	return &browser{t: t, h: h, host: "127.0.0.1:8080", cookies: map[string]*http.Cookie{}}
}

func (b *browser) do(method, target string, form url.Values) *httptest.ResponseRecorder {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, target, body)
	req.Host = b.host
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, ck := range b.cookies {
		req.AddCookie(ck)
	}
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, req)
	for _, ck := range rec.Result().Cookies() {
		if ck.MaxAge < 0 {
			delete(b.cookies, ck.Name)
		} else {
			b.cookies[ck.Name] = ck
		}
	}
	return rec
}

func (b *browser) get(target string) *httptest.ResponseRecorder {
	return b.do(http.MethodGet, target, nil)
}

func (b *browser) post(target string, form url.Values) *httptest.ResponseRecorder {
	return b.do(http.MethodPost, target, form)
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf_token in the page:\n%s", body)
	}
	return m[1]
}

// signIn signs the browser in as a dev user and returns the session's CSRF
// token.
func (b *browser) signIn(user string) string {
	b.t.Helper()
	page := b.get("/ui/login")
	rec := b.post("/ui/login", url.Values{"csrf_token": {csrfOf(b.t, page.Body.String())}, "user": {user}, "next": {"/ui/"}})
	if rec.Code != http.StatusSeeOther {
		b.t.Fatalf("sign-in as %s: %d %s", user, rec.Code, rec.Body)
	}
	home := b.get("/ui/")
	if home.Code != http.StatusOK {
		b.t.Fatalf("pending list after sign-in: %d %s", home.Code, home.Body)
	}
	return csrfOf(b.t, home.Body.String())
}

// voteForm is the approve/reject form as the remediation page renders it.
func voteForm(t *testing.T, page string) url.Values {
	t.Helper()
	form := url.Values{}
	for _, name := range []string{"csrf_token", "request_id", "decision_id", "diff_digest", "base_sha"} {
		m := regexp.MustCompile(`name="` + name + `" value="([^"]*)"`).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no %s in the page", name)
		}
		form.Set(name, m[1])
	}
	return form
}
