package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"remediator/internal/orchestrator"
)

// errorBody is the one error shape of the API.
type errorBody struct {
	Error         string `json:"error"`
	Message       string `json:"message"`
	Details       any    `json:"details,omitempty"`
	CorrelationID string `json:"correlation_id"`
}

// apiError is an error that already knows its HTTP status and stable code.
type apiError struct {
	status  int
	code    string
	message string
	details any
}

func (e *apiError) Error() string { return e.message }

func newError(status int, code, message string) *apiError {
	return &apiError{status: status, code: code, message: message}
}

func validationError(details map[string]string) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, code: "validation_failed", message: "the request is invalid", details: details}
}

// writeError is the one place errors become responses: it maps sentinels to
// statuses, keeps 5xx bodies generic and logs the real error exactly once.
func writeError(c *gin.Context, logger *slog.Logger, err error) {
	var ae *apiError
	var rej *orchestrator.RejectedError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &rej):
		ae = newError(statusFor(rej.Sentinel), rej.Code, rej.Message)
	case errors.Is(err, orchestrator.ErrNotFound):
		ae = newError(http.StatusNotFound, "not_found", "no such remediation")
	case errors.Is(err, orchestrator.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		logger.ErrorContext(c.Request.Context(), "upstream unavailable", "error", err, "correlation_id", correlationID(c))
		ae = newError(http.StatusServiceUnavailable, "temporal_unavailable", "the workflow service is unavailable, retry later")
	default:
		logger.ErrorContext(c.Request.Context(), "internal error", "error", err, "correlation_id", correlationID(c))
		ae = newError(http.StatusInternalServerError, "internal", "internal error")
	}
	if ae.status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="remediator"`)
	}
	c.AbortWithStatusJSON(ae.status, errorBody{Error: ae.code, Message: ae.message, Details: ae.details, CorrelationID: correlationID(c)})
}

func statusFor(sentinel error) int {
	switch {
	case errors.Is(sentinel, orchestrator.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(sentinel, orchestrator.ErrConflict):
		return http.StatusConflict
	case errors.Is(sentinel, orchestrator.ErrInvalid):
		return http.StatusUnprocessableEntity
	case errors.Is(sentinel, orchestrator.ErrNotFound):
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}
