package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"remediator/internal/errcode"
	"remediator/internal/orchestrator"
)

// errorBody is the one error shape of the API.
type errorBody struct {
	Error         string `json:"error"`
	Message       string `json:"message"`
	Details       any    `json:"details,omitempty"`
	CorrelationID string `json:"correlation_id"`
}

// apiError is an error that already knows its code, and through the
// catalogue its HTTP status. Taking an errcode.Code (never a string) is what
// keeps every code the API emits inside the catalogue.
type apiError struct {
	code    errcode.Code
	message string
	details any
}

func (e *apiError) Error() string { return e.message }

func newError(code errcode.Code, message string) *apiError {
	return &apiError{code: code, message: message}
}

func validationError(details map[string]string) *apiError {
	return &apiError{code: errcode.ValidationFailed, message: "the request is invalid", details: details}
}

// writeError is the one place errors become responses: it maps sentinels to
// codes (whose status the catalogue fixes), keeps 5xx bodies generic and logs
// the real error exactly once.
func writeError(c *gin.Context, logger *slog.Logger, err error) {
	var ae *apiError
	var rej *orchestrator.RejectedError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &rej) && rej.Code.Status != 0: // a zero code is a bug: answered as internal below
		ae = newError(rej.Code, rej.Message)
		if d := admissionDetails(c, err); d != nil { // a repository cap: Retry-After and the counts
			ae.details = d
		}
	case errors.Is(err, orchestrator.ErrNotFound):
		ae = newError(errcode.NotFound, "no such remediation")
	case errors.Is(err, orchestrator.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		logger.ErrorContext(c.Request.Context(), "upstream unavailable", "error", err, "correlation_id", correlationID(c))
		ae = newError(errcode.TemporalUnavailable, "the workflow service is unavailable, retry later")
	default:
		logger.ErrorContext(c.Request.Context(), "internal error", "error", err, "correlation_id", correlationID(c))
		ae = newError(errcode.Internal, "internal error")
	}
	if ae.code.Status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="remediator"`)
	}
	c.AbortWithStatusJSON(ae.code.Status, errorBody{Error: ae.code.Name, Message: ae.message, Details: ae.details, CorrelationID: correlationID(c)})
}
