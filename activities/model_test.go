package activities_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"remediator/activities"
	"remediator/internal/llm"
	"remediator/internal/llm/llmtest"
)

// modelFixture is the activity fixture with a model behind the recipe
// generator, for failures no recipe matches.
func modelFixture(t *testing.T) (*fixture, *llmtest.Server) {
	t.Helper()
	f := newFixture(t, nil)
	srv := llmtest.New(t)
	client, err := llm.New(llm.Config{BaseURL: srv.URL(), Model: "fake-model", Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fixer, ok := f.acts.Fixer.(*activities.LocalFixer)
	if !ok {
		t.Fatalf("fixture fixer is %T", f.acts.Fixer)
	}
	fixer.Recipes.Model = client
	return f, srv
}

func (f *fixture) generateUnmatched(t *testing.T) error {
	t.Helper()
	_, err := f.generate(t, activities.GenerateFixInput{Repo: f.repo.Path, Ref: "main", FailureSummary: "the moon is full", LogExcerpt: "main.go: howl"})
	if err == nil {
		t.Fatal("want an error")
	}
	return err
}

func TestModelBadRequestIsNotRetried(t *testing.T) {
	f, srv := modelFixture(t)
	srv.FailNext(1, http.StatusBadRequest, llmtest.ErrorBody("This model's maximum context length is 8192 tokens", "invalid_request_error", "context_length_exceeded"), nil)
	err := f.generateUnmatched(t)
	if got := nonRetryableType(t, err); got != activities.ErrTypeUpstream {
		t.Fatalf("a 400 from the model: want %s, got %s (%v)", activities.ErrTypeUpstream, got, err)
	}
	if !strings.Contains(err.Error(), "context_length_exceeded") {
		t.Errorf("the provider's error is not the cause: %v", err)
	}
}

func TestModelRateLimitIsRetriedAfterRetryAfter(t *testing.T) {
	f, srv := modelFixture(t)
	srv.FailNext(1, http.StatusTooManyRequests, llmtest.ErrorBody("Rate limit reached", "requests", "rate_limit_exceeded"), http.Header{"Retry-After": {"7"}})
	err := f.generateUnmatched(t)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.NonRetryable() || appErr.NextRetryDelay() != 7*time.Second {
		t.Fatalf("a 429 from the model must be retried after Retry-After: %v", err)
	}
}

func TestModelServerErrorIsRetried(t *testing.T) {
	f, srv := modelFixture(t)
	srv.FailNext(1, http.StatusBadGateway, "<html><body>502 Bad Gateway</body></html>", nil)
	err := f.generateUnmatched(t)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.NonRetryable() || !strings.Contains(err.Error(), llm.ErrMalformedResponse.Error()) {
		t.Fatalf("an HTML 502 from a proxy must be retried: %v", err)
	}
}

func TestModelFailedIsFixRefused(t *testing.T) {
	f, srv := modelFixture(t)
	srv.Respond(func(llmtest.Request) (int, string) { return http.StatusOK, "I cannot help with the moon." })
	err := f.generateUnmatched(t)
	if got := nonRetryableType(t, err); got != activities.ErrTypeFixRefused {
		t.Fatalf("want %s, got %s (%v)", activities.ErrTypeFixRefused, got, err)
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && !strings.Contains(appErr.Message(), "model_failed") {
		t.Errorf("message %q", appErr.Message())
	}
}
