//go:build !production

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

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

// TestWorkerStopLetsTheRunningActivityFinish: a worker asked to stop stops
// polling but lets the activity it runs finish (REMEDIATOR_WORKER_STOP_TIMEOUT),
// so a rolling restart costs no retry: the fix completes on its first
// attempt and nothing times out.
func TestWorkerStopLetsTheRunningActivityFinish(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded Temporal server")
	}
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	recipes := filepath.Join(dir, "recipes.json")
	if err := os.WriteFile(recipes, []byte(`[{"name":"slowish","match":"takes a few seconds","command":"sleep 3; echo fixed >> README.md","timeout":"1m"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startStack(t, dir, ports, "REMEDIATOR_RECIPES_FILE", recipes, "REMEDIATOR_WORKER_STOP_TIMEOUT", "30s")
	id := s.call("POST", "/api/remediations", "dev", map[string]string{"repo": s.dev.Demo.Path, "failure_summary": "takes a few seconds"},
		"Idempotency-Key", "graceful-stop").body["id"].(string)
	s.waitPhase(id, workflows.PhaseGeneratingFix)
	time.Sleep(500 * time.Millisecond) // the recipe is running
	stopped := time.Now()
	s.dev.Worker.Stop() // blocks while the activity drains
	s.dev.Worker = nil
	took := time.Since(stopped)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var completed, attempts int
	it := s.dev.Client.GetWorkflowHistory(ctx, id, "", false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			attempts = int(ev.GetActivityTaskStartedEventAttributes().GetAttempt())
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			completed++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED, enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
			t.Fatalf("the draining activity failed: %v", ev)
		}
	}
	t.Logf("worker stop took %s; GenerateFix completed=%d attempt=%d", took.Round(100*time.Millisecond), completed, attempts)
	if completed < 1 || attempts != 1 || took < time.Second {
		t.Fatalf("the running fix must finish during the stop: completed=%d attempt=%d stop took %s", completed, attempts, took)
	}
}
