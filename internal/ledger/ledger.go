// Package ledger is the built-in decision ledger that stands in for Dragon
// when none is configured. Records use Dragon's JSON shape (id, alert_id,
// proposer, proposed_action, rationale, status) plus structured fields the
// seed service flattened into free text. One JSON file per decision, written
// atomically, keyed by an idempotency key so a retried create finds its
// earlier record. PGStore (postgres.go) keeps the same records in
// PostgreSQL for replicas on several hosts; both satisfy Ledger.
package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"
)

// Decision statuses. Pending until the remediation ends; then the status
// mirrors the outcome.
const (
	StatusPending   = "pending"
	StatusApproved  = "approved"
	StatusRejected  = "rejected"
	StatusExpired   = "expired"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// ErrNotFound is returned for unknown decision ids.
var ErrNotFound = errors.New("decision not found")

// ErrConflict is returned when a key already names a decision about another
// change: a decision id is never handed out for something else.
var ErrConflict = errors.New("a decision for this key exists about another change")

// Vote is one recorded vote.
type Vote struct {
	Actor    string    `json:"actor"`
	Approved bool      `json:"approved"`
	Comment  string    `json:"comment,omitempty"`
	Channel  string    `json:"channel"`
	At       time.Time `json:"at"`
}

// Decision is one governance record.
type Decision struct {
	ID             string    `json:"id"`
	AlertID        string    `json:"alert_id"`
	Proposer       string    `json:"proposer"`
	ProposedAction string    `json:"proposed_action"`
	Rationale      string    `json:"rationale"`
	Status         string    `json:"status"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`

	RemediationID string   `json:"remediation_id"`
	Repo          string   `json:"repo"`
	Requester     string   `json:"requester"`
	IncidentID    string   `json:"incident_id,omitempty"`
	CorrelationID string   `json:"correlation_id,omitempty"`
	Files         []string `json:"files,omitempty"`
	DiffDigest    string   `json:"diff_digest"`
	BaseSHA       string   `json:"base_sha"`
	Outcome       string   `json:"outcome,omitempty"`
	Reason        string   `json:"reason,omitempty"`
	Votes         []Vote   `json:"votes,omitempty"`
	PRURL         string   `json:"pr_url,omitempty"`
	// The assessment and validation approvers were shown.
	RiskLevel  string            `json:"risk_level,omitempty"`
	RiskScore  int               `json:"risk_score,omitempty"`
	RiskReason string            `json:"risk_reason,omitempty"`
	FixSource  string            `json:"fix_source,omitempty"`
	Validation string            `json:"validation,omitempty"`
	Links      map[string]string `json:"links,omitempty"`
}

// Outcome is the end state written back once a remediation ends.
type Outcome struct {
	Phase  string
	Reason string
	Votes  []Vote
	PRURL  string
}

var idPattern = regexp.MustCompile(`^dec_[0-9a-f]{24}$`)

// Ledger is a decision store: the file store (*Store) on one host, the
// PostgreSQL store (*PGStore) when several replicas share the ledger.
type Ledger interface {
	// Create stores d under the id derived from key (IDFor), or returns the
	// existing record for that key unchanged; ErrConflict if that record is
	// about another change.
	Create(ctx context.Context, key string, d Decision) (Decision, error)
	// Get returns one decision, ErrNotFound for unknown or malformed ids.
	Get(ctx context.Context, id string) (Decision, error)
	// Record writes the outcome; recording the same outcome twice is harmless.
	Record(ctx context.Context, id string, o Outcome) (Decision, error)
}

var _ Ledger = (*Store)(nil)

// Store keeps decisions under one directory.
type Store struct {
	dir string
	mu  sync.Mutex
	now func() time.Time
}

// Open creates the directory if needed.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return &Store{dir: dir, now: time.Now}, nil
}

// IDFor derives the decision id from the idempotency key, so retries of a
// create are answered with the same record.
func IDFor(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "dec_" + hex.EncodeToString(sum[:12])
}

// Create stores d under the id derived from key, or returns the existing
// record for that key unchanged.
func (s *Store) Create(_ context.Context, key string, d Decision) (Decision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d.ID = IDFor(key)
	if existing, err := s.read(d.ID); err == nil {
		if !sameChange(existing, d) {
			return Decision{}, ErrConflict
		}
		return existing, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Decision{}, err
	}
	now := s.now().UTC()
	d.Status = StatusPending
	d.CreatedAt, d.UpdatedAt = now, now
	return d, s.write(d)
}

// Get returns one decision.
func (s *Store) Get(_ context.Context, id string) (Decision, error) {
	if !idPattern.MatchString(id) {
		return Decision{}, ErrNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.read(id)
}

// Record writes the outcome; recording the same outcome twice is harmless.
func (s *Store) Record(_ context.Context, id string, o Outcome) (Decision, error) {
	if !idPattern.MatchString(id) {
		return Decision{}, ErrNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.read(id)
	if err != nil {
		return Decision{}, err
	}
	applyOutcome(&d, o, s.now().UTC())
	return d, s.write(d)
}

// sameChange reports whether two decisions are about the same change: a key
// is answered with its earlier record only then.
func sameChange(a, b Decision) bool {
	return a.RemediationID == b.RemediationID && a.Repo == b.Repo && a.BaseSHA == b.BaseSHA && a.DiffDigest == b.DiffDigest
}

// applyOutcome writes o onto d at now.
func applyOutcome(d *Decision, o Outcome, now time.Time) {
	d.Status = statusFor(o.Phase)
	d.Outcome = o.Phase
	d.Reason = o.Reason
	d.Votes = o.Votes
	d.PRURL = o.PRURL
	d.UpdatedAt = now
}

func statusFor(phase string) string {
	switch phase {
	case "Completed":
		return StatusApproved
	case "Rejected":
		return StatusRejected
	case "Expired":
		return StatusExpired
	case "Cancelled", "Superseded":
		// Superseded: withdrawn for a newer failure or a regenerated fix;
		// the outcome says which.
		return StatusCancelled
	case "Failed":
		return StatusFailed
	}
	return StatusPending
}

func (s *Store) path(id string) string { return filepath.Join(s.dir, id+".json") }

func (s *Store) read(id string) (Decision, error) {
	b, err := os.ReadFile(s.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return Decision{}, ErrNotFound
	}
	if err != nil {
		return Decision{}, fmt.Errorf("ledger: %w", err)
	}
	var d Decision
	if err := json.Unmarshal(b, &d); err != nil {
		return Decision{}, fmt.Errorf("ledger: corrupt record %s: %w", id, err)
	}
	return d, nil
}

// write replaces the record atomically: temp file, fsync, rename.
func (s *Store) write(d Decision) error {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.dir, d.ID+".*.tmp")
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("ledger: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("ledger: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path(d.ID)); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}
