package api

import (
	"remediator/activities"
	"remediator/internal/auth"

	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"remediator/internal/dragon"
	"remediator/internal/dragon/dragontest"
	"remediator/internal/orchestrator"
	"remediator/workflows"
)

const dragonWebhookSecret = "dragon-webhook-secret-0123"

// dragonEnv is the API with a real Dragon client in front of a fake Dragon.
type dragonEnv struct {
	dragon *dragontest.Server
	orch   *fakeOrch
	h      http.Handler
}

// newDragonEnv verifies callbacks with secret ("" configures none).
func newDragonEnv(t *testing.T, secret string) dragonEnv {
	t.Helper()
	srv := dragontest.New(t, "dragon-token", "org-1", "eu-1")
	client, err := dragon.New(dragon.Config{BaseURL: srv.URL(), Token: "dragon-token", Org: "org-1", Region: "eu-1", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	orch := &fakeOrch{statuses: map[string]orchestrator.Status{}}
	users := activities.DragonUsers{Users: map[string]auth.Principal{
		"carol":          {Subject: "carol", Roles: []string{"approver"}, Repos: []string{"acme/*"}},
		"dev":            {Subject: "dev", Roles: []string{"developer"}, Repos: []string{"*"}},
		"other-approver": {Subject: "olga", Roles: []string{"approver"}, Repos: []string{"other/*"}},
	}}
	h := NewHandler(quietLogger(), orch, Options{Auth: testAuth(t), Repos: testRepos(), Dragon: client, DragonWebhookSecret: []byte(secret), DragonUsers: users})
	return dragonEnv{dragon: srv, orch: orch, h: h}
}

// seedDecision stores decision id of rem-1 for fixDigest in the fake Dragon,
// pending; extra overrides fields (nil removes one).
func (e dragonEnv) seedDecision(id string, extra map[string]any) {
	rec := map[string]any{"id": id, "remediation_id": "rem-1", "repository": "acme/api", "requester": "dev",
		"client_reference": "rem-1", "diff_digest": fixDigest, "base_sha": strings.Repeat("b", 40), "proposed_action": "apply_autofix"}
	for k, v := range extra {
		if v == nil {
			delete(rec, k)
			continue
		}
		rec[k] = v
	}
	e.dragon.Seed(rec)
}

func callbackBody(id, status string) string {
	return `{"event":"decision.updated","decision":{"id":"` + id + `","status":"` + status + `"}}`
}

// signedCallback is a callback as Dragon sends it, signed at at.
func signedCallback(secret, body string, at time.Time) *http.Request {
	ts, sig := dragon.SignWebhook([]byte(secret), []byte(body), at)
	req := httptest.NewRequest("POST", "/webhooks/dragon", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(dragon.TimestampHeader, ts)
	req.Header.Set(dragon.SignatureHeader, sig)
	return req
}

// callback sends req and decodes a 200's body.
func (e dragonEnv) callback(t *testing.T, req *http.Request) (*httptest.ResponseRecorder, dragonResponse) {
	t.Helper()
	rec := serve(t, e.h, req)
	var out dragonResponse
	if rec.Code == http.StatusOK || rec.Code == http.StatusAccepted {
		out = decodeInto[dragonResponse](t, rec.Body.Bytes())
	}
	return rec, out
}

func TestDragonWebhookFailsClosed(t *testing.T) {
	unset := newDragonEnv(t, "")
	unset.seedDecision("dec-9", map[string]any{"status": "approved", "approver": "carol"})
	rec := serve(t, unset.h, signedCallback("", callbackBody("dec-9", "approved"), time.Now()))
	if rec.Code != 401 || !strings.Contains(rec.Body.String(), `"webhook_not_configured"`) || rec.Header().Get("WWW-Authenticate") == "" {
		t.Fatalf("no secret configured refuses every callback: %d %s", rec.Code, rec.Body)
	}

	e := newDragonEnv(t, dragonWebhookSecret)
	e.seedDecision("dec-9", map[string]any{"status": "approved", "approver": "carol"})
	body := callbackBody("dec-9", "approved")
	tampered := signedCallback(dragonWebhookSecret, body, time.Now())
	tampered.Body = io.NopCloser(strings.NewReader(body + " "))
	unsigned := httptest.NewRequest("POST", "/webhooks/dragon", strings.NewReader(body))
	unsigned.Header.Set("Content-Type", "application/json")
	for name, req := range map[string]*http.Request{
		"wrong secret":     signedCallback("another-secret", body, time.Now()),
		"six minutes old":  signedCallback(dragonWebhookSecret, body, time.Now().Add(-6*time.Minute)),
		"from the future":  signedCallback(dragonWebhookSecret, body, time.Now().Add(6*time.Minute)),
		"body not as sent": tampered,
		"unsigned":         unsigned,
	} {
		rec := serve(t, e.h, req)
		if rec.Code != 401 || !strings.Contains(rec.Body.String(), `"invalid_signature"`) {
			t.Errorf("%s: want 401 invalid_signature, got %d %s", name, rec.Code, rec.Body)
		}
	}
	if len(unset.orch.votes)+len(e.orch.votes) != 0 {
		t.Fatalf("refused callbacks vote nothing: %+v %+v", unset.orch.votes, e.orch.votes)
	}
	if n := len(unset.dragon.Requests()) + len(e.dragon.Requests()); n != 0 {
		t.Fatalf("Dragon is not asked about unauthenticated callbacks: %d requests", n)
	}
}

func TestDragonWebhookVotesAsThePersonWhoDecided(t *testing.T) {
	e := newDragonEnv(t, dragonWebhookSecret)
	e.seedDecision("dec-9", nil)
	e.dragon.Decide("dec-9", "approved", "carol", "looks right")
	body := callbackBody("dec-9", "approved")
	first := signedCallback(dragonWebhookSecret, body, time.Now())
	replay := signedCallback(dragonWebhookSecret, body, time.Now())
	replay.Header = first.Header.Clone()

	rec, out := e.callback(t, first)
	if rec.Code != 200 || out.Status != "counted" || out.DecisionID != "dec-9" || out.RemediationID != "rem-1" || out.Phase != workflows.PhaseAwaitingApproval {
		t.Fatalf("an approval in Dragon: %d %s", rec.Code, rec.Body)
	}
	if len(e.orch.votes) != 1 {
		t.Fatalf("one vote: %+v", e.orch.votes)
	}
	v := e.orch.votes[0]
	if v.ID != "rem-1" || !v.Approve || v.Actor != "carol" || v.Channel != workflows.ChannelDragon || v.DecisionID != "dec-9" ||
		v.DiffDigest != fixDigest || v.Comment != "looks right" || !slices.Equal(v.Roles, []string{"approver"}) || v.RequestID == "" {
		t.Fatalf("the vote is carol's, from Dragon: %+v", v)
	}
	reqs := e.dragon.Requests()
	if len(reqs) != 1 || reqs[0].Method != "GET" || reqs[0].Path != "/api/decisions/dec-9" || reqs[0].Header.Get("X-Token") != "dragon-token" {
		t.Fatalf("the decision is read from Dragon: %+v", reqs)
	}

	// The same callback again, and a later one about the same decision,
	// deliver the same Update id, which the workflow counts once.
	if rec, out := e.callback(t, replay); rec.Code != 200 || out.Status != "counted" {
		t.Fatalf("a replay: %d %s", rec.Code, rec.Body)
	}
	if rec, _ := e.callback(t, signedCallback(dragonWebhookSecret, body, time.Now().Add(2*time.Second))); rec.Code != 200 {
		t.Fatalf("a repeated callback: %d %s", rec.Code, rec.Body)
	}
	if len(e.orch.votes) != 3 || e.orch.votes[1].RequestID != v.RequestID || e.orch.votes[2].RequestID != v.RequestID {
		t.Fatalf("replays must carry the first vote's request id %q: %+v", v.RequestID, e.orch.votes)
	}

	e.seedDecision("dec-10", nil)
	e.dragon.Decide("dec-10", "rejected", "dave", "not during the freeze")
	if rec, out := e.callback(t, signedCallback(dragonWebhookSecret, callbackBody("dec-10", "rejected"), time.Now())); rec.Code != 200 || out.Status != "counted" {
		t.Fatalf("a rejection in Dragon: %d %s", rec.Code, rec.Body)
	}
	r := e.orch.votes[3]
	if r.Approve || r.Actor != activities.DragonVeto || r.Reason != "not during the freeze" || r.Channel != workflows.ChannelDragon || r.DecisionID != "dec-10" || r.RequestID == v.RequestID {
		t.Fatalf("the rejection of dave (not linked) vetoes, with his reason: %+v", r)
	}
}

func TestDragonWebhookTrustsDragonNotTheCallback(t *testing.T) {
	e := newDragonEnv(t, dragonWebhookSecret)
	e.seedDecision("dec-9", nil)
	// The callback says approved; Dragon says pending.
	rec, out := e.callback(t, signedCallback(dragonWebhookSecret, callbackBody("dec-9", "approved"), time.Now()))
	if rec.Code != 200 || out.Status != "ignored" || len(e.orch.votes) != 0 {
		t.Fatalf("a pending decision is not voted, whatever the callback says: %d %s %+v", rec.Code, rec.Body, e.orch.votes)
	}
	if len(e.dragon.Requests()) != 1 {
		t.Fatalf("Dragon must be asked: %+v", e.dragon.Requests())
	}

	// Approved, naming nobody: the four-eyes rule cannot be checked.
	e.dragon.Decide("dec-9", "approved", "", "")
	rec, out = e.callback(t, signedCallback(dragonWebhookSecret, callbackBody("dec-9", "approved"), time.Now()))
	if rec.Code != 200 || out.Status != "refused" || out.Reason == "" || len(e.orch.votes) != 0 {
		t.Fatalf("an approval by nobody: %d %s %+v", rec.Code, rec.Body, e.orch.votes)
	}

	// Not one of this service's remediations.
	e.dragon.Seed(map[string]any{"id": "dec-foreign", "status": "approved", "approver": "carol"})
	rec, out = e.callback(t, signedCallback(dragonWebhookSecret, callbackBody("dec-foreign", "approved"), time.Now()))
	if rec.Code != 200 || out.Status != "ignored" || len(e.orch.votes) != 0 {
		t.Fatalf("a decision naming no remediation: %d %s %+v", rec.Code, rec.Body, e.orch.votes)
	}

	bad := `{"event":"decision.updated","decision":{"id":"../admin"}}`
	if rec := serve(t, e.h, signedCallback(dragonWebhookSecret, bad, time.Now())); rec.Code != 400 || !strings.Contains(rec.Body.String(), `"malformed_payload"`) {
		t.Fatalf("a callback naming no valid decision: %d %s", rec.Code, rec.Body)
	}
}

func TestDragonWebhookDigestComesFromTheRemediation(t *testing.T) {
	e := newDragonEnv(t, dragonWebhookSecret)
	st := proposed("rem-1", workflows.PhaseAwaitingApproval)
	st.DecisionID = "dec-9"
	e.orch.statuses["rem-1"] = st
	e.seedDecision("dec-9", map[string]any{"diff_digest": nil, "status": "approved", "approver": "carol"})
	rec, out := e.callback(t, signedCallback(dragonWebhookSecret, callbackBody("dec-9", "approved"), time.Now()))
	if rec.Code != 200 || out.Status != "counted" || len(e.orch.votes) != 1 || e.orch.votes[0].DiffDigest != fixDigest {
		t.Fatalf("a Dragon that does not echo the digest: the remediation's fix: %d %s %+v", rec.Code, rec.Body, e.orch.votes)
	}
	// A decision that is not the one the remediation awaits is not voted.
	e.seedDecision("dec-old", map[string]any{"diff_digest": nil, "status": "approved", "approver": "carol"})
	rec, out = e.callback(t, signedCallback(dragonWebhookSecret, callbackBody("dec-old", "approved"), time.Now()))
	if rec.Code != 200 || out.Status != "ignored" || len(e.orch.votes) != 1 {
		t.Fatalf("another decision of the remediation: %d %s %+v", rec.Code, rec.Body, e.orch.votes)
	}
}

func TestDragonWebhookAnswers503WhenDragonIsDown(t *testing.T) {
	e := newDragonEnv(t, dragonWebhookSecret)
	e.seedDecision("dec-9", map[string]any{"status": "approved", "approver": "carol"})
	e.dragon.FailNext(1, http.StatusInternalServerError, "<html><body>internal error</body></html>", nil)
	e.dragon.FailNext(1, http.StatusBadGateway, `{"error":"bad_gateway","message":"upstream"}`, nil)
	for range 2 {
		rec := serve(t, e.h, signedCallback(dragonWebhookSecret, callbackBody("dec-9", "approved"), time.Now()))
		if rec.Code != 503 || !strings.Contains(rec.Body.String(), `"upstream_unavailable"`) || strings.Contains(rec.Body.String(), "internal error") {
			t.Fatalf("Dragon down: want 503 upstream_unavailable, got %d %s", rec.Code, rec.Body)
		}
	}
	if len(e.orch.votes) != 0 {
		t.Fatalf("nothing is voted while Dragon cannot be read: %+v", e.orch.votes)
	}
	// Dragon retries its callback; once it answers, the vote counts.
	if rec, out := e.callback(t, signedCallback(dragonWebhookSecret, callbackBody("dec-9", "approved"), time.Now())); rec.Code != 200 || out.Status != "counted" {
		t.Fatalf("after Dragon recovered: %d %s", rec.Code, rec.Body)
	}
}

func TestDragonWebhookWithoutADragonClient(t *testing.T) {
	orch := &fakeOrch{}
	h := NewHandler(quietLogger(), orch, Options{Auth: testAuth(t), Repos: testRepos(), DragonWebhookSecret: []byte(dragonWebhookSecret)})
	rec := serve(t, h, signedCallback(dragonWebhookSecret, callbackBody("dec-9", "approved"), time.Now()))
	out := decodeInto[dragonResponse](t, rec.Body.Bytes())
	if rec.Code != 202 || out.Status != "ignored" || out.DecisionID != "dec-9" || len(orch.votes) != 0 {
		t.Fatalf("no Dragon client: %d %s", rec.Code, rec.Body)
	}
}

// TestDragonWebhookCountsOnlyLinkedApprovers: an approval in Dragon counts
// as the linked principal (case-insensitively), and only when it holds an
// approver role with the repository in scope; a rejection vetoes whoever
// took it.
func TestDragonWebhookCountsOnlyLinkedApprovers(t *testing.T) {
	for _, tc := range []struct {
		approver, status, want, actor string
	}{
		{"CAROL", "approved", "counted", "carol"},
		{"mallory", "approved", "refused", ""},
		{"dev", "approved", "refused", ""},
		{"other-approver", "approved", "refused", ""},
		{"", "approved", "refused", ""},
		{"mallory", "rejected", "counted", activities.DragonVeto},
		{"carol", "denied", "counted", "carol"},
	} {
		e := newDragonEnv(t, dragonWebhookSecret)
		e.seedDecision("dec-9", nil)
		e.dragon.Decide("dec-9", tc.status, tc.approver, "why")
		rec, out := e.callback(t, signedCallback(dragonWebhookSecret, callbackBody("dec-9", tc.status), time.Now()))
		if rec.Code != 200 || out.Status != tc.want {
			t.Errorf("%s %s: %d %s", tc.approver, tc.status, rec.Code, rec.Body)
			continue
		}
		if tc.actor == "" {
			if len(e.orch.votes) != 0 {
				t.Errorf("%s %s: voted %+v", tc.approver, tc.status, e.orch.votes)
			}
			continue
		}
		if len(e.orch.votes) != 1 || e.orch.votes[0].Actor != tc.actor {
			t.Errorf("%s %s: votes %+v, want one by %s", tc.approver, tc.status, e.orch.votes, tc.actor)
		}
	}
}

// TestDragonWebhookWithoutLinksVotesAsDragonSays: without
// REMEDIATOR_DRAGON_USERS, Dragon's permissions decide who may approve and
// its identity is the actor (the workflow still refuses the requester).
func TestDragonWebhookWithoutLinksVotesAsDragonSays(t *testing.T) {
	e := newDragonEnv(t, dragonWebhookSecret)
	client, err := dragon.New(dragon.Config{BaseURL: e.dragon.URL(), Token: "dragon-token", Org: "org-1", Region: "eu-1", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.h = NewHandler(quietLogger(), e.orch, Options{Auth: testAuth(t), Repos: testRepos(), Dragon: client, DragonWebhookSecret: []byte(dragonWebhookSecret)})
	e.seedDecision("dec-9", nil)
	e.dragon.Decide("dec-9", "approved", "mallory", "")
	rec, out := e.callback(t, signedCallback(dragonWebhookSecret, callbackBody("dec-9", "approved"), time.Now()))
	if rec.Code != 200 || out.Status != "counted" || len(e.orch.votes) != 1 || e.orch.votes[0].Actor != "mallory" {
		t.Fatalf("%d %s %+v", rec.Code, rec.Body, e.orch.votes)
	}
}
