package llm_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"remediator/internal/correlation"
	"remediator/internal/llm"
	"remediator/internal/llm/llmtest"
)

const testKey = "sk-test-0123456789abcdefXYZ"

func newClient(t *testing.T, cfg llm.Config) *llm.Client {
	t.Helper()
	if cfg.Model == "" {
		cfg.Model = "gpt-test"
	}
	c, err := llm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var msgs = []llm.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "fix it"}}

func TestCompleteRequestShape(t *testing.T) {
	srv := llmtest.New(t)
	srv.Key = testKey
	srv.ReplyModel = "gpt-test-2024-05-01"
	srv.Queue("the answer")
	c := newClient(t, llm.Config{BaseURL: srv.URL() + "/", APIKey: testKey, MaxTokens: 123})
	if c.Model() != "gpt-test" {
		t.Errorf("Model() = %q", c.Model())
	}
	ctx := correlation.With(context.Background(), "corr-1")
	comp, err := c.Complete(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if comp.Content != "the answer" || comp.Model != "gpt-test-2024-05-01" || comp.PromptTokens == 0 || comp.CompletionTokens == 0 || comp.Latency <= 0 {
		t.Errorf("completion = %+v", comp)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/v1/chat/completions" || r.Query != "" {
		t.Errorf("request line %s %s?%s", r.Method, r.Path, r.Query)
	}
	if r.Header.Get("Authorization") != "Bearer "+testKey || r.Header.Get("api-key") != "" {
		t.Errorf("auth headers %v", r.Header)
	}
	if r.Header.Get("Content-Type") != "application/json" || r.Header.Get(correlation.Header) != "corr-1" {
		t.Errorf("headers %v", r.Header)
	}
	if r.Model != "gpt-test" || r.MaxTokens != 123 || r.Temperature == nil || *r.Temperature != 0 {
		t.Errorf("body: model %q max_tokens %d temperature %v", r.Model, r.MaxTokens, r.Temperature)
	}
	if len(r.Messages) != 2 || r.Messages[0] != msgs[0] || r.Messages[1] != msgs[1] {
		t.Errorf("messages %+v", r.Messages)
	}
	var raw map[string]any
	if err := json.Unmarshal(r.Body, &raw); err != nil || len(raw) != 4 {
		t.Errorf("body %s: want exactly model, messages, max_tokens, temperature", r.Body)
	}
}

func TestCompleteDefaultsAndNoKey(t *testing.T) {
	srv := llmtest.New(t)
	srv.Queue("ok")
	c := newClient(t, llm.Config{BaseURL: srv.URL()})
	if _, err := c.Complete(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	r := srv.Requests()[0]
	if r.MaxTokens != llm.DefaultMaxTokens || r.Header.Get("Authorization") != "" {
		t.Errorf("max_tokens %d, Authorization %q", r.MaxTokens, r.Header.Get("Authorization"))
	}
}

func TestCompleteAzure(t *testing.T) {
	srv := llmtest.New(t)
	srv.Key, srv.APIVersion = testKey, "2024-06-01"
	srv.Queue("azure answer")
	c := newClient(t, llm.Config{BaseURL: srv.AzureURL("fixer"), APIKey: testKey, APIVersion: "2024-06-01", Model: "fixer"})
	comp, err := c.Complete(context.Background(), msgs)
	if err != nil || comp.Content != "azure answer" {
		t.Fatalf("%+v %v", comp, err)
	}
	r := srv.Requests()[0]
	if r.Path != "/openai/deployments/fixer/chat/completions" || r.Query != "api-version=2024-06-01" {
		t.Errorf("URL %s?%s", r.Path, r.Query)
	}
	if r.Header.Get("api-key") != testKey || r.Header.Get("Authorization") != "" {
		t.Errorf("Azure sends the key as api-key only: %v", r.Header)
	}
}

func apiError(t *testing.T, err error) *llm.APIError {
	t.Helper()
	var e *llm.APIError
	if !errors.As(err, &e) {
		t.Fatalf("want *llm.APIError, got %T %v", err, err)
	}
	if strings.Contains(err.Error(), "sk-test") {
		t.Errorf("the API key leaked into the error: %v", err)
	}
	return e
}

func TestCompleteErrors(t *testing.T) {
	retryDate := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		name       string
		status     int
		body       string
		header     http.Header
		wantStatus int
		wantCode   string
		wantMsg    string
		malformed  bool
		after      time.Duration // exact, or with tolerance when afterApprox
		approx     bool
	}{
		{name: "400", status: 400, body: llmtest.ErrorBody("maximum context length is 8192 tokens", "invalid_request_error", "context_length_exceeded"),
			wantStatus: 400, wantCode: "context_length_exceeded", wantMsg: "maximum context length"},
		{name: "429 seconds", status: 429, body: llmtest.ErrorBody("Rate limit reached", "requests", "rate_limit_exceeded"),
			header: http.Header{"Retry-After": {"7"}}, wantStatus: 429, wantCode: "rate_limit_exceeded", after: 7 * time.Second},
		{name: "429 ms", status: 429, body: llmtest.ErrorBody("Rate limit reached", "tokens", ""),
			header: http.Header{"Retry-After-Ms": {"1500"}, "Retry-After": {"2"}}, wantStatus: 429, wantCode: "tokens", after: 1500 * time.Millisecond},
		{name: "429 date", status: 429, body: llmtest.ErrorBody("slow down", "", ""),
			header: http.Header{"Retry-After": {retryDate}}, wantStatus: 429, after: 90 * time.Second, approx: true},
		{name: "429 capped", status: 429, body: llmtest.ErrorBody("quota", "insufficient_quota", "insufficient_quota"),
			header: http.Header{"Retry-After": {"86400"}}, wantStatus: 429, wantCode: "insufficient_quota", after: time.Hour},
		{name: "numeric code", status: 503, body: `{"error":{"message":"overloaded","type":"server_error","code":503}}`,
			header: http.Header{"Retry-After": {"3"}}, wantStatus: 503, wantCode: "503", after: 3 * time.Second},
		{name: "string error", status: 500, body: `{"error":"model 'x' not found, try pulling it first"}`, wantStatus: 500, wantMsg: "not found"},
		{name: "vllm detail", status: 422, body: `{"detail":"max_tokens must be at least 1"}`, wantStatus: 422, wantMsg: "max_tokens"},
		{name: "html 502", status: 502, body: "<html><body><h1>502 Bad Gateway</h1></body></html>", wantStatus: 502, malformed: true},
		{name: "garbage 200", status: 200, body: "<html>ok</html>", wantStatus: 502, malformed: true},
		{name: "empty choices", status: 200, body: `{"id":"x","object":"chat.completion","choices":[],"usage":{"prompt_tokens":3}}`, wantStatus: 502, malformed: true},
		{name: "error in 200", status: 200, body: llmtest.ErrorBody("upstream failed", "proxy_error", ""), wantStatus: 502, malformed: true, wantMsg: "upstream failed"},
		{name: "truncated", status: 200, body: `{"choices":[{"message":{"content":"` + strings.Repeat("a", 2<<20) + `"}}]}`, wantStatus: 502, malformed: true},
		{name: "content not text", status: 200, body: `{"choices":[{"message":{"content":42}}]}`, wantStatus: 502, malformed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := llmtest.New(t)
			srv.FailNext(1, tc.status, tc.body, tc.header)
			c := newClient(t, llm.Config{BaseURL: srv.URL(), APIKey: testKey})
			comp, err := c.Complete(context.Background(), msgs)
			if comp != (llm.Completion{}) {
				t.Errorf("a completion came with the error: %+v", comp)
			}
			e := apiError(t, err)
			if e.Status != tc.wantStatus || e.HTTPStatus() != tc.wantStatus || (tc.wantCode != "" && e.Code != tc.wantCode) {
				t.Errorf("status %d code %q: %v", e.Status, e.Code, err)
			}
			if tc.wantMsg != "" && !strings.Contains(e.Message, tc.wantMsg) {
				t.Errorf("message %q lacks %q", e.Message, tc.wantMsg)
			}
			if errors.Is(err, llm.ErrMalformedResponse) != tc.malformed {
				t.Errorf("malformed = %v: %v", !tc.malformed, err)
			}
			got := e.RetryAfterDelay()
			if tc.approx {
				if got < tc.after-5*time.Second || got > tc.after {
					t.Errorf("RetryAfter %s, want about %s", got, tc.after)
				}
			} else if got != tc.after {
				t.Errorf("RetryAfter %s, want %s", got, tc.after)
			}
		})
	}
}

func TestCompleteKeyNeverInErrors(t *testing.T) {
	srv := llmtest.New(t)
	srv.Key = "sk-the-right-key-0000000000"
	c := newClient(t, llm.Config{BaseURL: srv.URL(), APIKey: testKey})
	_, err := c.Complete(context.Background(), msgs)
	e := apiError(t, err) // also checks the key (and its masked echo) is absent
	if e.Status != 401 || e.Code != "invalid_api_key" || !strings.Contains(e.Message, "Incorrect API key provided") {
		t.Errorf("%+v", e)
	}
	if !strings.Contains(string(srv.Requests()[0].Header.Get("Authorization")), testKey) {
		t.Error("the key was not sent")
	}
}

func TestCompleteNetworkErrorsAndTimeout(t *testing.T) {
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(hang)
	c := newClient(t, llm.Config{BaseURL: slow.URL + "/v1", Timeout: 100 * time.Millisecond})
	_, err := c.Complete(context.Background(), msgs)
	var e *llm.APIError
	if err == nil || errors.As(err, &e) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a timeout is a wrapped network error (retried): %T %v", err, err)
	}

	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	c = newClient(t, llm.Config{BaseURL: url})
	if _, err := c.Complete(context.Background(), msgs); err == nil || errors.As(err, &e) {
		t.Errorf("connection refused: %T %v", err, err)
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []llm.Config{
		{BaseURL: "", Model: "m"},
		{BaseURL: "ftp://x/v1", Model: "m"},
		{BaseURL: "https:///v1", Model: "m"},
		{BaseURL: "https://user:pw@x/v1", Model: "m"},
		{BaseURL: "https://x/v1?api-version=1", Model: "m"},
		{BaseURL: "https://x/v1"},
		{BaseURL: "https://x/v1", Model: "m", MaxTokens: -1},
	} {
		if _, err := llm.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := llm.NewMetrics(reg)
	if again := llm.NewMetrics(reg); again == nil {
		t.Fatal("a second NewMetrics on the same registry failed")
	}
	if got := gather(t, reg, "remediator_llm_requests_total", "outcome", "error"); got != 0 {
		t.Errorf("the error series should exist at zero, got %v", got)
	}
	srv := llmtest.New(t)
	srv.Queue("one", "two")
	srv.FailNext(1, 500, llmtest.ErrorBody("boom", "server_error", ""), nil)
	c := newClient(t, llm.Config{BaseURL: srv.URL(), Metrics: m})
	if _, err := c.Complete(context.Background(), msgs); err == nil {
		t.Fatal("want the injected failure")
	}
	var prompt, completion int
	for range 2 {
		comp, err := c.Complete(context.Background(), msgs)
		if err != nil {
			t.Fatal(err)
		}
		prompt += comp.PromptTokens
		completion += comp.CompletionTokens
	}
	for _, tc := range []struct {
		name, label, value string
		want               float64
	}{
		{"remediator_llm_requests_total", "outcome", "ok", 2},
		{"remediator_llm_requests_total", "outcome", "error", 1},
		{"remediator_llm_tokens_total", "kind", "prompt", float64(prompt)},
		{"remediator_llm_tokens_total", "kind", "completion", float64(completion)},
		{"remediator_llm_request_duration_seconds", "", "", 3},
	} {
		if got := gather(t, reg, tc.name, tc.label, tc.value); got != tc.want {
			t.Errorf("%s{%s=%q} = %v, want %v", tc.name, tc.label, tc.value, got, tc.want)
		}
	}
}

// gather reads one series from the registry: a counter's value, or a
// histogram's sample count.
func gather(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}
