package github

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v88/github"
)

// Sentinels a caller can test with errors.Is; they are the Err of an
// *APIError whose status already tells the classifier what to do.
var (
	// ErrBranchConflict: the branch holds a commit that is not ours, so
	// opening the change would clobber someone's work (status 409).
	ErrBranchConflict = errors.New("the branch holds commits that are not this change's")
	// ErrTooLarge: a download exceeded the caller's limit (status 413);
	// retrying would fetch the same bytes again.
	ErrTooLarge = errors.New("the response exceeds the size limit")
	// ErrInvalidRequest: the request was refused before it was sent
	// (status 400), because no answer from GitHub could make it valid.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrNotRegularFile: a path asked for as a file holds a directory, a
	// symbolic link or a submodule at that commit (status 409).
	ErrNotRegularFile = errors.New("the path is not a regular file")
)

const (
	// maxRetryAfter bounds how long a rate limit may park an activity: a
	// reset further away than an hour is more likely a clock problem.
	maxRetryAfter = time.Hour
	// defaultRateLimitWait is what GitHub's documentation asks for when a
	// secondary rate limit gives no Retry-After.
	defaultRateLimitWait = time.Minute
)

// APIError is every answer from GitHub (or from the hosts it redirects to)
// that is not a success, in the shape activities.Classify understands.
// Network failures are not APIErrors: they are returned wrapped, and so
// retried. Messages never carry credentials.
type APIError struct {
	Op          string        // what this client was doing
	Status      int           // the status GitHub answered (403 for a rate-limited 403)
	Message     string        // GitHub's message and validation details
	RetryAfter  time.Duration // when RateLimited (or a 503 said so): how long to wait
	RateLimited bool          // a primary or secondary rate limit, whatever the status
	Err         error         // the cause: a go-github error or one of the sentinels
}

// Error leaves the cause out: go-github's errors quote request URLs, and
// the message should read the same whichever host answered.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("github: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	b.WriteString(strconv.Itoa(e.Status))
	if e.Message != "" {
		b.WriteString(" ")
		b.WriteString(e.Message)
	}
	if e.RateLimited {
		fmt.Fprintf(&b, " (rate limited, retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Unwrap exposes the cause, so errors.Is finds the sentinels.
func (e *APIError) Unwrap() error { return e.Err }

// HTTPStatus reports a rate limit as 429 whatever GitHub answered (it uses
// 403 too), so the shared classifier retries it after RetryAfterDelay
// instead of giving up on a "forbidden".
func (e *APIError) HTTPStatus() int {
	if e.RateLimited {
		return http.StatusTooManyRequests
	}
	return e.Status
}

// RetryAfterDelay is the wait GitHub asked for; zero lets the retry policy
// choose.
func (e *APIError) RetryAfterDelay() time.Duration { return e.RetryAfter }

func invalid(op, format string, args ...any) error {
	return &APIError{Op: op, Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...), Err: ErrInvalidRequest}
}

// wrap is the one place where what a GitHub call returned becomes the error
// callers see: go-github's typed errors, failed installation-token
// refreshes and the hosts GitHub redirects to all end up as *APIError with
// the status and delay the classifier needs; network errors stay retryable.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var (
		apiErr  *APIError
		primary *gh.RateLimitError
		abuse   *gh.AbuseRateLimitError
		twoFA   *gh.TwoFactorAuthError
		resp    *gh.ErrorResponse
		redir   *gh.RedirectionError
		pending *gh.AcceptedError
		refresh *ghinstallation.HTTPError
	)
	switch {
	case errors.As(err, &apiErr):
		return err
	case errors.As(err, &primary):
		return &APIError{
			Op: op, Status: statusOf(primary.Response, http.StatusForbidden), Message: primary.Message,
			RateLimited: true, RetryAfter: clampWait(time.Until(primary.Rate.Reset.Time)), Err: err,
		}
	case errors.As(err, &abuse):
		wait := defaultRateLimitWait
		if abuse.RetryAfter != nil {
			wait = *abuse.RetryAfter
		}
		return &APIError{
			Op: op, Status: statusOf(abuse.Response, http.StatusForbidden), Message: abuse.Message,
			RateLimited: true, RetryAfter: clampWait(wait), Err: err,
		}
	case errors.As(err, &twoFA):
		return &APIError{Op: op, Status: http.StatusUnauthorized, Message: twoFA.Message, Err: err}
	case errors.As(err, &resp):
		return fromResponse(op, resp.Response, errorText(resp), err)
	case errors.As(err, &redir):
		return &APIError{Op: op, Status: redir.StatusCode, Message: "unexpected redirect", Err: err}
	case errors.As(err, &pending):
		// 202: GitHub is still computing the answer; asking again later works.
		return &APIError{Op: op, Status: http.StatusAccepted, Message: "GitHub is still preparing the answer", Err: err}
	case errors.As(err, &refresh) && refresh.Response != nil:
		// The installation token could not be minted: GitHub's answer says why.
		body := refresh.Response
		checked := gh.CheckResponse(body)
		_ = body.Body.Close()
		if checked == nil {
			return fmt.Errorf("github: %s: installation token: %w", op, err)
		}
		mapped := wrap(op, checked)
		if errors.As(mapped, &apiErr) {
			apiErr.Message = "installation token: " + apiErr.Message
			apiErr.Err = err // keep the refresh failure in the chain (see forget)
		}
		return mapped
	case errors.Is(err, gh.ErrPathForbidden):
		return &APIError{Op: op, Status: http.StatusBadRequest, Message: "path must not contain '..'", Err: ErrInvalidRequest}
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		urlErr.URL = redact(urlErr.URL)
	}
	return fmt.Errorf("github: %s: %w", op, err)
}

// fromResponse maps a non-success answer. Rate limits are recognised by
// headers and message as well as by go-github's types, because GitHub
// signals them inconsistently (403 or 429, Retry-After or a reset epoch).
func fromResponse(op string, r *http.Response, msg string, cause error) *APIError {
	e := &APIError{Op: op, Status: statusOf(r, http.StatusInternalServerError), Message: msg, Err: cause}
	if r == nil {
		return e
	}
	h := r.Header
	switch {
	case e.Status == http.StatusTooManyRequests,
		e.Status == http.StatusForbidden && (h.Get("Retry-After") != "" || h.Get(gh.HeaderRateRemaining) == "0" ||
			strings.Contains(strings.ToLower(msg), "rate limit")):
		e.RateLimited = true
		e.RetryAfter = rateLimitWait(h)
	case e.Status >= 500:
		if d, ok := retryAfter(h); ok {
			e.RetryAfter = clampWait(d)
		}
	}
	return e
}

// rateLimitWait prefers Retry-After (secondary limits), then the primary
// limit's reset epoch, then GitHub's documented one minute.
func rateLimitWait(h http.Header) time.Duration {
	if d, ok := retryAfter(h); ok {
		return clampWait(d)
	}
	if h.Get(gh.HeaderRateRemaining) == "0" {
		if epoch, err := strconv.ParseInt(h.Get(gh.HeaderRateReset), 10, 64); err == nil {
			return clampWait(time.Until(time.Unix(epoch, 0)))
		}
	}
	return defaultRateLimitWait
}

func retryAfter(h http.Header) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t), true
	}
	return 0, false
}

// clampWait keeps a wait within [1s, maxRetryAfter]: a reset already past
// (clock skew) still deserves a moment, and nothing parks for hours.
func clampWait(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return time.Second
	case d > maxRetryAfter:
		return maxRetryAfter
	}
	return d.Round(time.Second)
}

func statusOf(r *http.Response, fallback int) int {
	if r == nil {
		return fallback
	}
	return r.StatusCode
}

// errorText joins GitHub's message with its validation details, where the
// interesting part of a 422 ("A pull request already exists ...") lives.
func errorText(r *gh.ErrorResponse) string {
	parts := []string{}
	if r.Message != "" {
		parts = append(parts, r.Message)
	}
	for _, e := range r.Errors {
		switch {
		case e.Message != "":
			parts = append(parts, e.Message)
		case e.Code != "":
			parts = append(parts, strings.TrimSpace(e.Resource+" "+e.Field+" "+e.Code))
		}
	}
	return strings.Join(parts, "; ")
}

// redact drops the query and user info of a URL for error messages: the
// pre-signed URLs GitHub redirects to carry their credentials there.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	return u.String()
}

func statusIs(err error, statuses ...int) bool {
	var e *APIError
	if !errors.As(err, &e) || e.RateLimited {
		return false
	}
	for _, s := range statuses {
		if e.Status == s {
			return true
		}
	}
	return false
}

// saysAlready tells a 422 caused by a concurrent run (which already did
// what we were about to do) from any other validation failure.
func saysAlready(err error, phrase string) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusUnprocessableEntity &&
		strings.Contains(strings.ToLower(e.Message), strings.ToLower(phrase))
}
