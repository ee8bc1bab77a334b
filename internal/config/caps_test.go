package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRepositoryCaps: per-repository caps default to 20 active and 60 per
// hour, 0 turns a cap off, values over the bound or not numbers stop the
// process; the policy file's caps are loaded with it (for the API too).
func TestRepositoryCaps(t *testing.T) {
	c, err := Load(ModeDev, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.RepoMaxActive != 20 || c.RepoMaxPerHour != 60 {
		t.Fatalf("defaults: %d active, %d per hour", c.RepoMaxActive, c.RepoMaxPerHour)
	}
	c, err = Load(ModeDev, envOf(map[string]string{"REMEDIATOR_REPO_MAX_ACTIVE": "0", "REMEDIATOR_REPO_MAX_PER_HOUR": "10000"}))
	if err != nil || c.RepoMaxActive != 0 || c.RepoMaxPerHour != 10000 {
		t.Fatalf("0 and the bound are valid: %d %d %v", c.RepoMaxActive, c.RepoMaxPerHour, err)
	}
	for k, v := range map[string]string{"REMEDIATOR_REPO_MAX_ACTIVE": "-1", "REMEDIATOR_REPO_MAX_PER_HOUR": "10001"} {
		if _, err := Load(ModeDev, envOf(map[string]string{k: v})); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: want an error naming it, got %v", k, v, err)
		}
	}
	file := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(file, []byte("caps:\n  - {repos: [\"acme/payments*\"], max_active: 2, max_per_hour: 5}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load(ModeProduction, envOf(map[string]string{"REMEDIATOR_POLICY_FILE": file}))
	if err != nil && strings.Contains(err.Error(), "REMEDIATOR_POLICY_FILE") {
		t.Fatal(err)
	}
	if c.Policy == nil {
		t.Fatal("the policy file is loaded in every mode (the API reads its caps)")
	}
	if a, h, ok := c.Policy.CapsFor("acme/payments-api"); !ok || a != 2 || h != 5 {
		t.Fatalf("policy caps: %d %d %t", a, h, ok)
	}
}
