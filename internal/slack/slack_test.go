package slack_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"remediator/activities"
	"remediator/internal/correlation"
	"remediator/internal/outbound"
	"remediator/internal/slack"
	"remediator/internal/slack/slacktest"
)

const (
	testToken   = "xoxb-test-token"
	testChannel = "C0TEST"
)

func newBot(t *testing.T) (*slacktest.Server, *slack.Client) {
	t.Helper()
	f := slacktest.New(t, testToken, testChannel)
	c, err := slack.New(slack.Config{BotToken: testToken, Channel: testChannel, APIURL: f.APIURL()})
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func TestNewValidatesConfig(t *testing.T) {
	bad := map[string]slack.Config{
		"nothing":               {},
		"token without channel": {BotToken: testToken},
		"channel without token": {Channel: testChannel},
		"channel name":          {BotToken: testToken, Channel: "#remediations"},
		"http webhook":          {WebhookURL: "http://hooks.slack.com/services/T/B/X"},
		"webhook with userinfo": {WebhookURL: "https://u:p@hooks.slack.com/services/T/B/X"},
		"relative webhook":      {WebhookURL: "/services/T/B/X"},
		"ftp API":               {BotToken: testToken, Channel: testChannel, APIURL: "ftp://slack.com/api/"},
		"http API not loopback": {BotToken: testToken, Channel: testChannel, APIURL: "http://slack.example/api/"},
		"token with a newline":  {BotToken: "xoxb-1\nX-Evil: 1", Channel: testChannel},
	}
	for name, cfg := range bad {
		if _, err := slack.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "/services/T/B/X") {
			t.Errorf("%s: the error quotes the webhook URL: %v", name, err)
		}
	}
	good := map[string]slack.Config{
		"webhook":       {WebhookURL: "https://hooks.slack.com/services/T/B/X"},
		"loopback http": {WebhookURL: "http://127.0.0.1:9/hooks/webhook"},
		"bot":           {BotToken: testToken, Channel: testChannel},
		"both":          {WebhookURL: "https://hooks.slack.com/services/T/B/X", BotToken: testToken, Channel: "G0PRIVATE"},
	}
	for name, cfg := range good {
		c, err := slack.New(cfg)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if bot := cfg.BotToken != ""; c.CanUpdate() != bot || c.CanOpenViews() != bot {
			t.Errorf("%s: CanUpdate %v CanOpenViews %v", name, c.CanUpdate(), c.CanOpenViews())
		}
	}
}

func TestPostWithBotIsIdempotent(t *testing.T) {
	f, c := newBot(t)
	ctx := t.Context()
	m := slack.ApprovalMessage(approvalInfo(slack.PhaseAwaitingApproval))
	ref, err := c.Post(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if ref.Channel != testChannel || ref.TS == "" {
		t.Fatalf("ref = %+v", ref)
	}
	again, err := c.Post(ctx, m)
	if err != nil || again != ref {
		t.Fatalf("second Post = %+v, %v; want %+v", again, err, ref)
	}
	msgs := f.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages in the channel, want 1", len(msgs))
	}
	if md := msgs[0].Metadata; md == nil || md.EventType != slack.EventTypeApproval || md.EventPayload["remediation_id"] != "rem-1" {
		t.Errorf("metadata = %+v", msgs[0].Metadata)
	}
	var blocks []map[string]any
	if err := json.Unmarshal(msgs[0].Blocks, &blocks); err != nil || len(blocks) != len(m.Blocks) {
		t.Errorf("blocks = %s (%v)", msgs[0].Blocks, err)
	}

	// The wire format: JSON with the token for writes, a form with
	// include_all_metadata and a 30-day window for the search.
	var sawHistory, sawPost bool
	for _, r := range f.Requests() {
		switch r.Path {
		case "/api/conversations.history":
			sawHistory = true
			form, _ := url.ParseQuery(string(r.Body))
			if form.Get("channel") != testChannel || form.Get("include_all_metadata") != "true" || form.Get("limit") == "" {
				t.Errorf("history form = %v", form)
			}
			want := time.Now().Add(-30 * 24 * time.Hour).Unix()
			if sec, _, _ := strings.Cut(form.Get("oldest"), "."); sec < strconv.FormatInt(want-60, 10) || sec > strconv.FormatInt(want+60, 10) {
				t.Errorf("oldest = %q, want about %d", form.Get("oldest"), want)
			}
		case "/api/chat.postMessage":
			sawPost = true
			if ct := r.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
		}
		if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
			t.Errorf("%s: Authorization = %q", r.Path, got)
		}
	}
	if !sawHistory || !sawPost {
		t.Errorf("history %v post %v", sawHistory, sawPost)
	}

	// Another remediation is another message.
	other := approvalInfo(slack.PhaseAwaitingApproval)
	other.RemediationID = "rem-2"
	if ref2, err := c.Post(ctx, slack.ApprovalMessage(other)); err != nil || ref2 == ref {
		t.Fatalf("Post of another remediation = %+v, %v", ref2, err)
	}
	if n := len(f.Messages()); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
}

func TestPostFindsAcrossHistoryPages(t *testing.T) {
	f, c := newBot(t)
	ctx := t.Context()
	m := slack.ApprovalMessage(approvalInfo(slack.PhaseAwaitingApproval))
	ref, err := c.Post(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		f.AddMessage(slacktest.Posted{Channel: testChannel, Text: "chatter"})
	}
	f.SetHistoryPageSize(2)
	again, err := c.Post(ctx, m)
	if err != nil || again != ref {
		t.Fatalf("Post = %+v, %v; want %+v", again, err, ref)
	}
	if n := len(f.Messages()); n != 6 {
		t.Errorf("%d messages, want 6", n)
	}
}

func TestPostIgnoresMessagesOlderThan30Days(t *testing.T) {
	f, c := newBot(t)
	old := time.Now().Add(-40 * 24 * time.Hour).Unix()
	f.AddMessage(slacktest.Posted{
		Channel: testChannel, TS: strconv.FormatInt(old, 10) + ".000001", Text: "old",
		Metadata: &slacktest.Metadata{EventType: slack.EventTypeApproval, EventPayload: map[string]any{"remediation_id": "rem-1"}},
	})
	ref, err := c.Post(t.Context(), slack.ApprovalMessage(approvalInfo(slack.PhaseAwaitingApproval)))
	if err != nil || strings.HasPrefix(ref.TS, strconv.FormatInt(old, 10)) {
		t.Fatalf("Post = %+v, %v", ref, err)
	}
	if n := len(f.Messages()); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
}

func TestUpdateChangesTheMessage(t *testing.T) {
	f, c := newBot(t)
	ctx := t.Context()
	a := approvalInfo(slack.PhaseAwaitingApproval)
	ref, err := c.Post(ctx, slack.ApprovalMessage(a))
	if err != nil {
		t.Fatal(err)
	}
	a.Phase, a.Outcome = "Completed", "change opened"
	a.Links.Change = "https://github.example/acme/app/pull/7"
	if err := c.Update(ctx, ref, slack.ApprovalMessage(a)); err != nil {
		t.Fatal(err)
	}
	msgs := f.Messages()
	if len(msgs) != 1 || msgs[0].Updates != 1 {
		t.Fatalf("messages = %+v", msgs)
	}
	var posted []slack.Block
	if err := json.Unmarshal(msgs[0].Blocks, &posted); err != nil {
		t.Fatal(err)
	}
	blocks := strings.Join(texts(t, slack.Message{Blocks: posted}), "\n")
	if strings.Contains(string(msgs[0].Blocks), "remediation_approve") || !strings.Contains(blocks, "Completed: acme/app") ||
		!strings.Contains(blocks, "<https://github.example/acme/app/pull/7|Change>") || !strings.HasPrefix(msgs[0].Text, "Completed") {
		t.Errorf("updated message = %s / %q", blocks, msgs[0].Text)
	}
	if err := c.Update(ctx, slack.MessageRef{Channel: testChannel, TS: "1.000001"}, slack.ApprovalMessage(a)); !isClassified(err, activities.ErrTypeNotFound, false) {
		t.Errorf("update of a missing message: %v", err)
	}
}

func TestWebhookTransportPostsOnce(t *testing.T) {
	f := slacktest.New(t, testToken, testChannel)
	c, err := slack.New(slack.Config{WebhookURL: f.WebhookURL()})
	if err != nil {
		t.Fatal(err)
	}
	if c.CanUpdate() || c.CanOpenViews() {
		t.Error("a webhook client claims it can update or open views")
	}
	m := slack.ApprovalMessage(approvalInfo(slack.PhaseAwaitingApproval))
	ref, err := c.Post(t.Context(), m)
	if err != nil || ref != (slack.MessageRef{}) {
		t.Fatalf("Post = %+v, %v", ref, err)
	}
	msgs, reqs := f.Messages(), f.Requests()
	if len(msgs) != 1 || !msgs[0].ViaWebhook || msgs[0].Text != m.Text || len(reqs) != 1 {
		t.Fatalf("messages %+v, %d requests", msgs, len(reqs))
	}
	if reqs[0].Header.Get("Authorization") != "" {
		t.Error("a token was sent to the webhook")
	}
	if strings.Contains(string(reqs[0].Body), "metadata") {
		t.Error("the webhook body carries metadata, which webhooks do not take")
	}
	err = c.Update(t.Context(), slack.MessageRef{Channel: testChannel, TS: "1.0"}, m)
	if !errors.Is(err, slack.ErrNotConfigured) || !isClassified(err, activities.ErrTypeUpstream, false) {
		t.Errorf("Update without a bot token: %v", err)
	}
	if err := c.OpenView(t.Context(), "trigger", slack.ReasonModal("x")); !errors.Is(err, slack.ErrNotConfigured) {
		t.Errorf("OpenView without a bot token: %v", err)
	}
}

func TestRespond(t *testing.T) {
	f, c := newBot(t)
	u := f.NewResponseURL()
	m := slack.ApprovalMessage(approvalInfo("Rejected"))
	if err := c.Respond(t.Context(), u, m); err != nil {
		t.Fatal(err)
	}
	got := f.Responses()
	if len(got) != 1 || !got[0].ReplaceOriginal || got[0].Text != m.Text || got[0].URL != u {
		t.Fatalf("responses = %+v", got)
	}
	if auth := f.Requests()[0].Header.Get("Authorization"); auth != "" {
		t.Errorf("the token was sent to a response URL: %q", auth)
	}
}

func TestRespondRefusesUntrustedURLs(t *testing.T) {
	f, c := newBot(t)
	for _, u := range []string{
		"https://evil.example/actions/T1/1/x",
		"http://hooks.slack.com/actions/T1/1/x",
		"https://hooks.slack.com.evil.example/actions/T1/1/x",
		"https://user@hooks.slack.com/actions/T1/1/x",
		"https://169.254.169.254/latest/meta-data",
		strings.Replace(f.NewResponseURL(), "http://", "https://", 1),
		"hooks.slack.com/actions/x",
		"",
	} {
		err := c.Respond(t.Context(), u, slack.Message{Text: "x"})
		if !errors.Is(err, slack.ErrUntrustedURL) || !isClassified(err, activities.ErrTypeUpstream, false) {
			t.Errorf("%q: err = %v", u, err)
		}
	}
	if n := len(f.Requests()); n != 0 {
		t.Errorf("%d requests were sent", n)
	}
	// hooks.slack.com itself is trusted without configuration.
	plain, err := slack.New(slack.Config{WebhookURL: "https://hooks.slack.com/services/T/B/X", HTTPClient: &http.Client{
		Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.URL.Host != "hooks.slack.com" {
				t.Errorf("request to %s", r.URL.Host)
			}
			return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
		}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Respond(t.Context(), "https://hooks.slack.com/actions/T1/2/y", slack.Message{Text: "x"}); errors.Is(err, slack.ErrUntrustedURL) {
		t.Errorf("hooks.slack.com refused: %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestOpenViewSendsTheTrigger(t *testing.T) {
	f, c := newBot(t)
	if err := c.OpenView(t.Context(), "trigger-42", slack.ReasonModal("rem-1|dec-1|"+testDigest)); err != nil {
		t.Fatal(err)
	}
	views := f.Views()
	if len(views) != 1 || views[0].TriggerID != "trigger-42" || !strings.Contains(string(views[0].View), slack.ReasonCallbackID) {
		t.Fatalf("views = %+v", views)
	}
	f.FailNext(1, 200, `{"ok":false,"error":"expired_trigger_id"}`, nil)
	if err := c.OpenView(t.Context(), "trigger-43", slack.ReasonModal("x")); !isClassified(err, activities.ErrTypeUpstream, false) {
		t.Errorf("expired trigger: %v", err)
	}
	if err := c.OpenView(t.Context(), "", slack.ReasonModal("x")); !errors.Is(err, slack.ErrInvalidArgument) {
		t.Errorf("empty trigger: %v", err)
	}
}

// isClassified reports whether activities.Classify makes err an
// application error of errType with the given retryability.
func isClassified(err error, errType string, retryable bool) bool {
	var app *temporal.ApplicationError
	if !errors.As(activities.Classify(err), &app) {
		return false
	}
	return app.Type() == errType && app.NonRetryable() == !retryable
}

func TestErrorsAreClassified(t *testing.T) {
	js := http.Header{"Content-Type": {"application/json"}}
	cases := []struct {
		name      string
		webhook   bool
		status    int
		body      string
		header    http.Header
		errType   string
		retryable bool
		code      string
		httpSt    int
		delay     time.Duration
		malformed bool
	}{
		{name: "channel_not_found", status: 200, body: `{"ok":false,"error":"channel_not_found"}`, header: js,
			errType: activities.ErrTypeNotFound, code: "channel_not_found", httpSt: 404},
		{name: "invalid_auth", status: 200, body: `{"ok":false,"error":"invalid_auth"}`, header: js,
			errType: activities.ErrTypeUpstream, code: "invalid_auth", httpSt: 401},
		{name: "missing_scope", status: 200, body: `{"ok":false,"error":"missing_scope","needed":"chat:write"}`, header: js,
			errType: activities.ErrTypeUpstream, code: "missing_scope", httpSt: 403},
		{name: "invalid_blocks", status: 200, body: `{"ok":false,"error":"invalid_blocks","response_metadata":{"messages":["[ERROR] too long"]}}`, header: js,
			errType: activities.ErrTypeUpstream, code: "invalid_blocks", httpSt: 400},
		{name: "ratelimited with Retry-After", status: 429, body: `{"ok":false,"error":"ratelimited"}`,
			header:  http.Header{"Retry-After": {"7"}, "Content-Type": {"application/json"}},
			errType: "Throttled", retryable: true, code: "ratelimited", httpSt: 429, delay: 7 * time.Second},
		{name: "ratelimited without Retry-After", status: 429, body: ``,
			errType: "Throttled", retryable: true, code: "ratelimited", httpSt: 429, delay: 30 * time.Second},
		{name: "Retry-After beyond an hour", status: 429, body: ``, header: http.Header{"Retry-After": {"86400"}},
			errType: "Throttled", retryable: true, code: "ratelimited", httpSt: 429, delay: time.Hour},
		{name: "internal_error", status: 200, body: `{"ok":false,"error":"internal_error"}`, header: js,
			errType: activities.ErrTypeTransient, retryable: true, code: "internal_error", httpSt: 500},
		{name: "unknown code", status: 200, body: `{"ok":false,"error":"something_new"}`, header: js,
			errType: activities.ErrTypeTransient, retryable: true, code: "something_new", httpSt: 500},
		{name: "service_unavailable", status: 503, body: `{"ok":false,"error":"service_unavailable"}`,
			header:  http.Header{"Retry-After": {time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)}},
			errType: "Throttled", retryable: true, code: "service_unavailable", httpSt: 503, delay: 90 * time.Second},
		{name: "HTML 502 from a proxy", status: 502, body: "<html><body>Bad Gateway</body></html>",
			header:  http.Header{"Content-Type": {"text/html"}},
			errType: activities.ErrTypeTransient, retryable: true, httpSt: 502, malformed: true},
		{name: "garbage with 200", status: 200, body: "<html>captive portal</html>",
			errType: activities.ErrTypeTransient, retryable: true, httpSt: 502, malformed: true},
		{name: "JSON without ok", status: 200, body: `{"hello":1}`, header: js,
			errType: activities.ErrTypeTransient, retryable: true, httpSt: 502, malformed: true},
		{name: "body over 1 MiB", status: 200, body: `{"ok":true,"x":"` + strings.Repeat("a", 1<<20) + `"}`, header: js,
			errType: activities.ErrTypeTransient, retryable: true, httpSt: 502, malformed: true},
		{name: "redirect", status: 302, header: http.Header{"Location": {"https://elsewhere.example/"}},
			errType: activities.ErrTypeTransient, retryable: true, httpSt: 502},
		{name: "webhook invalid_token", webhook: true, status: 403, body: "invalid_token",
			errType: activities.ErrTypeUpstream, code: "invalid_token", httpSt: 401},
		{name: "webhook channel_is_archived", webhook: true, status: 410, body: "channel_is_archived",
			errType: activities.ErrTypeNotFound, code: "channel_is_archived", httpSt: 404},
		{name: "webhook no_service", webhook: true, status: 404, body: "no_service",
			errType: activities.ErrTypeUpstream, code: "no_service", httpSt: 403},
		{name: "webhook unknown 4xx code", webhook: true, status: 403, body: "action_forbidden_somehow",
			errType: activities.ErrTypeUpstream, code: "action_forbidden_somehow", httpSt: 403},
		{name: "webhook 500", webhook: true, status: 500, body: "internal_error",
			errType: activities.ErrTypeTransient, retryable: true, code: "internal_error", httpSt: 500},
		{name: "webhook 200 not ok", webhook: true, status: 200, body: "<html>",
			errType: activities.ErrTypeTransient, retryable: true, httpSt: 502, malformed: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := slacktest.New(t, testToken, testChannel)
			cfg := slack.Config{BotToken: testToken, Channel: testChannel, APIURL: f.APIURL()}
			if tc.webhook {
				cfg = slack.Config{WebhookURL: f.WebhookURL()}
			}
			c, err := slack.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			f.FailNext(1, tc.status, tc.body, tc.header)
			_, err = c.Post(t.Context(), slack.Message{Text: "hello"}) // no metadata: one request
			var apiErr *slack.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %T %v, want *slack.APIError", err, err)
			}
			if apiErr.Code != tc.code || apiErr.HTTPStatus() != tc.httpSt || errors.Is(err, slack.ErrMalformedResponse) != tc.malformed {
				t.Errorf("err = %+v (HTTPStatus %d)", apiErr, apiErr.HTTPStatus())
			}
			var app *temporal.ApplicationError
			if !errors.As(activities.Classify(err), &app) || app.Type() != tc.errType || app.NonRetryable() == tc.retryable {
				t.Fatalf("Classify = %v", activities.Classify(err))
			}
			if tc.delay != 0 {
				if d := app.NextRetryDelay(); d < tc.delay-2*time.Second || d > tc.delay {
					t.Errorf("next retry delay %s, want %s", d, tc.delay)
				}
			}
			if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), f.URL()) {
				t.Errorf("the error leaks a credential or URL: %v", err)
			}
			if n := len(f.Requests()); n != 1 {
				t.Errorf("%d requests, want 1 (no redirect followed, no retry)", n)
			}
		})
	}
}

func TestFakeRefusalsAreMapped(t *testing.T) {
	f := slacktest.New(t, testToken, testChannel)
	wrongToken, err := slack.New(slack.Config{BotToken: "xoxb-wrong", Channel: testChannel, APIURL: f.APIURL()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrongToken.Post(t.Context(), slack.Message{Text: "x"}); !isClassified(err, activities.ErrTypeUpstream, false) ||
		strings.Contains(err.Error(), "xoxb-wrong") {
		t.Errorf("wrong token: %v", err)
	}
	wrongChannel, err := slack.New(slack.Config{BotToken: testToken, Channel: "C0OTHER", APIURL: f.APIURL()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = wrongChannel.Post(t.Context(), slack.ApprovalMessage(approvalInfo(slack.PhaseAwaitingApproval)))
	var apiErr *slack.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "channel_not_found" || !isClassified(err, activities.ErrTypeNotFound, false) {
		t.Errorf("unknown channel: %v", err)
	}
}

func TestNetworkErrorsAreRetriedAndRedacted(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	dead := srv.URL + "/services/T000/B000/SECRETPATH"
	srv.Close()
	c, err := slack.New(slack.Config{WebhookURL: dead})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Post(t.Context(), slack.Message{Text: "x"})
	var apiErr *slack.APIError
	if err == nil || errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want a network error", err)
	}
	if strings.Contains(err.Error(), "SECRETPATH") {
		t.Errorf("the webhook path leaks: %v", err)
	}
	if !isClassified(err, activities.ErrTypeTransient, true) {
		t.Errorf("Classify = %v", activities.Classify(err))
	}
}

func TestTimeoutApplies(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c, err := slack.New(slack.Config{WebhookURL: srv.URL + "/hooks/webhook", Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Post(t.Context(), slack.Message{Text: "x"})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("err = %v after %s", err, time.Since(start))
	}
}

func TestCorrelationIDReachesSlack(t *testing.T) {
	f, c := newBot(t)
	ctx := correlation.With(t.Context(), "corr-123")
	if _, err := c.Post(ctx, slack.ApprovalMessage(approvalInfo(slack.PhaseAwaitingApproval))); err != nil {
		t.Fatal(err)
	}
	reqs := f.Requests()
	if len(reqs) == 0 {
		t.Fatal("no requests")
	}
	for _, r := range reqs {
		if got := r.Header.Get(correlation.Header); got != "corr-123" {
			t.Errorf("%s: %s = %q", r.Path, correlation.Header, got)
		}
	}
}

// The guarded production client, trusting only the fake's host:port,
// carries the whole exchange.
func TestThroughTheOutboundGuard(t *testing.T) {
	f := slacktest.New(t, testToken, testChannel)
	h, err := outbound.TrustedHost(f.APIURL())
	if err != nil {
		t.Fatal(err)
	}
	hc := outbound.NewClient(outbound.Options{Policy: outbound.Policy{Trusted: []string{h}}, UserAgent: "remediator"})
	c, err := slack.New(slack.Config{BotToken: testToken, Channel: testChannel, APIURL: f.APIURL(), HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	ctx := correlation.With(t.Context(), "corr-guarded")
	ref, err := c.Post(ctx, slack.ApprovalMessage(approvalInfo(slack.PhaseAwaitingApproval)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Update(ctx, ref, slack.ApprovalMessage(approvalInfo("Expired"))); err != nil {
		t.Fatal(err)
	}
	if err := c.Respond(ctx, f.NewResponseURL(), slack.Message{Text: "done"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Requests() {
		if r.Header.Get(correlation.Header) != "corr-guarded" {
			t.Errorf("%s without the correlation id", r.Path)
		}
	}
}

// A reminder or escalation goes into the approval message's thread (and
// the channel) with a bot token, escaped: it can mention nobody.
func TestAnnounceInTheThread(t *testing.T) {
	f, c := newBot(t)
	ctx := t.Context()
	ref, err := c.Post(ctx, slack.ApprovalMessage(approvalInfo(slack.PhaseAwaitingApproval)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Announce(ctx, ref, "Reminder 1: rem-1 of <!channel> awaits approval", "<!subteam^S0ONCALL>"); err != nil {
		t.Fatal(err)
	}
	msgs := f.Messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want the request and one reply", len(msgs))
	}
	reply := msgs[1]
	if reply.ThreadTS != ref.TS || !reply.ReplyBroadcast || !strings.HasPrefix(reply.Text, "<!subteam^S0ONCALL> Reminder 1: ") {
		t.Fatalf("reply = %+v", reply)
	}
	if strings.Contains(reply.Text, "<!channel>") || slack.IsMention("<!channel> x") || !slack.IsMention("<@U012AB3CD>") {
		t.Fatalf("the announcement can mention the channel: %q", reply.Text)
	}
	if err := c.Announce(ctx, slack.MessageRef{Channel: testChannel, TS: "999.999"}, "x", ""); err == nil {
		t.Fatal("a reply to a message that does not exist must fail")
	}
}
