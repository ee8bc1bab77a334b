package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/ulule/limiter/v3"

	"remediator/internal/auth"
	"remediator/internal/ratelimit"
)

func limitedHandler(t *testing.T, orch *fakeOrch, store *ratelimit.Store, rules map[string]limiter.Rate, proxies []string) http.Handler {
	return limitedHandlerWithMetrics(t, orch, store, rules, proxies, nil)
}

func limitedHandlerWithMetrics(t *testing.T, orch *fakeOrch, store *ratelimit.Store, rules map[string]limiter.Rate, proxies []string, reg *prometheus.Registry) http.Handler {
	t.Helper()
	lim, err := ratelimit.New(store, rules, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Auth: testAuth(t), Limiter: lim, LimitStore: store, TrustedProxies: proxies, MaxBodyBytes: 4096, Repos: testRepos()}
	if reg != nil {
		opts.Registerer = reg
		opts.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	}
	return NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), orch, opts)
}

func TestRateLimitCountersPerRoute(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := limitedHandlerWithMetrics(t, &fakeOrch{}, memStore(t), rules(t, "approvals=1-H"), nil, reg)
	do(t, h, "POST", "/api/remediations/rem-1/approve", approverTok, validVote)
	do(t, h, "POST", "/api/remediations/rem-1/approve", approverTok, validVote)
	do(t, h, "GET", "/api/remediations", approverTok, "")
	rec, _ := do(t, h, "GET", "/metrics", "", "")
	body := rec.Body.String()
	for _, want := range []string{
		`remediator_http_ratelimit_total{method="POST",outcome="allowed",route="/api/remediations/:id/approve"} 1`,
		`remediator_http_ratelimit_total{method="POST",outcome="limited",route="/api/remediations/:id/approve"} 1`,
		`remediator_http_ratelimit_total{method="GET",outcome="allowed",route="/api/remediations"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func rules(t *testing.T, spec string) map[string]limiter.Rate {
	t.Helper()
	r, err := ratelimit.ParseRules(spec, ratelimit.DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func memStore(t *testing.T) *ratelimit.Store {
	s, err := ratelimit.NewStore("", "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRateLimitAnswers429WithRetryAfter(t *testing.T) {
	h := limitedHandler(t, &fakeOrch{}, memStore(t), rules(t, "approvals=3-H"), nil)
	for i := 0; i < 3; i++ {
		rec, _ := do(t, h, "POST", "/api/remediations/rem-1/approve", approverTok, validVote)
		if rec.Code != 200 || rec.Header().Get("X-RateLimit-Limit") != "3" {
			t.Fatalf("request %d: %d %v", i+1, rec.Code, rec.Header())
		}
	}
	rec, eb := do(t, h, "POST", "/api/remediations/rem-1/approve", approverTok, validVote)
	if rec.Code != 429 || eb.Error != "rate_limited" || rec.Header().Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("limit+1: %d %s", rec.Code, rec.Body)
	}
	if ra, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || ra < 1 || ra > 3600 {
		t.Fatalf("Retry-After: %q", rec.Header().Get("Retry-After"))
	}
	// The budget is per principal: another approver is not affected.
	if rec, _ := do(t, h, "POST", "/api/remediations/rem-1/approve", adminTok, validVote); rec.Code != 200 {
		t.Fatalf("another principal: %d", rec.Code)
	}
}

// authReq is a GET /api/remediations from ip with token (and an optional
// X-Forwarded-For).
func authReq(ip, token, xff string) *http.Request {
	req := httptest.NewRequest("GET", "/api/remediations", nil)
	req.RemoteAddr = ip + ":40000"
	req.Header.Set("Authorization", "Bearer "+token)
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	return req
}

const badTok = "not-a-valid-token-0123456789"

func TestFailedAuthenticationIsLimitedPerClientIP(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := limitedHandlerWithMetrics(t, &fakeOrch{}, memStore(t), rules(t, "auth_failures=3-M"), nil, reg)
	for i := range 3 {
		// The peer is not a trusted proxy: a rotating X-Forwarded-For does not buy a new budget.
		if rec := serve(t, h, authReq("203.0.113.5", badTok, fmt.Sprintf("10.9.0.%d", i))); rec.Code != 401 {
			t.Fatalf("bad token %d: want 401, got %d %s", i+1, rec.Code, rec.Body)
		}
	}
	for _, tok := range []string{approverTok, badTok} {
		rec := serve(t, h, authReq("203.0.113.5", tok, ""))
		var eb errorBody
		_ = json.Unmarshal(rec.Body.Bytes(), &eb)
		if rec.Code != 429 || eb.Error != "rate_limited" {
			t.Fatalf("after the budget, even a valid token answers 429 (credential not looked at): got %d %s", rec.Code, rec.Body)
		}
		if ra, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
			t.Fatalf("Retry-After: %q", rec.Header().Get("Retry-After"))
		}
		if rec.Header().Get("X-RateLimit-Limit") != "3" || rec.Header().Get("X-RateLimit-Remaining") != "0" {
			t.Fatalf("limit headers: %v", rec.Header())
		}
	}
	if rec := serve(t, h, authReq("203.0.113.6", approverTok, "")); rec.Code != 200 {
		t.Fatalf("another client IP is not affected: %d %s", rec.Code, rec.Body)
	}
	if rec := serve(t, h, authReq("203.0.113.6", badTok, "")); rec.Code != 401 {
		t.Fatalf("another client IP has its own budget: %d %s", rec.Code, rec.Body)
	}
	// Public routes do not authenticate, so they are not affected either.
	if rec := serve(t, h, httptest.NewRequest("GET", "/health", nil)); rec.Code != 200 {
		t.Fatalf("/health: %d", rec.Code)
	}
	metrics := serve(t, h, httptest.NewRequest("GET", "/metrics", nil)).Body.String()
	if want := `remediator_http_ratelimit_total{method="GET",outcome="limited",route="/api/remediations"} 2`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}

	// Good credentials alone never count.
	h = limitedHandler(t, &fakeOrch{}, memStore(t), rules(t, "auth_failures=3-M"), nil)
	for i := range 20 {
		if rec := serve(t, h, authReq("203.0.113.7", approverTok, "")); rec.Code != 200 {
			t.Fatalf("valid request %d: %d %s", i+1, rec.Code, rec.Body)
		}
	}
}

func TestTrustedProxyKeysFailedAuthenticationOnTheRealClient(t *testing.T) {
	h := limitedHandler(t, &fakeOrch{}, memStore(t), rules(t, "auth_failures=1-M"), []string{"127.0.0.1"})
	serve(t, h, authReq("127.0.0.1", badTok, "198.51.100.1"))
	if rec := serve(t, h, authReq("127.0.0.1", approverTok, "198.51.100.1")); rec.Code != 429 {
		t.Fatalf("the client behind the proxy spent its budget: %d", rec.Code)
	}
	if rec := serve(t, h, authReq("127.0.0.1", approverTok, "198.51.100.2")); rec.Code != 200 {
		t.Fatalf("another client behind the same proxy: %d %s", rec.Code, rec.Body)
	}
}

func webhookReq(body, ip, xff string) *http.Request {
	req := httptest.NewRequest("POST", "/webhooks/slack", strings.NewReader(body))
	req.RemoteAddr = ip + ":40000"
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	return req
}

func TestRotatingForwardedForFromUntrustedPeerShareOneBudget(t *testing.T) {
	h := limitedHandler(t, &fakeOrch{}, memStore(t), rules(t, "webhooks=5-M"), nil)
	passed := 0
	for i := 0; i < 100; i++ {
		rec := serve(t, h, webhookReq("x", "203.0.113.7", fmt.Sprintf("10.0.%d.%d", i/250, i%250)))
		if rec.Code != 429 {
			passed++
		}
	}
	if passed != 5 {
		t.Fatalf("spoofed X-Forwarded-For from an untrusted peer let %d of 100 through a 5/min limit", passed)
	}
}

func TestTrustedProxyKeysTheRealClient(t *testing.T) {
	h := limitedHandler(t, &fakeOrch{}, memStore(t), rules(t, "webhooks=2-M"), []string{"127.0.0.1"})
	status := func(xff string) int {
		return serve(t, h, webhookReq("x", "127.0.0.1", xff)).Code
	}
	for i := 0; i < 2; i++ {
		if status("198.51.100.1") == 429 {
			t.Fatal("first client limited too early")
		}
	}
	if status("198.51.100.1") != 429 {
		t.Fatal("the real client behind the proxy must be limited")
	}
	if status("198.51.100.2") == 429 {
		t.Fatal("another client behind the same proxy has its own budget")
	}
}

func redisURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("REDIS_URL")
	if u == "" {
		u = "redis://127.0.0.1:6379/0"
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("REDIS NOT REACHABLE at %s (required under CI=true): %v", opt.Addr, err)
		}
		t.Skipf("REDIS NOT REACHABLE at %s: skipping the shared-budget test (%v)", opt.Addr, err)
	}
	return u
}

func TestTwoReplicasSharingRedisShareOneBudget(t *testing.T) {
	u := redisURL(t)
	replica := redisReplicas(t, u, "generate=4-H")
	a, b := replica(), replica()
	allowed := 0
	for i := 0; i < 6; i++ {
		h := a
		if i%2 == 1 {
			h = b
		}
		if rec, _ := do(t, h, "POST", "/api/remediations", devTok, validStart); rec.Code == 202 {
			allowed++
		} else if rec.Code != 429 {
			t.Fatalf("unexpected %d %s", rec.Code, rec.Body)
		}
	}
	if allowed != 4 {
		t.Fatalf("two replicas on one Redis must share one budget of 4, allowed %d", allowed)
	}
}

func TestFailedAuthenticationBudgetIsSharedThroughRedis(t *testing.T) {
	u := redisURL(t)
	replica := redisReplicas(t, u, "auth_failures=4-M")
	a, b := replica(), replica()
	for i := range 4 {
		h := a
		if i%2 == 1 {
			h = b
		}
		if rec := serve(t, h, authReq("203.0.113.9", badTok, "")); rec.Code != 401 {
			t.Fatalf("bad token %d: %d %s", i+1, rec.Code, rec.Body)
		}
	}
	for _, h := range []http.Handler{a, b} {
		if rec := serve(t, h, authReq("203.0.113.9", approverTok, "")); rec.Code != 429 || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("both replicas see the spent budget: %d %s", rec.Code, rec.Body)
		}
	}
	if rec := serve(t, a, authReq("203.0.113.10", approverTok, "")); rec.Code != 200 {
		t.Fatalf("another IP: %d %s", rec.Code, rec.Body)
	}
}

func TestWritesFailClosedWhenRedisIsDown(t *testing.T) {
	s, err := ratelimit.NewStore("redis://127.0.0.1:1/0", "x")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := limitedHandler(t, &fakeOrch{}, s, rules(t, ""), nil)
	rec, eb := do(t, h, "POST", "/api/remediations", devTok, validStart)
	if rec.Code != 503 || eb.Error != "rate_limit_unavailable" {
		t.Fatalf("a write without a working limiter must be refused: %d %s", rec.Code, rec.Body)
	}
	if rec, _ := do(t, h, "GET", "/readyz", "", ""); rec.Code != 503 || !strings.Contains(rec.Body.String(), "rate_limit_store") {
		t.Fatalf("readyz must report the store: %d %s", rec.Code, rec.Body)
	}
	// The failed-authentication budget fails the same way: writes closed, reads open.
	if rec, eb := do(t, h, "POST", "/api/remediations", badTok, validStart); rec.Code != 503 || eb.Error != "rate_limit_unavailable" {
		t.Fatalf("a write with a bad token while the store is down: %d %s", rec.Code, rec.Body)
	}
	if rec, eb := do(t, h, "GET", "/api/remediations", badTok, ""); rec.Code != 401 || eb.Error != "invalid_token" {
		t.Fatalf("a read with a bad token while the store is down is still judged: %d %s", rec.Code, rec.Body)
	}
	if rec, _ := do(t, h, "GET", "/api/remediations", approverTok, ""); rec.Code != 200 {
		t.Fatalf("a read with a good token while the store is down passes: %d %s", rec.Code, rec.Body)
	}
}

func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func githubHandler(t *testing.T, orch *fakeOrch, secret string) http.Handler {
	return NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), orch, Options{Auth: testAuth(t), GitHubSecret: []byte(secret), SlackSecret: []byte(secret), Repos: testRepos()})
}

func postGitHub(t *testing.T, h http.Handler, event, delivery, sig, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", "/webhooks/github", strings.NewReader(body))
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	if sig != "" {
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	return serve(t, h, req)
}

const failedRun = `{"action":"completed","repository":{"full_name":"acme/api"},"workflow_run":{"id":42,"name":"CI","conclusion":"failure","head_branch":"main","head_sha":"0123456789abcdef0123456789abcdef01234567","html_url":"https://example.invalid/run/42"}}`

func TestGitHubWebhookIsVerifiedAndFailsClosed(t *testing.T) {
	orch := &fakeOrch{}
	h := githubHandler(t, orch, "s3cret")
	if rec := postGitHub(t, h, "workflow_run", "d-1", "", failedRun); rec.Code != 401 {
		t.Fatalf("missing signature: %d", rec.Code)
	}
	if rec := postGitHub(t, h, "workflow_run", "d-1", sign("wrong", failedRun), failedRun); rec.Code != 401 {
		t.Fatalf("wrong signature: %d", rec.Code)
	}
	if rec := postGitHub(t, h, "workflow_run", "d-1", sign("s3cret", failedRun), failedRun+" "); rec.Code != 401 {
		t.Fatalf("a body that differs from the signed bytes: %d", rec.Code)
	}
	unset := githubHandler(t, orch, "")
	if rec := postGitHub(t, unset, "workflow_run", "d-1", sign("", failedRun), failedRun); rec.Code != 401 || !strings.Contains(rec.Body.String(), "webhook_not_configured") {
		t.Fatalf("no secret configured must reject every delivery: %d %s", rec.Code, rec.Body)
	}
	if len(orch.started) != 0 {
		t.Fatal("rejected deliveries must have no effect")
	}
	if rec := postGitHub(t, h, "ping", "d-0", sign("s3cret", `{"zen":"hi"}`), `{"zen":"hi"}`); rec.Code != 200 || !strings.Contains(rec.Body.String(), "pong") {
		t.Fatalf("ping: %d %s", rec.Code, rec.Body)
	}
	rec := postGitHub(t, h, "workflow_run", "d-1", sign("s3cret", failedRun), failedRun)
	if rec.Code != 202 || len(orch.started) != 1 {
		t.Fatalf("signed failure: %d %s", rec.Code, rec.Body)
	}
	st := orch.started[0]
	const fp = "acme/api@0123456789abcdef0123456789abcdef01234567/workflow:0"
	if st.Repo != "acme/api" || st.Requester != "webhook:github" || st.IdempotencyKey != "github:"+fp ||
		st.Fingerprint != fp || st.Generation != 1 || st.CIRun == nil || st.CIRun.RunID != 42 || st.CIRun.Attempt != 1 {
		t.Fatalf("start keyed on the source event: %+v", st)
	}
	ok := `{"action":"completed","repository":{"full_name":"acme/api"},"workflow_run":{"id":43,"conclusion":"success","head_sha":"0123456789abcdef0123456789abcdef01234567"}}`
	if rec := postGitHub(t, h, "workflow_run", "d-2", sign("s3cret", ok), ok); rec.Code != 202 || !strings.Contains(rec.Body.String(), "ignored") || len(orch.started) != 1 {
		t.Fatalf("a success is ignored: %d %s", rec.Code, rec.Body)
	}
}

func TestGitHubDeliveryTextIsMadeSafe(t *testing.T) {
	orch := &fakeOrch{}
	h := githubHandler(t, orch, "s3cret")
	sha := "0123456789abcdef0123456789abcdef01234567"
	run := func(name, branch string) string {
		b, _ := json.Marshal(map[string]any{"action": "completed", "repository": map[string]string{"full_name": "acme/api"},
			"workflow_run": map[string]any{"id": 7, "name": name, "conclusion": "failure", "head_branch": branch, "head_sha": sha,
				"html_url": "https://example.invalid/run/7"}})
		return string(b)
	}
	// A workflow name with control characters: the composed summary is one clean line.
	body := run("CI\x00\n\x1b[2J\u0085 lint", "main")
	if rec := postGitHub(t, h, "workflow_run", "d-10", sign("s3cret", body), body); rec.Code != 202 || len(orch.started) != 1 {
		t.Fatalf("a delivery with a messy workflow name: %d %s", rec.Code, rec.Body)
	}
	if got := orch.started[0].FailureSummary; got != "GitHub workflow CI [2J lint failed on main" || textProblem(got, singleLine) != "" {
		t.Fatalf("summary: %q", got)
	}
	// A branch that is not a usable ref name is refused, not passed on.
	for _, branch := range []string{"ma\x00in", "ma\u0085in", "ma\nin"} {
		body := run("CI", branch)
		rec := postGitHub(t, h, "workflow_run", "d-11", sign("s3cret", body), body)
		if rec.Code != 422 || !strings.Contains(rec.Body.String(), `"ref"`) {
			t.Errorf("branch %q: want 422 naming ref, got %d %s", branch, rec.Code, rec.Body)
		}
	}
	if len(orch.started) != 1 {
		t.Fatalf("no workflow may start with control characters: %+v", orch.started[1:])
	}
	// The name alone cannot push the summary over its limit.
	body = run(strings.Repeat("n", 2000), "main")
	if rec := postGitHub(t, h, "workflow_run", "d-12", sign("s3cret", body), body); rec.Code != 202 || len(orch.started[1].FailureSummary) > maxSummaryLen {
		t.Fatalf("a long workflow name: %d %s", rec.Code, rec.Body)
	}
}

func slackReq(secret, body string, ts time.Time) *http.Request {
	stamp := strconv.FormatInt(ts.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("v0:" + stamp + ":" + body))
	req := httptest.NewRequest("POST", "/webhooks/slack", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", stamp)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(m.Sum(nil)))
	return req
}

func TestSlackSignatureWindow(t *testing.T) {
	h := githubHandler(t, &fakeOrch{}, "slack-secret")
	body := "payload=" + url.QueryEscape(`{"type":"block_actions"}`)
	for name, tc := range map[string]struct {
		req  *http.Request
		want int
	}{
		"fresh":           {slackReq("slack-secret", body, time.Now()), 200},
		"six minutes old": {slackReq("slack-secret", body, time.Now().Add(-6*time.Minute)), 401},
		"wrong secret":    {slackReq("other", body, time.Now()), 401},
	} {
		rec := serve(t, h, tc.req)
		if rec.Code != tc.want {
			t.Errorf("%s: want %d, got %d %s", name, tc.want, rec.Code, rec.Body)
		}
	}
	rec := serve(t, githubHandler(t, &fakeOrch{}, ""), slackReq("", body, time.Now()))
	if rec.Code != 401 {
		t.Fatalf("no signing secret must reject: %d", rec.Code)
	}
}

func TestJWTPrincipalThroughTheAPI(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	v, err := auth.NewJWTVerifier(context.Background(), auth.JWTConfig{HS256Secret: secret, Issuer: "idp", Audience: "remediator"})
	if err != nil {
		t.Fatal(err)
	}
	orch := &fakeOrch{}
	h := NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), orch, Options{Auth: &auth.Authenticator{JWT: v}, Repos: testRepos()})
	mint := func(claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := mint(jwt.MapClaims{"sub": "erin", "iss": "idp", "aud": "remediator", "exp": time.Now().Add(time.Hour).Unix(),
		"iat": time.Now().Unix(), "roles": []string{"approver"}, "repos": []string{"acme/*"}})
	if rec, _ := do(t, h, "POST", "/api/remediations/rem-1/approve", good, validVote); rec.Code != 200 || orch.votes[0].Actor != "erin" {
		t.Fatalf("valid JWT: %d %s", rec.Code, rec.Body)
	}
	if rec, _ := do(t, h, "POST", "/api/remediations/rem-other/approve", good, validVote); rec.Code != 404 {
		t.Fatalf("JWT repos claim scopes access: %d", rec.Code)
	}
	expired := mint(jwt.MapClaims{"sub": "erin", "iss": "idp", "aud": "remediator", "exp": time.Now().Add(-time.Hour).Unix(), "roles": []string{"approver"}})
	rec, eb := do(t, h, "GET", "/api/remediations", expired, "")
	if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") == "" || strings.Contains(rec.Body.String(), "expired by") {
		t.Fatalf("expired JWT: %d %s (%+v)", rec.Code, rec.Body, eb)
	}
}

func slackActionBody(user, actionID, value string) string {
	payload := fmt.Sprintf(`{"type":"block_actions","user":{"id":%q},"actions":[{"action_id":%q,"value":%q}]}`, user, actionID, value)
	return "payload=" + url.QueryEscape(payload)
}

func TestSlackButtonsVoteAsTheLinkedPrincipal(t *testing.T) {
	orch := &fakeOrch{}
	h := NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), orch, Options{
		Auth: testAuth(t), SlackSecret: []byte("slack-secret"),
		SlackUsers: map[string]auth.Principal{
			"U0ALICE": {Subject: "alice", Roles: []string{"approver"}, Repos: []string{"acme/*"}},
			"U0DEV":   {Subject: "dev", Roles: []string{"developer"}, Repos: []string{"*"}},
		},
	})
	digest := strings.Repeat("a", 64)
	click := func(user, action, id string) string {
		rec := serve(t, h, slackReq("slack-secret", slackActionBody(user, action, id+"|dec_1|"+digest), time.Now()))
		if rec.Code != 200 {
			t.Fatalf("slack answers 200 with a text, got %d %s", rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	if txt := click("U0STRANGER", "remediation_approve", "rem-1"); !strings.Contains(txt, "not linked") {
		t.Fatalf("unlinked user: %s", txt)
	}
	if txt := click("U0DEV", "remediation_approve", "rem-1"); !strings.Contains(txt, "approver role") {
		t.Fatalf("developer: %s", txt)
	}
	if txt := click("U0ALICE", "remediation_approve", "rem-other"); !strings.Contains(txt, "No such remediation") {
		t.Fatalf("a repository outside the linked scope: %s", txt)
	}
	if len(orch.votes) != 0 {
		t.Fatalf("refused clicks must not vote: %+v", orch.votes)
	}
	if txt := click("U0ALICE", "remediation_approve", "rem-1"); !strings.Contains(txt, "Approved by alice") {
		t.Fatalf("linked approver: %s", txt)
	}
	click("U0ALICE", "remediation_reject", "rem-2")
	if len(orch.votes) != 2 {
		t.Fatalf("votes: %+v", orch.votes)
	}
	v := orch.votes[0]
	if v.Actor != "alice" || !v.Approve || v.Channel != "slack" || v.DiffDigest != digest || v.DecisionID != "dec_1" {
		t.Fatalf("approve vote: %+v", v)
	}
	if r := orch.votes[1]; r.Approve || r.Reason == "" {
		t.Fatalf("a Slack reject carries a reason: %+v", r)
	}
}

// redisReplicas returns a constructor of API replicas that share one Redis
// store under a key prefix of their own, removed when the test ends.
func redisReplicas(t *testing.T, u, spec string) func() http.Handler {
	t.Helper()
	prefix := "remediator-test:api:" + uuid.NewString()
	t.Cleanup(func() {
		opt, _ := redis.ParseURL(u)
		c := redis.NewClient(opt)
		defer c.Close()
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return func() http.Handler {
		s, err := ratelimit.NewStore(u, prefix)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return limitedHandler(t, &fakeOrch{}, s, rules(t, spec), nil)
	}
}

// TestGitHubFailuresAreKeyedOnTheirWorkflowAndAttempt: a re-run attempt is
// a later generation of the same failure; GitHub Actions' own check suites
// and runs are covered by workflow_run; other apps' suites and runs of one
// commit coalesce.
func TestGitHubFailuresAreKeyedOnTheirWorkflowAndAttempt(t *testing.T) {
	orch := &fakeOrch{}
	h := githubHandler(t, orch, "s3cret")
	sha := "0123456789abcdef0123456789abcdef01234567"
	post := func(event, body string) {
		t.Helper()
		if rec := postGitHub(t, h, event, "d-"+strings.ReplaceAll(event, "_", "-"), sign("s3cret", body), body); rec.Code != 202 {
			t.Fatalf("%s: %d %s", event, rec.Code, rec.Body)
		}
	}
	post("workflow_run", `{"action":"completed","repository":{"full_name":"acme/api"},"workflow_run":{"id":7,"workflow_id":99,"run_attempt":2,"name":"CI","conclusion":"failure","head_branch":"main","head_sha":"`+sha+`"}}`)
	post("check_suite", `{"action":"completed","repository":{"full_name":"acme/api"},"check_suite":{"id":5,"conclusion":"failure","head_branch":"main","head_sha":"`+sha+`","app":{"slug":"github-actions"}}}`)
	post("check_run", `{"action":"completed","repository":{"full_name":"acme/api"},"check_run":{"id":6,"name":"build","conclusion":"failure","head_sha":"`+sha+`","app":{"slug":"github-actions"}}}`)
	post("check_suite", `{"action":"completed","repository":{"full_name":"acme/api"},"check_suite":{"id":8,"conclusion":"failure","head_branch":"main","head_sha":"`+sha+`","app":{"slug":"circleci"}}}`)
	post("check_run", `{"action":"completed","repository":{"full_name":"acme/api"},"check_run":{"id":9,"name":"test","conclusion":"failure","head_sha":"`+sha+`","app":{"slug":"circleci"},"check_suite":{"head_branch":"main"}}}`)
	if len(orch.started) != 3 {
		t.Fatalf("want the workflow run and circleci's suite and run, got %d: %+v", len(orch.started), orch.started)
	}
	wr, suite, run := orch.started[0], orch.started[1], orch.started[2]
	if wr.Fingerprint != "acme/api@"+sha+"/workflow:99" || wr.Generation != 2 || wr.CIRun.RunID != 7 || wr.CIRun.Attempt != 2 {
		t.Errorf("workflow_run: %+v", wr)
	}
	if suite.Fingerprint != "acme/api@"+sha+"/check:circleci" || run.Fingerprint != suite.Fingerprint || run.IdempotencyKey != suite.IdempotencyKey || run.Ref != "main" {
		t.Errorf("a check run coalesces with its app's suite: %+v / %+v", suite, run)
	}
}

// Every refused delivery is counted by source and reason.
func TestWebhookVerificationFailuresAreCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), &fakeOrch{}, Options{Auth: testAuth(t), GitHubSecret: []byte("s3cret"),
		Repos: testRepos(), Registerer: reg})
	postGitHub(t, h, "workflow_run", "d-1", sign("wrong", failedRun), failedRun)
	postGitHub(t, h, "workflow_run", "d-2", "", failedRun)
	req := httptest.NewRequest("POST", "/api/ci/event", strings.NewReader(`{}`))
	req.Header.Set("X-Gitlab-Token", "whatever")
	serve(t, h, req)
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "remediator_webhook_verification_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["source"]+"/"+labels["reason"]] = m.GetCounter().GetValue()
		}
	}
	if got["github/invalid"] != 2 || got["gitlab/not_configured"] != 1 {
		t.Fatalf("counted: %v", got)
	}
}
