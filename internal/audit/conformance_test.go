package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// backend is one store implementation under test: open returns a fresh,
// empty store (and a way to open a second handle on the same chain, as
// another process would); the tamper functions change the stored chain
// behind the store's back, as someone with write access to the file or
// table would.
type backend struct {
	open func(t *testing.T) (Store, func(t *testing.T) Store)
	// rewrite changes record index in place (fn gets the stored record).
	rewrite func(t *testing.T, s Store, index int64, fn func(*Record))
	// remove deletes record index.
	remove func(t *testing.T, s Store, index int64)
	// swap exchanges the positions of records index and index+1.
	swap func(t *testing.T, s Store, index int64)
}

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)

func ev(rem string, seq int, kind string) Event {
	return Event{
		ID: fmt.Sprintf("%s/%d", rem, seq), RemediationID: rem, Seq: seq, Kind: kind, Phase: "AwaitingApproval",
		Actor: "alice", Roles: []string{"approver"}, Channel: "api", At: t0.Add(time.Duration(seq) * time.Second),
		CorrelationID: "corr-" + rem, Digest: strings.Repeat("ab", 32), Base: strings.Repeat("0c", 20), Detail: "step " + kind,
	}
}

// fill appends n events of remediation "rem-a" (one call each).
func fill(t *testing.T, s Store, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if err := s.Append(context.Background(), ev("rem-a", i, "phase")); err != nil {
			t.Fatal(err)
		}
	}
}

func verify(t *testing.T, s Store) Report {
	t.Helper()
	rep, err := s.Verify(context.Background())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return rep
}

func mustList(t *testing.T, s Store, rem string) []Record {
	t.Helper()
	rs, err := s.List(context.Background(), rem)
	if err != nil {
		t.Fatalf("list %s: %v", rem, err)
	}
	return rs
}

func testStoreConformance(t *testing.T, b backend) {
	ctx := context.Background()

	t.Run("EmptyChainVerifies", func(t *testing.T) {
		s, _ := b.open(t)
		rep := verify(t, s)
		if !rep.OK || rep.Records != 0 || rep.Head != GenesisHash || rep.FirstBad != 0 {
			t.Fatalf("empty: %+v", rep)
		}
		if rs := mustList(t, s, "rem-a"); rs == nil || len(rs) != 0 {
			t.Fatalf("list of nothing must be empty, not nil: %#v", rs)
		}
	})

	t.Run("ChainGrows", func(t *testing.T) {
		s, _ := b.open(t)
		if err := s.Append(ctx, ev("rem-a", 1, "started")); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, ev("rem-a", 2, "phase"), ev("rem-a", 3, "vote")); err != nil {
			t.Fatal(err)
		}
		rs := mustList(t, s, "rem-a")
		if len(rs) != 3 {
			t.Fatalf("want 3 records, got %d", len(rs))
		}
		prev := GenesisHash
		for i, r := range rs {
			if r.Index != int64(i+1) || r.PrevHash != prev || r.Hash != ComputeHash(r) || r.Seq != i+1 || r.RecordedAt.IsZero() {
				t.Fatalf("record %d: %+v", i+1, r)
			}
			prev = r.Hash
		}
		if !rs[1].RecordedAt.Equal(rs[2].RecordedAt) {
			t.Errorf("one append records one time: %v %v", rs[1].RecordedAt, rs[2].RecordedAt)
		}
		rep := verify(t, s)
		if !rep.OK || rep.Records != 3 || rep.Head != rs[2].Hash {
			t.Fatalf("verify: %+v", rep)
		}
	})

	t.Run("RecordsRoundTripExactly", func(t *testing.T) {
		s, _ := b.open(t)
		e := Event{
			ID: "0b6a1c9e-4f1d-4d8a-9a43-6f0c1f2f8e11", RemediationID: "rem-full", Kind: "vote_refused", Phase: "AwaitingApproval",
			Actor: "Zoë <zoe@example.com>", Roles: []string{"approver", "admin"}, Channel: "slack",
			At:            time.Date(2030, 6, 7, 8, 9, 10, 987654321, time.FixedZone("CEST", 2*3600)),
			CorrelationID: "c0ffee", Digest: strings.Repeat("f", 64), Base: "main@1234",
			Detail: "line one\n\ttab & \"quotes\" \\ <html> — ünïcode 😀",
		}
		if err := s.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
		rs := mustList(t, s, "rem-full")
		if len(rs) != 1 {
			t.Fatalf("records: %+v", rs)
		}
		want := normalize(e)
		if got := rs[0].Event; contentDigest(got) != contentDigest(want) || !got.At.Equal(want.At) || got.At.Location() != time.UTC ||
			got.At.Nanosecond() != 987654000 || got.Detail != e.Detail || len(got.Roles) != 2 || got.Roles[1] != "admin" {
			t.Fatalf("round trip:\nwant %+v\ngot  %+v", want, got)
		}
		if rs[0].RecordedAt.Location() != time.UTC || rs[0].RecordedAt.Nanosecond()%1000 != 0 {
			t.Fatalf("recorded_at is UTC in microseconds: %v", rs[0].RecordedAt)
		}
		if !verify(t, s).OK {
			t.Fatal("verify")
		}
	})

	t.Run("AppendIsIdempotent", func(t *testing.T) {
		s, _ := b.open(t)
		a, c := ev("rem-a", 1, "started"), ev("rem-a", 2, "phase")
		if err := s.Append(ctx, a, c); err != nil {
			t.Fatal(err)
		}
		before := mustList(t, s, "rem-a")
		// A retry, the same instant in another zone and with a monotonic
		// reading, no roles as an empty slice: the same content.
		same := a
		same.At = a.At.In(time.FixedZone("X", -7*3600))
		if err := s.Append(ctx, same, c, c); err != nil {
			t.Fatalf("retry: %v", err)
		}
		d := ev("rem-a", 3, "vote")
		d.Roles = []string{}
		if err := s.Append(ctx, a, d); err != nil {
			t.Fatalf("old and new: %v", err)
		}
		d.Roles = nil
		if err := s.Append(ctx, d); err != nil {
			t.Fatalf("nil roles are empty roles: %v", err)
		}
		after := mustList(t, s, "rem-a")
		if len(after) != 3 || after[0].Hash != before[0].Hash || after[1].Hash != before[1].Hash || after[2].ID != d.ID {
			t.Fatalf("retries must not add records: %+v", after)
		}
		if rep := verify(t, s); !rep.OK || rep.Records != 3 {
			t.Fatalf("verify: %+v", rep)
		}
		if err := s.Append(ctx); err != nil {
			t.Fatalf("an empty append is nothing: %v", err)
		}
	})

	t.Run("ConflictRefusesTheWholeCall", func(t *testing.T) {
		s, _ := b.open(t)
		a := ev("rem-a", 1, "started")
		if err := s.Append(ctx, a); err != nil {
			t.Fatal(err)
		}
		for name, change := range map[string]func(*Event){
			"detail": func(e *Event) { e.Detail = "other" },
			"actor":  func(e *Event) { e.Actor = "mallory" },
			"at":     func(e *Event) { e.At = e.At.Add(time.Microsecond) },
			"roles":  func(e *Event) { e.Roles = append(e.Roles, "admin") },
			"seq":    func(e *Event) { e.Seq = 9 },
		} {
			other := a
			other.Roles = append([]string(nil), a.Roles...)
			change(&other)
			if err := s.Append(ctx, ev("rem-a", 2, "phase"), other); !errors.Is(err, ErrConflict) {
				t.Errorf("%s: want ErrConflict, got %v", name, err)
			}
		}
		// Two versions of one id in one call.
		x, y := ev("rem-b", 1, "started"), ev("rem-b", 1, "started")
		y.Detail = "changed"
		if err := s.Append(ctx, x, y); !errors.Is(err, ErrConflict) {
			t.Errorf("in one call: want ErrConflict, got %v", err)
		}
		if rs := mustList(t, s, "rem-a"); len(rs) != 1 {
			t.Fatalf("a refused call stores nothing: %d records", len(rs))
		}
		if rs := mustList(t, s, "rem-b"); len(rs) != 0 {
			t.Fatalf("a refused call stores nothing: %d records", len(rs))
		}
		if rep := verify(t, s); !rep.OK || rep.Records != 1 {
			t.Fatalf("verify: %+v", rep)
		}
	})

	t.Run("InvalidEventsAreRefused", func(t *testing.T) {
		s, _ := b.open(t)
		for name, change := range map[string]func(*Event){
			"no id":             func(e *Event) { e.ID = "" },
			"no remediation":    func(e *Event) { e.RemediationID = "" },
			"no kind":           func(e *Event) { e.Kind = "" },
			"no time":           func(e *Event) { e.At = time.Time{} },
			"control in id":     func(e *Event) { e.ID = "rem-a/1\n" },
			"nul in id":         func(e *Event) { e.ID = "rem-a\x00/1" },
			"escape in rem":     func(e *Event) { e.RemediationID = "rem-\x1b[31m" },
			"c1 in actor":       func(e *Event) { e.Actor = "al\u0085ice" },
			"bad utf-8":         func(e *Event) { e.Actor = "al\xffice" },
			"line sep":          func(e *Event) { e.Phase = "a\u2028b" },
			"nul in detail":     func(e *Event) { e.Detail = "a\x00b" },
			"cr in detail":      func(e *Event) { e.Detail = "a\rb" },
			"long detail":       func(e *Event) { e.Detail = strings.Repeat("x", MaxDetailBytes+1) },
			"long id":           func(e *Event) { e.ID = strings.Repeat("x", MaxIDBytes+1) },
			"kind shape":        func(e *Event) { e.Kind = "Vote Cast" },
			"channel shape":     func(e *Event) { e.Channel = "Slack!" },
			"empty role":        func(e *Event) { e.Roles = []string{""} },
			"too many roles":    func(e *Event) { e.Roles = make([]string, MaxRoles+1) },
			"negative seq":      func(e *Event) { e.Seq = -1 },
			"year out of range": func(e *Event) { e.At = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		} {
			e := ev("rem-a", 1, "started")
			change(&e)
			if err := s.Append(ctx, ev("rem-a", 2, "phase"), e); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: want ErrInvalid, got %v", name, err)
			}
		}
		ok := ev("rem-a", 1, "started")
		ok.Detail = strings.Repeat("x", MaxDetailBytes-2) + "\n\t"
		if err := s.Append(ctx, ok); err != nil {
			t.Fatalf("a 4 KiB detail with a line break and a tab is fine: %v", err)
		}
		many := make([]Event, MaxBatch+1)
		for i := range many {
			many[i] = ev("rem-many", i+1, "phase")
		}
		if err := s.Append(ctx, many...); !errors.Is(err, ErrInvalid) {
			t.Errorf("an oversized batch: want ErrInvalid, got %v", err)
		}
		if rep := verify(t, s); !rep.OK || rep.Records != 1 {
			t.Fatalf("only the valid event is stored: %+v", rep)
		}
	})

	t.Run("ListIsInChainOrderPerRemediation", func(t *testing.T) {
		s, _ := b.open(t)
		for i := 1; i <= 3; i++ {
			if err := s.Append(ctx, ev("rem-a", i, "phase"), ev("rem-b", i, "phase")); err != nil {
				t.Fatal(err)
			}
		}
		// An API-side event (seq 0) for rem-b, appended last.
		api := ev("rem-b", 0, "vote")
		api.ID = "6f1c2a9e-0000-4000-8000-000000000001"
		if err := s.Append(ctx, api); err != nil {
			t.Fatal(err)
		}
		a, bs := mustList(t, s, "rem-a"), mustList(t, s, "rem-b")
		if len(a) != 3 || len(bs) != 4 {
			t.Fatalf("rem-a %d, rem-b %d", len(a), len(bs))
		}
		for i, r := range a {
			if r.RemediationID != "rem-a" || r.Index != int64(2*i+1) || r.Seq != i+1 {
				t.Fatalf("rem-a[%d]: %+v", i, r)
			}
		}
		if bs[3].ID != api.ID || bs[3].Index != 7 || bs[3].Seq != 0 {
			t.Fatalf("rem-b last: %+v", bs[3])
		}
		if rs := mustList(t, s, "rem-none"); len(rs) != 0 {
			t.Fatalf("unknown remediation: %+v", rs)
		}
	})

	t.Run("EditedRecordIsDetected", func(t *testing.T) {
		s, _ := b.open(t)
		fill(t, s, 5)
		b.rewrite(t, s, 3, func(r *Record) { r.Actor = "mallory" })
		rep := verify(t, s)
		if rep.OK || rep.FirstBad != 3 || rep.Records != 5 || !strings.Contains(rep.Problem, "altered") {
			t.Fatalf("edited record 3: %+v", rep)
		}
	})

	t.Run("EditedRecordWithItsHashRecomputedIsDetected", func(t *testing.T) {
		s, _ := b.open(t)
		fill(t, s, 5)
		b.rewrite(t, s, 3, func(r *Record) { r.Detail = "nothing to see"; r.Hash = ComputeHash(*r) })
		rep := verify(t, s)
		if rep.OK || rep.FirstBad != 4 || !strings.Contains(rep.Problem, "record 3") {
			t.Fatalf("record 3 rehashed: the link from 4 breaks: %+v", rep)
		}
	})

	t.Run("EditedTimeIsDetected", func(t *testing.T) {
		s, _ := b.open(t)
		fill(t, s, 3)
		b.rewrite(t, s, 2, func(r *Record) { r.RecordedAt = r.RecordedAt.Add(-time.Hour) })
		if rep := verify(t, s); rep.OK || rep.FirstBad != 2 {
			t.Fatalf("recorded_at is covered by the hash: %+v", rep)
		}
	})

	t.Run("RemovedRecordIsDetected", func(t *testing.T) {
		s, _ := b.open(t)
		fill(t, s, 5)
		b.remove(t, s, 2)
		rep := verify(t, s)
		if rep.OK || rep.FirstBad != 2 || rep.Records != 4 || !strings.Contains(rep.Problem, "index 3") {
			t.Fatalf("removed record 2: %+v", rep)
		}
	})

	t.Run("ReorderedRecordsAreDetected", func(t *testing.T) {
		s, _ := b.open(t)
		fill(t, s, 5)
		b.swap(t, s, 3)
		rep := verify(t, s)
		if rep.OK || rep.FirstBad != 3 || rep.Records != 5 {
			t.Fatalf("swapped 3 and 4: %+v", rep)
		}
	})

	t.Run("ConcurrentAppendersKeepOneChain", func(t *testing.T) {
		s, reopen := b.open(t)
		other := reopen(t) // another process's handle on the same chain
		const workers, each = 6, 8
		var wg sync.WaitGroup
		for w := range workers {
			st := s
			if w%2 == 1 {
				st = other
			}
			wg.Go(func() {
				for i := 1; i <= each; i++ {
					rem := fmt.Sprintf("rem-w%d", w)
					// Every event is sent twice, once by each handle: the
					// retries of an activity that ran on two workers.
					if err := st.Append(ctx, ev(rem, i, "phase"), ev("rem-shared", w*each+i, "vote")); err != nil {
						t.Error(err)
						return
					}
					if err := other.Append(ctx, ev(rem, i, "phase")); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		for _, st := range []Store{s, other} {
			rep := verify(t, st)
			if !rep.OK || rep.Records != 2*workers*each {
				t.Fatalf("one linear chain of %d records: %+v", 2*workers*each, rep)
			}
		}
		if err := s.Append(ctx, ev("rem-last", 1, "outcome")); err != nil {
			t.Fatal(err)
		}
		if rs := mustList(t, other, "rem-last"); len(rs) != 1 || rs[0].Index != 2*workers*each+1 {
			t.Fatalf("the other handle sees the head: %+v", rs)
		}
		if rep := verify(t, other); !rep.OK {
			t.Fatalf("after: %+v", rep)
		}
	})
}
