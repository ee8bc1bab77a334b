package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// GitHub's published test vector ("Validating webhook deliveries").
const (
	ghSecret = "It's a Secret to Everybody"
	ghBody   = "Hello, World!"
	ghSig    = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

// Slack's documented example ("Verifying requests from Slack").
const (
	slSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	slTS     = "1531420618"
	slBody   = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	slSig    = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
)

func TestVerifyGitHub(t *testing.T) {
	secret, body := []byte(ghSecret), []byte(ghBody)
	hexPart := strings.TrimPrefix(ghSig, "sha256=")
	flipped := []byte(hexPart)
	if flipped[0] == '7' {
		flipped[0] = '8'
	} else {
		flipped[0] = '7'
	}
	cases := []struct {
		name   string
		secret []byte
		body   []byte
		header string
		want   error
	}{
		{"published vector", secret, body, ghSig, nil},
		{"surrounding whitespace", secret, body, " " + ghSig + " ", nil},
		{"upper-case hex", secret, body, "sha256=" + strings.ToUpper(hexPart), nil},
		{"wrong signature", secret, body, "sha256=" + string(flipped), ErrBadSignature},
		{"tampered body", secret, []byte("Hello, World?"), ghSig, ErrBadSignature},
		{"wrong secret", []byte("another secret"), body, ghSig, ErrBadSignature},
		{"sha1 prefix", secret, body, "sha1=" + hexPart, ErrBadSignature},
		{"no prefix", secret, body, hexPart, ErrBadSignature},
		{"upper-case prefix", secret, body, "SHA256=" + hexPart, ErrBadSignature},
		{"missing header", secret, body, "", ErrMissingSignature},
		{"blank header", secret, body, "   ", ErrMissingSignature},
		{"non-hex", secret, body, "sha256=" + strings.Repeat("zz", 32), ErrBadSignature},
		{"truncated", secret, body, ghSig[:len(ghSig)-2], ErrBadSignature},
		{"too long", secret, body, ghSig + "00", ErrBadSignature},
		{"empty prefix only", secret, body, "sha256=", ErrBadSignature},
		{"empty secret", nil, body, ghSig, ErrNoSecret},
		{"empty secret, no header", []byte{}, body, "", ErrNoSecret},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyGitHub(tc.secret, tc.body, tc.header)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("VerifyGitHub = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("VerifyGitHub = %v, want %v", err, tc.want)
			}
		})
	}
}

func slackSign(secret, ts, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + ts + ":" + body))
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

func TestVerifySlackDocumentedExample(t *testing.T) {
	ts, err := strconv.ParseInt(slTS, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(ts, 0)
	if got := slackSign(slSecret, slTS, slBody); got != slSig {
		t.Fatalf("our signing helper disagrees with Slack's example: %s", got)
	}
	if err := VerifySlack([]byte(slSecret), []byte(slBody), slTS, slSig, now); err != nil {
		t.Fatalf("documented example refused: %v", err)
	}
	// The same genuine request replayed today is stale.
	if err := VerifySlack([]byte(slSecret), []byte(slBody), slTS, slSig, time.Now()); !errors.Is(err, ErrStale) {
		t.Fatalf("replayed documented example: got %v, want ErrStale", err)
	}
}

func TestVerifySlack(t *testing.T) {
	const secret = "slack-signing-secret"
	body := `{"type":"event_callback","event":{"type":"app_mention","text":"hi"}}`
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	unix := func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

	nowTS := unix(now)
	old := unix(now.Add(-6 * time.Minute))
	future := unix(now.Add(6 * time.Minute))
	edgePast := unix(now.Add(-SlackWindow))
	edgeFuture := unix(now.Add(SlackWindow))
	valid := slackSign(secret, nowTS, body)

	cases := []struct {
		name   string
		secret string
		body   string
		ts     string
		sig    string
		want   error
	}{
		{"valid", secret, body, nowTS, valid, nil},
		{"4 minutes old", secret, body, unix(now.Add(-4 * time.Minute)), slackSign(secret, unix(now.Add(-4*time.Minute)), body), nil},
		{"exactly window old", secret, body, edgePast, slackSign(secret, edgePast, body), nil},
		{"exactly window ahead", secret, body, edgeFuture, slackSign(secret, edgeFuture, body), nil},
		{"6 minutes old", secret, body, old, slackSign(secret, old, body), ErrStale},
		{"6 minutes in the future", secret, body, future, slackSign(secret, future, body), ErrStale},
		{"non-numeric timestamp", secret, body, "yesterday", slackSign(secret, "yesterday", body), ErrStale},
		{"non-numeric timestamp, unsigned", secret, body, "yesterday", valid, ErrBadSignature},
		{"timestamp swapped after signing", secret, body, unix(now.Add(time.Second)), valid, ErrBadSignature},
		{"tampered body", secret, body + " ", nowTS, valid, ErrBadSignature},
		{"wrong secret", "other", body, nowTS, valid, ErrBadSignature},
		{"wrong version prefix", secret, body, nowTS, "v1=" + strings.TrimPrefix(valid, "v0="), ErrBadSignature},
		{"non-hex", secret, body, nowTS, "v0=" + strings.Repeat("g", 64), ErrBadSignature},
		{"missing signature", secret, body, nowTS, "", ErrMissingSignature},
		{"missing timestamp", secret, body, "", valid, ErrMissingSignature},
		{"empty secret", "", body, nowTS, valid, ErrNoSecret},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifySlack([]byte(tc.secret), []byte(tc.body), tc.ts, tc.sig, now)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("VerifySlack = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("VerifySlack = %v, want %v", err, tc.want)
			}
		})
	}
}
