package dragon

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Sentinels a caller can test with errors.Is. Except ErrLookupUnsupported
// and ErrInvalidConfig they are the Err of an *APIError, whose status
// already tells activities.Classify whether retrying can help.
var (
	// ErrMalformedResponse: Dragon (or a proxy in front of it) answered
	// with something that is not the JSON this client expects, such as an
	// HTML error page or a reply without an id. Carried with status 502 on
	// a 2xx reply so the call is retried.
	ErrMalformedResponse = errors.New("malformed response")
	// ErrInvalidID: a decision id is not of the form ids are known to take
	// (^[A-Za-z0-9._:-]{1,128}$, not "." or ".."). Ids end up in URL paths,
	// so anything else is refused: with status 400 when a caller passed it
	// (retrying cannot fix the input) and 502 when Dragon sent it.
	ErrInvalidID = errors.New("invalid decision id")
	// ErrInvalidRequest: the call was refused before it was sent (status
	// 400) because no answer from Dragon could make it valid.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrLookupUnsupported: this Dragon cannot list decisions by
	// client_reference (it answered 400, 404, 405 or 501 to the query).
	// Returned by Find as is, never inside an APIError: it is an answer
	// about Dragon's capabilities, not a failure to retry.
	ErrLookupUnsupported = errors.New("dragon: decision lookup by client_reference is not supported")
	// ErrInvalidConfig: New was given a configuration it cannot work with.
	ErrInvalidConfig = errors.New("dragon: invalid configuration")
)

const (
	// maxMessage bounds what an error body contributes to an error message.
	maxMessage = 300
)

// APIError is every answer from Dragon that is not the expected success,
// and the refusals this client makes on Dragon's behalf, in the shape
// activities.Classify understands (HTTPStatus, RetryAfterDelay): 429/503
// retry after RetryAfter, 404 is NotFound, 409 Conflict, other 4xx
// (401/403 included) are permanent, everything else is retried. Network
// failures are not APIErrors: they are returned wrapped, and so retried.
// No field ever carries the token.
type APIError struct {
	Op         string        // what this client was doing, e.g. "create decision"
	Status     int           // the HTTP status Dragon answered (502 for an unusable 2xx)
	Code       string        // Dragon's error code, when its error body has one
	Message    string        // Dragon's error message, shortened and redacted
	RetryAfter time.Duration // from Retry-After, capped at one hour
	Err        error         // one of the sentinels above, when one applies
}

// Error reads "dragon: <op>: HTTP <status> [code]: <message>: <cause>".
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("dragon: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	b.WriteString("HTTP ")
	b.WriteString(strconv.Itoa(e.Status))
	if e.Code != "" {
		b.WriteString(" [")
		b.WriteString(e.Code)
		b.WriteString("]")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Unwrap exposes the sentinel, so errors.Is finds it.
func (e *APIError) Unwrap() error { return e.Err }

// HTTPStatus lets activities.Classify read the status without this
// package importing activities.
func (e *APIError) HTTPStatus() int { return e.Status }

// RetryAfterDelay lets activities.Classify honour Dragon's throttling.
func (e *APIError) RetryAfterDelay() time.Duration { return e.RetryAfter }
