package gitlab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"

	"remediator/internal/outbound"
)

// APIError is the one error type this package returns for anything GitLab
// answered (and for the few refusals it makes on GitLab's behalf), so that
// activities.Classify can decide retry versus give-up from the status alone
// without this package importing activities.
//
// Status follows HTTP: 401/403 mean the token cannot do this (permanent),
// 404 the project, ref or job is gone, 409 the branch belongs to someone
// else, 429/503 carry the delay GitLab asked for. Transport failures are not
// APIErrors: they stay plain wrapped errors and are therefore retried.
type APIError struct {
	Status     int
	RetryAfter time.Duration
	Message    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("gitlab: %s (HTTP %d)", e.Message, e.Status)
}

// HTTPStatus lets activities.Classify read the status without knowing this type.
func (e *APIError) HTTPStatus() int { return e.Status }

// RetryAfterDelay lets activities.Classify honour GitLab's rate limiting.
func (e *APIError) RetryAfterDelay() time.Duration { return e.RetryAfter }

// maxMessage bounds what an error body may contribute: a proxy's HTML error
// page is not worth carrying through Temporal's history.
const maxMessage = 300

// apiErr is the one mapping from the client library's errors to ours. resp
// may be nil; the library returns its own sentinel for 404 and an
// *ErrorResponse for every other non-2xx answer.
func (c *Client) apiErr(op string, resp *gl.Response, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("gitlab: %s: %w", op, err)
	}
	var status int
	var msg string
	var header http.Header
	var er *gl.ErrorResponse
	switch {
	case errors.As(err, &er) && er.Response != nil:
		status, msg, header = er.Response.StatusCode, er.Message, er.Response.Header
	case errors.Is(err, gl.ErrNotFound):
		status = http.StatusNotFound
		if resp != nil && resp.Response != nil {
			header = resp.Header
		}
	default:
		return c.redactErr(fmt.Errorf("gitlab: %s: %w", op, err))
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &APIError{
		Status:     status,
		RetryAfter: retryAfter(header, c.now()),
		Message:    c.redact(op + ": " + outbound.Shorten(msg, maxMessage)),
	}
}

// isNotFound spares callers a type switch for the commonest expected miss.
func isNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

func hasStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// retryAfter reads GitLab's throttling headers: Retry-After in seconds (or
// an HTTP date, as proxies send it) first, then RateLimit-Reset as a Unix
// time. Zero means "no advice": the retry policy's own backoff applies.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if h == nil {
		return 0
	}
	if d, ok := outbound.RetryAfter(h, now); ok {
		return d
	}
	if v := strings.TrimSpace(h.Get("RateLimit-Reset")); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil {
			return max(time.Unix(s, 0).Sub(now), 0)
		}
	}
	return 0
}

// redact keeps the token out of anything that reaches logs or workflow
// history, should a server or proxy ever echo it back.
func (c *Client) redact(s string) string {
	if c.token == "" {
		return s
	}
	return strings.ReplaceAll(s, c.token, "[REDACTED]")
}

func (c *Client) redactErr(err error) error {
	if c.token != "" && strings.Contains(err.Error(), c.token) {
		return errors.New(c.redact(err.Error()))
	}
	return err
}
