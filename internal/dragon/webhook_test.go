package dragon_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"testing"
	"time"

	"remediator/internal/dragon"
)

var (
	hookSecret = []byte("whsec-0123456789")
	hookBody   = []byte(`{"event":"decision.updated","decision":{"id":"dec-1","status":"approved"}}`)
)

// sign computes the documented signature independently of the package.
func sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "." + string(body)))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestSignWebhookMatchesTheDocumentedScheme(t *testing.T) {
	at := time.Unix(1767323045, 0)
	ts, sig := dragon.SignWebhook(hookSecret, hookBody, at)
	if ts != "1767323045" || sig != sign(hookSecret, ts, hookBody) {
		t.Fatalf("SignWebhook = %q %q", ts, sig)
	}
}

func TestVerifyWebhook(t *testing.T) {
	now := time.Unix(1767323045, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	good := sign(hookSecret, ts, hookBody)
	at := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	for name, tc := range map[string]struct {
		secret, body []byte
		ts, sig      string
		want         error
	}{
		"good":                 {hookSecret, hookBody, ts, good, nil},
		"4m59s old":            {hookSecret, hookBody, at(-299 * time.Second), sign(hookSecret, at(-299*time.Second), hookBody), nil},
		"4m59s ahead":          {hookSecret, hookBody, at(299 * time.Second), sign(hookSecret, at(299*time.Second), hookBody), nil},
		"wrong secret":         {[]byte("other-secret"), hookBody, ts, good, dragon.ErrBadSignature},
		"tampered body":        {hookSecret, []byte(`{"event":"decision.updated","decision":{"id":"dec-2","status":"approved"}}`), ts, good, dragon.ErrBadSignature},
		"timestamp not signed": {hookSecret, hookBody, at(time.Second), good, dragon.ErrBadSignature},
		"stale":                {hookSecret, hookBody, at(-6 * time.Minute), sign(hookSecret, at(-6*time.Minute), hookBody), dragon.ErrStaleWebhook},
		"future":               {hookSecret, hookBody, at(6 * time.Minute), sign(hookSecret, at(6*time.Minute), hookBody), dragon.ErrStaleWebhook},
		"empty secret":         {nil, hookBody, ts, sign(nil, ts, hookBody), dragon.ErrNoSecret},
		"no signature":         {hookSecret, hookBody, ts, "", dragon.ErrMalformedWebhook},
		"no prefix":            {hookSecret, hookBody, ts, good[len("sha256="):], dragon.ErrMalformedWebhook},
		"other algorithm":      {hookSecret, hookBody, ts, "sha1=" + good[len("sha256="):], dragon.ErrMalformedWebhook},
		"upper-case prefix":    {hookSecret, hookBody, ts, "SHA256=" + good[len("sha256="):], dragon.ErrMalformedWebhook},
		"not hex":              {hookSecret, hookBody, ts, "sha256=" + string(make([]byte, 64)), dragon.ErrMalformedWebhook},
		"short":                {hookSecret, hookBody, ts, good[:40], dragon.ErrMalformedWebhook},
		"two signatures":       {hookSecret, hookBody, ts, good + "," + good, dragon.ErrMalformedWebhook},
		"no timestamp":         {hookSecret, hookBody, "", good, dragon.ErrMalformedWebhook},
		"timestamp not number": {hookSecret, hookBody, "17673230x5", good, dragon.ErrMalformedWebhook},
		"negative timestamp":   {hookSecret, hookBody, "-" + ts, good, dragon.ErrMalformedWebhook},
		"milliseconds":         {hookSecret, hookBody, ts + "000", sign(hookSecret, ts+"000", hookBody), dragon.ErrMalformedWebhook},
		"RFC 3339 timestamp":   {hookSecret, hookBody, now.UTC().Format(time.RFC3339), good, dragon.ErrMalformedWebhook},
	} {
		if err := dragon.VerifyWebhook(tc.secret, tc.body, tc.ts, tc.sig, now); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: VerifyWebhook = %v, want %v", name, err, tc.want)
		}
	}
}

func TestParseWebhookEvent(t *testing.T) {
	ev, err := dragon.ParseWebhookEvent(hookBody)
	if err != nil || ev.Event != "decision.updated" || ev.Decision.ID != "dec-1" || ev.Decision.Status != "approved" {
		t.Fatalf("ParseWebhookEvent = %+v, %v", ev, err)
	}
	ev, err = dragon.ParseWebhookEvent([]byte(`{"event":"decision.updated","decision":{"id":42}}`))
	if err != nil || ev.Decision.ID != "42" {
		t.Fatalf("numeric id: %+v, %v", ev, err)
	}
	for body, want := range map[string]error{
		`{"decision":{"id":"../admin"}}`: dragon.ErrInvalidID,
		`{"decision":{}}`:                dragon.ErrInvalidID,
		`{"event":"x"}`:                  dragon.ErrMalformedResponse,
		`not json`:                       dragon.ErrMalformedResponse,
		`[{"decision":{"id":"d"}}]`:      dragon.ErrMalformedResponse,
	} {
		if _, err := dragon.ParseWebhookEvent([]byte(body)); !errors.Is(err, want) {
			t.Errorf("ParseWebhookEvent(%s) = %v, want %v", body, err, want)
		}
	}
}
