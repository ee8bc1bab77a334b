package llm

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"remediator/internal/outbound"
)

// ErrMalformedResponse is the Err of an *APIError whose reply was not the
// JSON it should have been: an HTML error page from a proxy, a truncated
// body, a completion without choices. A 2xx reply of that kind carries
// Status 502, so the caller's retry policy tries again.
var ErrMalformedResponse = errors.New("malformed response from the model provider")

// maxRetryAfter bounds how long a provider may park a caller: a longer wait
// is more likely a misconfigured proxy than a real quota.
const maxRetryAfter = time.Hour

// APIError is every answer of the provider that is not a usable completion,
// in the shape activities.Classify understands (HTTPStatus and
// RetryAfterDelay): 429/503 are retried after RetryAfter, other 4xx are
// final, 5xx are retried. Network failures are not APIErrors: they are
// returned wrapped, and so retried. Error never contains the API key.
type APIError struct {
	Op         string        // what the client was doing
	Status     int           // HTTP status (502 for a 2xx reply that was not a completion)
	Code       string        // the provider's error code or type, if any
	Message    string        // the provider's message, cleaned of credentials
	RetryAfter time.Duration // Retry-After or retry-after-ms, capped at an hour
	Err        error         // ErrMalformedResponse, or nil
}

// Error reads "llm: chat completions: 429 rate_limit_exceeded: message".
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("llm: ")
	if e.Op != "" {
		b.WriteString(e.Op + ": ")
	}
	b.WriteString(strconv.Itoa(e.Status))
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Err != nil {
		b.WriteString(" (" + e.Err.Error() + ")")
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (retry after " + e.RetryAfter.String() + ")")
	}
	return b.String()
}

// Unwrap exposes the cause, so errors.Is finds ErrMalformedResponse.
func (e *APIError) Unwrap() error { return e.Err }

// HTTPStatus lets the activity classifier decide by status.
func (e *APIError) HTTPStatus() int { return e.Status }

// RetryAfterDelay is the wait the provider asked for; zero lets the retry
// policy choose.
func (e *APIError) RetryAfterDelay() time.Duration { return e.RetryAfter }

// retryAfter reads OpenAI's retry-after-ms, then the standard Retry-After
// (seconds or an HTTP date), capped at maxRetryAfter.
func retryAfter(h http.Header, now time.Time) time.Duration {
	var d time.Duration
	if v := strings.TrimSpace(h.Get("retry-after-ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			d = time.Duration(ms * float64(time.Millisecond))
		}
	}
	if d == 0 {
		d, _ = outbound.RetryAfter(h, now)
	}
	switch {
	case d <= 0:
		return 0
	case d > maxRetryAfter:
		return maxRetryAfter
	}
	return d
}
