package workflows_test

import (
	"os"
	"path/filepath"
	"testing"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"remediator/worker"
	"remediator/workflows"
)

// TestReplayCommittedHistories replays every committed history against the
// current workflow code: a non-deterministic change fails here, before it can
// break running remediations. `make history` captures new histories.
func TestReplayCommittedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Histories of older workers (before signed votes) and of the current
	// one; all of them must keep replaying.
	required := map[string]bool{"approved.json": false, "rejected.json": false, "expired.json": false,
		"awaiting-approval.json": false, "awaiting-then-approved.json": false,
		"cancelled.json": false, "failed-no-fix.json": false,
		"approved-by-signal.json": false, "ignored-signal.json": false, "slack-vote.json": false,
		"cancelled-generating-fix.json": false, "cancelled-opening-pr.json": false, "openpr-failed.json": false,
		"expired-before-gate.json": false,
		"v2-approved.json":         false, "v2-generate-rejected.json": false,
		"governance-dragon-approved.json": false, "governance-model-slack.json": false,
		"governance-dragon-rejected.json": false, "governance-cancelled.json": false, "governance-expired.json": false,
		"v3-approved.json": false, "v3-failed-no-fix.json": false, "v4-approved.json": false,
		"v5-approved.json": false, "v5-regenerated.json": false, "v5-superseded.json": false, "v5-base-moved.json": false,
		"v5-reminders-escalation-expired.json": false, "v5-protected-admin.json": false,
		"v5-continued-as-new.json": false, "v5-resumed-approved.json": false}
	for _, f := range files {
		if _, ok := required[filepath.Base(f)]; ok {
			required[filepath.Base(f)] = true
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			replayer := sdkworker.NewWorkflowReplayer()
			worker.RegisterWorkflows(replayer)
			history, id := loadHistory(t, f)
			// Replay under the original workflow ID: votes are signed for it.
			err := replayer.ReplayWorkflowHistoryWithOptions(nil, history, sdkworker.ReplayWorkflowHistoryOptions{
				OriginalExecution: workflow.Execution{ID: id, RunID: history.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetOriginalExecutionRunId()},
			})
			if err != nil {
				t.Fatalf("replaying %s: %v", f, err)
			}
		})
	}
	for name, found := range required {
		if !found {
			t.Errorf("history %s is missing: run `make history`", name)
		}
	}
	if _, err := os.Stat(filepath.Join("testdata", "histories")); err != nil {
		t.Fatal(err)
	}
}

// loadHistory reads a committed history and the workflow ID it ran under,
// which the API also puts in the input (RemediationInput.ID).
func loadHistory(t *testing.T, path string) (*historypb.History, string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var in workflows.RemediationInput
	payloads := h.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetInput()
	if err := converter.GetDefaultDataConverter().FromPayloads(payloads, &in); err != nil || in.ID == "" {
		t.Fatalf("%s: no remediation id in the input: %v", path, err)
	}
	return h, in.ID
}
