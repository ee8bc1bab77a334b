package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"remediator/activities"
	"remediator/internal/auth"
	"remediator/internal/orchestrator"
	"remediator/internal/vote"
	"remediator/workflows"
)

// scopedHandler has tokens scoped to one team's repositories, given as
// root-relative globs.
func scopedHandler(t *testing.T, orch *fakeOrch) http.Handler {
	t.Helper()
	a := testAuth(t)
	for _, tok := range []struct{ subject, token string }{{"team-a-dev", "teamA-token-0123456789abcd"}, {"team-b-dev", "teamB-token-0123456789abcd"}} {
		glob := "teamA/**"
		if tok.subject == "team-b-dev" {
			glob = "teamB/**"
		}
		st, err := auth.NewStaticToken(tok.subject, tok.token, []string{"developer", "approver"}, []string{glob})
		if err != nil {
			t.Fatal(err)
		}
		a.Tokens = append(a.Tokens, st)
	}
	return NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), orch, Options{Auth: a, MaxBodyBytes: 4096, Repos: testRepos()})
}

// TestScopeIsCheckedOnTheCanonicalRepository: a link in team A's tree to
// team B's repository is team B's repository; the workflow gets only the
// canonical form.
func TestScopeIsCheckedOnTheCanonicalRepository(t *testing.T) {
	orch := &fakeOrch{}
	h := scopedHandler(t, orch)
	body := `{"repo":"/srv/git/teamA/linkB","failure_summary":"gofmt"}`
	if rec, eb := do(t, h, "POST", "/api/remediations", "teamA-token-0123456789abcd", body); rec.Code != 422 || eb.Error != "invalid_repository" {
		t.Fatalf("team A through a link into team B: %d %+v", rec.Code, eb)
	}
	if len(orch.started) != 0 {
		t.Fatal("nothing may start")
	}
	if rec, eb := do(t, h, "POST", "/api/remediations", "teamB-token-0123456789abcd", body); rec.Code != 202 {
		t.Fatalf("team B: %d %+v", rec.Code, eb)
	}
	if len(orch.started) != 1 || orch.started[0].Repo != "/srv/git/teamB/repo2" {
		t.Fatalf("the workflow must get the canonical repository: %+v", orch.started)
	}
}

// TestUnknownRepositoryIsRefusedAtTheEdge: a repository the service cannot
// act on is a 422 before any workflow starts, with one answer whatever the
// cause (no existence oracle), and the cause only in the log.
func TestUnknownRepositoryIsRefusedAtTheEdge(t *testing.T) {
	orch := &fakeOrch{}
	h := newTestHandler(t, orch)
	var messages []string
	for _, repo := range []string{"acme/missing", "/etc", "/srv/git/teamA/missing"} {
		rec, eb := do(t, h, "POST", "/api/remediations", adminTok, `{"repo":"`+repo+`","failure_summary":"gofmt"}`)
		if rec.Code != 422 || eb.Error != "invalid_repository" {
			t.Fatalf("%s: %d %+v", repo, rec.Code, eb)
		}
		messages = append(messages, eb.Message)
	}
	if messages[0] != messages[1] || messages[1] != messages[2] {
		t.Fatalf("the answers tell the causes apart: %q", messages)
	}
	if len(orch.started) != 0 {
		t.Fatal("no workflow may start for an unknown repository")
	}
	// Without a resolver nothing starts at all (fail closed).
	bare := NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), orch, Options{Auth: testAuth(t)})
	if rec, eb := do(t, bare, "POST", "/api/remediations", adminTok, `{"repo":"acme/api","failure_summary":"gofmt"}`); rec.Code != 422 || eb.Error != "invalid_repository" {
		t.Fatalf("no resolver: %d %+v", rec.Code, eb)
	}
}

// TestListScopeGoesIntoTheQuery: the caller's globs become the visibility
// condition, so pages and tokens cover only what it may see; a principal
// that sees nothing gets nothing without walking pages.
func TestListScopeGoesIntoTheQuery(t *testing.T) {
	orch := &fakeOrch{}
	h := scopedHandler(t, orch)
	if rec, _ := do(t, h, "GET", "/api/remediations", "teamA-token-0123456789abcd", ""); rec.Code != 200 {
		t.Fatal(rec.Code)
	}
	want := orchestrator.Scope{Prefixes: []string{"teamA/", "/srv/git/teamA/"}}
	if len(orch.lists) != 1 || !reflect.DeepEqual(orch.lists[0].Scope, want) {
		t.Fatalf("scope %+v, want %+v", orch.lists, want)
	}
	if rec, _ := do(t, h, "GET", "/api/remediations", adminTok, ""); rec.Code != 200 || !orch.lists[1].Scope.All {
		t.Fatalf("a token for every repository lists everything: %+v", orch.lists[1].Scope)
	}
	if rec, _ := do(t, h, "GET", "/api/remediations", teamTok, ""); rec.Code != 200 ||
		!reflect.DeepEqual(orch.lists[2].Scope, orchestrator.Scope{Prefixes: []string{"acme/", "/srv/git/acme/"}}) {
		t.Fatalf("acme/*: %+v", orch.lists[2].Scope)
	}
}

func TestListScopeOfGlobShapes(t *testing.T) {
	h := &handler{opts: Options{Repos: testRepos()}}
	cases := []struct {
		globs []string
		want  orchestrator.Scope
	}{
		{nil, orchestrator.Scope{}},
		{[]string{"**"}, orchestrator.Scope{All: true}},
		{[]string{"acme/api"}, orchestrator.Scope{Exact: []string{"acme/api", "/srv/git/acme/api"}}},
		{[]string{"/srv/git/x/**"}, orchestrator.Scope{Prefixes: []string{"/srv/git/x/"}}},
		{[]string{"team*/repo"}, orchestrator.Scope{Prefixes: []string{"team", "/srv/git/team"}}},
		{[]string{"*/repo"}, orchestrator.Scope{All: true}},
	}
	for _, tc := range cases {
		if got := h.listScope(Principal{Repos: tc.globs}); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v: got %+v, want %+v", tc.globs, got, tc.want)
		}
	}
}

// fixOrch serves a status with a non-UTF-8 patch and a signed vote, as the
// real orchestrator does.
type fixOrch struct{ *fakeOrch }

func (fixOrch) Get(_ context.Context, id string) (orchestrator.Status, error) {
	st := status(id)
	st.Fix = &workflows.FixSummary{Recipe: "trailing-whitespace", Summary: "s", Files: []string{"menu.txt"},
		Digest: strings.Repeat("a", 64), BaseSHA: strings.Repeat("b", 40), Validated: true, Patch: []byte("caf\xe9\n")}
	st.Votes = []activities.Vote{{Actor: "alice", Approved: true, Roles: []string{"approver"}, Channel: "api",
		DecisionID: "dec_1", DiffDigest: strings.Repeat("a", 64), At: st.CreatedAt, SignedAt: st.CreatedAt,
		Signature: &vote.Signature{KeyID: "0123456789abcdef", Sig: make([]byte, 64)}}}
	return st, nil
}

// TestStatusCarriesTheExactPatch: the status document (checked against
// the OpenAPI schema by serve) carries the patch bytes and the signed votes.
func TestStatusCarriesTheExactPatch(t *testing.T) {
	h := NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), fixOrch{&fakeOrch{}}, Options{Auth: testAuth(t), Repos: testRepos()})
	req := httptest.NewRequest("GET", "/api/remediations/rem-1", nil)
	req.Header.Set("Authorization", "Bearer "+adminTok)
	rec := serve(t, h, req)
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var got struct {
		Fix struct {
			Patch []byte `json:"patch"`
		} `json:"fix"`
		Votes []struct {
			Signature struct {
				KeyID string `json:"key_id"`
			} `json:"signature"`
		} `json:"votes"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if string(got.Fix.Patch) != "caf\xe9\n" || len(got.Votes) != 1 || got.Votes[0].Signature.KeyID == "" {
		t.Fatalf("status: %s", rec.Body)
	}
}

// TestPageTokenCheckedForAnOutOfScopeFilter: a page token is refused even
// where the listing is empty because the filter names a repository the
// caller may not see.
func TestPageTokenCheckedForAnOutOfScopeFilter(t *testing.T) {
	orch := &fakeOrch{}
	h := scopedHandler(t, orch)
	rec, eb := do(t, h, "GET", "/api/remediations?repo=/srv/git/teamB/repo2&page_token=garbage", "teamA-token-0123456789abcd", "")
	if rec.Code != 400 || eb.Error != "invalid_page_token" {
		t.Fatalf("%d %+v", rec.Code, eb)
	}
}
