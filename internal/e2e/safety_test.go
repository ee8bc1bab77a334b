//go:build !production

package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"remediator/internal/audit"
	"remediator/internal/devserver"
	"remediator/workflows"
)

// TestBaseMovedThenRegenerateOnRequest drives change safety on a real
// server: an approval for a fix whose base branch moved so that the diff no
// longer applies regenerates the fix (the vote is void, approvers are asked
// again, the old digest is refused); a developer's regenerate does the same
// on demand and makes them an author who cannot approve; the change that is
// finally opened is the fix approved last, on its own base; the audit route
// and the chained store record every step.
func TestBaseMovedThenRegenerateOnRequest(t *testing.T) {
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	s := startStack(t, t.TempDir(), ports)
	d := s.dev.Demo
	id := s.startDemo("dev", "base-moved")
	first := s.waitPhase(id, workflows.PhaseAwaitingApproval)
	firstFix := first["fix"].(map[string]any)

	// Someone pushes to main: util.go changes, so the approved diff would
	// no longer apply as approved.
	util := filepath.Join(d.Path, "util.go")
	body, err := os.ReadFile(util)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(util, append([]byte("// Package main greets.\n"), body...), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, d.Path, "-c", "user.name=Pusher", "-c", "user.email=p@example.com", "commit", "-qam", "document util.go")
	head := strings.TrimSpace(git(t, d.Path, "rev-parse", "HEAD"))

	if r := s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(first)); r.code != http.StatusOK {
		t.Fatalf("approve: %d %v", r.code, r.body)
	}
	second := s.waitRegenerated(id, first["decision_id"].(string))
	secondFix := second["fix"].(map[string]any)
	if secondFix["base_sha"] != head || secondFix["digest"] == firstFix["digest"] {
		t.Fatalf("the fix was not regenerated on the new head %s: %v", head, secondFix)
	}
	if votes := second["votes"].([]any); len(votes) != 0 || len(second["voided_votes"].([]any)) != 1 {
		t.Fatalf("alice's vote must be void: %v / %v", second["votes"], second["voided_votes"])
	}
	if r := s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(first)); r.code != http.StatusConflict {
		t.Fatalf("a vote for the replaced fix: %d %v", r.code, r.body)
	}

	// The requester asks for yet another fix: their own vote would never
	// count anyway, and now they are its author.
	if r := s.call("POST", "/api/remediations/"+id+"/regenerate", "dev", map[string]string{
		"decision_id": second["decision_id"].(string), "diff_digest": secondFix["digest"].(string),
		"base_sha": secondFix["base_sha"].(string), "reason": "try again",
	}); r.code != http.StatusOK {
		t.Fatalf("regenerate: %d %v", r.code, r.body)
	}
	third := s.waitRegenerated(id, second["decision_id"].(string))
	if regs := third["regenerations"].([]any); len(regs) != 2 || regs[1].(map[string]any)["by"] != "dev" {
		t.Fatalf("regenerations: %v", third["regenerations"])
	}
	if r := s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(third)); r.code != http.StatusOK {
		t.Fatalf("approve the third fix: %d %v", r.code, r.body)
	}
	done := s.waitPhase(id, workflows.PhaseCompleted)
	pr := done["pr"].(map[string]any)
	branch := pr["branch"].(string)
	if parent := strings.TrimSpace(git(t, d.Path, "rev-parse", branch+"^")); parent != head {
		t.Fatalf("the change is on %s, not on the approved base %s", parent, head)
	}

	// The audit: the workflow's events and the store's chained records.
	r := s.call("GET", "/api/remediations/"+id+"/audit", "dev", nil)
	if r.code != http.StatusOK {
		t.Fatalf("audit: %d %v", r.code, r.body)
	}
	kinds := map[string]int{}
	for _, e := range r.body["events"].([]any) {
		kinds[e.(map[string]any)["kind"].(string)]++
	}
	for _, k := range []string{"started", "fix_proposed", "decision_created", "vote_approved", "regenerated", "regenerate_requested", "change_opened"} {
		if kinds[k] == 0 {
			t.Errorf("the audit lacks %s: %v", k, kinds)
		}
	}
	refused := 0
	for _, rec := range r.body["stored"].([]any) {
		if rec.(map[string]any)["kind"] == "refused" && rec.(map[string]any)["actor"] == "alice" {
			refused++
		}
	}
	if refused == 0 || len(r.body["stored"].([]any)) <= len(r.body["events"].([]any)) {
		t.Errorf("the stale vote the workflow refused is in the store (API side): %v", r.body["stored"])
	}
	store, err := audit.OpenFileReadOnly(filepath.Join(s.cfg.DataDir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rep, err := store.Verify(context.Background())
	if err != nil || !rep.OK || rep.Records < 10 {
		t.Fatalf("the audit chain: %+v %v", rep, err)
	}
}

// waitRegenerated waits until id awaits approval again under a decision
// other than old.
func (s *stack) waitRegenerated(id, old string) map[string]any {
	s.t.Helper()
	for range 300 {
		st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
		if st["decision_id"] != old {
			return st
		}
		time.Sleep(150 * time.Millisecond)
	}
	s.t.Fatalf("%s was never asked for again after decision %s", id, old)
	return nil
}

// TestNewerFailureSupersedes: Jenkins reports the job failing at one commit,
// then (build 2) at a newer commit of the same branch. The first
// remediation ends Superseded, its votes void and its decision says so; the
// second one waits for approval. A late report of an older build supersedes
// nothing.
func TestNewerFailureSupersedes(t *testing.T) {
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	s := startStack(t, t.TempDir(), ports)
	d := s.dev.Demo
	report := func(build int, sha string) response {
		return s.call("POST", "/api/ci/event", "dev", map[string]any{
			"name": "lint",
			"build": map[string]any{"number": build, "phase": "COMPLETED", "status": "FAILURE", "full_url": "https://ci.example.invalid/job/lint/",
				"scm": map[string]any{"url": d.Path, "branch": d.Branch, "commit": sha}, "log": d.LogExcerpt},
		})
	}
	r := report(1, d.SHA)
	if r.code != http.StatusAccepted || r.body["status"] != "accepted" {
		t.Fatalf("build 1: %d %v", r.code, r.body)
	}
	older := r.body["workflow_id"].(string)
	st := s.waitPhase(older, workflows.PhaseAwaitingApproval)
	if r := s.call("POST", "/api/remediations/"+older+"/approve", "dev", vote(st)); r.code != http.StatusForbidden {
		t.Fatalf("a developer's vote: %d %v", r.code, r.body)
	}

	if err := os.WriteFile(filepath.Join(d.Path, "NOTES.md"), []byte("notes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, d.Path, "add", "NOTES.md")
	git(t, d.Path, "-c", "user.name=Pusher", "-c", "user.email=p@example.com", "commit", "-qm", "notes")
	newer := strings.TrimSpace(git(t, d.Path, "rev-parse", "HEAD"))
	r = report(2, newer)
	if r.code != http.StatusAccepted || r.body["status"] != "accepted" || r.body["workflow_id"] == older {
		t.Fatalf("build 2: %d %v", r.code, r.body)
	}
	newID := r.body["workflow_id"].(string)
	gone := s.waitPhase(older, workflows.PhaseSuperseded)
	if gone["superseded_by"] != newID || !strings.Contains(gone["reason"].(string), newer) {
		t.Fatalf("superseded: %v", gone)
	}
	dec := s.call("GET", "/api/decisions/"+st["decision_id"].(string), "dev", nil)
	if dec.code != http.StatusOK || dec.body["outcome"] != string(workflows.PhaseSuperseded) || dec.body["status"] != "cancelled" {
		t.Fatalf("the decision records the supersession: %d %v", dec.code, dec.body)
	}
	s.waitPhase(newID, workflows.PhaseAwaitingApproval)

	// Build 1 reported late (redelivered) is a duplicate of its ended
	// remediation; a build older than the running one supersedes nothing.
	if r := report(1, d.SHA); r.code != http.StatusAccepted || r.body["workflow_id"] != older {
		t.Fatalf("build 1 again: %d %v", r.code, r.body)
	}
	if st := s.waitPhase(newID, workflows.PhaseAwaitingApproval); st["superseded_by"] != nil {
		t.Fatalf("the newer remediation was superseded by an older report: %v", st)
	}
}

// TestContinueAsNewWhileAwaitingApproval: a remediation whose history grows
// past the limit while it waits (alerts attaching to it) continues as new
// with its whole state, and is approved and completed in the new run.
func TestContinueAsNewWhileAwaitingApproval(t *testing.T) {
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	s := startStack(t, t.TempDir(), ports, "REMEDIATOR_HISTORY_LIMIT", "50")
	id := s.startDemo("dev", "continue-as-new")
	st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
	s.continueAsNew(id)
	again := s.waitPhase(id, workflows.PhaseAwaitingApproval)
	if again["decision_id"] != st["decision_id"] || again["runs"] != float64(2) || again["attached"].(float64) < 1 {
		t.Fatalf("the new run does not carry the state: %v", again)
	}
	if r := s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st)); r.code != http.StatusOK {
		t.Fatalf("approve after continue-as-new: %d %v", r.code, r.body)
	}
	done := s.waitPhase(id, workflows.PhaseCompleted)
	if done["pr"] == nil {
		t.Fatalf("no change: %v", done)
	}
	if n := s.countRunsAtLeast(id, 2); n != 2 {
		t.Fatalf("want 2 runs, got %d", n)
	}
}

// TestOneChangePerIncident: once a remediation of an incident opened its
// change, another request naming the same incident is refused (409
// incident_has_change), retries of the first are answered by it, and a
// remediation of another incident is not affected.
func TestOneChangePerIncident(t *testing.T) {
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	s := startStack(t, t.TempDir(), ports)
	d := s.dev.Demo
	start := func(key, incident string) response {
		return s.call("POST", "/api/remediations", "dev", map[string]string{"repo": d.Path, "ref": d.Branch,
			"failure_summary": d.FailureSummary, "log_excerpt": d.LogExcerpt, "incident_id": incident}, "Idempotency-Key", key)
	}
	r := start("inc-first", "INC-7")
	if r.code != http.StatusAccepted {
		t.Fatalf("start: %d %v", r.code, r.body)
	}
	id := r.body["id"].(string)
	st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
	s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st))
	s.waitPhase(id, workflows.PhaseCompleted)
	// Visibility catches up with the phase within a moment.
	for i := 0; ; i++ {
		runs, err := s.dev.Client.ListWorkflow(context.Background(), listReq(s, "RemediationIncident = 'INC-7' AND RemediationPhase = 'Completed'"))
		if err == nil && len(runs.GetExecutions()) == 1 {
			break
		}
		if i > 300 {
			t.Fatalf("%s never listed as the incident's completed remediation: %v", id, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	if r := start("inc-first", "INC-7"); r.code != http.StatusAccepted || r.body["id"] != id || r.body["existing"] != true {
		t.Fatalf("a retry of the first: %d %v", r.code, r.body)
	}
	if r := start("inc-second", "INC-7"); r.code != http.StatusConflict || r.body["error"] != "incident_has_change" {
		t.Fatalf("a second remediation of the incident: %d %v", r.code, r.body)
	}
	if r := start("inc-other", "INC-8"); r.code != http.StatusAccepted {
		t.Fatalf("another incident: %d %v", r.code, r.body)
	}
}
