package slack

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sentinels a caller can test with errors.Is; they are the Err of an
// *APIError whose status already tells the classifier what to do.
var (
	// ErrMalformedResponse: the answer was not what Slack sends (an HTML
	// page from a proxy, truncated or garbled JSON). A 2xx answer of that
	// kind is reported as status 502, so it is retried.
	ErrMalformedResponse = errors.New("the response is not the expected Slack answer")
	// ErrUntrustedURL: a response_url that is not Slack's was refused before
	// any request, so an interaction payload cannot make the service post
	// anywhere else (status 400).
	ErrUntrustedURL = errors.New("the URL is not a Slack response URL")
	// ErrNotConfigured: the call needs the bot token transport, which is
	// not configured (status 400: retrying cannot configure it).
	ErrNotConfigured = errors.New("the Slack bot token is not configured")
	// ErrInvalidArgument: the request was refused before it was sent
	// because no answer from Slack could make it valid (status 400).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnexpectedRedirect: Slack's endpoints never redirect, so a 3xx
	// comes from something in between; it is not followed (the credential
	// would go with it) and is reported as 502, so it is retried.
	ErrUnexpectedRedirect = errors.New("unexpected redirect")
	// ErrInvalidSubmission: a view_submission payload is not the reject
	// reason modal's, or carries no reason.
	ErrInvalidSubmission = errors.New("not a reject reason submission")
)

const (
	// defaultRateLimitWait is used when Slack rate limits without saying for
	// how long; Slack's tiers reset within a minute.
	defaultRateLimitWait = 30 * time.Second
)

// APIError is every answer from Slack that is not a success, plus requests
// refused before they were sent, in the shape activities.Classify
// understands. Network failures are not APIErrors: they are returned
// wrapped, and so retried. Messages never carry the token or a webhook or
// response URL (their paths are credentials).
type APIError struct {
	Op         string        // what this client was doing ("post", "update", ...)
	Method     string        // the Web API method, "webhook" or "response_url"
	Status     int           // the HTTP status Slack answered (400 for refused requests)
	Code       string        // Slack's error string ("channel_not_found"), if any
	Message    string        // extra detail (Slack's response_metadata messages)
	RetryAfter time.Duration // how long Slack asked to wait, when it did
	Err        error         // the cause: one of the sentinels, or nil
}

// Error names the operation, the method, the status and Slack's code.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("slack: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	if e.Method != "" {
		b.WriteString(e.Method)
		b.WriteString(": ")
	}
	if e.Status != 0 {
		b.WriteString("HTTP ")
		b.WriteString(strconv.Itoa(e.Status))
	}
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(" (")
		b.WriteString(e.Message)
		b.WriteString(")")
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

// Unwrap exposes the cause, so errors.Is finds the sentinels.
func (e *APIError) Unwrap() error { return e.Err }

// HTTPStatus translates Slack's error code into the status the shared
// classifier acts on: the Web API answers HTTP 200 for almost every failure,
// so the code, not the transport status, says whether a retry can help.
// Rate limits are 429 whatever the transport said; credentials and scopes
// 401/403; missing channels and messages 404; bad requests 400; Slack's own
// failures and codes this client does not know 500/503, so they are retried.
// An unknown code that came with an HTTP error status (the incoming webhook
// answers 4xx with a plain-text code) keeps that status, and so does an
// answer without a code.
func (e *APIError) HTTPStatus() int {
	if e.Status == http.StatusTooManyRequests {
		return http.StatusTooManyRequests
	}
	if s, ok := codeStatus[e.Code]; ok && e.Code != "" {
		return s
	}
	if e.Status >= 400 {
		return e.Status
	}
	return http.StatusInternalServerError
}

// RetryAfterDelay is the wait Slack asked for; zero lets the retry policy
// choose.
func (e *APIError) RetryAfterDelay() time.Duration { return e.RetryAfter }

// codeStatus maps Slack's error strings (Web API, incoming webhooks and
// response URLs) onto the HTTP status that says what a retry can do.
var codeStatus = map[string]int{
	// Rate limits.
	"ratelimited":            http.StatusTooManyRequests,
	"rate_limited":           http.StatusTooManyRequests,
	"message_limit_exceeded": http.StatusTooManyRequests,

	// Credentials: fix the token.
	"invalid_auth":                      http.StatusUnauthorized,
	"not_authed":                        http.StatusUnauthorized,
	"account_inactive":                  http.StatusUnauthorized,
	"token_revoked":                     http.StatusUnauthorized,
	"token_expired":                     http.StatusUnauthorized,
	"invalid_token":                     http.StatusUnauthorized,
	"no_service":                        http.StatusForbidden,
	"no_permission":                     http.StatusForbidden,
	"missing_scope":                     http.StatusForbidden,
	"not_allowed_token_type":            http.StatusForbidden,
	"access_denied":                     http.StatusForbidden,
	"restricted_action":                 http.StatusForbidden,
	"ekm_access_denied":                 http.StatusForbidden,
	"team_access_not_granted":           http.StatusForbidden,
	"cant_update_message":               http.StatusForbidden,
	"edit_window_closed":                http.StatusForbidden,
	"action_prohibited":                 http.StatusForbidden,
	"posting_to_general_channel_denied": http.StatusForbidden,
	"team_disabled":                     http.StatusForbidden,

	// Where the message should go (or what it should change) is gone.
	"channel_not_found":   http.StatusNotFound,
	"not_in_channel":      http.StatusNotFound,
	"is_archived":         http.StatusNotFound,
	"channel_is_archived": http.StatusNotFound,
	"message_not_found":   http.StatusNotFound,
	"no_service_id":       http.StatusNotFound,
	"user_not_found":      http.StatusNotFound,
	"expired_url":         http.StatusNotFound,
	"used_url":            http.StatusNotFound,

	// The request itself is wrong: the same request fails the same way.
	"invalid_payload":                http.StatusBadRequest,
	"invalid_blocks":                 http.StatusBadRequest,
	"invalid_blocks_format":          http.StatusBadRequest,
	"invalid_arguments":              http.StatusBadRequest,
	"invalid_arg_name":               http.StatusBadRequest,
	"invalid_array_arg":              http.StatusBadRequest,
	"invalid_charset":                http.StatusBadRequest,
	"invalid_form_data":              http.StatusBadRequest,
	"invalid_json":                   http.StatusBadRequest,
	"json_not_object":                http.StatusBadRequest,
	"invalid_post_type":              http.StatusBadRequest,
	"missing_post_type":              http.StatusBadRequest,
	"invalid_cursor":                 http.StatusBadRequest,
	"invalid_limit":                  http.StatusBadRequest,
	"invalid_ts_oldest":              http.StatusBadRequest,
	"invalid_ts_latest":              http.StatusBadRequest,
	"invalid_metadata_format":        http.StatusBadRequest,
	"invalid_metadata_schema":        http.StatusBadRequest,
	"metadata_too_large":             http.StatusBadRequest,
	"metadata_must_be_sent_from_app": http.StatusBadRequest,
	"msg_too_long":                   http.StatusBadRequest,
	"no_text":                        http.StatusBadRequest,
	"too_many_attachments":           http.StatusBadRequest,
	"view_too_large":                 http.StatusBadRequest,
	"invalid_trigger_id":             http.StatusBadRequest,
	"expired_trigger_id":             http.StatusBadRequest,
	"exchanged_trigger_id":           http.StatusBadRequest,
	"unknown_method":                 http.StatusBadRequest,

	// Slack's own trouble: retry.
	"internal_error":      http.StatusInternalServerError,
	"fatal_error":         http.StatusInternalServerError,
	"service_unavailable": http.StatusServiceUnavailable,
	"request_timeout":     http.StatusServiceUnavailable,
}

// refused builds the error of a request that was never sent.
func refused(op, method string, cause error, msg string) *APIError {
	return &APIError{Op: op, Method: method, Status: http.StatusBadRequest, Message: msg, Err: cause}
}
