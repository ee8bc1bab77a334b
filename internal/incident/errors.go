package incident

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"remediator/internal/outbound"
)

// Sentinels a caller can test with errors.Is. Each is the Err of an
// *APIError whose Status already tells activities.Classify what to do.
var (
	// ErrInvalidConfig: New was given a setting it cannot work with; the
	// service should fail at start-up rather than on the first incident.
	ErrInvalidConfig = errors.New("invalid incident API configuration")
	// ErrInvalidRequest: the call was refused before anything was sent
	// (Status 400), because no answer from the API could make it valid.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrInvalidID: an incident id is unusable in a URL path. Passed in by
	// the caller it is refused with Status 400; answered by the API it is a
	// broken reply (Status 502).
	ErrInvalidID = errors.New("invalid incident id")
	// ErrNoID: the API accepted a create but named no incident (no id, an
	// empty one, or the placeholder "pending"). Status 502, so the create is
	// retried a few times under the same Idempotency-Key instead of the
	// service inventing an id.
	ErrNoID = errors.New("the incident API answered without an incident id")
	// ErrMalformedResponse: a reply that should have been JSON was not (an
	// HTML error page from a proxy, garbage, a body over the size limit).
	// On a 2xx it comes with Status 502, so it is retried.
	ErrMalformedResponse = errors.New("malformed response from the incident API")
)

const (
	// maxMessage bounds what a reply body may contribute to an error: a
	// proxy's HTML page is not worth carrying through workflow history.
	maxMessage = 300
)

// APIError is every failure of this client except network errors (which
// are returned wrapped, and therefore retried), in the shape
// activities.Classify understands: 429/503 wait RetryAfter, 404 is
// not-found, other 4xx are permanent, everything else is retried. Its text
// never carries the bearer token.
type APIError struct {
	Op         string        // "create" or "update"
	Status     int           // the HTTP status, or the one this client assigned (400 refused, 502 broken reply)
	Code       string        // the API's machine-readable error code, if it sent one
	Message    string        // the API's human-readable message, shortened
	RetryAfter time.Duration // what Retry-After asked for, capped at an hour
	Err        error         // a sentinel of this package, or nil
}

// Error names the operation and status first so log lines group well.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("incident: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	b.WriteString("HTTP ")
	b.WriteString(strconv.Itoa(e.Status))
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (retry after ")
		b.WriteString(e.RetryAfter.String())
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap exposes the sentinel, so errors.Is finds it.
func (e *APIError) Unwrap() error { return e.Err }

// HTTPStatus lets activities.Classify read the status without knowing this type.
func (e *APIError) HTTPStatus() int { return e.Status }

// RetryAfterDelay lets activities.Classify honour the API's throttling.
func (e *APIError) RetryAfterDelay() time.Duration { return e.RetryAfter }

// errorBody picks a code and a message out of an error reply. It knows the
// shapes the seed's services answered with: FastAPI's {"detail": "..."} or
// {"detail": [{"msg": ...}]}, and {"error": code, "message": ...}. A body
// that is not JSON yields ok=false and the status text as message.
func errorBody(status int, body []byte) (code, msg string, ok bool) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return "", http.StatusText(status), true
	}
	var v struct {
		Error   json.RawMessage `json:"error"`
		Code    json.RawMessage `json:"code"`
		Message json.RawMessage `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	}
	if trimmed[0] != '{' || json.Unmarshal(trimmed, &v) != nil {
		return "", http.StatusText(status), false
	}
	code = firstString(v.Code, v.Error)
	msg = firstString(v.Message, v.Detail)
	if !codePattern.MatchString(code) {
		// slowapi answers {"error": "Rate limit exceeded: ..."}: prose, not a code.
		if msg == "" {
			msg = code
		}
		code = ""
	}
	if msg == "" {
		msg = detailList(v.Detail)
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return code, truncate(msg, maxMessage), true
}

// codePattern is what a machine-readable error code looks like.
var codePattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

// firstString returns the first of raws that is a non-empty JSON string.
func firstString(raws ...json.RawMessage) string {
	for _, raw := range raws {
		var s string
		if json.Unmarshal(raw, &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

// detailList joins the "msg" fields of a FastAPI validation error list.
func detailList(raw json.RawMessage) string {
	var list []struct {
		Msg string `json:"msg"`
	}
	if json.Unmarshal(raw, &list) != nil {
		return ""
	}
	var msgs []string
	for _, d := range list {
		if d.Msg != "" {
			msgs = append(msgs, d.Msg)
		}
	}
	return strings.Join(msgs, "; ")
}

// truncate shortens s to at most n bytes without splitting a UTF-8 sequence
// and replaces control characters, so a reply cannot forge log lines.
func truncate(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

// retryAfterOf is the reply's Retry-After (zero without advice).
func retryAfterOf(h http.Header, now time.Time) time.Duration {
	d, _ := outbound.RetryAfter(h, now)
	return d
}
