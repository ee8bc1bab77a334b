//go:build !production

package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/api/temporalproto"

	"remediator/internal/codec"
	"remediator/internal/devserver"
	"remediator/internal/llm/llmtest"
	"remediator/internal/orchestrator"
	"remediator/internal/slack/slacktest"
	votekey "remediator/internal/vote"
	"remediator/workflows"
)

// Settings of the capture stack: a slow recipe (to cancel or expire a run
// while its fix is generated) and a linked Slack approver.
const (
	captureSlackSecret = "capture-slack-secret"
	captureSlackUser   = "UCAROL"
	slowFailure        = "slow fix needed"
)

// TestCaptureHistories records real histories for the replay tests. It runs
// only when REMEDIATOR_CAPTURE_HISTORIES names the output directory
// (`make history`).
func TestCaptureHistories(t *testing.T) {
	out := os.Getenv("REMEDIATOR_CAPTURE_HISTORIES")
	if out == "" {
		t.Skip("set REMEDIATOR_CAPTURE_HISTORIES=<dir> (make history) to capture histories")
	}
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	recipes := filepath.Join(dir, "recipes.json")
	if err := os.WriteFile(recipes, []byte(`[{"name":"slow","match":"`+slowFailure+`","command":"sleep 6; echo slow >> README.md","timeout":"1m"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startStack(t, dir, ports, "REMEDIATOR_RECIPES_FILE", recipes,
		"SLACK_SIGNING_SECRET", captureSlackSecret, "REMEDIATOR_SLACK_USERS", captureSlackUser+"=carol:approver:*")

	approved := s.startDemo("dev", "hist-approved")
	st := s.waitPhase(approved, workflows.PhaseAwaitingApproval)
	s.call("POST", "/api/remediations/"+approved+"/approve", "alice", vote(st))
	s.waitPhase(approved, workflows.PhaseCompleted)
	s.save(out, "approved.json", approved)

	rejected := s.startDemo("dev", "hist-rejected")
	st = s.waitPhase(rejected, workflows.PhaseAwaitingApproval)
	rv := vote(st)
	rv["reason"] = "not now"
	s.call("POST", "/api/remediations/"+rejected+"/reject", "bob", rv)
	s.waitPhase(rejected, workflows.PhaseRejected)
	s.save(out, "rejected.json", rejected)

	waiting := s.startDemo("dev", "hist-waiting")
	st = s.waitPhase(waiting, workflows.PhaseAwaitingApproval)
	s.save(out, "awaiting-approval.json", waiting)
	s.call("POST", "/api/remediations/"+waiting+"/approve", "bob", vote(st))
	s.waitPhase(waiting, workflows.PhaseCompleted)
	s.save(out, "awaiting-then-approved.json", waiting)

	cancelled := s.startDemo("dev", "hist-cancelled")
	s.waitPhase(cancelled, workflows.PhaseAwaitingApproval)
	s.call("POST", "/api/remediations/"+cancelled+"/cancel", "admin", nil)
	s.waitPhase(cancelled, workflows.PhaseCancelled)
	s.save(out, "cancelled.json", cancelled)

	failed := s.call("POST", "/api/remediations", "dev", map[string]string{
		"repo": s.dev.Demo.Path, "failure_summary": "segfault in the flux capacitor",
	}).body["id"].(string)
	s.waitPhase(failed, workflows.PhaseFailed)
	s.save(out, "failed-no-fix.json", failed)

	// The API's minimum deadline is a minute; the orchestrator takes seconds.
	orch := s.orchestrator()
	res, err := orch.Start(context.Background(), orchestrator.StartRequest{
		IdempotencyKey: "hist-expired", Requester: "dev", Repo: s.dev.Demo.Path, Ref: "main",
		FailureSummary: s.dev.Demo.FailureSummary, LogExcerpt: s.dev.Demo.LogExcerpt, ApprovalTimeout: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.waitPhase(res.ID, workflows.PhaseExpired)
	s.save(out, "expired.json", res.ID)

	s.captureTrustBoundaries(out, orch)

	// A plain run of version 2 (no integrations), and one started through
	// /api/generate (the await_proposal Update).
	id := s.startDemo("dev", "hist-v2-approved")
	st = s.waitPhase(id, workflows.PhaseAwaitingApproval)
	s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st))
	s.waitPhase(id, workflows.PhaseCompleted)
	s.save(out, "v2-approved.json", id)
	gen := s.call("POST", "/api/generate", "dev", map[string]string{"repo": s.dev.Demo.Path, "prompt": s.dev.Demo.FailureSummary + "\n" + s.dev.Demo.LogExcerpt},
		"Idempotency-Key", "hist-v2-generate")
	if gen.code != http.StatusOK {
		t.Fatalf("/api/generate: %d %v", gen.code, gen.body)
	}
	id = gen.body["id"].(string)
	st = s.waitPhase(id, workflows.PhaseAwaitingApproval)
	rv = vote(st)
	rv["reason"] = "not this one"
	s.call("POST", "/api/remediations/"+id+"/reject", "bob", rv)
	s.waitPhase(id, workflows.PhaseRejected)
	s.save(out, "v2-generate-rejected.json", id)

	// Version 3: the decision is created on a disconnected context, and a
	// run that ends before any decision writes no outcome.
	id = s.startDemo("dev", "hist-v3-approved")
	st = s.waitPhase(id, workflows.PhaseAwaitingApproval)
	s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st))
	s.waitPhase(id, workflows.PhaseCompleted)
	s.save(out, "v3-approved.json", id)
	id = s.call("POST", "/api/remediations", "dev", map[string]string{
		"repo": s.dev.Demo.Path, "failure_summary": "segfault in the flux capacitor (v3)",
	}).body["id"].(string)
	s.waitPhase(id, workflows.PhaseFailed)
	s.save(out, "v3-failed-no-fix.json", id)

	// Version 4: the risk policy recorded in Setup sets the level, the
	// quorum and who may approve.
	id = s.startDemo("dev", "hist-v4-approved")
	st = s.waitPhase(id, workflows.PhaseAwaitingApproval)
	s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st))
	s.waitPhase(id, workflows.PhaseCompleted)
	s.save(out, "v4-approved.json", id)

	s.captureSafety(out)
	s.stop()
	captureGovernance(t, out)
	capturePolicyTiming(t, out)
}

// captureGovernance records the governance loop's paths on a stack with
// fakes of Dragon, the incident API, Slack and a model server.
func captureGovernance(t *testing.T, out string) {
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	g := newGovernance(t)
	dir := t.TempDir()
	s := startStack(t, dir, ports, g.env...)

	// Approved in Dragon (after a self-approval there was ignored).
	id := s.startDemo("dev", "hist-gov-dragon")
	st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
	g.dragon.Decide(st["decision_id"].(string), "approved", "dev", "")
	s.waitIgnored(id, 1)
	g.dragon.Decide(st["decision_id"].(string), "approved", "carol", "ok")
	s.waitPhase(id, workflows.PhaseCompleted)
	s.save(out, "governance-dragon-approved.json", id)

	// A model's fix, approved with a Slack button.
	repo := filepath.Join(dir, "svc")
	writeRepo(t, repo, map[string]string{"go.mod": "module example.com/svc\n\ngo 1.22\n", "main.go": "package main\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}\n"})
	g.llm.Queue(llmtest.Fence("diff --git a/main.go b/main.go\n--- a/main.go\n+++ b/main.go\n@@ -1,5 +1,7 @@\n package main\n \n+import \"fmt\"\n+\n func main() {\n \tfmt.Println(\"hi\")\n }\n"))
	id = s.start("dev", "hist-gov-model", repo, "build failed: ./main.go:4:2: undefined: fmt")
	st = s.waitPhase(id, workflows.PhaseAwaitingApproval)
	value := id + "|" + st["decision_id"].(string) + "|" + st["fix"].(map[string]any)["digest"].(string) + "|" + st["fix"].(map[string]any)["base_sha"].(string)
	s.slackPost(slacktest.BlockAction(govSlackUser, "remediation_approve", value, "trigger-hist-gov", g.slack.NewResponseURL()))
	s.waitPhase(id, workflows.PhaseCompleted)
	s.save(out, "governance-model-slack.json", id)

	// Rejected in Dragon, delivered by its callback.
	id = s.startDemo("dev", "hist-gov-callback")
	st = s.waitPhase(id, workflows.PhaseAwaitingApproval)
	g.dragon.Decide(st["decision_id"].(string), "denied", "erin", "freeze")
	g.dragon.Notify(t, s.http.URL+"/webhooks/dragon", []byte(govDragonSecret), st["decision_id"].(string))
	s.waitPhase(id, workflows.PhaseRejected)
	s.save(out, "governance-dragon-rejected.json", id)

	// Cancelled while awaiting approval: the watch stops, the outcome is
	// still written everywhere.
	id = s.startDemo("dev", "hist-gov-cancel")
	s.waitPhase(id, workflows.PhaseAwaitingApproval)
	s.call("POST", "/api/remediations/"+id+"/cancel", "admin", nil)
	s.waitPhase(id, workflows.PhaseCancelled)
	s.save(out, "governance-cancelled.json", id)

	// Expired with Slack failing: warnings, not failures.
	orch := s.orchestrator()
	g.slack.FailNext(50, http.StatusOK, `{"ok":false,"error":"channel_not_found"}`, nil)
	res, err := orch.Start(context.Background(), orchestrator.StartRequest{
		IdempotencyKey: "hist-gov-expired", Requester: "dev", Repo: s.dev.Demo.Path, Ref: "main",
		FailureSummary: s.dev.Demo.FailureSummary, LogExcerpt: s.dev.Demo.LogExcerpt, ApprovalTimeout: 4 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.waitPhase(res.ID, workflows.PhaseExpired)
	s.save(out, "governance-expired.json", res.ID)
}

// captureTrustBoundaries records the paths added with signed votes and the
// absolute deadline.
func (s *stack) captureTrustBoundaries(out string, orch *orchestrator.Orchestrator) {
	t := s.t
	ctx := context.Background()
	signer, err := votekey.NewSigner(s.dev.Config.VoteSigningKey)
	if err != nil {
		t.Fatal(err)
	}

	// An approval delivered as a signed signal.
	id := s.startDemo("dev", "hist-signal")
	st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
	req := workflows.ApprovalRequest{Actor: "oncall", Roles: []string{workflows.RoleApprover}, Channel: workflows.ChannelSignal,
		DecisionID: st["decision_id"].(string), DiffDigest: st["fix"].(map[string]any)["digest"].(string),
		BaseSHA: st["fix"].(map[string]any)["base_sha"].(string)}
	if err := s.dev.Client.SignalWorkflow(ctx, id, "", workflows.SignalApproval, workflows.SignVote(signer, id, true, req, time.Now())); err != nil {
		t.Fatal(err)
	}
	s.waitPhase(id, workflows.PhaseCompleted)
	s.save(out, "approved-by-signal.json", id)

	// A forged (unsigned) signal is recorded and ignored; the API's approval counts.
	id = s.startDemo("dev", "hist-ignored-signal")
	st = s.waitPhase(id, workflows.PhaseAwaitingApproval)
	forged := req
	forged.Actor, forged.Approve = "ghost", true
	if err := s.dev.Client.SignalWorkflow(ctx, id, "", workflows.SignalApproval, forged); err != nil {
		t.Fatal(err)
	}
	s.waitIgnored(id, 1)
	s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st))
	s.waitPhase(id, workflows.PhaseCompleted)
	s.save(out, "ignored-signal.json", id)

	// A vote from a Slack button.
	id = s.startDemo("dev", "hist-slack")
	st = s.waitPhase(id, workflows.PhaseAwaitingApproval)
	s.slackVote(id, st, "remediation_approve")
	s.waitPhase(id, workflows.PhaseCompleted)
	s.save(out, "slack-vote.json", id)

	// Cancelled while the fix is generated (the slow recipe).
	id = s.call("POST", "/api/remediations", "dev", map[string]string{"repo": s.dev.Demo.Path, "failure_summary": slowFailure},
		"Idempotency-Key", "hist-cancel-generating").body["id"].(string)
	s.waitPhase(id, workflows.PhaseGeneratingFix)
	time.Sleep(time.Second)
	s.call("POST", "/api/remediations/"+id+"/cancel", "admin", nil)
	s.waitPhase(id, workflows.PhaseCancelled)
	s.save(out, "cancelled-generating-fix.json", id)

	// Cancelled while the change is opened: the repository's lock is held,
	// so OpenPR waits; the cancel arrives; the change is still opened.
	id = s.startDemo("dev", "hist-cancel-opening")
	st = s.waitPhase(id, workflows.PhaseAwaitingApproval)
	unlock := s.holdRepoLock(s.dev.Demo.Path)
	s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st))
	s.waitPhase(id, workflows.PhaseOpeningPR)
	s.call("POST", "/api/remediations/"+id+"/cancel", "admin", nil)
	time.Sleep(time.Second)
	unlock()
	s.waitPhase(id, workflows.PhaseCompleted)
	s.save(out, "cancelled-opening-pr.json", id)

	// OpenPR fails for good: the branch already holds something else.
	id = s.startDemo("dev", "hist-openpr-failed")
	st = s.waitPhase(id, workflows.PhaseAwaitingApproval)
	if b, err := exec.Command("git", "-C", s.dev.Demo.Path, "branch", "autofix/"+id, s.dev.Demo.SHA).CombinedOutput(); err != nil {
		t.Fatalf("git branch: %v %s", err, b)
	}
	s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st))
	s.waitPhase(id, workflows.PhaseFailed)
	s.save(out, "openpr-failed.json", id)

	// The deadline passes while the fix is generated.
	res, err := orch.Start(ctx, orchestrator.StartRequest{
		IdempotencyKey: "hist-expired-early", Requester: "dev", Repo: s.dev.Demo.Path,
		FailureSummary: slowFailure, ApprovalTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.waitPhase(res.ID, workflows.PhaseExpired)
	s.save(out, "expired-before-gate.json", res.ID)
}

// orchestrator is a client of the stack's Temporal signing like its API
// (the API serves only remediations whose start it signed), for starts the
// API would refuse (deadlines of seconds).
func (s *stack) orchestrator() *orchestrator.Orchestrator {
	signer, err := votekey.NewSigner(s.dev.Config.VoteSigningKey)
	if err != nil {
		s.t.Fatal(err)
	}
	return orchestrator.New(s.dev.Client, s.cfg.Temporal.Namespace, time.Hour, signer)
}

// waitIgnored waits until the status lists n ignored signals.
func (s *stack) waitIgnored(id string, n int) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if ig, _ := s.call("GET", "/api/remediations/"+id, "dev", nil).body["ignored_signals"].([]any); len(ig) >= n {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("%s never recorded %d ignored signals", id, n)
}

// slackVote clicks a button as the linked Slack user, signed like Slack.
func (s *stack) slackVote(id string, st map[string]any, action string) {
	s.t.Helper()
	payload, _ := json.Marshal(map[string]any{
		"type": "block_actions", "trigger_id": "trigger-" + id, "user": map[string]string{"id": captureSlackUser},
		"actions": []map[string]string{{"action_id": action,
			"value": id + "|" + st["decision_id"].(string) + "|" + st["fix"].(map[string]any)["digest"].(string) + "|" + st["fix"].(map[string]any)["base_sha"].(string)}},
	})
	body := url.Values{"payload": {string(payload)}}.Encode()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(captureSlackSecret))
	fmt.Fprintf(mac, "v0:%s:%s", ts, body)
	req, _ := http.NewRequest("POST", s.http.URL+"/webhooks/slack", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	if res.StatusCode != 200 || !strings.Contains(fmt.Sprint(out["text"]), "Approved by carol") {
		s.t.Fatalf("slack vote: %d %v", res.StatusCode, out)
	}
}

// save writes the history of id to dir/name unless that file exists:
// committed histories are the record of what older workers produced, so they
// are added to, never rewritten.
func (s *stack) save(dir, name, id string) {
	s.t.Helper()
	s.saveRun(dir, name, id, "")
}

// saveRun writes the history of one run of id ("" the current one).
func (s *stack) saveRun(dir, name, id, runID string) {
	s.t.Helper()
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err == nil {
		s.t.Logf("kept the existing %s", name)
		return
	} else if !errors.Is(err, os.ErrNotExist) {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Wait until the last workflow task is recorded, so the file is a
	// consistent prefix of the history.
	time.Sleep(300 * time.Millisecond)
	it := s.dev.Client.GetWorkflowHistory(ctx, id, runID, false, 0)
	var h historypb.History
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			s.t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	// Committed histories are in clear: the replay test reads them without
	// the payload codec key of this throwaway stack.
	if ring, err := s.dev.Config.Codec.Ring(); err != nil {
		s.t.Fatal(err)
	} else if ring != nil {
		dec := codec.New(ring)
		if err := proxy.VisitPayloads(ctx, &h, proxy.VisitPayloadsOptions{
			Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
				return dec.Decode(ps)
			},
		}); err != nil {
			s.t.Fatal(err)
		}
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(&h)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.t.Logf("wrote %s (%d events)", name, len(h.Events))
}

// holdRepoLock takes the provider's cross-process lock of a repository, so
// an OpenPR on it waits until unlock.
func (s *stack) holdRepoLock(repo string) (unlock func()) {
	s.t.Helper()
	dir := filepath.Join(repo, ".git", "remediator")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		s.t.Fatal(err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}
}
