package audit

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// goldenRecord pins the canonical encoding: its bytes and hash were
// computed independently (Python's json.dumps with sort_keys and
// ensure_ascii, as in the package documentation).
var goldenRecord = Record{
	Event: Event{
		ID: "rem-0123/7", RemediationID: "rem-0123", Seq: 7, Kind: "vote", Phase: "AwaitingApproval",
		Actor: "zoë", Roles: []string{"approver", "admin"}, Channel: "slack",
		At:            time.Date(2030, 1, 2, 3, 4, 5, 120000000, time.UTC),
		CorrelationID: "corr-1", Digest: strings.Repeat("ab", 32), Base: "0123abcd",
		Detail: "looks \"right\" \\ <ok> & 😀\n\tdone",
	},
	Index:      42,
	PrevHash:   strings.Repeat("1f", 32),
	RecordedAt: time.Date(2030, 1, 2, 3, 4, 6, 0, time.UTC),
}

const goldenCanonical = `{"actor":"zo\u00eb","at":"2030-01-02T03:04:05.12Z","base":"0123abcd","channel":"slack",` +
	`"correlation_id":"corr-1","detail":"looks \"right\" \\ <ok> & \ud83d\ude00\n\tdone",` +
	`"digest":"abababababababababababababababababababababababababababababababab","id":"rem-0123/7","index":42,` +
	`"kind":"vote","phase":"AwaitingApproval","recorded_at":"2030-01-02T03:04:06Z","remediation_id":"rem-0123",` +
	`"roles":["approver","admin"],"seq":7}`

const goldenHash = "6ceaabb309d802671a13c0e216184e321abeb4138ab53cae0df9d4283a58727d"

func TestAuditCanonicalEncodingIsPinned(t *testing.T) {
	if got := string(Canonical(goldenRecord)); got != goldenCanonical {
		t.Fatalf("canonical encoding changed:\ngot  %s\nwant %s", got, goldenCanonical)
	}
	if got := ComputeHash(goldenRecord); got != goldenHash {
		t.Fatalf("hash changed: got %s want %s", got, goldenHash)
	}
	// Empty fields are still present; no roles is [].
	empty := Record{Event: Event{ID: "i", RemediationID: "r", Kind: "k", At: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}, Index: 1}
	want := `{"actor":"","at":"2030-01-01T00:00:00Z","base":"","channel":"","correlation_id":"","detail":"","digest":"",` +
		`"id":"i","index":1,"kind":"k","phase":"","recorded_at":"","remediation_id":"r","roles":[],"seq":0}`
	if got := string(Canonical(empty)); got != want {
		t.Fatalf("empty fields:\ngot  %s\nwant %s", got, want)
	}
	// The time zone an event was given in does not change its encoding.
	other := goldenRecord
	other.At = other.At.In(time.FixedZone("X", 5*3600+1800))
	if ComputeHash(other) != goldenHash {
		t.Fatal("the hash depends on the time zone")
	}
	// Every field is covered.
	for name, change := range map[string]func(*Record){
		"id": func(r *Record) { r.ID += "x" }, "remediation": func(r *Record) { r.RemediationID += "x" },
		"seq": func(r *Record) { r.Seq++ }, "kind": func(r *Record) { r.Kind += "x" }, "phase": func(r *Record) { r.Phase += "x" },
		"actor": func(r *Record) { r.Actor += "x" }, "roles": func(r *Record) { r.Roles = r.Roles[:1] },
		"role order": func(r *Record) { r.Roles = []string{"admin", "approver"} },
		"channel":    func(r *Record) { r.Channel += "x" }, "at": func(r *Record) { r.At = r.At.Add(time.Microsecond) },
		"correlation": func(r *Record) { r.CorrelationID += "x" }, "digest": func(r *Record) { r.Digest += "x" },
		"base": func(r *Record) { r.Base += "x" }, "detail": func(r *Record) { r.Detail += "x" },
		"index": func(r *Record) { r.Index++ }, "prev": func(r *Record) { r.PrevHash = GenesisHash },
		"recorded_at": func(r *Record) { r.RecordedAt = r.RecordedAt.Add(time.Second) },
	} {
		r := goldenRecord
		r.Roles = append([]string(nil), goldenRecord.Roles...)
		change(&r)
		if ComputeHash(r) == goldenHash {
			t.Errorf("%s is not covered by the hash", name)
		}
	}
}

func TestAuditValidateNamesTheProblems(t *testing.T) {
	err := Validate(Event{ID: "bad\x1bid", Kind: "Vote"})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("want ErrInvalid: %v", err)
	}
	for _, want := range []string{`"bad\x1bid"`, "id holds a control character", "remediation_id is required", "kind must be", "at is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if err := Validate(ev("rem-a", 1, "vote_refused")); err != nil {
		t.Fatal(err)
	}
}
