package activities

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.temporal.io/sdk/temporal"

	"remediator/internal/outbound"
)

// Error types of non-retryable activity failures. Workflows and retry
// policies refer to these constants, never to Go type names.
const (
	ErrTypeInvalidInput  = "InvalidInput"
	ErrTypeNotConfigured = "NotConfigured"
	ErrTypeNoFix         = "NoFix"
	ErrTypeFixRefused    = "FixRefused"
	ErrTypeNotFound      = "NotFound"
	ErrTypeConflict      = "Conflict"
	ErrTypePatch         = "PatchDoesNotApply"
	ErrTypeUpstream      = "UpstreamRejected"
	ErrTypeNotApproved   = "NotApproved"
	// ErrTypeBaseMoved: the base branch moved since the fix was made and
	// the approved diff no longer applies to it unchanged; the error's
	// details hold the new head (BaseCheck). The workflow regenerates.
	ErrTypeBaseMoved = "BaseMoved"
)

// ErrTypeTransient marks retryable failures; their message is safe to show
// and the raw error is their cause.
const ErrTypeTransient = "Transient"

// NonRetryableErrorTypes lists every permanent type above, for retry policies.
var NonRetryableErrorTypes = []string{
	ErrTypeInvalidInput, ErrTypeNotConfigured, ErrTypeNoFix, ErrTypeFixRefused,
	ErrTypeNotFound, ErrTypeConflict, ErrTypePatch, ErrTypeUpstream, ErrTypeNotApproved,
	ErrTypeAuditConflict, ErrTypeAuditInvalid, ErrTypeBaseMoved,
}

// PermanentError is how a client adapter says "retrying cannot help"; it
// carries the error type the workflow will see. Msg is shown to API callers
// (the workflow's reason) and must not carry file contents, command output
// or filesystem detail; Err keeps all that for the log and Temporal's
// failure cause.
type PermanentError struct {
	Type string
	Msg  string
	Err  error
}

func (e *PermanentError) Error() string {
	if e.Err == nil {
		return e.Msg
	}
	return e.Msg + ": " + e.Err.Error()
}

func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent builds a PermanentError.
func Permanent(errType, msg string, err error) error {
	return &PermanentError{Type: errType, Msg: msg, Err: err}
}

// TransientError is a retryable failure with a message safe to show.
type TransientError struct {
	Msg string
	Err error
}

func (e *TransientError) Error() string { return e.Msg + ": " + e.Err.Error() }

func (e *TransientError) Unwrap() error { return e.Err }

// Transient builds a TransientError.
func Transient(msg string, err error) error { return &TransientError{Msg: msg, Err: err} }

// HTTPError is implemented by HTTP clients' typed errors so the classifier
// can honour status codes and Retry-After without knowing each client.
type HTTPError interface {
	error
	HTTPStatus() int
	RetryAfterDelay() time.Duration
}

// Classify is the one place that decides whether an activity error is worth
// retrying. Permanent errors become non-retryable application errors with a
// stable type; 429/503 with Retry-After set the next retry delay; everything
// else is returned wrapped and therefore retried by the activity's policy.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return err
	}
	var perm *PermanentError
	if errors.As(err, &perm) {
		return newNonRetryable(perm.Type, perm.Msg, perm.Err)
	}
	if errors.Is(err, outbound.ErrBlocked) {
		// The outbound guard refused the address: retrying cannot change it.
		return newNonRetryable(ErrTypeUpstream, "an outbound request was refused by the address guard", err)
	}
	var httpErr HTTPError
	if errors.As(err, &httpErr) {
		status := httpErr.HTTPStatus()
		switch {
		case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
			return temporal.NewApplicationErrorWithOptions(httpErr.Error(), "Throttled", temporal.ApplicationErrorOptions{
				Cause:          err,
				NextRetryDelay: httpErr.RetryAfterDelay(),
			})
		case status == http.StatusNotFound:
			return newNonRetryable(ErrTypeNotFound, "upstream answered 404", err)
		case status == http.StatusConflict:
			return newNonRetryable(ErrTypeConflict, "upstream answered 409", err)
		case status >= 400 && status < 500 && status != http.StatusRequestTimeout:
			return newNonRetryable(ErrTypeUpstream, fmt.Sprintf("upstream answered %d", status), err)
		}
	}
	msg := "transient failure (details in the worker log)"
	var tr *TransientError
	if errors.As(err, &tr) {
		msg = tr.Msg
	}
	return temporal.NewApplicationErrorWithCause(msg, ErrTypeTransient, err)
}

func newNonRetryable(errType, msg string, cause error) error {
	return temporal.NewNonRetryableApplicationError(msg, errType, cause)
}
