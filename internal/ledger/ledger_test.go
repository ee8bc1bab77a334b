package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"sync"
	"testing"
)

func TestCreateIsIdempotentAndRecordsOutcome(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := s.Create(ctx, "rem-1", Decision{ProposedAction: "apply_autofix", Repo: "r", DiffDigest: "x"})
			if err != nil {
				t.Error(err)
			}
			ids[i] = d.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent creates returned different ids: %v", ids)
		}
	}
	entries, _ := os.ReadDir(s.dir)
	if len(entries) != 1 {
		t.Fatalf("want one record file, got %d", len(entries))
	}
	d, err := s.Get(ctx, ids[0])
	if err != nil || d.Status != StatusPending || d.DiffDigest != "x" {
		t.Fatalf("get: %+v %v", d, err)
	}
	d, err = s.Record(ctx, d.ID, Outcome{Phase: "Completed", PRURL: "file:///x#b", Votes: []Vote{{Actor: "alice", Approved: true}}})
	if err != nil || d.Status != StatusApproved || d.PRURL != "file:///x#b" || len(d.Votes) != 1 {
		t.Fatalf("record: %+v %v", d, err)
	}
	// The stored JSON carries Dragon's field names.
	b, _ := os.ReadFile(s.path(d.ID))
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "alert_id", "proposer", "proposed_action", "rationale", "status"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("record lacks %q", k)
		}
	}
	again, _ := s.Create(ctx, "rem-1", Decision{Repo: "r", DiffDigest: "x"})
	if again.Status != StatusApproved {
		t.Fatalf("create after outcome must return the stored record, got %+v", again)
	}
}

func TestGetRejectsUnknownAndMalformedIDs(t *testing.T) {
	s, _ := Open(t.TempDir())
	for _, id := range []string{"dec_000000000000000000000000", "../etc/passwd", "", "dec_zz"} {
		if _, err := s.Get(context.Background(), id); !errors.Is(err, ErrNotFound) {
			t.Errorf("%q: want ErrNotFound, got %v", id, err)
		}
	}
}

// TestCreateNeverReusesADecisionForAnotherChange: a key names one change; a
// create for something else under it is refused, not answered with the old
// record (whose votes would then count for the new change).
func TestCreateNeverReusesADecisionForAnotherChange(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d := Decision{RemediationID: "rem-1", Repo: "/r/a", BaseSHA: "b1", DiffDigest: "d1"}
	first, err := s.Create(ctx, "rem-1", d)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := s.Create(ctx, "rem-1", d); err != nil || again.ID != first.ID {
		t.Fatalf("the same change is answered with its record: %v %v", again, err)
	}
	for _, other := range []Decision{
		{RemediationID: "rem-1", Repo: "/r/b", BaseSHA: "b1", DiffDigest: "d1"},
		{RemediationID: "rem-1", Repo: "/r/a", BaseSHA: "b2", DiffDigest: "d1"},
		{RemediationID: "rem-1", Repo: "/r/a", BaseSHA: "b1", DiffDigest: "d2"},
	} {
		if _, err := s.Create(ctx, "rem-1", other); !errors.Is(err, ErrConflict) {
			t.Errorf("%+v: want ErrConflict, got %v", other, err)
		}
	}
}
