package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// Outside dev the audit store is the database's table or a file named
// explicitly: the default file in the data dir is for `remediator dev`.
func TestAuditStoreConfiguration(t *testing.T) {
	base := func(extra ...string) map[string]string {
		env := map[string]string{
			"REMEDIATOR_API_TOKENS": "alice:approver|admin:0123456789abcdef0123", "REMEDIATOR_CODEC": "off",
			"REMEDIATOR_VOTE_SIGNING_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
			"REMEDIATOR_VOTE_PUBLIC_KEYS": "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",
			"KLYNX_DRAGON_BASE_URL":       "https://dragon.example.com", "KLYNX_DRAGON_TOKEN": "t0ken",
		}
		for i := 0; i+1 < len(extra); i += 2 {
			env[extra[i]] = extra[i+1]
		}
		return env
	}
	// Dragon holds the decisions, so the ledger needs no database; the
	// audit store still does, or an explicit file.
	c, err := Load(ModeProduction, envOf(base()))
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{"api": c.ValidateAPI(), "worker": c.ValidateWorker()} {
		if err == nil || !strings.Contains(err.Error(), "no audit store") || !strings.Contains(err.Error(), "REMEDIATOR_AUDIT_FILE") {
			t.Errorf("%s must refuse the default audit file outside dev: %v", name, err)
		}
	}
	c, err = Load(ModeProduction, envOf(base("REMEDIATOR_AUDIT_FILE", "audit/events.jsonl")))
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(c.AuditFile) || !strings.HasSuffix(c.AuditFile, filepath.Join("audit", "events.jsonl")) {
		t.Fatalf("the audit file is made absolute: %q", c.AuditFile)
	}
	if err := c.ValidateAPI(); err != nil {
		t.Fatalf("an explicit audit file: %v", err)
	}
	if err := c.ValidateWorker(); err != nil {
		t.Fatalf("an explicit audit file: %v", err)
	}
	c, err = Load(ModeProduction, envOf(base("REMEDIATOR_DATABASE_URL", "postgres://r:pw@db:5432/r")))
	if err != nil || c.ValidateAPI() != nil || c.ValidateWorker() != nil || c.AuditFile != "" {
		t.Fatalf("the database holds the audit store: %v %q", err, c.AuditFile)
	}
	_, err = Load(ModeProduction, envOf(base("REMEDIATOR_DATABASE_URL", "postgres://r:pw@db:5432/r", "REMEDIATOR_AUDIT_FILE", "/a.jsonl")))
	if err == nil || !strings.Contains(err.Error(), "REMEDIATOR_AUDIT_FILE and REMEDIATOR_DATABASE_URL") {
		t.Fatalf("both stores at once must be refused: %v", err)
	}
	// Dev needs neither.
	c, err = Load(ModeDev, envOf(nil))
	if err != nil || c.ValidateWorker() != nil || c.AuditFile != "" {
		t.Fatalf("dev: %v", err)
	}
}
