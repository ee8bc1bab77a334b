// Package incident is the service's door to the incident API
// (KLYNX_INCIDENT_API_BASE): it opens an incident for a failure and keeps
// it up to date as the remediation progresses. Every call is bounded in
// time and size, failures come back as *APIError so that Temporal's retry
// policy (not this package) decides what to retry, and an incident id is
// only ever one the API answered with, never a placeholder.
package incident

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"remediator/internal/correlation"
	"remediator/internal/outbound"
	"remediator/internal/telemetry"
)

const (
	// DefaultTimeout bounds one call when Config.Timeout is unset: the
	// incident API is a side channel and must not hold an activity long.
	DefaultTimeout = 15 * time.Second
	// DefaultSeverity is what Create sends when Incident.Severity is empty,
	// as the replaced service's client did.
	DefaultSeverity = "SEV-3"
	// maxBody caps every response body read.
	maxBody = 1 << 20
)

// Config names the incident API and how to reach it.
type Config struct {
	// BaseURL is the incidents collection, e.g.
	// "https://example.com/api/incidents": creates POST to it, updates PUT
	// to BaseURL/{id}.
	BaseURL string
	// Token, when set, is sent as "Authorization: Bearer <token>".
	Token string
	// HTTPClient sends every request; in production the SSRF-guarded client
	// from outbound.NewClient. Nil means a plain client that still
	// propagates the correlation id.
	HTTPClient *http.Client
	// Timeout bounds each call; zero or negative means DefaultTimeout.
	Timeout time.Duration
}

// Client talks to one incident API. It is safe for concurrent use.
type Client struct {
	base    string
	token   string
	http    *http.Client
	timeout time.Duration
	now     func() time.Time
}

// New checks the configuration up front so a bad setting fails at start-up,
// not on the first remediation. Error messages never echo the URL or the
// token: a pasted URL may carry credentials.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Opaque != "" ||
		u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(cfg.BaseURL, "#") {
		return nil, fmt.Errorf("%w: base URL must be an http(s) URL with a host and no credentials, query or fragment", ErrInvalidConfig)
	}
	if !validToken(cfg.Token) {
		return nil, fmt.Errorf("%w: token must be printable ASCII without spaces", ErrInvalidConfig)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout, Transport: telemetry.HTTPTransport(correlation.Transport{})}
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Client{
		base:    strings.TrimRight(cfg.BaseURL, "/"),
		token:   cfg.Token,
		http:    hc,
		timeout: timeout,
		now:     time.Now,
	}, nil
}

// validToken keeps a token that would corrupt the Authorization header (or
// smuggle another header) out of every request.
func validToken(tok string) bool {
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] >= 0x7f {
			return false
		}
	}
	return true
}

// Incident is what Create opens.
type Incident struct {
	Title    string // required
	Summary  string
	Severity string // "SEV-1" (worst) to "SEV-4"; empty means DefaultSeverity
	Metadata map[string]any
	// IdempotencyKey is sent as the Idempotency-Key header (the
	// remediation id), so a retried create can be recognised by the API.
	IdempotencyKey string
}

// Update is what Update sends: metadata is merged into the incident, and
// summary and status replace the incident's when non-empty.
type Update struct {
	Summary  string         `json:"summary,omitempty"`
	Status   string         `json:"status,omitempty"` // e.g. "open", "mitigated", "resolved"
	Metadata map[string]any `json:"metadata"`
}

// createBody is the wire form of a create.
type createBody struct {
	Title    string         `json:"title"`
	Summary  string         `json:"summary"`
	Severity string         `json:"severity"`
	Metadata map[string]any `json:"metadata"`
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// ValidID reports whether id can name an incident in a URL path: 1–128 of
// [A-Za-z0-9._:-], and not "." or "..", which a server or proxy would
// resolve as a path segment.
func ValidID(id string) bool {
	return idPattern.MatchString(id) && id != "." && id != ".."
}

// Create opens an incident and returns the id the API gave it. A reply
// that names no usable id is an *APIError with Status 502 (ErrNoID or
// ErrInvalidID), never a made-up id.
func (c *Client) Create(ctx context.Context, in Incident) (string, error) {
	const op = "create"
	severity := in.Severity
	if severity == "" {
		severity = DefaultSeverity
	}
	switch {
	case strings.TrimSpace(in.Title) == "":
		return "", refused(op, "title is required", ErrInvalidRequest)
	case !validSeverity(severity):
		return "", refused(op, "severity must be SEV-1, SEV-2, SEV-3 or SEV-4", ErrInvalidRequest)
	}
	body, err := json.Marshal(createBody{Title: in.Title, Summary: in.Summary, Severity: severity, Metadata: nonNil(in.Metadata)})
	if err != nil {
		return "", refused(op, "metadata is not JSON-encodable", fmt.Errorf("%w: %w", ErrInvalidRequest, err))
	}
	var id string
	err = c.do(ctx, op, http.MethodPost, c.base, in.IdempotencyKey, body, func(reply []byte) error {
		id, err = replyID(reply)
		return err
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// Update changes incident id. The reply body is not interpreted: the
// contract defines none, so any 2xx is success.
func (c *Client) Update(ctx context.Context, id string, u Update) error {
	const op = "update"
	if !ValidID(id) {
		return refused(op, "the incident id cannot be used in a URL path", ErrInvalidID)
	}
	u.Metadata = nonNil(u.Metadata)
	body, err := json.Marshal(u)
	if err != nil {
		return refused(op, "metadata is not JSON-encodable", fmt.Errorf("%w: %w", ErrInvalidRequest, err))
	}
	return c.do(ctx, op, http.MethodPut, c.base+"/"+url.PathEscape(id), "", body, nil)
}

func validSeverity(s string) bool {
	switch s {
	case "SEV-1", "SEV-2", "SEV-3", "SEV-4":
		return true
	}
	return false
}

// nonNil sends an absent metadata map as {} rather than null: the contract
// always carries an object.
func nonNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// refused is the error for a call this client will not send.
func refused(op, msg string, err error) error {
	return &APIError{Op: op, Status: http.StatusBadRequest, Message: "refused before sending: " + msg, Err: err}
}

// do sends one JSON request under the per-call timeout and maps the answer:
// a non-2xx becomes an *APIError carrying the status, a 2xx is handed to
// parse (when set) with its body read through the size cap.
func (c *Client) do(ctx context.Context, op, method, target, idemKey string, body []byte, parse func([]byte) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("incident: %s: building request: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.redactErr(fmt.Errorf("incident: %s: %w", op, err))
	}
	defer resp.Body.Close()
	data, truncated, readErr := outbound.LimitedBody(resp.Body, maxBody)
	// Drain a little of what is left so the connection can be reused.
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		code, msg, ok := errorBody(resp.StatusCode, data)
		ae := &APIError{
			Op:         op,
			Status:     resp.StatusCode,
			Code:       c.redact(code),
			Message:    c.redact(msg),
			RetryAfter: retryAfterOf(resp.Header, c.now()),
		}
		if !ok {
			ae.Err = ErrMalformedResponse
		}
		return ae
	}
	if readErr != nil {
		// The answer was cut off mid-body: a network failure, retried.
		return c.redactErr(fmt.Errorf("incident: %s: reading reply: %w", op, readErr))
	}
	if parse == nil {
		return nil
	}
	if truncated {
		return &APIError{Op: op, Status: http.StatusBadGateway, Message: fmt.Sprintf("reply larger than %d bytes", maxBody), Err: ErrMalformedResponse}
	}
	if err := parse(data); err != nil {
		// A 2xx that names no usable incident: 502 so the retry policy
		// tries again, under the same Idempotency-Key.
		return &APIError{Op: op, Status: http.StatusBadGateway, Message: fmt.Sprintf("unusable reply to a %d", resp.StatusCode), Err: err}
	}
	return nil
}

// replyID finds the incident id in a create reply: "incident_id" as the
// contract says, else "id" as the seed's own incident services answered;
// either may be a string or an integer.
func replyID(reply []byte) (string, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(reply))
	if err := dec.Decode(&fields); err != nil || fields == nil || dec.More() {
		return "", ErrMalformedResponse
	}
	for _, name := range []string{"incident_id", "id"} {
		raw, ok := fields[name]
		if !ok || string(bytes.TrimSpace(raw)) == "null" {
			continue
		}
		id, err := idValue(raw)
		if err != nil {
			return "", err
		}
		if id == "" {
			continue
		}
		if strings.EqualFold(id, "pending") {
			return "", ErrNoID
		}
		if !ValidID(id) {
			return "", ErrInvalidID
		}
		return id, nil
	}
	return "", ErrNoID
}

var integerPattern = regexp.MustCompile(`^[0-9]+$`)

// idValue turns a JSON string or non-negative integer into an id.
func idValue(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return strings.TrimSpace(s), nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil && integerPattern.MatchString(n.String()) {
		return n.String(), nil
	}
	return "", ErrInvalidID
}

// redact keeps the token out of anything that reaches logs or workflow
// history, should a server or proxy ever echo it back.
func (c *Client) redact(s string) string {
	if c.token == "" {
		return s
	}
	return strings.ReplaceAll(s, c.token, "[REDACTED]")
}

// redactErr rewrites an error whose text carries the token. The original
// chain is dropped (its text would reach Temporal's failure history), but a
// context deadline or cancellation stays visible to errors.Is.
func (c *Client) redactErr(err error) error {
	if c.token == "" || !strings.Contains(err.Error(), c.token) {
		return err
	}
	r := &redactedError{msg: c.redact(err.Error())}
	for _, cause := range []error{context.DeadlineExceeded, context.Canceled} {
		if errors.Is(err, cause) {
			r.cause = cause
		}
	}
	return r
}

// redactedError is a network error with the token scrubbed from its text.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }
