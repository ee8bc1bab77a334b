package api

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"remediator/internal/ratelimit"
)

func intakeHandler(t *testing.T, orch *fakeOrch, reg prometheus.Registerer) http.Handler {
	t.Helper()
	return NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), orch, Options{
		Auth: testAuth(t), Repos: testRepos(), GitLabWebhookToken: []byte("gl-hook-secret"),
		AlertRoutes: map[string]string{"DiskFull": "acme/ops"}, Registerer: reg,
	})
}

func postIntake(t *testing.T, h http.Handler, path, token, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return serve(t, h, req)
}

const sha40 = "0123456789abcdef0123456789abcdef01234567"

const gitlabHook = `{"object_kind":"pipeline","object_attributes":{"id":77,"ref":"main","sha":"` + sha40 + `","status":"failed"},"project":{"path_with_namespace":"group/app"}}`

// TestCIEventGitLabHook: a GitLab pipeline hook authenticates with its
// token alone (constant time, fail closed) and can only report GitLab
// failures; a failed pipeline starts a remediation keyed on the pipeline.
func TestCIEventGitLabHook(t *testing.T) {
	orch := &fakeOrch{}
	h := intakeHandler(t, orch, nil)
	if rec := postIntake(t, h, "/api/ci/event", "", gitlabHook, "X-Gitlab-Token", "wrong"); rec.Code != 401 {
		t.Fatalf("a wrong token: %d %s", rec.Code, rec.Body)
	}
	if rec := postIntake(t, h, "/api/ci/event", "", gitlabHook); rec.Code != 401 {
		t.Fatalf("no credential at all: %d", rec.Code)
	}
	rec := postIntake(t, h, "/api/ci/event", "", gitlabHook, "X-Gitlab-Token", "gl-hook-secret")
	if rec.Code != 202 || len(orch.started) != 1 {
		t.Fatalf("a failed pipeline: %d %s", rec.Code, rec.Body)
	}
	st := orch.started[0]
	if st.Repo != "gitlab:group/app" || st.Requester != "webhook:gitlab" || st.CIRun == nil || st.CIRun.RunID != 77 ||
		st.Fingerprint != "gitlab:group/app@"+sha40+"/pipeline:77" || st.SHA != sha40 || st.Ref != "main" {
		t.Fatalf("start: %+v", st)
	}
	ok := strings.Replace(gitlabHook, `"status":"failed"`, `"status":"success"`, 1)
	if rec := postIntake(t, h, "/api/ci/event", "", ok, "X-Gitlab-Token", "gl-hook-secret"); rec.Code != 202 || !strings.Contains(rec.Body.String(), "ignored") {
		t.Fatalf("a passing pipeline is ignored: %d %s", rec.Code, rec.Body)
	}
	jenkins := `{"name":"app","build":{"number":3,"status":"FAILURE","scm":{"url":"acme/api","branch":"main","commit":"` + sha40 + `"}}}`
	if rec := postIntake(t, h, "/api/ci/event", "", jenkins, "X-Gitlab-Token", "gl-hook-secret"); rec.Code != 403 {
		t.Fatalf("the GitLab token reports GitLab hooks only: %d %s", rec.Code, rec.Body)
	}
	// The token is no credential anywhere else.
	req := httptest.NewRequest("GET", "/api/remediations", nil)
	req.Header.Set("X-Gitlab-Token", "gl-hook-secret")
	if rec := serve(t, h, req); rec.Code != 401 {
		t.Fatalf("the GitLab token on another route: %d", rec.Code)
	}
	// Without a configured token every hook is refused.
	bare := NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), orch, Options{Auth: testAuth(t), Repos: testRepos()})
	if rec := postIntake(t, bare, "/api/ci/event", "", gitlabHook, "X-Gitlab-Token", ""); rec.Code != 401 {
		t.Fatalf("no configured token: %d", rec.Code)
	}
	if rec := postIntake(t, bare, "/api/ci/event", "", gitlabHook, "X-Gitlab-Token", "anything"); rec.Code != 401 {
		t.Fatalf("no configured token: %d", rec.Code)
	}
}

// TestCIEventJenkinsAndGeneric: Jenkins' FAILURE counts (the seed ignored
// it), the seed's generic shape still works, anything else is refused.
func TestCIEventJenkinsAndGeneric(t *testing.T) {
	orch := &fakeOrch{}
	h := intakeHandler(t, orch, nil)
	jenkins := `{"name":"app","url":"job/app/","build":{"number":3,"phase":"COMPLETED","status":"FAILURE","full_url":"http://ci/job/app/3/",` +
		`"scm":{"url":"acme/api","branch":"main","commit":"` + sha40 + `"},"log":"go vet ./...\nmain.go is not gofmt-formatted\n"}}`
	if rec := postIntake(t, h, "/api/ci/event", devTok, jenkins); rec.Code != 202 {
		t.Fatalf("jenkins: %d %s", rec.Code, rec.Body)
	}
	generic := `{"provider":"gitlab-ci","status":"failed","project":"acme/api","pipeline_id":"9","logs":"lint: gofmt check failed"}`
	if rec := postIntake(t, h, "/api/ci/event", devTok, generic); rec.Code != 202 {
		t.Fatalf("generic: %d %s", rec.Code, rec.Body)
	}
	if len(orch.started) != 2 || orch.started[0].Fingerprint != "jenkins:acme/api@"+sha40+"/app#3" || !strings.Contains(orch.started[0].LogExcerpt, "gofmt") ||
		orch.started[1].Repo != "acme/api" || orch.started[1].Requester != "dev" {
		t.Fatalf("starts: %+v", orch.started)
	}
	if rec := postIntake(t, h, "/api/ci/event", approverTok, generic); rec.Code != 403 {
		t.Fatalf("approvers do not report failures: %d", rec.Code)
	}
	if rec := postIntake(t, h, "/api/ci/event", devTok, `{"status":"failed","project":"acme/missing","provider":"x"}`); rec.Code != 422 {
		t.Fatalf("an unknown repository: %d %s", rec.Code, rec.Body)
	}
	if rec := postIntake(t, h, "/api/ci/event", devTok, `{"what":"ever"}`); rec.Code != 422 {
		t.Fatalf("an unknown shape: %d %s", rec.Code, rec.Body)
	}
	nul := `{"provider":"x","status":"failed","project":"acme/api","logs":"a\u0000b"}`
	if rec := postIntake(t, h, "/api/ci/event", devTok, nul); rec.Code != 202 || strings.ContainsRune(orch.started[len(orch.started)-1].LogExcerpt, 0) {
		t.Fatalf("control characters in a log are made spaces: %d %s", rec.Code, rec.Body)
	}
}

// TestAlertmanagerWebhook: every firing alert is keyed on its fingerprint
// (with its start as the generation), a resolved one is recorded on the
// running remediation, and an alert naming no repository is refused and
// counted.
func TestAlertmanagerWebhook(t *testing.T) {
	orch := &fakeOrch{}
	reg := prometheus.NewRegistry()
	h := intakeHandler(t, orch, reg)
	body := `{"version":"4","status":"firing","receiver":"remediator","alerts":[` +
		`{"status":"firing","labels":{"alertname":"LintBroken","repository":"acme/api"},"annotations":{"summary":"gofmt check failed"},"startsAt":"2026-11-26T10:00:00Z","fingerprint":"a1b2c3d4e5f60718"},` +
		`{"status":"firing","labels":{"alertname":"DiskFull"},"annotations":{},"startsAt":"2026-11-26T10:01:00Z","fingerprint":"b1b2c3d4e5f60718"},` +
		`{"status":"firing","labels":{"alertname":"Orphan"},"annotations":{},"startsAt":"2026-11-26T10:02:00Z","fingerprint":"c1b2c3d4e5f60718"},` +
		`{"status":"resolved","labels":{"alertname":"LintBroken","repository":"acme/api"},"startsAt":"2026-11-26T09:00:00Z","endsAt":"2026-11-26T09:30:00Z","fingerprint":"d1b2c3d4e5f60718"}]}`
	rec := postIntake(t, h, "/api/observability/alert", devTok, body)
	if rec.Code != 202 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if len(orch.started) != 2 || orch.started[0].Fingerprint != "alert:a1b2c3d4e5f60718" || orch.started[0].Generation != 1795687200 ||
		orch.started[0].Repo != "acme/api" || !strings.Contains(orch.started[0].FailureSummary, "gofmt check failed") ||
		orch.started[1].Repo != "acme/ops" {
		t.Fatalf("starts: %+v", orch.started)
	}
	if !strings.Contains(rec.Body.String(), `"fingerprint":"c1b2c3d4e5f60718","status":"refused"`) {
		t.Fatalf("the unrouted alert must be refused in its result: %s", rec.Body)
	}
	if len(orch.resolved) != 1 {
		t.Fatalf("the resolved alert must be sent to its remediation: %v", orch.resolved)
	}
	if got := counterValue(t, reg, "remediator_alerts_unrouted_total"); got != 1 {
		t.Fatalf("unrouted alerts counted: %v", got)
	}
	if len(orch.attached) != 0 {
		t.Fatalf("new alerts attach to nothing: %v", orch.attached)
	}
	// The same alert firing again (Alertmanager's repeat) attaches to its
	// remediation and is counted there; it starts nothing new.
	orch.existing = true
	again := `{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"LintBroken","repository":"acme/api"},"startsAt":"2026-11-26T10:00:00Z","fingerprint":"a1b2c3d4e5f60718"}]}`
	if rec := postIntake(t, h, "/api/observability/alert", devTok, again); rec.Code != 202 || !strings.Contains(rec.Body.String(), `"status":"duplicate"`) {
		t.Fatalf("a repeated alert: %d %s", rec.Code, rec.Body)
	}
	if len(orch.attached) != 1 || orch.attached[0] != "rem-1" {
		t.Fatalf("the repeated alert must be counted on its remediation: %v", orch.attached)
	}
	orch.existing = false
	only := `{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"Orphan"},"startsAt":"2026-11-26T10:02:00Z","fingerprint":"c1b2c3d4e5f60718"}]}`
	if rec := postIntake(t, h, "/api/observability/alert", devTok, only); rec.Code != 422 {
		t.Fatalf("a delivery whose alerts name no repository: %d %s", rec.Code, rec.Body)
	}
	generic := `{"source":"splunk","severity":"high","title":"gofmt check failed","description":"main.go","repository":"acme/api"}`
	if rec := postIntake(t, h, "/api/observability/alert", devTok, generic); rec.Code != 202 || len(orch.started) != 4 {
		t.Fatalf("the generic shape: %d %s", rec.Code, rec.Body)
	}
	if rec := postIntake(t, h, "/api/observability/alert", devTok, `{"source":"s","title":"t"}`); rec.Code != 422 {
		t.Fatalf("a generic alert without a repository: %d %s", rec.Code, rec.Body)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// TestForkRunsAreNotRemediated: a workflow run of a fork's pull request is
// the fork's code and is ignored.
func TestForkRunsAreNotRemediated(t *testing.T) {
	orch := &fakeOrch{}
	h := githubHandler(t, orch, "s3cret")
	fork := `{"action":"completed","repository":{"full_name":"acme/api"},"workflow_run":{"id":7,"workflow_id":1,"run_attempt":1,"name":"CI","conclusion":"failure","head_branch":"main","head_sha":"` + sha40 + `","head_repository":{"full_name":"mallory/api"}}}`
	if rec := postGitHub(t, h, "workflow_run", "d-fork", sign("s3cret", fork), fork); rec.Code != 202 || !strings.Contains(rec.Body.String(), "ignored") || len(orch.started) != 0 {
		t.Fatalf("a fork's run: %d %s %v", rec.Code, rec.Body, orch.started)
	}
	own := strings.Replace(fork, "mallory/api", "ACME/api", 1)
	if rec := postGitHub(t, h, "workflow_run", "d-own", sign("s3cret", own), own); rec.Code != 202 || len(orch.started) != 1 {
		t.Fatalf("the repository's own run: %d %s", rec.Code, rec.Body)
	}
}

// TestReportsAreBoundedAndCharged: a delivery carries at most 100 alerts,
// every remediation a report starts costs one from the reporter's generate
// budget, and a GitLab hook GitLab cannot fix is answered, not failed.
func TestReportsAreBoundedAndCharged(t *testing.T) {
	orch := &fakeOrch{}
	lim, err := ratelimit.New(memStore(t), rules(t, "generate=1-H"), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), orch, Options{Auth: testAuth(t), Repos: testRepos(),
		Limiter: lim, GitLabWebhookToken: []byte("gl-hook-secret")})
	var alerts []string
	for i := range 101 {
		alerts = append(alerts, fmt.Sprintf(`{"status":"firing","labels":{"repository":"acme/api"},"startsAt":"2026-11-26T10:00:00Z","fingerprint":"a1b2c3d4e5f6%04d"}`, i))
	}
	if rec := postIntake(t, h, "/api/observability/alert", devTok, `{"version":"4","alerts":[`+strings.Join(alerts, ",")+`]}`); rec.Code != 422 || len(orch.started) != 0 {
		t.Fatalf("101 alerts: %d %s", rec.Code, rec.Body)
	}
	rec := postIntake(t, h, "/api/observability/alert", devTok, `{"version":"4","alerts":[`+strings.Join(alerts[:2], ",")+`]}`)
	if rec.Code != 202 || len(orch.started) != 1 || !strings.Contains(rec.Body.String(), "rate limit generate exceeded") {
		t.Fatalf("two alerts on a budget of one: %d %s", rec.Code, rec.Body)
	}
	missing := strings.Replace(gitlabHook, "group/app", "acme/missing", 1)
	rec = postIntake(t, h, "/api/ci/event", "", strings.Replace(missing, `"project":{"path_with_namespace":"acme/missing"}`, `"project":{"path_with_namespace":"acme/missing"}`, 1), "X-Gitlab-Token", "gl-hook-secret")
	if rec.Code != 202 || !strings.Contains(rec.Body.String(), "refused") {
		t.Fatalf("a GitLab hook for a project the service cannot act on: %d %s", rec.Code, rec.Body)
	}
}
