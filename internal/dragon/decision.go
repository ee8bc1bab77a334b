package dragon

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DecisionRequest is what Create sends: the four fields the replaced
// service sent, plus structured fields so that approvers (and Dragon's own
// rules) see the risk, the change and its provenance as data rather than
// as one flattened sentence.
type DecisionRequest struct {
	AlertID         string            `json:"alert_id"`
	Proposer        string            `json:"proposer"`
	ProposedAction  string            `json:"proposed_action"`  // "apply_autofix"
	Rationale       string            `json:"rationale"`        // one readable sentence
	ClientReference string            `json:"client_reference"` // our idempotency key; required
	RemediationID   string            `json:"remediation_id"`
	Repo            string            `json:"repository"`
	Requester       string            `json:"requester"`
	IncidentID      string            `json:"incident_id,omitempty"`
	CorrelationID   string            `json:"correlation_id,omitempty"`
	RiskLevel       string            `json:"risk_level"`
	RiskScore       int               `json:"risk_score"`
	Impact          string            `json:"impact"`
	DiffDigest      string            `json:"diff_digest"`
	BaseSHA         string            `json:"base_sha"`
	Files           []string          `json:"files"`
	FixSource       string            `json:"fix_source,omitempty"`
	Summary         string            `json:"summary,omitempty"`
	Links           map[string]string `json:"links,omitempty"`
}

// Decision is Dragon's record as read back. Only the fields the service
// acts on are kept; unknown fields are ignored so that Dragon may grow its
// schema without breaking us.
type Decision struct {
	ID     string
	Status string // as Dragon wrote it; VerdictOf interprets it
	// Approver is who decided: the first non-empty of approver, decided_by,
	// approved_by, rejected_by and reviewer, each a string or an object
	// with name, login, email or id.
	Approver string
	// Reason is the first non-empty of reason, comment, decision_reason and
	// justification.
	Reason string
	// The structured fields of DecisionRequest as Dragon echoes them, so a
	// caller can check the decision is about the change it means.
	ClientReference string
	RemediationID   string
	Repo            string // "repository" in JSON
	Requester       string
	DiffDigest      string
	BaseSHA         string
	UpdatedAt       time.Time // zero when Dragon does not say
}

// Verdict is what a Dragon status means for the change.
type Verdict int

// The three verdicts. Anything Dragon says that is not a known approval or
// rejection spelling is pending: the change waits rather than proceeds.
const (
	VerdictPending Verdict = iota
	VerdictApproved
	VerdictRejected
)

// String names the verdict for logs.
func (v Verdict) String() string {
	switch v {
	case VerdictApproved:
		return "approved"
	case VerdictRejected:
		return "rejected"
	default:
		return "pending"
	}
}

// VerdictOf maps a Dragon status to a verdict, case-insensitively:
// approved, approve, allowed and allow approve; rejected, denied and
// blocked (and the final refusals declined, vetoed, revoked, cancelled,
// canceled) reject; everything else (including "" and look-alikes with
// surrounding spaces) is pending, so only an exact approval ever lets a
// change through, and a decision Dragon closed without approving stops it.
func VerdictOf(status string) Verdict {
	switch strings.ToLower(status) {
	case "approved", "approve", "allowed", "allow":
		return VerdictApproved
	case "rejected", "denied", "blocked", "declined", "vetoed", "revoked", "cancelled", "canceled":
		return VerdictRejected
	default:
		return VerdictPending
	}
}

// Verdict is VerdictOf(d.Status).
func (d Decision) Verdict() Verdict { return VerdictOf(d.Status) }

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// validID reports whether id may be put in a URL path segment: the pattern
// ids are known to follow, minus the two dot segments a path would resolve.
func validID(id string) bool {
	return idPattern.MatchString(id) && id != "." && id != ".."
}

// object is a JSON object with its values left raw, so that each field can
// be read leniently (a string or a number, a string or an object).
type object map[string]json.RawMessage

// parseObject decodes data as a JSON object; ok is false for anything else.
func parseObject(data []byte) (object, bool) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return nil, false
	}
	var o object
	if err := json.Unmarshal(data, &o); err != nil {
		return nil, false
	}
	return o, true
}

// unwrapDecision finds the decision in a reply that is either the decision
// itself or wraps it as {"data": {...}} or {"decision": {...}}.
func unwrapDecision(o object) object {
	if _, ok := o["id"]; ok {
		return o
	}
	for _, key := range []string{"data", "decision"} {
		if inner, ok := parseObject(o[key]); ok {
			return inner
		}
	}
	return o
}

// str reads a string field; anything else (absent, null, a number, an
// object) is "".
func (o object) str(key string) string {
	var s string
	if raw, ok := o[key]; ok && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

// scalar reads a field that may be a string or a JSON number, as text.
func (o object) scalar(key string) string {
	raw := bytes.TrimSpace(o[key])
	if len(raw) == 0 {
		return ""
	}
	if raw[0] == '"' {
		return o.str(key)
	}
	var n json.Number
	if raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9') {
		if json.Unmarshal(raw, &n) == nil {
			return n.String()
		}
	}
	return ""
}

// firstStr is the first non-empty string among keys.
func (o object) firstStr(keys ...string) string {
	for _, k := range keys {
		if s := o.str(k); s != "" {
			return s
		}
	}
	return ""
}

// person reads who decided from a field that is an identity, or an object
// describing a user, whose stable identifiers (login, username, email, id)
// are preferred to a display name its owner may edit.
func (o object) person(key string) string {
	if s := o.str(key); s != "" {
		return s
	}
	if inner, ok := parseObject(o[key]); ok {
		for _, k := range []string{"login", "username", "email", "id", "name"} {
			if s := inner.scalar(k); s != "" {
				return s
			}
		}
	}
	return ""
}

// time reads an RFC 3339 string or Unix seconds.
func (o object) time(key string) time.Time {
	if s := o.str(key); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t
		}
		return time.Time{}
	}
	if s := o.scalar(key); s != "" {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 && f < 1e11 {
			sec := int64(f)
			return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC()
		}
	}
	return time.Time{}
}

// decisionOf reads a decision record. The id is neither required nor
// validated here: callers decide what a missing or invalid one means.
func decisionOf(o object) Decision {
	d := Decision{
		ID:              o.scalar("id"),
		Status:          o.str("status"),
		Reason:          o.firstStr("reason", "comment", "decision_reason", "justification"),
		ClientReference: o.str("client_reference"),
		RemediationID:   o.str("remediation_id"),
		Repo:            o.str("repository"),
		Requester:       o.str("requester"),
		DiffDigest:      o.str("diff_digest"),
		BaseSHA:         o.str("base_sha"),
	}
	// Who took the decision is read before who was asked to (approver,
	// reviewer may name an assignee).
	for _, k := range []string{"decided_by", "approved_by", "rejected_by", "approver", "reviewer"} {
		if d.Approver = o.person(k); d.Approver != "" {
			break
		}
	}
	for _, k := range []string{"updated_at", "decided_at"} {
		if d.UpdatedAt = o.time(k); !d.UpdatedAt.IsZero() {
			break
		}
	}
	return d
}

// decisionList reads the reply to a lookup: a JSON array, an object with
// the list under decisions, items, data or results, or a single decision.
func decisionList(data []byte) ([]object, bool) {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '[' {
		return objectArray(data)
	}
	o, ok := parseObject(data)
	if !ok {
		return nil, false
	}
	for _, key := range []string{"decisions", "items", "data", "results"} {
		raw := bytes.TrimSpace(o[key])
		if len(raw) == 0 {
			continue
		}
		if string(raw) == "null" {
			return nil, true
		}
		if raw[0] == '[' {
			return objectArray(raw)
		}
	}
	if _, ok := o["id"]; ok {
		return []object{o}, true
	}
	return nil, false
}

// objectArray decodes an array; entries that are not objects are skipped
// (they cannot be the decision looked for).
func objectArray(data []byte) ([]object, bool) {
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, false
	}
	out := make([]object, 0, len(raws))
	for _, r := range raws {
		if o, ok := parseObject(r); ok {
			out = append(out, o)
		}
	}
	return out, true
}
