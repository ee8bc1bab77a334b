package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
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
	opts := Options{Auth: testAuth(t), Limiter: lim, LimitStore: store, TrustedProxies: proxies, MaxBodyBytes: 4096}
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
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, webhookReq("x", "203.0.113.7", fmt.Sprintf("10.0.%d.%d", i/250, i%250)))
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
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, webhookReq("x", "127.0.0.1", xff))
		return rec.Code
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
	replica := func() http.Handler {
		s, err := ratelimit.NewStore(u, prefix)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return limitedHandler(t, &fakeOrch{}, s, rules(t, "generate=4-H"), nil)
	}
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
}

func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func githubHandler(t *testing.T, orch *fakeOrch, secret string) http.Handler {
	return NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), orch, Options{Auth: testAuth(t), GitHubSecret: []byte(secret), SlackSecret: []byte(secret)})
}

func postGitHub(h http.Handler, event, delivery, sig, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/webhooks/github", strings.NewReader(body))
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	if sig != "" {
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

const failedRun = `{"action":"completed","repository":{"full_name":"acme/api"},"workflow_run":{"id":42,"name":"CI","conclusion":"failure","head_branch":"main","head_sha":"0123456789abcdef0123456789abcdef01234567","html_url":"https://example.invalid/run/42"}}`

func TestGitHubWebhookIsVerifiedAndFailsClosed(t *testing.T) {
	orch := &fakeOrch{}
	h := githubHandler(t, orch, "s3cret")
	if rec := postGitHub(h, "workflow_run", "d-1", "", failedRun); rec.Code != 401 {
		t.Fatalf("missing signature: %d", rec.Code)
	}
	if rec := postGitHub(h, "workflow_run", "d-1", sign("wrong", failedRun), failedRun); rec.Code != 401 {
		t.Fatalf("wrong signature: %d", rec.Code)
	}
	if rec := postGitHub(h, "workflow_run", "d-1", sign("s3cret", failedRun), failedRun+" "); rec.Code != 401 {
		t.Fatalf("a body that differs from the signed bytes: %d", rec.Code)
	}
	unset := githubHandler(t, orch, "")
	if rec := postGitHub(unset, "workflow_run", "d-1", sign("", failedRun), failedRun); rec.Code != 401 || !strings.Contains(rec.Body.String(), "webhook_not_configured") {
		t.Fatalf("no secret configured must reject every delivery: %d %s", rec.Code, rec.Body)
	}
	if len(orch.started) != 0 {
		t.Fatal("rejected deliveries must have no effect")
	}
	if rec := postGitHub(h, "ping", "d-0", sign("s3cret", `{"zen":"hi"}`), `{"zen":"hi"}`); rec.Code != 200 || !strings.Contains(rec.Body.String(), "pong") {
		t.Fatalf("ping: %d %s", rec.Code, rec.Body)
	}
	rec := postGitHub(h, "workflow_run", "d-1", sign("s3cret", failedRun), failedRun)
	if rec.Code != 202 || len(orch.started) != 1 {
		t.Fatalf("signed failure: %d %s", rec.Code, rec.Body)
	}
	st := orch.started[0]
	if st.Repo != "acme/api" || st.Requester != "webhook:github" || st.IdempotencyKey != "github:acme/api@0123456789abcdef0123456789abcdef01234567" ||
		st.Fingerprint != "acme/api@0123456789abcdef0123456789abcdef01234567" {
		t.Fatalf("start keyed on the source event: %+v", st)
	}
	ok := `{"action":"completed","repository":{"full_name":"acme/api"},"workflow_run":{"id":43,"conclusion":"success","head_sha":"0123456789abcdef0123456789abcdef01234567"}}`
	if rec := postGitHub(h, "workflow_run", "d-2", sign("s3cret", ok), ok); rec.Code != 202 || !strings.Contains(rec.Body.String(), "ignored") || len(orch.started) != 1 {
		t.Fatalf("a success is ignored: %d %s", rec.Code, rec.Body)
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
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, tc.req)
		if rec.Code != tc.want {
			t.Errorf("%s: want %d, got %d %s", name, tc.want, rec.Code, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	githubHandler(t, &fakeOrch{}, "").ServeHTTP(rec, slackReq("", body, time.Now()))
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
	h := NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), orch, Options{Auth: &auth.Authenticator{JWT: v}})
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
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, slackReq("slack-secret", slackActionBody(user, action, id+"|dec_1|"+digest), time.Now()))
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
