package orchestrator

import (
	"strings"
	"testing"
	"time"

	"remediator/internal/vote"
)

func TestIDsAreStableAndScoped(t *testing.T) {
	base := StartRequest{IdempotencyKey: "k1", Requester: "dev", Repo: "/r", FailureSummary: "gofmt"}
	other := base
	other.Requester = "eve"
	again := base
	if IDFor(base) != IDFor(again) || IDFor(base) == IDFor(other) {
		t.Fatal("an Idempotency-Key is stable per caller and scoped to it")
	}
	if !validID(IDFor(base)) || !strings.HasPrefix(IDFor(base), "rem-") {
		t.Fatalf("id shape: %s", IDFor(base))
	}
	noKey := base
	noKey.IdempotencyKey = ""
	noKeyOther := noKey
	noKeyOther.Requester = "eve"
	if IDFor(noKey) != IDFor(noKeyOther) {
		t.Fatal("without a key the same failure is one remediation whoever reports it")
	}
}

func TestRequestHash(t *testing.T) {
	a := StartRequest{Repo: "/r", FailureSummary: "x", DeadlineSpec: "2030-01-01T00:00:00Z", ApprovalTimeout: time.Hour}
	b := a
	b.ApprovalTimeout = time.Hour - time.Second // the same absolute deadline, a second later
	if requestHash(a) != requestHash(b) {
		t.Fatal("a retry naming the same absolute deadline must match")
	}
	c := a
	c.FailureSummary = "y"
	if requestHash(a) == requestHash(c) {
		t.Fatal("a different request must not match")
	}
	run := StartRequest{Repo: "acme/api", FailureSummary: "workflow failed", Fingerprint: "acme/api@abc"}
	suite := StartRequest{Repo: "acme/api", FailureSummary: "check suite failed", Fingerprint: "acme/api@abc"}
	if requestHash(run) != requestHash(suite) {
		t.Fatal("events sharing a fingerprint are one request")
	}
}

func TestUpdateIDIsUnambiguous(t *testing.T) {
	if updateID("a:b", "c") == updateID("a", "b:c") {
		t.Fatal("actor and request id must not run into each other")
	}
	first, retry := updateID("alice", "k"), updateID("alice", "k")
	if first != retry {
		t.Fatal("a retried vote keeps its Update ID")
	}
}

func TestQuoteEscapesVisibilityLiterals(t *testing.T) {
	if got := quote(`a'b\c`); got != `a\'b\\c` {
		t.Fatalf("quote: %s", got)
	}
	for _, id := range []string{"rem-", "rem-ABC", "rem-../x", "wf-1", "rem-" + strings.Repeat("a", 70)} {
		if validID(id) {
			t.Errorf("%q must be refused", id)
		}
	}
}

// TestPageTokensAreSealed: a token only opens for the listing (query, scope,
// page size) that produced it, under the same API key; anything else is
// refused before it could reach the server.
func TestPageTokensAreSealed(t *testing.T) {
	key, err := vote.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := vote.NewSigner(key)
	o := New(nil, "default", time.Hour, signer)
	replica := New(nil, "default", time.Hour, signer)
	const q = "WorkflowType = 'Remediation' AND (RemediationRepo STARTS_WITH 'teamA/')"
	server := []byte(`{"CloseTime":"2026-01-01T00:00:00Z","RunID":"x"}`)
	tok := o.sealPageToken(server, q, 50)
	if got, ok := replica.openPageToken(tok, q, 50); !ok || string(got) != string(server) {
		t.Fatalf("a replica with the same key must open the token: %q %v", got, ok)
	}
	if o.sealPageToken(nil, q, 50) != "" {
		t.Fatal("no next page: no token")
	}
	tampered := []byte(tok)
	tampered[len("v1.")+2] ^= 1
	for name, bad := range map[string][3]any{
		"garbage":      {"zzz", q, 50},
		"hex of old":   {"7b22436c6f736554696d65223a22227d", q, 50},
		"tampered":     {string(tampered), q, 50},
		"other scope":  {tok, strings.Replace(q, "teamA", "teamB", 1), 50},
		"other size":   {tok, q, 10},
		"empty parts":  {"v1..", q, 50},
		"wrong prefix": {"v2" + tok[2:], q, 50},
		"last bit":     {tok[:len(tok)-1] + string(tok[len(tok)-1]^1), q, 50},
	} {
		if _, ok := o.openPageToken(bad[0].(string), bad[1].(string), bad[2].(int)); ok {
			t.Errorf("%s: a token that must not open did", name)
		}
	}
	other, _ := vote.GenerateKey()
	otherSigner, _ := vote.NewSigner(other)
	if _, ok := New(nil, "default", time.Hour, otherSigner).openPageToken(tok, q, 50); ok {
		t.Error("a token sealed under another key opened")
	}
}

func TestScopeCondition(t *testing.T) {
	s := Scope{Exact: []string{"/r/a'b"}, Prefixes: []string{"/r/team/"}}
	want := "(RemediationRepo = '/r/a\\'b' OR RemediationRepo STARTS_WITH '/r/team/')"
	if got := s.condition(); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if (Scope{All: true}).condition() != "" || !(Scope{}).empty() || (Scope{All: true}).empty() {
		t.Fatal("All has no condition; the zero scope is empty")
	}
}
