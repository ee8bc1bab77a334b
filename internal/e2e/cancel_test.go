package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"remediator/internal/devserver"
	"remediator/workflows"
)

// TestCancelStopsTheRunningRecipe: GenerateFix heartbeats, so a cancel of
// the remediation reaches the recipe command it is running and the command
// is killed within a heartbeat round, instead of running to its own timeout
// (here 10 minutes).
func TestCancelStopsTheRunningRecipe(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded Temporal server")
	}
	if _, err := exec.LookPath("pgrep"); err != nil {
		t.Skip("pgrep is not installed")
	}
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// A unique argument, so this recipe's process can be found on the host
	// (the sandbox's pid namespace is visible from outside).
	marker := fmt.Sprintf("613.%d", time.Now().UnixNano()%1_000_000_000)
	recipes := filepath.Join(dir, "recipes.json")
	if err := os.WriteFile(recipes, []byte(`[{"name":"hang","match":"hangs forever","command":"sleep `+marker+`","timeout":"10m"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startStack(t, dir, ports, "REMEDIATOR_RECIPES_FILE", recipes)
	running := func() bool {
		return exec.Command("pgrep", "-f", "sleep "+marker).Run() == nil
	}
	id := s.call("POST", "/api/remediations", "dev", map[string]string{"repo": s.dev.Demo.Path, "failure_summary": "hangs forever"},
		"Idempotency-Key", "cancel-recipe").body["id"].(string)
	s.waitPhase(id, workflows.PhaseGeneratingFix)
	deadline := time.Now().Add(30 * time.Second)
	for !running() {
		if time.Now().After(deadline) {
			t.Fatal("the recipe command never started")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancelled := time.Now()
	if r := s.call("POST", "/api/remediations/"+id+"/cancel", "admin", nil); r.code >= 300 {
		t.Fatalf("cancel: %d %v", r.code, r.body)
	}
	s.waitPhase(id, workflows.PhaseCancelled)
	// The heartbeat timeout is 20s; the SDK sends heartbeats at most every
	// 80% of it, and the cancel rides on a heartbeat's answer.
	deadline = time.Now().Add(40 * time.Second)
	for running() {
		if time.Now().After(deadline) {
			t.Fatalf("the recipe command still runs %s after the cancel", time.Since(cancelled).Round(time.Second))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("recipe command stopped %s after the cancel", time.Since(cancelled).Round(100*time.Millisecond))
}
