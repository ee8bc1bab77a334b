package orchestrator

import (
	"strings"
	"testing"
	"time"
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
