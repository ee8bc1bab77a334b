//go:build !production

// Package e2e runs the real stack in-process: the embedded Temporal server on
// a SQLite file, the worker from worker.Register (through app.StartDev) and
// the API over httptest. Nothing is mocked.
package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"remediator/internal/app"
	"remediator/internal/config"
	"remediator/internal/devserver"
	"remediator/workflows"
)

type stack struct {
	t     *testing.T
	cfg   config.Config
	ports devserver.Ports
	dev   *app.Dev
	http  *httptest.Server
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("E2E_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startStack(t *testing.T, dataDir string, ports devserver.Ports, extraEnv ...string) *stack {
	t.Helper()
	return startStackWith(t, dataDir, ports, nil, extraEnv...)
}

// startStackWith is startStack with the loaded configuration changed by
// mutate first (settings no environment variable allows, such as a policy
// with reminders every few seconds).
func startStackWith(t *testing.T, dataDir string, ports devserver.Ports, mutate func(*config.Config), extraEnv ...string) *stack {
	t.Helper()
	env := map[string]string{"REMEDIATOR_DATA_DIR": dataDir}
	for i := 0; i+1 < len(extraEnv); i += 2 {
		env[extraEnv[i]] = extraEnv[i+1]
	}
	cfg, err := config.Load(config.ModeDev, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := app.StartDev(ctx, cfg, ports, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, cfg: cfg, ports: ports, dev: d, http: httptest.NewServer(d.Handler)}
	t.Cleanup(s.stop)
	return s
}

func (s *stack) stop() {
	if s.http != nil {
		s.http.Close()
		s.http = nil
	}
	if s.dev != nil {
		s.dev.Stop()
		s.dev = nil
	}
}

type response struct {
	code int
	body map[string]any
	hdr  http.Header
}

func (s *stack) call(method, path, who string, body any, hdr ...string) response {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.http.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+s.dev.Token(who))
	req.Header.Set("Content-Type", "application/json")
	return s.send(req, hdr...)
}

// send sets the headers (an empty value removes one), sends req and decodes
// the JSON answer.
func (s *stack) send(req *http.Request, hdr ...string) response {
	s.t.Helper()
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	out := response{code: res.StatusCode, hdr: res.Header}
	raw, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(raw, &out.body)
	return out
}

func (s *stack) startDemo(who, key string) string {
	s.t.Helper()
	d := s.dev.Demo
	res := s.call("POST", "/api/remediations", who, map[string]string{
		"repo": d.Path, "ref": d.Branch, "failure_summary": d.FailureSummary, "log_excerpt": d.LogExcerpt,
	}, "Idempotency-Key", key)
	if res.code != http.StatusAccepted {
		s.t.Fatalf("start: %d %v", res.code, res.body)
	}
	return res.body["id"].(string)
}

// waitPhase polls the status until phase (or fails after a minute).
func (s *stack) waitPhase(id string, phase workflows.Phase) map[string]any {
	s.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last response
	for time.Now().Before(deadline) {
		last = s.call("GET", "/api/remediations/"+id, "dev", nil)
		if last.code == 200 && last.body["phase"] == string(phase) {
			return last.body
		}
		if last.code == 200 && workflows.Phase(last.body["phase"].(string)).Terminal() {
			break
		}
		time.Sleep(150 * time.Millisecond)
	}
	s.t.Fatalf("%s never reached %s; last %d %v", id, phase, last.code, last.body)
	return nil
}

func vote(st map[string]any) map[string]string {
	return map[string]string{
		"decision_id": st["decision_id"].(string),
		"diff_digest": st["fix"].(map[string]any)["digest"].(string),
		"base_sha":    st["fix"].(map[string]any)["base_sha"].(string),
	}
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v %s", args, err, out)
	}
	return string(out)
}

func TestRemediationEndToEnd(t *testing.T) {
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	s := startStack(t, t.TempDir(), ports)

	// admin may start remediations too; being the requester it must not approve.
	id := s.startDemo("admin", "e2e-key-1")
	st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
	fix := st["fix"].(map[string]any)
	if fix["recipe"] != "gofmt" || fix["validated"] != true || !strings.Contains(fix["diff"].(string), "main.go") {
		t.Fatalf("unexpected fix: %v", fix)
	}

	again := s.call("POST", "/api/remediations", "admin", map[string]string{
		"repo": s.dev.Demo.Path, "ref": "main", "failure_summary": s.dev.Demo.FailureSummary, "log_excerpt": s.dev.Demo.LogExcerpt,
	}, "Idempotency-Key", "e2e-key-1")
	if again.code != 202 || again.body["id"] != id || again.body["existing"] != true || again.hdr.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("same key while running must return the same remediation: %d %v", again.code, again.body)
	}
	conflict := s.call("POST", "/api/remediations", "admin", map[string]string{
		"repo": s.dev.Demo.Path, "failure_summary": "something else",
	}, "Idempotency-Key", "e2e-key-1")
	if conflict.code != 409 {
		t.Fatalf("same key, different request: want 409, got %d %v", conflict.code, conflict.body)
	}

	if r := s.call("POST", "/api/remediations/"+id+"/approve", "admin", vote(st)); r.code != 403 || r.body["error"] != "self_approval" {
		t.Fatalf("self-approval must be refused: %d %v", r.code, r.body)
	}
	if r := s.call("POST", "/api/remediations/"+id+"/approve", "dev", vote(st)); r.code != 403 {
		t.Fatalf("developer cannot approve: %d %v", r.code, r.body)
	}
	stale := vote(st)
	stale["diff_digest"] = strings.Repeat("0", 64)
	if r := s.call("POST", "/api/remediations/"+id+"/approve", "alice", stale); r.code != 409 || r.body["error"] != "stale_vote" {
		t.Fatalf("a vote for another digest must be refused: %d %v", r.code, r.body)
	}
	r := s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st), "Idempotency-Key", "vote-1")
	if r.code != 200 || len(r.body["votes"].([]any)) != 1 {
		t.Fatalf("approve: %d %v", r.code, r.body)
	}
	if r := s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st), "Idempotency-Key", "vote-1"); r.code != 200 {
		t.Fatalf("a retried approval (same Update ID) answers like the first: %d %v", r.code, r.body)
	}

	done := s.waitPhase(id, workflows.PhaseCompleted)
	pr := done["pr"].(map[string]any)
	branch := "autofix/" + id
	if pr["branch"] != branch {
		t.Fatalf("pr: %v", pr)
	}
	// The demo repository now has the branch, and its main.go is gofmt-clean.
	git(t, s.dev.Demo.Path, "rev-parse", "--verify", "refs/heads/"+branch)
	fixed := git(t, s.dev.Demo.Path, "show", branch+":main.go")
	gofmt := exec.Command("gofmt", "-l")
	gofmt.Stdin = strings.NewReader(fixed)
	if out, err := gofmt.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("main.go on the branch is not gofmt-clean: %s %v", out, err)
	}
	if git(t, s.dev.Demo.Path, "rev-parse", branch+"^") != git(t, s.dev.Demo.Path, "rev-parse", s.dev.Demo.SHA) {
		t.Fatal("the change is not based on the failing commit")
	}

	after := s.call("POST", "/api/remediations", "admin", map[string]string{
		"repo": s.dev.Demo.Path, "ref": "main", "failure_summary": s.dev.Demo.FailureSummary, "log_excerpt": s.dev.Demo.LogExcerpt,
	}, "Idempotency-Key", "e2e-key-1")
	if after.code != 202 || after.body["id"] != id || after.body["phase"] != string(workflows.PhaseCompleted) {
		t.Fatalf("same key after completion must return the finished remediation: %d %v", after.code, after.body)
	}
	desc, err := s.dev.Client.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	if desc.GetWorkflowExecutionInfo().GetExecution().GetRunId() == "" {
		t.Fatal("no run")
	}
	if n := s.countRuns(id); n != 1 {
		t.Fatalf("want exactly one run of %s, got %d", id, n)
	}

	if r := s.call("POST", "/api/remediations/"+id+"/approve", "bob", vote(st)); r.code != 409 {
		t.Fatalf("a vote after the end must be 409: %d %v", r.code, r.body)
	}
	dec := s.call("GET", "/api/decisions/"+done["decision_id"].(string), "alice", nil)
	if dec.code != 200 || dec.body["status"] != "approved" || dec.body["pr_url"] != pr["url"] || dec.body["proposed_action"] != "apply_autofix" {
		t.Fatalf("decision record: %d %v", dec.code, dec.body)
	}
	list := s.waitList("?phase=Completed", id)
	if list["items"].([]any)[0].(map[string]any)["repo"] != s.dev.Demo.Path {
		t.Fatalf("list: %v", list)
	}
	// A retry naming the same absolute deadline, a moment later, is the same request.
	deadline := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	withDeadline := map[string]string{"repo": s.dev.Demo.Path, "failure_summary": "deadline check", "deadline": deadline}
	d1 := s.call("POST", "/api/remediations", "dev", withDeadline, "Idempotency-Key", "deadline-key")
	time.Sleep(1100 * time.Millisecond)
	d2 := s.call("POST", "/api/remediations", "dev", withDeadline, "Idempotency-Key", "deadline-key")
	if d1.code != 202 || d2.code != 202 || d1.body["id"] != d2.body["id"] || d2.body["existing"] != true {
		t.Fatalf("retry with an RFC 3339 deadline: %d %v / %d %v", d1.code, d1.body, d2.code, d2.body)
	}
	if r := s.call("GET", "/api/remediations/rem-000000000000000000000000", "dev", nil); r.code != 404 {
		t.Fatalf("unknown id: %d", r.code)
	}

	// Reject and cancel through the API.
	rid := s.startDemo("dev", "e2e-key-reject")
	rst := s.waitPhase(rid, workflows.PhaseAwaitingApproval)
	rv := vote(rst)
	rv["reason"] = "prefer a manual fix"
	if r := s.call("POST", "/api/remediations/"+rid+"/reject", "bob", rv); r.code != 200 {
		t.Fatalf("reject: %d %v", r.code, r.body)
	}
	s.waitPhase(rid, workflows.PhaseRejected)

	cid := s.startDemo("dev", "e2e-key-cancel")
	s.waitPhase(cid, workflows.PhaseAwaitingApproval)
	if r := s.call("POST", "/api/remediations/"+cid+"/cancel", "alice", nil); r.code != 403 {
		t.Fatalf("only admins cancel: %d", r.code)
	}
	if r := s.call("POST", "/api/remediations/"+cid+"/cancel", "admin", nil); r.code != 202 {
		t.Fatalf("cancel: %d %v", r.code, r.body)
	}
	s.waitPhase(cid, workflows.PhaseCancelled)
}

func (s *stack) waitList(query, id string) map[string]any {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r := s.call("GET", "/api/remediations"+query, "dev", nil)
		if r.code == 200 {
			for _, it := range r.body["items"].([]any) {
				if it.(map[string]any)["id"] == id {
					return r.body
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.t.Fatalf("%s never listed for %s", id, query)
	return nil
}

func TestRestartKeepsAWaitingRemediation(t *testing.T) {
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := startStack(t, dir, ports)
	id := s.startDemo("dev", "restart-key")
	st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
	s.stop()

	restarted := time.Now()
	s2 := startStack(t, dir, ports)
	if r := s2.call("POST", "/api/remediations/"+id+"/approve", "bob", vote(st)); r.code != 200 {
		t.Fatalf("approve after restart: %d %v", r.code, r.body)
	}
	done := s2.waitPhase(id, workflows.PhaseCompleted)
	t.Logf("completed %s after restart", time.Since(restarted).Round(time.Millisecond))
	if done["pr"] == nil {
		t.Fatal("no PR after restart")
	}
	again := s2.call("POST", "/api/remediations", "dev", map[string]string{
		"repo": s2.dev.Demo.Path, "ref": s2.dev.Demo.Branch, "failure_summary": s2.dev.Demo.FailureSummary, "log_excerpt": s2.dev.Demo.LogExcerpt,
	}, "Idempotency-Key", "restart-key")
	if again.body["id"] != id || again.body["existing"] != true {
		t.Fatalf("idempotency survives the restart: %v", again.body)
	}
}

// TestGitHubDeliveryTwiceStartsOneWorkflow: owner/name in a delivery names a
// GitHub repository (here the fake's); the same delivery twice is one
// workflow, a repository the service cannot reach starts nothing, and the
// check suite GitHub Actions reports alongside the run is left to the
// workflow_run.
func TestGitHubDeliveryTwiceStartsOneWorkflow(t *testing.T) {
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	g := newGitHubFixture(t)
	s := startStack(t, t.TempDir(), ports, g.env...)
	full := ghOwner + "/" + ghRepo

	unknown := workflowRun(ghOwner+"/missing", ghBranch, g.sha, 8, 1)
	if r := s.deliver("workflow_run", "99999999-2222-3333-4444-555555555555", unknown); r.code != http.StatusUnprocessableEntity {
		t.Fatalf("a delivery for a repository the service cannot act on: want 422, got %d %v", r.code, r.body)
	}
	mac := hmac.New(sha256.New, []byte("another secret"))
	mac.Write(workflowRun(full, ghBranch, g.sha, ghRunID, 1))
	if r := s.postRaw("/webhooks/github", workflowRun(full, ghBranch, g.sha, ghRunID, 1), "X-GitHub-Event", "workflow_run",
		"X-GitHub-Delivery", "88888888-2222-3333-4444-555555555555", "X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil))); r.code != http.StatusUnauthorized {
		t.Fatalf("a delivery signed with another secret: want 401, got %d %v", r.code, r.body)
	}

	body := workflowRun(full, ghBranch, g.sha, ghRunID, 1)
	first := s.deliver("workflow_run", "11111111-2222-3333-4444-555555555555", body)
	second := s.deliver("workflow_run", "11111111-2222-3333-4444-555555555555", body)
	if first.code != http.StatusAccepted || second.code != http.StatusAccepted || first.body["status"] != "accepted" ||
		second.body["status"] != "duplicate" || first.body["workflow_id"] != second.body["workflow_id"] {
		t.Fatalf("replayed delivery: %d %v then %d %v", first.code, first.body, second.code, second.body)
	}
	suite, _ := json.Marshal(map[string]any{"action": "completed", "repository": map[string]any{"full_name": full},
		"check_suite": map[string]any{"id": 9, "conclusion": "failure", "head_branch": ghBranch, "head_sha": g.sha,
			"app": map[string]any{"slug": "github-actions"}}})
	if r := s.deliver("check_suite", "66666666-2222-3333-4444-555555555555", suite); r.code != http.StatusAccepted || r.body["status"] != "ignored" {
		t.Fatalf("the GitHub Actions check suite of the same failure: %d %v", r.code, r.body)
	}
	id := first.body["workflow_id"].(string)
	if n := s.countRuns(id); n != 1 {
		t.Fatalf("want one workflow for the delivery, got %d", n)
	}
	if st := s.waitPhase(id, workflows.PhaseAwaitingApproval); st["repo"] != full {
		t.Fatalf("the remediation acts on %v, want %s", st["repo"], full)
	}
}

// countRuns counts the runs of one workflow ID in visibility, waiting for the
// (asynchronous) visibility store to show at least one.
func (s *stack) countRuns(id string) int {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		runs, err := s.dev.Client.ListWorkflow(context.Background(), listReq(s, "WorkflowId = '"+id+"'"))
		if err != nil {
			s.t.Fatal(err)
		}
		if n := len(runs.GetExecutions()); n > 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}
