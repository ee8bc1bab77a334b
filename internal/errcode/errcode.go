// Package errcode is the one catalogue of the error codes the HTTP API
// answers with: each code's stable name, its HTTP status and what it means.
// The API's error writer takes only these values, the orchestrator's
// refusals and the authenticator's failures carry them, and tests hold the
// README's error table and the OpenAPI document to All(), so a code cannot
// be emitted, documented or given a status in one place only.
//
// It depends on the standard library alone so that every layer can import it.
package errcode

import "net/http"

// Code is one stable error code. Name is what clients see in the `error`
// field of the error body; Status is the HTTP status it is always answered
// with; Meaning is the one-line explanation the documentation repeats.
type Code struct {
	Name    string
	Status  int
	Meaning string
}

// String returns the name, so a Code prints as clients see it.
func (c Code) String() string { return c.Name }

// 400: the request itself cannot be read.
var (
	EmptyBody        = Code{"empty_body", http.StatusBadRequest, "the body is empty or only whitespace"}
	NotAnObject      = Code{"not_an_object", http.StatusBadRequest, "the body is JSON but not one object (e.g. an array, a string, null)"}
	MalformedJSON    = Code{"malformed_json", http.StatusBadRequest, "the body is not valid JSON"}
	TrailingData     = Code{"trailing_data", http.StatusBadRequest, "the body has data after the JSON object"}
	UnreadableBody   = Code{"unreadable_body", http.StatusBadRequest, "the body could not be read"}
	MissingHeaders   = Code{"missing_headers", http.StatusBadRequest, "a GitHub delivery lacks X-GitHub-Event or a valid X-GitHub-Delivery"}
	MalformedPayload = Code{"malformed_payload", http.StatusBadRequest, "a Slack request lacks a form field payload holding JSON, or a Dragon callback names no decision"}
	InvalidPageToken = Code{"invalid_page_token", http.StatusBadRequest, "page_token is malformed or was tampered with"}
)

// 401: who is calling is not established.
var (
	MissingCredentials   = Code{"missing_credentials", http.StatusUnauthorized, "neither Authorization nor X-API-Key was sent"}
	InvalidToken         = Code{"invalid_token", http.StatusUnauthorized, "the bearer token is not valid"}
	TokenExpired         = Code{"token_expired", http.StatusUnauthorized, "the JWT has expired"}
	InvalidAPIKey        = Code{"invalid_api_key", http.StatusUnauthorized, "the API key is not valid"}
	InvalidSignature     = Code{"invalid_signature", http.StatusUnauthorized, "a webhook signature is missing, wrong or stale"}
	WebhookNotConfigured = Code{"webhook_not_configured", http.StatusUnauthorized, "no secret is configured for this webhook, so every delivery is refused"}
)

// 403: the caller is known but may not do this.
var (
	Forbidden    = Code{"forbidden", http.StatusForbidden, "the caller lacks a role this action needs"}
	SelfApproval = Code{"self_approval", http.StatusForbidden, "the requester may not approve their own remediation"}
)

// 404 and 405: nothing (visible) there.
var (
	NotFound         = Code{"not_found", http.StatusNotFound, "no such remediation, decision or route, or one the caller may not see"}
	MethodNotAllowed = Code{"method_not_allowed", http.StatusMethodNotAllowed, "the route does not accept this method"}
)

// 409: the request conflicts with the current state.
var (
	IdempotencyKeyReused = Code{"idempotency_key_reused", http.StatusConflict, "the Idempotency-Key was used for a different request"}
	StaleVote            = Code{"stale_vote", http.StatusConflict, "the vote names another decision or diff digest than the one awaiting approval"}
	DuplicateVote        = Code{"duplicate_vote", http.StatusConflict, "this person already voted"}
	NotAwaitingApproval  = Code{"not_awaiting_approval", http.StatusConflict, "the remediation is not awaiting approval"}
	AlreadyEnded         = Code{"already_ended", http.StatusConflict, "the remediation already ended"}
	IncidentHasChange    = Code{"incident_has_change", http.StatusConflict, "another remediation of this incident already opened (or is opening) its change: at most one change per incident"}
)

// 413, 415: the body's size or type is refused.
var (
	BodyTooLarge         = Code{"body_too_large", http.StatusRequestEntityTooLarge, "the body is larger than allowed"}
	UnsupportedMediaType = Code{"unsupported_media_type", http.StatusUnsupportedMediaType, "the body is not sent as application/json"}
)

// 422: the request is well-formed but its content is refused.
var (
	ValidationFailed  = Code{"validation_failed", http.StatusUnprocessableEntity, "one or more fields are invalid; details maps each field to its problem"}
	UnknownField      = Code{"unknown_field", http.StatusUnprocessableEntity, "the body has a field this route does not accept"}
	InvalidVote       = Code{"invalid_vote", http.StatusUnprocessableEntity, "the workflow refused the vote as invalid"}
	InvalidArgument   = Code{"invalid_argument", http.StatusUnprocessableEntity, "the workflow service refused the request as invalid"}
	InvalidRepository = Code{"invalid_repository", http.StatusUnprocessableEntity, "the repository is not one this service can act on (one message whatever the cause)"}
)

// 429, 431: too much.
var (
	RateLimited           = Code{"rate_limited", http.StatusTooManyRequests, "a rate limit is exceeded, including too many failed authentications from one client IP"}
	RepoCapReached        = Code{"repo_cap_reached", http.StatusTooManyRequests, "the repository has as many active remediations, or started as many in the last hour, as its cap allows; nothing was started"}
	RequestHeaderTooLarge = Code{"request_header_too_large", http.StatusRequestHeaderFieldsTooLarge, "the request headers exceed 64 KiB"}
)

// 5xx: the server or a dependency failed; the real error is logged, never returned.
var (
	Internal             = Code{"internal", http.StatusInternalServerError, "anything unexpected; logged once with the correlation id"}
	TemporalUnavailable  = Code{"temporal_unavailable", http.StatusServiceUnavailable, "the workflow service is unavailable"}
	RateLimitUnavailable = Code{"rate_limit_unavailable", http.StatusServiceUnavailable, "the rate-limit store is down, so writes are refused"}
	UpstreamUnavailable  = Code{"upstream_unavailable", http.StatusServiceUnavailable, "a service this request needs (Dragon) did not answer; retry later"}
)

// all is every code, grouped by status in ascending order.
var all = []Code{
	EmptyBody, NotAnObject, MalformedJSON, TrailingData, UnreadableBody, MissingHeaders, MalformedPayload, InvalidPageToken,
	MissingCredentials, InvalidToken, TokenExpired, InvalidAPIKey, InvalidSignature, WebhookNotConfigured,
	Forbidden, SelfApproval,
	NotFound, MethodNotAllowed,
	IdempotencyKeyReused, StaleVote, DuplicateVote, NotAwaitingApproval, AlreadyEnded, IncidentHasChange,
	BodyTooLarge, UnsupportedMediaType,
	ValidationFailed, UnknownField, InvalidVote, InvalidArgument, InvalidRepository,
	RateLimited, RepoCapReached, RequestHeaderTooLarge,
	Internal, TemporalUnavailable, RateLimitUnavailable, UpstreamUnavailable,
}

// All returns every code in a stable order (by status, then as declared), for
// documentation and the tests that hold the README and OpenAPI to it. The
// slice is a copy.
func All() []Code {
	out := make([]Code, len(all))
	copy(out, all)
	return out
}

// Lookup finds a code by name, e.g. to turn the name another package reports
// back into its status.
func Lookup(name string) (Code, bool) {
	for _, c := range all {
		if c.Name == name {
			return c, true
		}
	}
	return Code{}, false
}
