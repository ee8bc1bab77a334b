package app

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"remediator/internal/config"
	"remediator/internal/sandbox"
)

// TestRecipeSandboxModes: without a working bubblewrap, "required" refuses
// to build the worker's activities and "auto" builds them with a loud
// warning naming the setting.
func TestRecipeSandboxModes(t *testing.T) {
	bin := t.TempDir()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not installed")
	}
	if err := os.Symlink(gitPath, filepath.Join(bin, "git")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin) // git, and no bwrap
	cfg := config.Config{DataDir: t.TempDir(), GitRoots: []string{t.TempDir()}, RecipeSandbox: sandbox.ModeRequired}
	var log bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&log, nil))
	if _, err := BuildActivities(context.Background(), cfg, logger, nil); err == nil || !strings.Contains(err.Error(), "REMEDIATOR_RECIPE_SANDBOX=required") {
		t.Fatalf("required without bubblewrap must refuse to start: %v", err)
	}
	cfg.RecipeSandbox = sandbox.ModeAuto
	comps, err := BuildActivities(context.Background(), cfg, logger, nil)
	if err != nil || comps.Acts == nil {
		t.Fatalf("auto without bubblewrap must still start: %v", err)
	}
	if !strings.Contains(log.String(), "RECIPE COMMANDS ARE NOT SANDBOXED") || !strings.Contains(log.String(), "level=WARN") {
		t.Fatalf("auto without bubblewrap must warn loudly: %s", log.String())
	}
}
