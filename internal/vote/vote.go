// Package vote makes approvals verifiable. The API side (and every channel it
// sanctions: REST, Slack buttons, the CLI) signs each vote with an Ed25519 key
// only it holds; the workflow's validators and the OpenPR activity verify the
// signature with public keys from the worker's own configuration. Whoever can
// only reach the Temporal frontend can therefore send votes, but not votes
// that count.
//
// The package is pure computation (no clock, no randomness, no I/O outside
// the key loaders), so workflow code may call Verify.
package vote

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// domain separates these signatures from anything else the key might sign.
const domain = "remediator-vote-v1"

// Vote is everything a signature covers: which remediation, who, with which
// roles, through which channel, on which decision and exactly which diff,
// what they said, and when.
type Vote struct {
	RemediationID string
	Approve       bool
	Actor         string
	Roles         []string
	Channel       string
	DecisionID    string
	DiffDigest    string
	Comment       string
	Reason        string
	SignedAt      time.Time
	// BaseSHA is the base commit the voter saw the diff against; Action
	// is empty for a vote and names any other signed request
	// ("regenerate", "supersede"). Both are covered only when set, so
	// signatures made before they existed still verify.
	BaseSHA string
	Action  string
}

// Signature is what travels with a vote: the id of the key and the bytes.
type Signature struct {
	KeyID string `json:"key_id"`
	Sig   []byte `json:"sig"`
}

// PublicKey is one verification key. It is JSON so the workflow can record
// the worker's keys in history and verify deterministically on replay.
type PublicKey struct {
	ID  string `json:"id"`
	Key []byte `json:"key"`
}

// Errors of Verify; callers only need to know that the vote does not count.
var (
	ErrNoKeys       = errors.New("no vote verification keys are configured")
	ErrUnknownKey   = errors.New("the vote is signed with an unknown key")
	ErrBadSignature = errors.New("the vote signature does not verify")
)

// Message is the canonical byte string that is signed: a domain tag, then
// every field length-prefixed, so no two different votes share a message.
// Roles are sorted: their order carries no meaning.
func Message(v Vote) []byte {
	roles := slices.Clone(v.Roles)
	slices.Sort(roles)
	approve := "reject"
	if v.Approve {
		approve = "approve"
	}
	fields := []string{
		domain, v.RemediationID, approve, v.Actor, strings.Join(roles, "\n"), v.Channel,
		v.DecisionID, v.DiffDigest, v.Comment, v.Reason, v.SignedAt.UTC().Format(time.RFC3339Nano),
	}
	// Optional fields are appended as tag and value: a message with them
	// has more fields than one without, so the two can never collide.
	if v.BaseSHA != "" {
		fields = append(fields, "base", v.BaseSHA)
	}
	if v.Action != "" {
		fields = append(fields, "action", v.Action)
	}
	var b []byte
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// KeyID names a public key: the first 16 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Signer holds the private key; only the API side has one.
type Signer struct {
	key ed25519.PrivateKey
	id  string
}

// NewSigner wraps an Ed25519 private key.
func NewSigner(key ed25519.PrivateKey) (*Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("vote: private key has %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	return &Signer{key: key, id: KeyID(key.Public().(ed25519.PublicKey))}, nil
}

// Sign signs v.
func (s *Signer) Sign(v Vote) Signature {
	return Signature{KeyID: s.id, Sig: ed25519.Sign(s.key, Message(v))}
}

// DeriveKey derives a symmetric key for purpose from the private key, so
// API replicas that share the signing key share e.g. the page-token MAC key
// without another secret to provision.
func (s *Signer) DeriveKey(purpose string) []byte {
	m := hmac.New(sha256.New, s.key.Seed())
	m.Write([]byte(domain + "\x00derive\x00" + purpose))
	return m.Sum(nil)
}

// PublicKey is the verification key workers need.
func (s *Signer) PublicKey() PublicKey {
	pub := s.key.Public().(ed25519.PublicKey)
	return PublicKey{ID: s.id, Key: []byte(pub)}
}

// Verify checks sig over v with the key sig names, which must be in keys.
func Verify(keys []PublicKey, v Vote, sig Signature) error {
	if len(keys) == 0 {
		return ErrNoKeys
	}
	for _, k := range keys {
		if k.ID != sig.KeyID {
			continue
		}
		if len(k.Key) != ed25519.PublicKeySize || KeyID(k.Key) != k.ID {
			return ErrUnknownKey
		}
		if len(sig.Sig) != ed25519.SignatureSize || !ed25519.Verify(k.Key, Message(v), sig.Sig) {
			return ErrBadSignature
		}
		return nil
	}
	return ErrUnknownKey
}

// startDomain separates start signatures from vote signatures.
const startDomain = "remediator-start-v1"

// startMessage is what a start signature covers: the remediation (the
// workflow ID), its canonical repository and who requested it.
func startMessage(id, repo, requester string) []byte {
	var b []byte
	for _, f := range []string{startDomain, id, repo, requester} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// SignStart signs a remediation's start: the API keeps it with the
// workflow, so a workflow started straight on Temporal (with a requester and
// repository of its choosing) is never served or voted on by the API.
func (s *Signer) SignStart(id, repo, requester string) Signature {
	return Signature{KeyID: s.id, Sig: ed25519.Sign(s.key, startMessage(id, repo, requester))}
}

// VerifyStartKeys checks a start signature with public keys (the workers'
// configured ones), as the workflow does before it reaches anyone outside.
func VerifyStartKeys(keys []PublicKey, id, repo, requester string, sig Signature) bool {
	msg := startMessage(id, repo, requester)
	for _, k := range keys {
		if k.ID == sig.KeyID && len(k.Key) == ed25519.PublicKeySize && len(sig.Sig) == ed25519.SignatureSize && ed25519.Verify(k.Key, msg, sig.Sig) {
			return true
		}
	}
	return false
}

// VerifyStart checks a start signature with the signer's own public key.
func (s *Signer) VerifyStart(id, repo, requester string, sig Signature) bool {
	pub := s.key.Public().(ed25519.PublicKey)
	return sig.KeyID == s.id && len(sig.Sig) == ed25519.SignatureSize && ed25519.Verify(pub, startMessage(id, repo, requester), sig.Sig)
}
