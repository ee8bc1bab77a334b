// Package llmtest is a fake OpenAI-compatible chat completions server for
// tests: it speaks the wire format of POST .../chat/completions (the request
// body, choices, usage, and {"error": {...}} bodies), records every request
// with its raw body and decoded messages, and answers from canned contents,
// a function, or injected failures.
//
// Only tests import this package.
package llmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"remediator/internal/llm"
)

// Request is one request as the fake received it.
type Request struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte // raw, exactly as sent
	Model               string
	Messages            []llm.Message
	MaxTokens           int
	Temperature         *float64 // nil when absent
}

// Text is every message's content, joined, for assertions on what the
// model was shown.
func (r Request) Text() string {
	var b strings.Builder
	for _, m := range r.Messages {
		b.WriteString(m.Content)
		b.WriteString("\n")
	}
	return b.String()
}

type failure struct {
	n      int
	status int
	body   string
	header http.Header
}

// Server is the fake. Set Key (and APIVersion) before the client runs to
// make it check credentials the way OpenAI (or Azure) does.
type Server struct {
	t   testing.TB
	srv *httptest.Server

	mu sync.Mutex
	// Key, when set, must arrive as "Authorization: Bearer <Key>", or as
	// the api-key header when APIVersion is set.
	Key string
	// APIVersion, when set, must arrive as ?api-version=.
	APIVersion string
	// ReplyModel is the model the replies name; empty echoes the request's.
	ReplyModel string
	requests   []Request
	queue      []string
	respond    func(Request) (int, string)
	failures   []failure
}

// New starts a fake on 127.0.0.1; it stops when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the base a client is configured with, like https://api.openai.com/v1.
func (s *Server) URL() string { return s.srv.URL + "/v1" }

// AzureURL is an Azure-style deployment base.
func (s *Server) AzureURL(deployment string) string {
	return s.srv.URL + "/openai/deployments/" + deployment
}

// Queue adds canned answers (the assistant's content), used in order
// before Respond's function.
func (s *Server) Queue(contents ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, contents...)
}

// Respond answers every request the queue and FailNext leave: status 200
// replies with content as the assistant's message; another status replies
// with an OpenAI error body whose message is content.
func (s *Server) Respond(fn func(req Request) (status int, content string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.respond = fn
}

// FailNext answers the next n requests with status, body (sent as is) and
// header, before anything else.
func (s *Server) FailNext(n, status int, body string, header http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, failure{n: n, status: status, body: body, header: header})
}

// Requests returns what the fake received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Fence wraps a diff the way models are asked to answer.
func Fence(diff string) string {
	if !strings.HasSuffix(diff, "\n") {
		diff += "\n"
	}
	return "Here is the fix:\n\n```diff\n" + diff + "```\n"
}

// ErrorBody is an OpenAI error body; an empty code is sent as null.
func ErrorBody(message, typ, code string) string {
	var c any
	if code != "" {
		c = code
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": message, "type": typ, "code": c, "param": nil}})
	return string(b)
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body}
	var decoded struct {
		Model       string        `json:"model"`
		Messages    []llm.Message `json:"messages"`
		MaxTokens   int           `json:"max_tokens"`
		Temperature *float64      `json:"temperature"`
	}
	decodeErr := json.Unmarshal(body, &decoded)
	req.Model, req.Messages, req.MaxTokens, req.Temperature = decoded.Model, decoded.Messages, decoded.MaxTokens, decoded.Temperature

	s.mu.Lock()
	s.requests = append(s.requests, req)
	var (
		fail    *failure
		content string
		status  = http.StatusOK
		fn      = s.respond
		canned  bool
	)
	if len(s.failures) > 0 {
		f := s.failures[0]
		fail = &f
		if s.failures[0].n--; s.failures[0].n <= 0 {
			s.failures = s.failures[1:]
		}
	} else if len(s.queue) > 0 {
		content, canned = s.queue[0], true
		s.queue = s.queue[1:]
	}
	key, version, replyModel := s.Key, s.APIVersion, s.ReplyModel
	s.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/chat/completions"):
		writeError(w, http.StatusNotFound, "Unknown request URL: "+r.Method+" "+r.URL.Path, "invalid_request_error", "unknown_url")
		return
	case version != "" && r.URL.Query().Get("api-version") != version:
		writeError(w, http.StatusNotFound, "Resource not found", "invalid_request_error", "404")
		return
	case key != "" && !authorized(r, key, version != ""):
		writeError(w, http.StatusUnauthorized, "Incorrect API key provided: "+mask(r), "invalid_request_error", "invalid_api_key")
		return
	case fail != nil:
		for k, vs := range fail.header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		w.WriteHeader(fail.status)
		_, _ = io.WriteString(w, fail.body)
		return
	case decodeErr != nil || len(decoded.Messages) == 0:
		writeError(w, http.StatusBadRequest, "We could not parse the JSON body of your request.", "invalid_request_error", "")
		return
	}
	if !canned {
		if fn == nil {
			s.t.Errorf("llmtest: unexpected request #%d: nothing queued", len(s.Requests()))
			writeError(w, http.StatusInternalServerError, "no answer configured", "server_error", "")
			return
		}
		status, content = fn(req)
	}
	if status != http.StatusOK {
		writeError(w, status, content, errorType(status), "")
		return
	}
	model := replyModel
	if model == "" {
		model = decoded.Model
	}
	prompt := 0
	for _, m := range decoded.Messages {
		prompt += len(m.Content)/4 + 4
	}
	reply := map[string]any{
		"id": fmt.Sprintf("chatcmpl-%d", len(s.Requests())), "object": "chat.completion", "created": 1714564800, "model": model,
		"choices": []map[string]any{{
			"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": content},
		}},
		"usage": map[string]any{"prompt_tokens": prompt, "completion_tokens": len(content)/4 + 1, "total_tokens": prompt + len(content)/4 + 1},
	}
	_ = json.NewEncoder(w).Encode(reply)
}

func authorized(r *http.Request, key string, azure bool) bool {
	if azure {
		return r.Header.Get("api-key") == key
	}
	return r.Header.Get("Authorization") == "Bearer "+key
}

// mask quotes the presented key the way OpenAI does: a few characters of
// each end.
func mask(r *http.Request) string {
	k := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if k == "" {
		k = r.Header.Get("api-key")
	}
	if len(k) < 12 {
		return "***"
	}
	return k[:8] + strings.Repeat("*", 10) + k[len(k)-4:]
}

func errorType(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "rate_limit_exceeded"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

func writeError(w http.ResponseWriter, status int, message, typ, code string) {
	w.WriteHeader(status)
	_, _ = io.WriteString(w, ErrorBody(message, typ, code))
}
