package workflows_test

import (
	"os"
	"path/filepath"
	"testing"

	sdkworker "go.temporal.io/sdk/worker"

	"remediator/worker"
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
		"expired-before-gate.json": false}
	for _, f := range files {
		if _, ok := required[filepath.Base(f)]; ok {
			required[filepath.Base(f)] = true
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			replayer := sdkworker.NewWorkflowReplayer()
			worker.RegisterWorkflows(replayer)
			if err := replayer.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
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
