// Package cli is the operator's client of the REST API. Votes go through the
// same authentication, roles, repository scope, validation and Update as every
// other caller, so an operator can never vote around the approval gate the
// way a raw Temporal signal could.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"remediator/internal/correlation"
)

// Environment variables of the client; nothing is read from files or flags so
// a credential never lands in shell history or a process listing.
const (
	EnvURL    = "REMEDIATOR_URL"
	EnvToken  = "REMEDIATOR_TOKEN"
	EnvAPIKey = "REMEDIATOR_API_KEY"
)

const (
	requestTimeout = 30 * time.Second
	// A status carries the diff twice (patch bytes and text), and the server
	// caps a diff at 1 MiB; anything far beyond that is not our API.
	maxResponseBytes = 32 << 20
	maxListPages     = 100
	maxTextLen       = 2000 // the API's limit on comment and reason
)

// The client deliberately does not import the workflow package: it speaks
// only the HTTP contract, like any other caller.
const (
	idPrefix              = "rem-"
	phaseAwaitingApproval = "AwaitingApproval"
)

var (
	idPattern     = regexp.MustCompile(`^` + idPrefix + `[0-9a-f-]{1,60}$`)
	digestPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Run executes one client command: args[0] is "approve", "reject",
// "regenerate", "status" or "list".
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("no command given")
	}
	var err error
	switch args[0] {
	case "status":
		err = runStatus(ctx, args[1:], getenv, stdout, stderr)
	case "approve":
		err = runVote(ctx, true, args[1:], getenv, stdout, stderr)
	case "reject":
		err = runVote(ctx, false, args[1:], getenv, stdout, stderr)
	case "list":
		err = runList(ctx, args[1:], getenv, stdout, stderr)
	case "regenerate":
		err = runRegenerate(ctx, args[1:], getenv, stdout, stderr)
	default:
		return fmt.Errorf("unknown client command %q", args[0])
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil // the usage was asked for and printed
	}
	return err
}

// client is one command's connection to the API. One correlation id covers
// every request of the command, so the status read before a vote and the
// vote itself are found together in the server's logs.
type client struct {
	base          string // scheme://host[/prefix], no trailing slash
	authHeader    string
	authValue     string
	correlationID string
	http          *http.Client
	stderr        io.Writer
}

func newClient(getenv func(string) string, stderr io.Writer) (*client, error) {
	base, err := baseURL(getenv(EnvURL), stderr)
	if err != nil {
		return nil, err
	}
	token, key := strings.TrimSpace(getenv(EnvToken)), strings.TrimSpace(getenv(EnvAPIKey))
	c := &client{
		base:          base,
		correlationID: uuid.NewString(),
		stderr:        stderr,
		http: &http.Client{
			Timeout: requestTimeout,
			// A redirect could carry the credential to another host; the API
			// never redirects, so one means REMEDIATOR_URL is wrong.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	switch {
	case token != "" && key != "":
		return nil, fmt.Errorf("both %s and %s are set: set exactly one", EnvToken, EnvAPIKey)
	case token != "":
		c.authHeader, c.authValue = "Authorization", "Bearer "+token
		err = checkCredential(EnvToken, token)
	case key != "":
		c.authHeader, c.authValue = "X-API-Key", key
		err = checkCredential(EnvAPIKey, key)
	default:
		return nil, fmt.Errorf("no credential: set %s (bearer token) or %s", EnvToken, EnvAPIKey)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// checkCredential refuses values that cannot travel in a header, naming the
// variable but never echoing the value.
func checkCredential(name, v string) error {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return fmt.Errorf("%s contains characters that cannot be sent in a header", name)
		}
	}
	return nil
}

// baseURL accepts only a plain http(s) address: userinfo would be a second
// credential, and a query or fragment would silently change every request.
// Parse errors are not wrapped because they quote the URL, which may hold a
// password.
func baseURL(raw string, stderr io.Writer) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", fmt.Errorf("%s is not set: point it at the API, e.g. http://127.0.0.1:8080", EnvURL)
	}
	if !strings.Contains(raw, "://") {
		return "", fmt.Errorf("%s must be an http or https URL, e.g. http://127.0.0.1:8080", EnvURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%s is not a valid URL", EnvURL)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%s must be an http or https URL", EnvURL)
	case u.User != nil:
		return "", fmt.Errorf("%s must not carry credentials; use %s or %s", EnvURL, EnvToken, EnvAPIKey)
	case u.Opaque != "" || u.Hostname() == "":
		return "", fmt.Errorf("%s must name a host", EnvURL)
	case u.RawQuery != "" || u.ForceQuery:
		return "", fmt.Errorf("%s must not have a query", EnvURL)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "", fmt.Errorf("%s must not have a fragment", EnvURL)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		fmt.Fprintf(stderr, "remediator: warning: %s is plain http to %s; the credential travels unencrypted\n", EnvURL, u.Hostname())
	}
	return u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/"), nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// response is a successful answer, read in full.
type response struct {
	status int
	body   []byte
}

// do sends one request. Anything but a 2xx is printed for the operator and
// returned as *APIError.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body any, idempotencyKey string) (*response, error) {
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "remediator-cli")
	// Votes and regenerations cast here are recorded as the cli channel.
	req.Header.Set("X-Remediator-Channel", "cli")
	req.Header.Set(correlation.Header, c.correlationID)
	req.Header.Set(c.authHeader, c.authValue)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idempotencyKey != "" {
		// Besides making the server answer a retried vote instead of counting
		// it twice, this header lets net/http replay the POST on a dropped
		// connection.
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		fmt.Fprintf(c.stderr, "remediator: %s %s failed (correlation id %s)\n", method, path, c.correlationID)
		return nil, fmt.Errorf("%w (correlation id %s)", err, c.correlationID)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the answer to %s %s: %w (correlation id %s)", method, path, err, c.correlationID)
	}
	if len(data) > maxResponseBytes {
		return nil, fmt.Errorf("the answer to %s %s is larger than %d bytes (correlation id %s)", method, path, maxResponseBytes, c.correlationID)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, c.apiError(resp, data)
	}
	return &response{status: resp.StatusCode, body: data}, nil
}

// decode reads a successful answer into v; a body that is not what the API
// sends is reported with the correlation id like any other failure.
func (c *client) decode(r *response, v any) error {
	if err := json.Unmarshal(r.body, v); err != nil {
		return fmt.Errorf("unexpected answer from the API (not the expected JSON): %v (correlation id %s)", err, c.correlationID)
	}
	return nil
}

// APIError is a non-2xx answer. Its message and details were already printed
// to stderr, so Error stays one short line for main to print.
type APIError struct {
	Status        int
	Code          string
	Message       string
	Details       json.RawMessage
	CorrelationID string
}

func (e *APIError) Error() string {
	s := "request failed: " + strconv.Itoa(e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	return s + " (correlation id " + e.CorrelationID + ")"
}

// errorBody is the API's one error shape.
type errorBody struct {
	Error         string          `json:"error"`
	Message       string          `json:"message"`
	Details       json.RawMessage `json:"details"`
	CorrelationID string          `json:"correlation_id"`
}

func (c *client) apiError(resp *http.Response, data []byte) error {
	e := &APIError{Status: resp.StatusCode, CorrelationID: c.correlationID}
	if id := resp.Header.Get(correlation.Header); id != "" {
		e.CorrelationID = id
	}
	var b errorBody
	if json.Unmarshal(data, &b) == nil && b.Error != "" {
		e.Code, e.Message, e.Details = b.Error, b.Message, b.Details
		if b.CorrelationID != "" {
			e.CorrelationID = b.CorrelationID
		}
		fmt.Fprintf(c.stderr, "remediator: %d %s: %s\n", e.Status, clean(e.Code), clean(e.Message))
		printDetails(c.stderr, b.Details)
	} else if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		fmt.Fprintf(c.stderr, "remediator: %s: redirect to %s not followed; set %s to the API's own address\n",
			clean(resp.Status), clean(resp.Header.Get("Location")), EnvURL)
	} else {
		fmt.Fprintf(c.stderr, "remediator: %s\n", clean(resp.Status))
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		fmt.Fprintf(c.stderr, "  retry after: %s s\n", clean(ra))
	}
	fmt.Fprintf(c.stderr, "  correlation id: %s\n", clean(e.CorrelationID))
	return e
}

// printDetails prints validation details one field per line; other shapes
// are printed as compact JSON.
func printDetails(w io.Writer, raw json.RawMessage) {
	if len(raw) == 0 || string(raw) == "null" {
		return
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		var buf bytes.Buffer
		if json.Compact(&buf, raw) == nil {
			fmt.Fprintf(w, "  details: %s\n", clean(buf.String()))
		}
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var s string
		if json.Unmarshal(m[k], &s) != nil {
			var buf bytes.Buffer
			_ = json.Compact(&buf, m[k])
			s = buf.String()
		}
		fmt.Fprintf(w, "  %s: %s\n", clean(k), clean(s))
	}
}

// clean keeps text from the server from driving the operator's terminal:
// control characters and invalid UTF-8 are shown quoted instead of raw.
func clean(s string) string {
	if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
	}) {
		return strconv.Quote(s)
	}
	return s
}
