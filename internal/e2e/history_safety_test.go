//go:build !production

package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"testing"

	"remediator/internal/config"
	"remediator/internal/devserver"
	"remediator/internal/policy"
	"remediator/workflows"
)

// captureSafety records version 5's paths: votes naming the base, a
// regeneration asked for, a regeneration because the base moved, and a
// supersession by a newer failure.
func (s *stack) captureSafety(out string) {
	t := s.t
	d := s.dev.Demo

	id := s.startDemo("dev", "hist-v5-approved")
	st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
	s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st))
	s.waitPhase(id, workflows.PhaseCompleted)
	s.save(out, "v5-approved.json", id)

	id = s.startDemo("dev", "hist-v5-regenerated")
	st = s.waitPhase(id, workflows.PhaseAwaitingApproval)
	rg := vote(st)
	rg["reason"] = "try again"
	if r := s.call("POST", "/api/remediations/"+id+"/regenerate", "dev", rg); r.code != http.StatusOK {
		t.Fatalf("regenerate: %d %v", r.code, r.body)
	}
	st = s.waitRegenerated(id, st["decision_id"].(string))
	s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st))
	s.waitPhase(id, workflows.PhaseCompleted)
	s.save(out, "v5-regenerated.json", id)

	// Jenkins reports build 1, then build 2 at a newer commit: build 1's
	// remediation is superseded.
	report := func(build int, sha string) string {
		r := s.call("POST", "/api/ci/event", "dev", map[string]any{"name": "lint",
			"build": map[string]any{"number": build, "status": "FAILURE", "scm": map[string]any{"url": d.Path, "branch": d.Branch, "commit": sha}, "log": d.LogExcerpt}})
		if r.code != http.StatusAccepted {
			t.Fatalf("build %d: %d %v", build, r.code, r.body)
		}
		return r.body["workflow_id"].(string)
	}
	older := report(1, d.SHA)
	s.waitPhase(older, workflows.PhaseAwaitingApproval)
	moveBase(t, d.Path, "NOTES.md", "notes\n")
	newer := report(2, strings.TrimSpace(git(t, d.Path, "rev-parse", "HEAD")))
	s.waitPhase(older, workflows.PhaseSuperseded)
	s.save(out, "v5-superseded.json", older)
	s.call("POST", "/api/remediations/"+newer+"/cancel", "admin", nil)
	s.waitPhase(newer, workflows.PhaseCancelled)

	// Approved, but main moved under the fix: regenerated, approved again.
	id = s.startDemo("dev", "hist-v5-base-moved")
	st = s.waitPhase(id, workflows.PhaseAwaitingApproval)
	util, err := os.ReadFile(filepath.Join(d.Path, "util.go"))
	if err != nil {
		t.Fatal(err)
	}
	moveBase(t, d.Path, "util.go", "// Package main greets.\n"+string(util))
	s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st))
	st = s.waitRegenerated(id, st["decision_id"].(string))
	s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st))
	s.waitPhase(id, workflows.PhaseCompleted)
	s.save(out, "v5-base-moved.json", id)
}

// moveBase commits content to file on the checked-out branch of repo.
func moveBase(t *testing.T, repo, file, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(repo, file), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "add", file)
	git(t, repo, "-c", "user.name=Pusher", "-c", "user.email=p@example.com", "commit", "-qm", "move the base")
}

// capturePolicyTiming records the risk policy's timers and protected paths
// (reminders and an escalation until expiry; an admin needed on top of the
// quorum) on a stack whose policy counts in seconds, and a remediation that
// continues as new while awaiting approval.
func capturePolicyTiming(t *testing.T, out string) {
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	s := startStackWith(t, t.TempDir(), ports, func(c *config.Config) {
		p := policy.Default()
		if c.Policy != nil {
			p = *c.Policy
		}
		levels := map[string]policy.LevelRule{}
		for name, lr := range p.Levels {
			lr.Deadline, lr.RemindEvery, lr.EscalateBefore, lr.EscalateTo = 20*time.Second, 3*time.Second, 8*time.Second, "<!here>"
			levels[name] = lr
		}
		p.Levels, p.Name = levels, "capture"
		p.Protected = policy.Protected{Paths: []string{"util.go"}, Mode: policy.ProtectedAdmin}
		c.Policy = &p
	})

	id := s.startDemo("dev", "hist-v5-reminders")
	s.waitPhase(id, workflows.PhaseExpired)
	s.save(out, "v5-reminders-escalation-expired.json", id)

	id = s.startDemo("dev", "hist-v5-protected")
	st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
	if r := s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st)); r.code != http.StatusOK || r.body["phase"] != string(workflows.PhaseAwaitingApproval) {
		t.Fatalf("an approver alone must not open a protected fix: %d %v", r.code, r.body)
	}
	s.call("POST", "/api/remediations/"+id+"/approve", "admin", vote(st))
	s.waitPhase(id, workflows.PhaseCompleted)
	s.save(out, "v5-protected-admin.json", id)
	s.stop()

	// Continue-as-new while awaiting approval: a low history limit and
	// alerts attaching to the remediation.
	ports, err = devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	s = startStack(t, t.TempDir(), ports, "REMEDIATOR_HISTORY_LIMIT", "50")
	id = s.startDemo("dev", "hist-v5-continued")
	st = s.waitPhase(id, workflows.PhaseAwaitingApproval)
	first := s.continueAsNew(id)
	s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st))
	s.waitPhase(id, workflows.PhaseCompleted)
	s.saveRun(out, "v5-continued-as-new.json", id, first)
	s.save(out, "v5-resumed-approved.json", id)
}

// continueAsNew attaches events to the waiting remediation id until its
// history passes the limit and it continues as new; it returns the run id
// of the run that continued.
func (s *stack) continueAsNew(id string) string {
	s.t.Helper()
	ctx := context.Background()
	desc, err := s.dev.Client.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		s.t.Fatal(err)
	}
	first := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	orch := s.orchestrator()
	for i := range 200 {
		if err := orch.Attach(ctx, id, "fp-capture", time.Now()); err != nil {
			s.t.Fatalf("attach %d: %v", i, err)
		}
		if i%10 == 9 {
			if d, err := s.dev.Client.DescribeWorkflowExecution(ctx, id, ""); err == nil && d.GetWorkflowExecutionInfo().GetExecution().GetRunId() != first {
				s.waitPhase(id, workflows.PhaseAwaitingApproval)
				return first
			}
		}
	}
	s.t.Fatalf("%s never continued as new", id)
	return ""
}
