package dragon

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Dragon signs each callback it sends when a decision changes.
const (
	// SignatureHeader carries "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
	SignatureHeader = "X-Dragon-Signature"
	// TimestampHeader carries the signing time in Unix seconds; it is
	// covered by the signature, which bounds how long a captured callback
	// can be replayed.
	TimestampHeader = "X-Dragon-Timestamp"
)

// WebhookWindow is how far a callback's timestamp may be from now, either
// way, before it is refused as a replay (or a clock far off).
const WebhookWindow = 5 * time.Minute

// Webhook verification failures. Handlers answer 401 to all of them alike.
var (
	// ErrNoSecret: no secret is configured, so no callback can be
	// authenticated and every one is refused (fail closed).
	ErrNoSecret = errors.New("dragon: webhook secret is not configured")
	// ErrMalformedWebhook: a signature or timestamp header is missing or
	// not of the expected form.
	ErrMalformedWebhook = errors.New("dragon: webhook signature headers are malformed")
	// ErrBadSignature: the signature does not match the body, timestamp and
	// secret.
	ErrBadSignature = errors.New("dragon: webhook signature does not match")
	// ErrStaleWebhook: the timestamp is outside WebhookWindow.
	ErrStaleWebhook = errors.New("dragon: webhook timestamp is outside the accepted window")
)

const signaturePrefix = "sha256="

// VerifyWebhook authenticates a callback: secret must be set, timestamp
// must be Unix seconds within WebhookWindow of now, and signature must be
// the HMAC of timestamp + "." + body, compared in constant time.
func VerifyWebhook(secret, body []byte, timestamp, signature string, now time.Time) error {
	if len(secret) == 0 {
		return ErrNoSecret
	}
	if len(timestamp) == 0 || len(timestamp) > 12 || strings.Trim(timestamp, "0123456789") != "" {
		return ErrMalformedWebhook
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrMalformedWebhook
	}
	hexSig, ok := strings.CutPrefix(signature, signaturePrefix)
	if !ok || len(hexSig) != 2*sha256.Size {
		return ErrMalformedWebhook
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return ErrMalformedWebhook
	}
	if d := now.Sub(time.Unix(sec, 0)); d > WebhookWindow || d < -WebhookWindow {
		return ErrStaleWebhook
	}
	if !hmac.Equal(got, webhookMAC(secret, timestamp, body)) {
		return ErrBadSignature
	}
	return nil
}

// SignWebhook signs body as Dragon does, for fakes and tests: the values of
// TimestampHeader and SignatureHeader.
func SignWebhook(secret, body []byte, ts time.Time) (timestamp, signature string) {
	timestamp = strconv.FormatInt(ts.Unix(), 10)
	return timestamp, signaturePrefix + hex.EncodeToString(webhookMAC(secret, timestamp, body))
}

func webhookMAC(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// WebhookEvent is a callback's body. It is a hint that a decision changed,
// never the authority: only the decision id is used, and the caller re-reads
// the decision with Get before acting on it.
type WebhookEvent struct {
	Event    string `json:"event"`
	Decision struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	} `json:"decision"`
}

// ParseWebhookEvent reads a verified callback body. The decision id may be
// a JSON string or number and must be a valid decision id (ErrInvalidID
// otherwise); ErrMalformedResponse means the body is not such an object.
func ParseWebhookEvent(body []byte) (WebhookEvent, error) {
	var ev WebhookEvent
	o, ok := parseObject(body)
	if !ok {
		return ev, ErrMalformedResponse
	}
	ev.Event = o.str("event")
	d, ok := parseObject(o["decision"])
	if !ok {
		return ev, ErrMalformedResponse
	}
	ev.Decision.ID, ev.Decision.Status = d.scalar("id"), d.str("status")
	if !validID(ev.Decision.ID) {
		return ev, ErrInvalidID
	}
	return ev, nil
}
