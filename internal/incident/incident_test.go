package incident_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"remediator/activities"
	"remediator/internal/correlation"
	"remediator/internal/incident"
	"remediator/internal/incident/incidenttest"
	"remediator/internal/outbound"
)

const secret = "s3cr3t-token"

func newClient(t *testing.T, fake *incidenttest.Server, token string) *incident.Client {
	t.Helper()
	c, err := incident.New(incident.Config{BaseURL: fake.URL(), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func apiErr(t *testing.T, err error) *incident.APIError {
	t.Helper()
	var ae *incident.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want *incident.APIError, got %T %v", err, err)
	}
	return ae
}

func body(t *testing.T, r incidenttest.Request) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("request body %q: %v", r.Body, err)
	}
	return m
}

func TestCreateIncidentIDReply(t *testing.T) {
	fake := incidenttest.New(t)
	c := newClient(t, fake, "")
	id, err := c.Create(context.Background(), incident.Incident{
		Title: "ci pipeline failure", Summary: "group/project", Severity: "SEV-2",
		Metadata: map[string]any{"pipeline_id": "77"}, IdempotencyKey: "rem-1",
	})
	if err != nil || id != "INC-1" {
		t.Fatalf("Create = %q, %v", id, err)
	}
	rec, ok := fake.Incident("INC-1")
	if !ok || rec.Title != "ci pipeline failure" || rec.Summary != "group/project" || rec.Severity != "SEV-2" || rec.Metadata["pipeline_id"] != "77" {
		t.Errorf("stored %+v", rec)
	}
	req := fake.Requests()[0]
	if req.Method != http.MethodPost || req.Path != "/api/incidents" {
		t.Errorf("sent %s %s", req.Method, req.Path)
	}
	if req.Header.Get("Idempotency-Key") != "rem-1" || req.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", req.Header)
	}
	if got := body(t, req); len(got) != 4 || got["severity"] != "SEV-2" {
		t.Errorf("body %v, want exactly title, summary, severity, metadata", got)
	}
}

func TestCreateDefaultsSeverityAndMetadata(t *testing.T) {
	fake := incidenttest.New(t)
	if _, err := newClient(t, fake, "").Create(context.Background(), incident.Incident{Title: "t"}); err != nil {
		t.Fatal(err)
	}
	got := body(t, fake.Requests()[0])
	if got["severity"] != "SEV-3" {
		t.Errorf("severity %v, want SEV-3", got["severity"])
	}
	if m, ok := got["metadata"].(map[string]any); !ok || len(m) != 0 {
		t.Errorf("metadata %#v, want {}", got["metadata"])
	}
}

func TestCreateIDReplyShapes(t *testing.T) {
	fake := incidenttest.New(t)
	fake.IDField("id")
	c := newClient(t, fake, "")
	if id, err := c.Create(context.Background(), incident.Incident{Title: "t"}); err != nil || id != "INC-1" {
		t.Fatalf("id field: %q, %v", id, err)
	}
	for reply, want := range map[string]string{
		`{"id": 42}`:                              "42",
		`{"incident_id": 7, "status":"created"}`:  "7",
		`{"id": "abc-9"}`:                         "abc-9",
		`{"incident_id": "", "id": "x1"}`:         "x1",
		`{"incident_id": null, "id": 12}`:         "12",
		`{"incident_id": "INC:5", "id": "other"}`: "INC:5",
	} {
		fake.FailNext(1, 201, reply, nil)
		if id, err := c.Create(context.Background(), incident.Incident{Title: "t"}); err != nil || id != want {
			t.Errorf("%s: Create = %q, %v; want %q", reply, id, err, want)
		}
	}
}

func TestCreateNeverInventsAnID(t *testing.T) {
	fake := incidenttest.New(t)
	c := newClient(t, fake, "")
	for reply, want := range map[string]error{
		`{}`:                         incident.ErrNoID,
		`{"status":"created"}`:       incident.ErrNoID,
		`{"incident_id": ""}`:        incident.ErrNoID,
		`{"incident_id": "   "}`:     incident.ErrNoID,
		`{"incident_id": "pending"}`: incident.ErrNoID,
		`{"id": "PENDING"}`:          incident.ErrNoID,
		`{"id": null}`:               incident.ErrNoID,
		`{"incident_id": "a/b"}`:     incident.ErrInvalidID,
		`{"incident_id": ".."}`:      incident.ErrInvalidID,
		`{"id": 1.5}`:                incident.ErrInvalidID,
		`{"id": -3}`:                 incident.ErrInvalidID,
		`{"id": true}`:               incident.ErrInvalidID,
		`{"id": "` + strings.Repeat("a", 129) + `"}`: incident.ErrInvalidID,
		`[{"incident_id": "INC-1"}]`:                 incident.ErrMalformedResponse,
		`null`:                                       incident.ErrMalformedResponse,
	} {
		fake.FailNext(1, 200, reply, nil)
		id, err := c.Create(context.Background(), incident.Incident{Title: "t"})
		if id != "" || !errors.Is(err, want) {
			t.Errorf("%.40s: Create = %q, %v; want %v", reply, id, err, want)
			continue
		}
		if ae := apiErr(t, err); ae.Status != http.StatusBadGateway {
			t.Errorf("%.40s: status %d, want 502 (retried)", reply, ae.Status)
		}
		assertRetryable(t, err)
	}
}

func TestUpdate(t *testing.T) {
	fake := incidenttest.New(t)
	c := newClient(t, fake, "")
	ctx := context.Background()
	id, err := c.Create(ctx, incident.Incident{Title: "t", Summary: "first", Metadata: map[string]any{"a": "1", "b": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Update(ctx, id, incident.Update{Status: "mitigated", Metadata: map[string]any{"b": "3", "decision_id": "d-1"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Update(ctx, id, incident.Update{Summary: "fixed", Status: "resolved"}); err != nil {
		t.Fatal(err)
	}
	reqs := fake.Requests()
	if reqs[1].Method != http.MethodPut || reqs[1].Path != "/api/incidents/INC-1" {
		t.Errorf("sent %s %s", reqs[1].Method, reqs[1].Path)
	}
	first := body(t, reqs[1])
	if _, has := first["summary"]; has || first["status"] != "mitigated" || first["metadata"].(map[string]any)["decision_id"] != "d-1" {
		t.Errorf("first update body %v", first)
	}
	if m, ok := body(t, reqs[2])["metadata"].(map[string]any); !ok || len(m) != 0 {
		t.Errorf("nil metadata sent as %#v, want {}", body(t, reqs[2])["metadata"])
	}
	rec, _ := fake.Incident(id)
	if rec.Summary != "fixed" || rec.Status != "resolved" || len(rec.Updates) != 2 {
		t.Errorf("record %+v", rec)
	}
	if rec.Metadata["a"] != "1" || rec.Metadata["b"] != "3" || rec.Metadata["decision_id"] != "d-1" {
		t.Errorf("metadata %v", rec.Metadata)
	}
}

func TestUpdateEscapesID(t *testing.T) {
	fake := incidenttest.New(t)
	fake.FailNext(1, 204, "", nil)
	if err := newClient(t, fake, "").Update(context.Background(), "ns:INC.1_x-2", incident.Update{}); err != nil {
		t.Fatal(err)
	}
	if p := fake.Requests()[0].Path; p != "/api/incidents/ns:INC.1_x-2" {
		t.Errorf("path %q", p)
	}
}

func TestUpdateRefusesUnsafeIDs(t *testing.T) {
	fake := incidenttest.New(t)
	c := newClient(t, fake, "")
	for _, id := range []string{"", "a/b", "../admin", "..", ".", "INC 1", "INC-1?x=1", "INC%2F1", "é", strings.Repeat("a", 129)} {
		err := c.Update(context.Background(), id, incident.Update{})
		if !errors.Is(err, incident.ErrInvalidID) {
			t.Errorf("Update(%q) = %v, want ErrInvalidID", id, err)
			continue
		}
		assertNonRetryable(t, err, activities.ErrTypeUpstream)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("%d requests sent for refused ids", n)
	}
}

func TestCreateRefusesBadInput(t *testing.T) {
	fake := incidenttest.New(t)
	c := newClient(t, fake, "")
	for _, in := range []incident.Incident{
		{Title: " "},
		{Title: "t", Severity: "SEV-5"},
		{Title: "t", Severity: "critical"},
		{Title: "t", Metadata: map[string]any{"ch": make(chan int)}},
	} {
		_, err := c.Create(context.Background(), in)
		if !errors.Is(err, incident.ErrInvalidRequest) {
			t.Errorf("Create(%+v) = %v, want ErrInvalidRequest", in, err)
		}
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("%d requests sent for refused input", n)
	}
}

func TestErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		body       string
		header     http.Header
		wantStatus int
		wantCode   string
		wantMsg    string
		wantErr    error
		// classification
		nonRetryable string // the type, when permanent
		throttled    time.Duration
	}{
		{name: "401", status: 401, body: `{"detail":"Not authenticated"}`, wantStatus: 401, wantMsg: "Not authenticated", nonRetryable: activities.ErrTypeUpstream},
		{name: "403 with code", status: 403, body: `{"error":"forbidden","message":"no access"}`, wantStatus: 403, wantCode: "forbidden", wantMsg: "no access", nonRetryable: activities.ErrTypeUpstream},
		{name: "404", status: 404, body: `{"detail":"incident not found"}`, wantStatus: 404, nonRetryable: activities.ErrTypeNotFound},
		{name: "422 list", status: 422, body: `{"detail":[{"loc":["body","title"],"msg":"field required"}]}`, wantStatus: 422, wantMsg: "field required", nonRetryable: activities.ErrTypeUpstream},
		{name: "429 seconds", status: 429, body: `{"error":"Rate limit exceeded: 50 per 1 hour"}`, header: http.Header{"Retry-After": {"7"}}, wantStatus: 429, wantMsg: "Rate limit exceeded: 50 per 1 hour", throttled: 7 * time.Second},
		{name: "503 capped", status: 503, body: ``, header: http.Header{"Retry-After": {"999999"}}, wantStatus: 503, throttled: time.Hour},
		{name: "500", status: 500, body: `Internal Server Error`, wantStatus: 500, wantErr: incident.ErrMalformedResponse},
		{name: "html 502", status: 502, body: `<html><body><h1>502 Bad Gateway</h1></body></html>`, wantStatus: 502, wantMsg: "Bad Gateway", wantErr: incident.ErrMalformedResponse},
		{name: "200 not json", status: 200, body: `<html>ok</html>`, wantStatus: 502, wantErr: incident.ErrMalformedResponse},
		{name: "200 empty", status: 200, body: ``, wantStatus: 502, wantErr: incident.ErrMalformedResponse},
		{name: "200 over the cap", status: 200, body: `{"incident_id":"INC-1","pad":"` + strings.Repeat("x", 1<<20) + `"}`, wantStatus: 502, wantErr: incident.ErrMalformedResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := incidenttest.New(t)
			fake.FailNext(1, tc.status, tc.body, tc.header)
			id, err := newClient(t, fake, "").Create(context.Background(), incident.Incident{Title: "t"})
			if id != "" {
				t.Errorf("id %q returned with an error", id)
			}
			ae := apiErr(t, err)
			if ae.Op != "create" || ae.Status != tc.wantStatus || ae.Code != tc.wantCode {
				t.Errorf("got op %q status %d code %q; want create %d %q", ae.Op, ae.Status, ae.Code, tc.wantStatus, tc.wantCode)
			}
			if tc.wantMsg != "" && !strings.Contains(ae.Message, tc.wantMsg) {
				t.Errorf("message %q, want it to contain %q", ae.Message, tc.wantMsg)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err %v, want %v", err, tc.wantErr)
			}
			switch {
			case tc.nonRetryable != "":
				assertNonRetryable(t, err, tc.nonRetryable)
			case tc.throttled != 0:
				var app *temporal.ApplicationError
				if !errors.As(activities.Classify(err), &app) || app.NonRetryable() || app.NextRetryDelay() != tc.throttled {
					t.Errorf("Classify = %v, want retry after %s", app, tc.throttled)
				}
			default:
				assertRetryable(t, err)
			}
		})
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	fake := incidenttest.New(t)
	at := time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat)
	fake.FailNext(1, 429, `{}`, http.Header{"Retry-After": {at}})
	ae := apiErr(t, newClient(t, fake, "").Update(context.Background(), "INC-1", incident.Update{}))
	if ae.RetryAfter < time.Minute || ae.RetryAfter > 2*time.Minute {
		t.Errorf("RetryAfter %s, want about 2m", ae.RetryAfter)
	}
	far := time.Now().Add(48 * time.Hour).UTC().Format(http.TimeFormat)
	fake.FailNext(1, 503, `{}`, http.Header{"Retry-After": {far}})
	if ae := apiErr(t, newClient(t, fake, "").Update(context.Background(), "INC-1", incident.Update{})); ae.RetryAfter != time.Hour {
		t.Errorf("RetryAfter %s for a date two days away, want the 1h cap", ae.RetryAfter)
	}
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	fake.FailNext(1, 503, `{}`, http.Header{"Retry-After": {past}})
	if ae := apiErr(t, newClient(t, fake, "").Update(context.Background(), "INC-1", incident.Update{})); ae.RetryAfter != 0 {
		t.Errorf("RetryAfter %s for a past date, want 0", ae.RetryAfter)
	}
}

func TestTokenHeader(t *testing.T) {
	fake := incidenttest.New(t)
	fake.RequireToken(secret)
	if _, err := newClient(t, fake, secret).Create(context.Background(), incident.Incident{Title: "t"}); err != nil {
		t.Fatal(err)
	}
	_, err := newClient(t, fake, "").Create(context.Background(), incident.Incident{Title: "t"})
	if ae := apiErr(t, err); ae.Status != 401 {
		t.Errorf("without token: %v", err)
	}
	reqs := fake.Requests()
	if got := reqs[0].Header.Get("Authorization"); got != "Bearer "+secret {
		t.Errorf("Authorization %q", got)
	}
	if _, has := reqs[1].Header["Authorization"]; has {
		t.Errorf("unconfigured client sent Authorization %q", reqs[1].Header.Get("Authorization"))
	}
}

func TestTokenNeverInErrors(t *testing.T) {
	fake := incidenttest.New(t)
	fake.FailNext(1, 401, `{"error":"bad `+secret+`","detail":"token `+secret+` rejected"}`, nil)
	_, err := newClient(t, fake, secret).Create(context.Background(), incident.Incident{Title: "t"})
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("error %v carries the token", err)
	}
	if !strings.Contains(err.Error(), "[REDACTED]") {
		t.Errorf("error %v lost the message", err)
	}
}

func TestCorrelationIDReachesTheAPI(t *testing.T) {
	fake := incidenttest.New(t)
	ctx := correlation.With(context.Background(), "corr-123")
	// The default client (no HTTPClient configured) ...
	if _, err := newClient(t, fake, "").Create(ctx, incident.Incident{Title: "t"}); err != nil {
		t.Fatal(err)
	}
	// ... and the production guarded client both carry it.
	u, _ := url.Parse(fake.URL())
	guarded := outbound.NewClient(outbound.Options{Policy: outbound.Policy{Trusted: []string{u.Host}}})
	c, err := incident.New(incident.Config{BaseURL: fake.URL(), HTTPClient: guarded})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Update(ctx, "INC-1", incident.Update{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range fake.Requests() {
		if got := r.Header.Get(correlation.Header); got != "corr-123" {
			t.Errorf("%s %s: %s = %q", r.Method, r.Path, correlation.Header, got)
		}
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c, err := incident.New(incident.Config{BaseURL: srv.URL + "/api/incidents", Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Create(context.Background(), incident.Incident{Title: "t"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want a deadline", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("timeout not applied: took %s", time.Since(start))
	}
	assertRetryable(t, err)
}

func TestNetworkErrorIsWrappedAndRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := incident.New(incident.Config{BaseURL: "http://" + addr + "/api/incidents"})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Update(context.Background(), "INC-1", incident.Update{})
	var ae *incident.APIError
	var opErr *net.OpError
	if err == nil || errors.As(err, &ae) || !errors.As(err, &opErr) {
		t.Fatalf("err %T %v, want a wrapped network error", err, err)
	}
	assertRetryable(t, err)
}

func TestNewValidatesBaseURL(t *testing.T) {
	for _, base := range []string{
		"", "example.com/api", "ftp://example.com/api", "http://", "https:///api",
		"https://user:hunter2@example.com/api", "https://example.com/api?x=1", "https://example.com/api?",
		"https://example.com/api#frag", "https://example.com/api#", "mailto:ops@example.com", "https://exa mple.com/",
	} {
		_, err := incident.New(incident.Config{BaseURL: base})
		if !errors.Is(err, incident.ErrInvalidConfig) {
			t.Errorf("New(%q) = %v, want ErrInvalidConfig", base, err)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error %v echoes the URL's password", err)
		}
	}
	for _, tok := range []string{"a b", "tok\r\nX-Evil: 1", "tök"} {
		if _, err := incident.New(incident.Config{BaseURL: "https://example.com/api/incidents", Token: tok}); !errors.Is(err, incident.ErrInvalidConfig) {
			t.Errorf("token %q accepted", tok)
		}
	}
	if _, err := incident.New(incident.Config{BaseURL: "http://127.0.0.1:8080/api/incidents/", Token: "abc"}); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

func TestTrailingSlashInBase(t *testing.T) {
	fake := incidenttest.New(t)
	c, err := incident.New(incident.Config{BaseURL: fake.URL() + "/"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Update(context.Background(), "INC-1", incident.Update{}); err == nil || apiErr(t, err).Status != 404 {
		t.Fatalf("update of unknown incident: %v", err)
	}
	if p := fake.Requests()[0].Path; p != "/api/incidents/INC-1" {
		t.Errorf("path %q", p)
	}
}

func assertRetryable(t *testing.T, err error) {
	t.Helper()
	var app *temporal.ApplicationError
	if !errors.As(activities.Classify(err), &app) || app.NonRetryable() {
		t.Errorf("Classify(%v) = %v, want retryable", err, app)
	}
}

func assertNonRetryable(t *testing.T, err error, typ string) {
	t.Helper()
	var app *temporal.ApplicationError
	if !errors.As(activities.Classify(err), &app) || !app.NonRetryable() || app.Type() != typ {
		t.Errorf("Classify(%v) = %v, want non-retryable %s", err, app, typ)
	}
}
