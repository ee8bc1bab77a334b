// Package llm is a client for OpenAI-compatible chat completion APIs
// (OpenAI, Azure OpenAI deployments, Ollama, vLLM and the many proxies that
// speak the same wire format). The recipe generator asks a model for a fix
// through it when no recipe can produce one.
//
// The client sends what it is given: callers redact secrets first (see
// package redact).
package llm

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
	"remediator/internal/redact"
	"remediator/internal/telemetry"
)

const (
	// DefaultMaxTokens bounds the answer: a reviewable diff fits easily.
	DefaultMaxTokens = 4096
	// DefaultTimeout bounds one completion; models are slow, but a call
	// that takes longer than this is better retried.
	DefaultTimeout = 120 * time.Second
	// maxBody caps what is read of a reply.
	maxBody = 1 << 20
	// maxMessage caps the provider's error message kept in an APIError.
	maxMessage = 512
	op         = "chat completions"
)

// Config configures New.
type Config struct {
	// BaseURL is the API base the path /chat/completions is appended to:
	// https://api.openai.com/v1, http://127.0.0.1:11434/v1 (Ollama), a vLLM
	// server, or an Azure deployment base
	// https://X.openai.azure.com/openai/deployments/NAME.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer <key>", or, with APIVersion
	// set (Azure), as the api-key header. Empty sends no credentials
	// (a local Ollama).
	APIKey string
	// APIVersion (Azure only) adds ?api-version=<v> to every request.
	APIVersion string
	// Model names the model in every request (for Azure, the deployment).
	Model string
	// MaxTokens bounds each answer; 0 means DefaultMaxTokens.
	MaxTokens int
	// Timeout bounds each call; 0 means DefaultTimeout.
	Timeout time.Duration
	// HTTPClient sends the requests (in production the SSRF-guarded
	// outbound client, whose own timeout must not be shorter than
	// Timeout); nil uses a plain client that still adds the correlation id.
	HTTPClient *http.Client
	// Metrics, if set, counts requests, tokens and latency.
	Metrics *Metrics
}

// Client talks to one model at one provider. It is safe for concurrent use.
type Client struct {
	endpoint string
	cfg      Config
	http     *http.Client
}

// New validates cfg and returns a client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(cfg.BaseURL))
	switch {
	case err != nil:
		return nil, fmt.Errorf("llm: base URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("llm: base URL %q: want an http or https URL", cfg.BaseURL)
	case u.Host == "":
		return nil, errors.New("llm: base URL has no host")
	case u.User != nil:
		return nil, errors.New("llm: base URL must not carry credentials; set the API key")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("llm: base URL must not have a query or fragment; set APIVersion for Azure")
	}
	if strings.TrimSpace(cfg.Model) == "" {
		return nil, errors.New("llm: model is required")
	}
	if cfg.MaxTokens < 0 || cfg.Timeout < 0 {
		return nil, errors.New("llm: max tokens and timeout must not be negative")
	}
	if cfg.MaxTokens == 0 {
		cfg.MaxTokens = DefaultMaxTokens
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	endpoint := strings.TrimRight(u.String(), "/") + "/chat/completions"
	if cfg.APIVersion != "" {
		endpoint += "?" + url.Values{"api-version": {cfg.APIVersion}}.Encode()
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: cfg.Timeout, Transport: telemetry.HTTPTransport(correlation.Transport{})}
	}
	return &Client{endpoint: endpoint, cfg: cfg, http: hc}, nil
}

// Model is the configured model name, which names fixes the model wrote.
func (c *Client) Model() string { return c.cfg.Model }

// Message is one chat message.
type Message struct {
	Role    string `json:"role"` // "system", "user" or "assistant"
	Content string `json:"content"`
}

// Completion is the model's answer and what it cost.
type Completion struct {
	Content          string
	Model            string // the model that answered, as the provider reports it
	PromptTokens     int
	CompletionTokens int
	Latency          time.Duration
}

type chatRequest struct {
	Model       string    `json:"model"`
	Messages    []Message `json:"messages"`
	MaxTokens   int       `json:"max_tokens"`
	Temperature float64   `json:"temperature"`
}

type chatResponse struct {
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content json.RawMessage `json:"content"`
		} `json:"message"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
	// FastAPI-based servers (vLLM) answer errors as {"detail": ...}, others
	// as {"message": ...}.
	Detail  json.RawMessage `json:"detail"`
	Message json.RawMessage `json:"message"`
}

// Complete sends the conversation and returns the first choice, with
// temperature 0 so the same failure tends to get the same fix.
func (c *Client) Complete(ctx context.Context, msgs []Message) (Completion, error) {
	start := time.Now()
	comp, err := c.complete(ctx, msgs)
	comp.Latency = time.Since(start)
	c.cfg.Metrics.observe(err, comp.Latency, comp.PromptTokens, comp.CompletionTokens)
	if err != nil {
		return Completion{}, err
	}
	return comp, nil
}

func (c *Client) complete(ctx context.Context, msgs []Message) (Completion, error) {
	if len(msgs) == 0 {
		return Completion{}, &APIError{Op: op, Status: http.StatusBadRequest, Message: "no messages to send"}
	}
	body, err := json.Marshal(chatRequest{Model: c.cfg.Model, Messages: msgs, MaxTokens: c.cfg.MaxTokens})
	if err != nil {
		return Completion{}, fmt.Errorf("llm: %s: encoding the request: %w", op, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return Completion{}, fmt.Errorf("llm: %s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.cfg.APIKey != "" {
		if c.cfg.APIVersion != "" {
			req.Header.Set("api-key", c.cfg.APIKey)
		} else {
			req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Completion{}, fmt.Errorf("llm: %s: %w", op, err)
	}
	defer resp.Body.Close()
	data, truncated, err := outbound.LimitedBody(resp.Body, maxBody)
	if err != nil {
		return Completion{}, fmt.Errorf("llm: %s: reading the reply: %w", op, err)
	}

	var reply chatResponse
	decodeErr := json.Unmarshal(data, &reply)
	if truncated {
		decodeErr = fmt.Errorf("reply larger than %d bytes", maxBody)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &APIError{Op: op, Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header, time.Now())}
		if decodeErr != nil || !(c.describe(e, reply.Error) || c.describe(e, reply.Detail) || c.describe(e, reply.Message)) {
			e.Err = ErrMalformedResponse
			e.Message = http.StatusText(resp.StatusCode)
		}
		return Completion{}, e
	}
	if decodeErr != nil {
		return Completion{}, &APIError{Op: op, Status: http.StatusBadGateway, Message: "the reply is not a chat completion", Err: ErrMalformedResponse}
	}
	if len(reply.Choices) == 0 {
		e := &APIError{Op: op, Status: http.StatusBadGateway, Message: "the reply has no choices", Err: ErrMalformedResponse}
		c.describe(e, reply.Error) // some proxies answer 200 with an error body
		return Completion{}, e
	}
	content, ok := text(reply.Choices[0].Message.Content)
	if !ok {
		return Completion{}, &APIError{Op: op, Status: http.StatusBadGateway, Message: "the reply's content is not text", Err: ErrMalformedResponse}
	}
	model := reply.Model
	if model == "" {
		model = c.cfg.Model
	}
	return Completion{
		Content:          content,
		Model:            model,
		PromptTokens:     reply.Usage.PromptTokens,
		CompletionTokens: reply.Usage.CompletionTokens,
	}, nil
}

// describe fills e's Code and Message from an error body, either OpenAI's
// {"message","type","code"} or a bare string; it reports whether there was
// one.
func (c *Client) describe(e *APIError, raw json.RawMessage) bool {
	if len(raw) == 0 || string(raw) == "null" {
		return false
	}
	var body struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"`
	}
	var msg string
	if err := json.Unmarshal(raw, &msg); err == nil {
		e.Message = c.clean(msg)
		return true
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return false
	}
	e.Message = c.clean(body.Message)
	e.Code = body.Type
	var code string
	switch {
	case json.Unmarshal(body.Code, &code) == nil && code != "":
		e.Code = code
	case len(body.Code) > 0 && string(body.Code) != "null" && body.Code[0] != '"':
		e.Code = string(body.Code) // a numeric code
	}
	e.Code = c.clean(e.Code)
	return true
}

// clean keeps a provider's message fit for logs and callers: the API key
// (which OpenAI quotes, partly masked, in "Incorrect API key provided") and
// anything else credential-shaped removed, bounded in length.
func (c *Client) clean(s string) string {
	if key := c.cfg.APIKey; key != "" {
		s = strings.ReplaceAll(s, key, "[REDACTED]")
		if len(key) >= 12 {
			// A masked echo of the key ("sk-proj-ab****wxyz") still
			// starts like it.
			words := strings.Fields(s)
			for i, w := range words {
				if strings.HasPrefix(w, key[:6]) {
					words[i] = "[REDACTED]"
				}
			}
			s = strings.Join(words, " ")
		}
	}
	s, _ = redact.Redact(s)
	if len(s) > maxMessage {
		s = strings.ToValidUTF8(s[:maxMessage], "") + "…"
	}
	return s
}

// text reads a message's content: a string, null (no text), or an array
// of parts whose text parts are joined.
func text(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", false
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" || p.Type == "" {
			b.WriteString(p.Text)
		}
	}
	return b.String(), true
}
