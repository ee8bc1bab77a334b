// Package webhook verifies the signatures of incoming webhook deliveries
// (GitHub and Slack) before anything in the request is trusted.
//
// Every function fails closed: a missing secret, a missing or malformed
// header, a mismatching signature or a stale timestamp is an error, and the
// caller must reject the request (typically with 401) without acting on the
// body. Callers must pass the raw request body exactly as received, before
// any JSON or form decoding, since the signature covers those bytes.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors, to be tested with errors.Is. Returned errors may wrap them
// with extra detail; that detail never contains the secret or the expected
// signature, so it is safe to log (but should not be sent to the client).
var (
	// ErrNoSecret means the verifier was called with an empty secret. An
	// unconfigured secret must never mean "accept everything".
	ErrNoSecret = errors.New("webhook secret not configured")
	// ErrMissingSignature means the signature header (or, for Slack, the
	// timestamp header) is absent or empty.
	ErrMissingSignature = errors.New("signature missing")
	// ErrBadSignature means the signature header is malformed (wrong scheme
	// prefix, not hex) or does not match the body.
	ErrBadSignature = errors.New("signature mismatch")
	// ErrStale means the signed timestamp is not a Unix time or is too far
	// from now, which is how replayed deliveries are refused.
	ErrStale = errors.New("timestamp outside the allowed window")
)

// SlackWindow is how far X-Slack-Request-Timestamp may be from now, in either
// direction, as recommended by Slack to limit replay attacks while tolerating
// clock skew.
const SlackWindow = 5 * time.Minute

const (
	githubPrefix  = "sha256="
	slackVersion  = "v0"
	slackPrefix   = slackVersion + "="
	sha256HexSize = sha256.Size * 2
)

// VerifyGitHub checks a GitHub delivery: signatureHeader is the value of
// X-Hub-Signature-256, "sha256=" followed by the hex HMAC-SHA256 of body keyed
// with secret. The comparison is constant time (hmac.Equal) so that timing
// does not leak how much of a forged signature was right.
//
// An empty secret always fails with ErrNoSecret; an absent header fails with
// ErrMissingSignature; anything else that is not an exact match fails with
// ErrBadSignature. The legacy SHA-1 X-Hub-Signature header is deliberately
// not supported.
func VerifyGitHub(secret, body []byte, signatureHeader string) error {
	if len(secret) == 0 {
		return ErrNoSecret
	}
	sig := strings.TrimSpace(signatureHeader)
	if sig == "" {
		return ErrMissingSignature
	}
	got, err := decodeSig(sig, githubPrefix)
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return ErrBadSignature
	}
	return nil
}

// VerifySlack checks a Slack request signed with the app's signing secret
// (Slack's "v0" scheme): signatureHeader is X-Slack-Signature, "v0=" followed
// by the hex HMAC-SHA256 of "v0:" + timestampHeader + ":" + body keyed with
// secret, and timestampHeader is X-Slack-Request-Timestamp, Unix seconds that
// must be within SlackWindow of now in either direction. now is a parameter
// so that callers and tests control the clock; pass time.Now() in handlers.
//
// An empty secret fails with ErrNoSecret; an absent signature or timestamp
// header with ErrMissingSignature; a non-numeric or out-of-window timestamp
// with ErrStale; a malformed or mismatching signature with ErrBadSignature.
// The signature is checked before the timestamp, so ErrStale is only reported
// for requests that were genuinely signed with the secret.
func VerifySlack(secret, body []byte, timestampHeader, signatureHeader string, now time.Time) error {
	if len(secret) == 0 {
		return ErrNoSecret
	}
	ts := strings.TrimSpace(timestampHeader)
	sig := strings.TrimSpace(signatureHeader)
	if ts == "" || sig == "" {
		return ErrMissingSignature
	}
	got, err := decodeSig(sig, slackPrefix)
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(slackVersion + ":" + ts + ":"))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return ErrBadSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp is not a Unix time", ErrStale)
	}
	skew := now.Sub(time.Unix(sec, 0))
	if skew > SlackWindow || skew < -SlackWindow {
		return fmt.Errorf("%w: timestamp is %s away from now", ErrStale, skew.Round(time.Second))
	}
	return nil
}

// decodeSig strips prefix from sig and hex-decodes the rest, which must be
// exactly one SHA-256 digest long.
func decodeSig(sig, prefix string) ([]byte, error) {
	rest, ok := strings.CutPrefix(sig, prefix)
	if !ok {
		return nil, fmt.Errorf("%w: expected %q prefix", ErrBadSignature, prefix)
	}
	if len(rest) != sha256HexSize {
		return nil, fmt.Errorf("%w: expected %d hex digits", ErrBadSignature, sha256HexSize)
	}
	got, err := hex.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: not hex", ErrBadSignature)
	}
	return got, nil
}
