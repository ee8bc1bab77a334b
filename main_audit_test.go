package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"remediator/internal/audit"
	"remediator/internal/pgtest"
)

// writeAuditFile makes a JSON lines audit store with three records of
// rem-a and one of rem-b.
func writeAuditFile(t *testing.T, path string) {
	t.Helper()
	s, err := audit.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	appendAuditEvents(t, s)
}

func appendAuditEvents(t *testing.T, s audit.Store) {
	t.Helper()
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var evs []audit.Event
	for i, rem := range []string{"rem-a", "rem-a", "rem-b", "rem-a"} {
		evs = append(evs, audit.Event{ID: fmt.Sprintf("%s/%d", rem, i+1), RemediationID: rem, Seq: i + 1, Kind: "phase",
			Actor: "alice", Roles: []string{"approver"}, Channel: "api", At: at.Add(time.Duration(i) * time.Second)})
	}
	if err := s.Append(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
}

// tamperLine sets the actor of the record on line n (from 1), leaving its
// hash as it was.
func tamperLine(t *testing.T, path string, n int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	var r map[string]any
	if err := json.Unmarshal([]byte(lines[n-1]), &r); err != nil {
		t.Fatal(err)
	}
	r["actor"] = "mallory"
	nb, _ := json.Marshal(r)
	lines[n-1] = string(nb)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func runAudit(env map[string]string, args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"audit"}, args...), func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

var okLine = regexp.MustCompile(`^audit chain OK: 4 records, head [0-9a-f]{64}\n$`)

func TestAuditVerifyIntactAndTampered(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	writeAuditFile(t, path)

	// --file, REMEDIATOR_AUDIT_FILE and the data dir's default all name it.
	for name, c := range map[string]struct {
		env  map[string]string
		args []string
	}{
		"--file":                {nil, []string{"verify", "--file", path}},
		"REMEDIATOR_AUDIT_FILE": {map[string]string{"REMEDIATOR_AUDIT_FILE": path}, []string{"verify"}},
		"data dir":              {map[string]string{"REMEDIATOR_DATA_DIR": dir}, []string{"verify"}},
	} {
		out, _, err := runAudit(c.env, c.args...)
		if err != nil || !okLine.MatchString(out) {
			t.Fatalf("%s: intact chain: %v %q", name, err, out)
		}
	}

	out, _, err := runAudit(nil, "list", "rem-a", "--file", path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("list rem-a: %q", out)
	}
	for i, l := range lines {
		var r audit.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.RemediationID != "rem-a" || r.Hash != audit.ComputeHash(r) {
			t.Fatalf("list line %d: %q %v", i, l, err)
		}
	}

	tamperLine(t, path, 2)
	out, _, err = runAudit(nil, "verify", "--file", path)
	if err == nil || !strings.Contains(err.Error(), "index 2") ||
		!strings.HasPrefix(out, "audit chain BROKEN at index 2: hash does not match the record's content") {
		t.Fatalf("tampered chain: %v %q", err, out)
	}
}

// The real exit codes and streams, through main().
func TestAuditVerifyExitCodes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	writeAuditFile(t, path)
	exe := func(args ...string) (int, string, string) {
		cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestAuditHelperProcess$", "--"}, args...)...)
		cmd.Env = append(os.Environ(), "REMEDIATOR_AUDIT_HELPER_PROCESS=1")
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
	}
	code, out, _ := exe("audit", "verify", "--file", path)
	if code != 0 || !okLine.MatchString(out) {
		t.Fatalf("intact: exit %d, %q", code, out)
	}
	tamperLine(t, path, 3)
	code, out, errOut := exe("audit", "verify", "--file", path)
	if code != 1 || !strings.HasPrefix(out, "audit chain BROKEN at index 3: ") ||
		!strings.Contains(errOut, "remediator: audit chain broken at index 3") {
		t.Fatalf("tampered: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestAuditHelperProcess is main() for TestAuditVerifyExitCodes.
func TestAuditHelperProcess(t *testing.T) {
	if os.Getenv("REMEDIATOR_AUDIT_HELPER_PROCESS") != "1" {
		t.Skip("runs as a child process of TestAuditVerifyExitCodes")
	}
	for i, a := range os.Args {
		if a == "--" {
			os.Args = append([]string{"remediator"}, os.Args[i+1:]...)
			break
		}
	}
	main()
	os.Exit(0)
}

func TestAuditCommandUsage(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.jsonl")
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, nil, "usage"},
		{nil, []string{"frobnicate"}, "usage"},
		{nil, []string{"verify", "extra"}, "no arguments"},
		{nil, []string{"list"}, "usage"},
		{nil, []string{"verify", "--file", missing}, "no audit file at " + missing},
		{map[string]string{"REMEDIATOR_DATA_DIR": dir}, []string{"verify"}, "no audit file at " + filepath.Join(dir, "audit.jsonl")},
	} {
		if _, _, err := runAudit(c.env, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("audit %q: want %q, got %v", c.args, c.want, err)
		}
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("verify must not create the file it was asked to read")
	}
	if !strings.Contains(usage, "\n  audit verify ") {
		t.Error("usage does not list audit verify")
	}
}

// With REMEDIATOR_DATABASE_URL the command reads the audit_events table.
func TestAuditVerifyPostgres(t *testing.T) {
	url := pgtest.NewDatabase(t)
	env := map[string]string{"REMEDIATOR_DATABASE_URL": url}
	if _, _, err := runAudit(env, "verify"); err == nil || !strings.Contains(err.Error(), "audit_events does not exist") {
		t.Fatalf("before any process created the table: %v", err)
	}
	s, err := audit.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	appendAuditEvents(t, s)
	out, _, err := runAudit(env, "verify")
	if err != nil || !okLine.MatchString(out) {
		t.Fatalf("verify: %v %q", err, out)
	}
	out, _, err = runAudit(env, "list", "rem-b")
	if err != nil || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"remediation_id":"rem-b"`) {
		t.Fatalf("list: %v %q", err, out)
	}
}
