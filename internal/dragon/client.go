// Package dragon is the service's door to Dragon, the governance service
// where people approve every automated change as a "decision": it creates
// decisions idempotently, reads their status, writes outcomes back and
// verifies Dragon's callbacks. Every failure is returned once as an
// *APIError (or a wrapped network error) so that Temporal's retry policy,
// through activities.Classify, decides what to retry.
package dragon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"remediator/internal/correlation"
	"remediator/internal/outbound"
	"remediator/internal/telemetry"
)

// Config names the Dragon instance and how to reach it.
type Config struct {
	BaseURL string // KLYNX_DRAGON_BASE_URL, e.g. "https://dragon.example.com"
	Token   string // sent as X-Token; required
	Org     string // sent as X-Org-Id
	Region  string // sent as X-Region
	// HTTPClient sends every request; production passes the SSRF-guarded
	// client from outbound.NewClient. Nil means a plain client with a 15s
	// timeout that still propagates correlation ids.
	HTTPClient *http.Client
	Timeout    time.Duration // per request; zero or negative means 15s
}

// defaultTimeout is the replaced service's per-call timeout, kept.
const defaultTimeout = 15 * time.Second

// maxBody bounds every response read: a broken proxy or a hostile server
// chooses how much it sends.
const maxBody = 1 << 20

// Client talks to one Dragon instance. It is safe for concurrent use.
type Client struct {
	base               string // without a trailing slash
	token, org, region string
	http               *http.Client
	timeout            time.Duration
	now                func() time.Time
}

// New refuses a half-configured client up front, so that a bad setting
// fails at start-up rather than on the first remediation. The base URL is
// never echoed in the error: a pasted URL may carry credentials.
func New(cfg Config) (*Client, error) {
	if cfg.Token == "" {
		return nil, fmt.Errorf("%w: token is required", ErrInvalidConfig)
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("%w: base URL must be an http(s) URL with a host and no credentials, query or fragment", ErrInvalidConfig)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: defaultTimeout, Transport: telemetry.HTTPTransport(correlation.Transport{})}
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	return &Client{
		base:    strings.TrimRight(u.String(), "/"),
		token:   cfg.Token,
		org:     cfg.Org,
		region:  cfg.Region,
		http:    hc,
		timeout: timeout,
		now:     time.Now,
	}, nil
}

// Find looks a decision up by the client reference it was created with,
// via GET {base}/api/decisions?client_reference=<ref>. The reply may be a
// JSON array or an object holding the list under decisions, items, data or
// results; only an entry whose client_reference equals ref counts (a
// Dragon that ignores the filter is thus harmless). A Dragon that answers
// 400, 404, 405 or 501 to the query cannot look decisions up:
// ErrLookupUnsupported, unwrapped.
func (c *Client) Find(ctx context.Context, clientReference string) (Decision, bool, error) {
	const op = "find decision"
	if clientReference == "" {
		return Decision{}, false, invalidRequest(op, "client reference is required")
	}
	q := url.Values{"client_reference": {clientReference}}
	data, err := c.do(ctx, op, http.MethodGet, "/api/decisions?"+q.Encode(), nil, "")
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Err == nil {
			switch ae.Status {
			case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
				return Decision{}, false, ErrLookupUnsupported
			}
		}
		return Decision{}, false, err
	}
	list, ok := decisionList(data)
	if !ok {
		return Decision{}, false, malformed(op, "the reply is not a JSON list of decisions")
	}
	for _, o := range list {
		if o.str("client_reference") != clientReference {
			continue
		}
		d := decisionOf(o)
		if !validID(d.ID) {
			return Decision{}, false, badReplyID(op)
		}
		return d, true, nil
	}
	return Decision{}, false, nil
}

// Create records a decision and returns it as Dragon answered. It is
// idempotent under retries as long as Dragon can look decisions up: it
// first looks for one with req.ClientReference and returns that if it
// exists, so an attempt whose answer was lost does not create a second
// decision. When lookup is unsupported it creates anyway and sends
// Idempotency-Key: <client reference>, the only protection left. (The
// header is not sent otherwise: Go's transport replays requests carrying it
// on a broken keep-alive connection, which would bypass the lookup.) A 409
// answer is resolved by looking again. An empty CorrelationID is filled in
// from ctx. The reply may be the decision or wrap it as {"data": ...} or
// {"decision": ...}; one without a valid id is an error.
func (c *Client) Create(ctx context.Context, req DecisionRequest) (Decision, error) {
	const op = "create decision"
	if req.ClientReference == "" {
		return Decision{}, invalidRequest(op, "client reference is required")
	}
	found, ok, err := c.Find(ctx, req.ClientReference)
	lookup := !errors.Is(err, ErrLookupUnsupported)
	switch {
	case ok:
		return found, nil
	case err != nil && lookup:
		return Decision{}, err
	}
	if req.CorrelationID == "" {
		req.CorrelationID = correlation.From(ctx)
	}
	if req.Files == nil {
		req.Files = []string{}
	}
	idem := ""
	if !lookup {
		idem = req.ClientReference
	}
	data, err := c.do(ctx, op, http.MethodPost, "/api/decisions", req, idem)
	if err != nil {
		var ae *APIError
		if lookup && errors.As(err, &ae) && ae.Status == http.StatusConflict {
			if found, ok, ferr := c.Find(ctx, req.ClientReference); ferr == nil && ok {
				return found, nil
			}
		}
		return Decision{}, err
	}
	o, ok := parseObject(data)
	if !ok {
		return Decision{}, malformed(op, "the reply is not a JSON object")
	}
	d := decisionOf(unwrapDecision(o))
	if d.ID == "" {
		return Decision{}, malformed(op, "the reply has no decision id")
	}
	if !validID(d.ID) {
		return Decision{}, badReplyID(op)
	}
	return d, nil
}

// Get reads a decision by id (GET {base}/api/decisions/{id}). The reply
// may wrap the record as Create's may; it must carry a status, and an id,
// if present, must be the one asked for, so a confused proxy can never make
// another decision's approval count for this one.
func (c *Client) Get(ctx context.Context, id string) (Decision, error) {
	const op = "get decision"
	if !validID(id) {
		return Decision{}, &APIError{Op: op, Status: http.StatusBadRequest, Message: "the decision id is not valid", Err: ErrInvalidID}
	}
	data, err := c.do(ctx, op, http.MethodGet, "/api/decisions/"+url.PathEscape(id), nil, "")
	if err != nil {
		return Decision{}, err
	}
	o, ok := parseObject(data)
	if !ok {
		return Decision{}, malformed(op, "the reply is not a JSON object")
	}
	d := decisionOf(unwrapDecision(o))
	switch {
	case d.ID == "":
		d.ID = id
	case d.ID != id:
		return Decision{}, malformed(op, "the reply is about another decision")
	}
	if d.Status == "" {
		return Decision{}, malformed(op, "the reply has no status")
	}
	return d, nil
}

// Outcome is what became of an approved (or refused) change, written back
// to its decision so Dragon's record ends with the result.
type Outcome struct {
	Outcome       string        `json:"outcome"` // completed, rejected, expired, failed, cancelled
	Status        string        `json:"status"`  // approved, rejected, expired, failed, cancelled: the status to show
	Reason        string        `json:"reason,omitempty"`
	PRURL         string        `json:"pr_url,omitempty"`
	Votes         []OutcomeVote `json:"votes,omitempty"`
	RemediationID string        `json:"remediation_id"`
	At            time.Time     `json:"at"`
}

// OutcomeVote is one person's vote, as the outcome reports it.
type OutcomeVote struct {
	Actor    string    `json:"actor"`
	Approved bool      `json:"approved"`
	Channel  string    `json:"channel,omitempty"`
	Comment  string    `json:"comment,omitempty"`
	At       time.Time `json:"at"`
}

var (
	outcomes        = map[string]bool{"completed": true, "rejected": true, "expired": true, "failed": true, "cancelled": true}
	outcomeStatuses = map[string]bool{"approved": true, "rejected": true, "expired": true, "failed": true, "cancelled": true}
)

// RecordOutcome posts o to {base}/api/decisions/{id}/outcome. Dragon must
// accept this endpoint; the replaced service never wrote outcomes back, so
// a Dragon without it answers 404 or 405, returned as an *APIError like
// any other (permanent under activities.Classify). The reply body is not
// read beyond its status. Idempotency-Key is not sent, for the reason given
// on Create; a repeated outcome is the same outcome.
func (c *Client) RecordOutcome(ctx context.Context, id string, o Outcome) error {
	const op = "record outcome"
	if !validID(id) {
		return &APIError{Op: op, Status: http.StatusBadRequest, Message: "the decision id is not valid", Err: ErrInvalidID}
	}
	if !outcomes[o.Outcome] || !outcomeStatuses[o.Status] {
		return invalidRequest(op, "outcome and status must be known values")
	}
	_, err := c.do(ctx, op, http.MethodPost, "/api/decisions/"+url.PathEscape(id)+"/outcome", o, "")
	return err
}

// do sends one request with Dragon's headers under the per-call timeout
// and returns the body of a 2xx reply. Anything else is an *APIError; a
// failure to get an answer is a wrapped error.
func (c *Client) do(ctx context.Context, op, method, path string, body any, idempotencyKey string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("dragon: %s: encode request: %w", op, err)
		}
		rd = bytes.NewReader(b)
	}
	var req *http.Request
	var err error
	if rd != nil {
		req, err = http.NewRequestWithContext(ctx, method, c.base+path, rd)
	} else {
		req, err = http.NewRequestWithContext(ctx, method, c.base+path, nil)
	}
	if err != nil {
		return nil, c.redactErr(fmt.Errorf("dragon: %s: %w", op, err))
	}
	req.Header.Set("X-Token", c.token)
	if c.org != "" {
		req.Header.Set("X-Org-Id", c.org)
	}
	if c.region != "" {
		req.Header.Set("X-Region", c.region)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.redactErr(fmt.Errorf("dragon: %s: %w", op, err))
	}
	defer resp.Body.Close()
	data, truncated, err := outbound.LimitedBody(resp.Body, maxBody)
	if err != nil {
		return nil, c.redactErr(fmt.Errorf("dragon: %s: read reply: %w", op, err))
	}
	if resp.StatusCode/100 != 2 {
		return nil, c.statusErr(op, resp, data)
	}
	if truncated {
		return nil, malformed(op, "the reply exceeds the size limit")
	}
	return data, nil
}

// statusErr turns a non-2xx answer into an *APIError, taking Dragon's code
// and message from a JSON error body when there is one. Anything else (a
// proxy's HTML page) contributes only its status text.
func (c *Client) statusErr(op string, resp *http.Response, data []byte) *APIError {
	e := &APIError{Op: op, Status: resp.StatusCode}
	e.RetryAfter, _ = outbound.RetryAfter(resp.Header, c.now())
	if o, ok := parseObject(data); ok {
		e.Code = o.scalar("code")
		e.Message = o.firstStr("message", "error", "detail", "error_description")
		if inner, ok := parseObject(o["error"]); ok {
			if e.Code == "" {
				e.Code = inner.scalar("code")
			}
			if e.Message == "" {
				e.Message = inner.firstStr("message", "detail")
			}
		}
		if e.Code == "" && e.Message != o.str("error") {
			e.Code = o.str("error")
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	e.Code = c.redact(outbound.Shorten(e.Code, 64))
	e.Message = c.redact(outbound.Shorten(e.Message, maxMessage))
	return e
}

func malformed(op, msg string) error {
	return &APIError{Op: op, Status: http.StatusBadGateway, Message: msg, Err: ErrMalformedResponse}
}

func badReplyID(op string) error {
	return &APIError{Op: op, Status: http.StatusBadGateway, Message: "Dragon sent a decision id that is not valid", Err: ErrInvalidID}
}

func invalidRequest(op, msg string) error {
	return &APIError{Op: op, Status: http.StatusBadRequest, Message: msg, Err: ErrInvalidRequest}
}

// redact keeps the token out of anything that reaches logs or workflow
// history, should a server or proxy ever echo it back.
func (c *Client) redact(s string) string {
	if c.token == "" {
		return s
	}
	return strings.ReplaceAll(s, c.token, "[REDACTED]")
}

// redactErr replaces err by a redacted copy when its text holds the token;
// the copy keeps only the text, which is what reaches logs.
func (c *Client) redactErr(err error) error {
	if c.token != "" && strings.Contains(err.Error(), c.token) {
		return errors.New(c.redact(err.Error()))
	}
	return err
}
