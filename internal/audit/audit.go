// Package audit is the append-only, hash-chained store of audit events:
// every transition, vote, refusal, reminder and escalation of a
// remediation, with who did it, in which role, through which channel, when,
// the correlation id, and the digest and base it was about.
//
// # Stores
//
// PGStore (OpenPostgres) keeps the chain in the PostgreSQL table
// audit_events, the database the decision ledger uses; a trigger refuses
// UPDATE, DELETE and TRUNCATE on it. FileStore (OpenFile) keeps it in a
// JSON lines file, one Record per line, for `remediator dev`. Both hold one
// chain for the whole store (not one per remediation): record n links to
// record n-1 by hash, so an edited, removed, inserted or reordered record
// breaks the chain at that index, which Verify reports
// (`remediator audit verify`).
//
// What the chain cannot show on its own: removing the newest records (the
// tail) leaves a shorter chain that still verifies, and so does a chain
// rewritten from the first altered record to the end with recomputed hashes.
// Both are caught by comparing with a head recorded elsewhere earlier: keep
// the "index, head" that `remediator audit verify` prints somewhere the
// store's writers cannot change (a ticket, another system's log).
//
// # Events and idempotency
//
// Event.ID is the idempotency key ("<remediation id>/<seq>" from the
// workflow, a uuid from the API). Append stores every event of one call or
// none; an event whose ID is already stored with identical content (after
// normalisation, below) is skipped, so a retried append is harmless; the
// same ID with other content is ErrConflict, and nothing of that call is
// stored. Append normalises before storing and comparing: At becomes UTC
// truncated to whole microseconds (what PostgreSQL keeps), and empty Roles
// are no roles. Events are validated (Validate): ID, RemediationID, Kind and
// At are required, sizes are bounded (Detail at most 4 KiB), and no field
// may hold invalid UTF-8 or control characters (Detail may hold line breaks
// and tabs). Invalid events are ErrInvalid.
//
// # Canonical encoding (version 1)
//
// Record.Hash is the lower-case hex SHA-256 of the UTF-8 bytes of
//
//	"remediator-audit-v1\n" + prev_hash + "\n" + canonical
//
// where prev_hash is the previous record's hash (64 zeros for index 1) and
// canonical is one JSON object without any whitespace holding exactly these
// 15 keys in this (byte-wise sorted) order, every key always present:
//
//	actor, at, base, channel, correlation_id, detail, digest, id, index,
//	kind, phase, recorded_at, remediation_id, roles, seq
//
// index and seq are decimal integers, roles is an array of strings (in the
// stored order; [] when none), every other value is a string ("" when
// empty). at and recorded_at are UTC in RFC 3339 with the fraction of the
// second trimmed of trailing zeros ("2030-01-02T03:04:05.1234Z",
// "2030-01-02T03:04:05Z"): Go's time.RFC3339Nano, and exactly how the JSON
// lines store them. Strings are ASCII-only JSON: `"` and `\` are escaped
// with a backslash, \b \f \n \r \t are written so, every other character
// below U+0020 or above U+007E as \u followed by four lower-case hex digits
// (characters above U+FFFF as a UTF-16 surrogate pair). That is Python's
// json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True),
// so a JSON lines file (or the PostgreSQL export below) can be re-verified
// without this code:
//
//	# python3 verify.py audit.jsonl
//	import hashlib, json, sys
//	KEYS = {"actor": "", "at": "", "base": "", "channel": "", "correlation_id": "", "detail": "", "digest": "",
//	        "id": "", "index": 0, "kind": "", "phase": "", "recorded_at": "", "remediation_id": "", "roles": [], "seq": 0}
//	prev, n = "0" * 64, 0
//	for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
//	    r = json.loads(line)
//	    c = json.dumps({k: r.get(k, d) for k, d in KEYS.items()}, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
//	    h = hashlib.sha256(("remediator-audit-v1\n" + prev + "\n" + c).encode()).hexdigest()
//	    if r["index"] != n or r["prev_hash"] != prev or r["hash"] != h:
//	        sys.exit("chain broken at index %d" % n)
//	    prev = h
//	print("audit chain OK: %d records, head %s" % (n, prev))
//
// ExportSQL prints the PostgreSQL table as the same JSON lines
// (psql -XAt -c "<ExportSQL>" > audit.jsonl).
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is one audited fact.
type Event struct {
	ID            string    `json:"id"`             // unique, idempotency key: "<remediation id>/<seq>" from the workflow, or a uuid from the API
	RemediationID string    `json:"remediation_id"` //
	Seq           int       `json:"seq,omitempty"`  // 1-based per remediation when the workflow emitted it; 0 for API-side events
	Kind          string    `json:"kind"`           // e.g. started, phase, vote, vote_refused, reminder, escalation, regenerated, superseded, attached, outcome
	Phase         string    `json:"phase,omitempty"`
	Actor         string    `json:"actor,omitempty"`
	Roles         []string  `json:"roles,omitempty"`
	Channel       string    `json:"channel,omitempty"` // api, slack, cli, dragon, signal, workflow
	At            time.Time `json:"at"`
	CorrelationID string    `json:"correlation_id,omitempty"`
	Digest        string    `json:"digest,omitempty"`
	Base          string    `json:"base,omitempty"`
	Detail        string    `json:"detail,omitempty"`
}

// Record is an Event in the chain.
type Record struct {
	Event
	Index      int64     `json:"index"`     // position in the chain, from 1
	PrevHash   string    `json:"prev_hash"` // hex; the genesis row's prev is 64 zeros
	Hash       string    `json:"hash"`      // hex sha256, see the package documentation
	RecordedAt time.Time `json:"recorded_at"`
}

// Report is what Verify found.
type Report struct {
	// Records is how many records (lines) the chain holds, broken ones
	// included.
	Records int64 `json:"records"`
	OK      bool  `json:"ok"`
	// FirstBad is the index (position, from 1) of the first broken record;
	// 0 when OK.
	FirstBad int64 `json:"first_bad,omitempty"`
	// Problem says what is wrong at FirstBad.
	Problem string `json:"problem,omitempty"`
	// Head is the stored hash of the last record (GenesisHash when empty).
	Head string `json:"head"`
}

// Store is an append-only audit chain.
type Store interface {
	// Append stores the events atomically: all of them or none. An event
	// whose ID is stored with identical content is skipped (retries are
	// harmless); the same ID with other content is ErrConflict.
	Append(ctx context.Context, events ...Event) error
	// List returns the records of one remediation in chain order.
	List(ctx context.Context, remediationID string) ([]Record, error)
	// Verify walks the whole chain, recomputing every hash and link, and
	// reports the first broken index and why. A broken chain is a Report
	// with OK false, not an error; errors are failures to read.
	Verify(ctx context.Context) (Report, error)
	Close()
}

// GenesisHash is the prev_hash of the first record.
var GenesisHash = strings.Repeat("0", 64)

// ErrConflict: an event id is already stored with other content.
var ErrConflict = errors.New("audit: event id already stored with other content")

// ErrInvalid: an event failed validation.
var ErrInvalid = errors.New("audit: invalid event")

// Bounds of an event (bytes) and of one Append.
const (
	MaxIDBytes     = 256
	MaxKindBytes   = 64
	MaxPhaseBytes  = 64
	MaxActorBytes  = 256
	MaxRoleBytes   = 64
	MaxRoles       = 16
	MaxShortBytes  = 256 // correlation id, digest, base
	MaxDetailBytes = 4096
	MaxBatch       = 256
)

var (
	kindPattern    = regexp.MustCompile(`^[a-z][a-z0-9_.-]*$`)
	channelPattern = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
)

// Validate checks one event; the error wraps ErrInvalid.
func Validate(e Event) error {
	var errs []string
	text := func(name, v string, max int, required, multiline bool) {
		switch {
		case v == "" && required:
			errs = append(errs, name+" is required")
		case len(v) > max:
			errs = append(errs, fmt.Sprintf("%s is %d bytes, at most %d", name, len(v), max))
		case !utf8.ValidString(v):
			errs = append(errs, name+" is not valid UTF-8")
		default:
			for _, r := range v {
				if (r < 0x20 && !(multiline && (r == '\n' || r == '\t'))) || (r >= 0x7f && r <= 0x9f) || r == '\u2028' || r == '\u2029' {
					errs = append(errs, name+" holds a control character")
					break
				}
			}
		}
	}
	text("id", e.ID, MaxIDBytes, true, false)
	text("remediation_id", e.RemediationID, MaxIDBytes, true, false)
	text("kind", e.Kind, MaxKindBytes, true, false)
	if e.Kind != "" && len(e.Kind) <= MaxKindBytes && !kindPattern.MatchString(e.Kind) {
		errs = append(errs, "kind must be lower case letters, digits, _ . -")
	}
	text("phase", e.Phase, MaxPhaseBytes, false, false)
	text("actor", e.Actor, MaxActorBytes, false, false)
	if len(e.Roles) > MaxRoles {
		errs = append(errs, fmt.Sprintf("%d roles, at most %d", len(e.Roles), MaxRoles))
	}
	for _, r := range e.Roles {
		text("role", r, MaxRoleBytes, true, false)
	}
	if e.Channel != "" && !channelPattern.MatchString(e.Channel) {
		errs = append(errs, "channel must be a lower-case word of at most 32 characters (api, slack, cli, dragon, signal, workflow)")
	}
	text("correlation_id", e.CorrelationID, MaxShortBytes, false, false)
	text("digest", e.Digest, MaxShortBytes, false, false)
	text("base", e.Base, MaxShortBytes, false, false)
	text("detail", e.Detail, MaxDetailBytes, false, true)
	if e.Seq < 0 {
		errs = append(errs, "seq is negative")
	}
	if e.At.IsZero() {
		errs = append(errs, "at is required")
	} else if y := e.At.UTC().Year(); y < 1 || y > 9999 {
		errs = append(errs, "at is outside the years 1 to 9999")
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w %s: %s", ErrInvalid, strconv.QuoteToASCII(truncate(e.ID, 80)), strings.Join(errs, "; "))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// normalize is what Append stores and compares: At in UTC truncated to
// microseconds, no empty Roles slice, no monotonic clock reading.
func normalize(e Event) Event {
	e.At = e.At.UTC().Truncate(time.Microsecond)
	if len(e.Roles) == 0 {
		e.Roles = nil
	} else {
		e.Roles = append([]string(nil), e.Roles...)
	}
	return e
}

// prepare validates and normalises one Append's events and drops repeats
// within the call (the same id twice with other content is ErrConflict).
func prepare(events []Event) ([]Event, error) {
	if len(events) > MaxBatch {
		return nil, fmt.Errorf("%w: %d events in one append, at most %d", ErrInvalid, len(events), MaxBatch)
	}
	out := make([]Event, 0, len(events))
	seen := make(map[string]int, len(events))
	for _, e := range events {
		if err := Validate(e); err != nil {
			return nil, err
		}
		e = normalize(e)
		if i, dup := seen[e.ID]; dup {
			if !sameContent(out[i], e) {
				return nil, conflict(e.ID)
			}
			continue
		}
		seen[e.ID] = len(out)
		out = append(out, e)
	}
	return out, nil
}

func conflict(id string) error {
	return fmt.Errorf("%w: %s", ErrConflict, strconv.QuoteToASCII(truncate(id, 80)))
}

// sameContent compares two normalised events.
func sameContent(a, b Event) bool {
	return contentDigest(a) == contentDigest(b)
}

// contentDigest identifies an event's content (its canonical encoding
// without the chain's fields).
func contentDigest(e Event) string {
	sum := sha256.Sum256(canonical(Record{Event: e}, false))
	return hex.EncodeToString(sum[:])
}

// hashPrefix separates this chain's hashes from any other use of SHA-256.
const hashPrefix = "remediator-audit-v1\n"

// ComputeHash is the hash record r must carry (see the package
// documentation); r.Hash itself is not part of it.
func ComputeHash(r Record) string {
	h := sha256.New()
	h.Write([]byte(hashPrefix))
	h.Write([]byte(r.PrevHash))
	h.Write([]byte{'\n'})
	h.Write(canonical(r, true))
	return hex.EncodeToString(h.Sum(nil))
}

// Canonical is the canonical encoding of r (see the package documentation).
func Canonical(r Record) []byte { return canonical(r, true) }

func canonical(r Record, chain bool) []byte {
	b := make([]byte, 0, 256+len(r.Detail))
	str := func(key, v string, first bool) {
		if !first {
			b = append(b, ',')
		}
		b = appendString(b, key)
		b = append(b, ':')
		b = appendString(b, v)
	}
	num := func(key string, v int64) {
		b = append(b, ',')
		b = appendString(b, key)
		b = append(b, ':')
		b = strconv.AppendInt(b, v, 10)
	}
	b = append(b, '{')
	str("actor", r.Actor, true)
	str("at", formatTime(r.At), false)
	str("base", r.Base, false)
	str("channel", r.Channel, false)
	str("correlation_id", r.CorrelationID, false)
	str("detail", r.Detail, false)
	str("digest", r.Digest, false)
	str("id", r.ID, false)
	if chain {
		num("index", r.Index)
	}
	str("kind", r.Kind, false)
	str("phase", r.Phase, false)
	if chain {
		str("recorded_at", formatTime(r.RecordedAt), false)
	}
	str("remediation_id", r.RemediationID, false)
	b = append(b, `,"roles":[`...)
	for i, role := range r.Roles {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, role)
	}
	b = append(b, ']')
	num("seq", int64(r.Seq))
	return append(b, '}')
}

// formatTime is the canonical time: UTC RFC 3339 with trimmed fraction.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// appendString writes s as ASCII-only JSON (Python's ensure_ascii). Invalid
// UTF-8 (refused by Validate) is written as U+FFFD.
func appendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	u4 := func(b []byte, r rune) []byte {
		return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
	}
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\b':
			b = append(b, '\\', 'b')
		case r == '\f':
			b = append(b, '\\', 'f')
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r >= 0x20 && r <= 0x7e:
			b = append(b, byte(r))
		case r > 0xffff:
			r -= 0x10000
			b = u4(b, 0xd800+(r>>10))
			b = u4(b, 0xdc00+(r&0x3ff))
		default:
			b = u4(b, r)
		}
	}
	return append(b, '"')
}

var hashPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// verifier walks a chain in order and keeps the first problem.
type verifier struct {
	rep  Report
	prev string
	seen map[string]int64
}

func newVerifier() *verifier {
	return &verifier{rep: Report{OK: true, Head: GenesisHash}, prev: GenesisHash, seen: map[string]int64{}}
}

func (v *verifier) fail(at int64, problem string) {
	if v.rep.OK {
		v.rep.OK, v.rep.FirstBad, v.rep.Problem = false, at, problem
	}
}

// bad counts a position that holds no readable record.
func (v *verifier) bad(problem string) {
	v.rep.Records++
	v.fail(v.rep.Records, problem)
}

// add checks the next record.
func (v *verifier) add(r Record) {
	v.rep.Records++
	pos := v.rep.Records
	switch {
	case r.Index != pos:
		v.fail(pos, fmt.Sprintf("the record at position %d has index %d: a record was removed, inserted or moved here", pos, r.Index))
	case r.PrevHash != v.prev:
		if pos == 1 {
			v.fail(pos, "prev_hash of the first record is not 64 zeros")
		} else {
			v.fail(pos, fmt.Sprintf("prev_hash does not match the hash of record %d: that record was altered or replaced", pos-1))
		}
	case !hashPattern.MatchString(r.Hash) || ComputeHash(r) != r.Hash:
		v.fail(pos, "hash does not match the record's content: the record was altered")
	default:
		if err := Validate(r.Event); err != nil {
			v.fail(pos, "the event is not valid: "+strings.TrimPrefix(err.Error(), ErrInvalid.Error()+" "))
		} else if at, dup := v.seen[r.ID]; dup {
			v.fail(pos, fmt.Sprintf("event id %s is already the record at index %d", strconv.QuoteToASCII(truncate(r.ID, 80)), at))
		}
	}
	if _, dup := v.seen[r.ID]; !dup {
		v.seen[r.ID] = pos
	}
	v.prev = r.Hash
	v.rep.Head = r.Hash
}

func (v *verifier) report() Report { return v.rep }
