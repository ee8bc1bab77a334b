package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"

	"remediator/internal/devserver"
	"remediator/internal/orchestrator"
	"remediator/workflows"
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
	s := startStack(t, t.TempDir(), ports)

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
	orch := orchestrator.New(s.dev.Client, s.cfg.Temporal.Namespace, time.Hour)
	res, err := orch.Start(context.Background(), orchestrator.StartRequest{
		IdempotencyKey: "hist-expired", Requester: "dev", Repo: s.dev.Demo.Path, Ref: "main",
		FailureSummary: s.dev.Demo.FailureSummary, LogExcerpt: s.dev.Demo.LogExcerpt, ApprovalTimeout: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.waitPhase(res.ID, workflows.PhaseExpired)
	s.save(out, "expired.json", res.ID)
}

func (s *stack) save(dir, name, id string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Wait until the last workflow task is recorded, so the file is a
	// consistent prefix of the history.
	time.Sleep(300 * time.Millisecond)
	it := s.dev.Client.GetWorkflowHistory(ctx, id, "", false, 0)
	var h historypb.History
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			s.t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(&h)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.t.Logf("wrote %s (%d events)", name, len(h.Events))
}
