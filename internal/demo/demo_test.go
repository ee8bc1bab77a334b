package demo_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"remediator/internal/demo"
)

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestEnsure(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "nested", "demo")
	r1, err := demo.Ensure(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Path != dir || r1.Branch != "main" || len(r1.SHA) != 40 {
		t.Fatalf("unexpected repo %+v", r1)
	}
	if head := run(t, dir, "git", "rev-parse", "refs/heads/main"); head != r1.SHA {
		t.Errorf("main = %s, want %s", head, r1.SHA)
	}
	if st := run(t, dir, "git", "status", "--porcelain"); st != "" {
		t.Errorf("work tree not clean: %s", st)
	}

	// The CI failure is real: gofmt reports exactly the files the log names.
	unformatted := run(t, dir, "gofmt", "-l", ".")
	if unformatted != "main.go\nutil.go" {
		t.Errorf("gofmt -l = %q", unformatted)
	}
	for _, f := range strings.Split(unformatted, "\n") {
		if !strings.Contains(r1.LogExcerpt, "\n"+f+"\n") {
			t.Errorf("log excerpt does not list %s:\n%s", f, r1.LogExcerpt)
		}
	}
	if !regexp.MustCompile(`gofmt|not (properly )?formatted`).MatchString(r1.FailureSummary + "\n" + r1.LogExcerpt) {
		t.Error("failure text does not look like a gofmt failure")
	}
	// The lint script in the repository fails the same way.
	cmd := exec.Command("sh", "ci/lint.sh")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "not gofmt-formatted") {
		t.Errorf("ci/lint.sh should fail: %v\n%s", err, out)
	}
	// The program itself builds and its tests pass: only formatting is broken.
	cmd = exec.Command("go", "test", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("go test: %v\n%s", err, out)
	}

	// Idempotent, also after extra branches were added by remediations.
	run(t, dir, "git", "branch", "autofix/x")
	r2, err := demo.Ensure(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if r2 != r1 {
		t.Errorf("second Ensure = %+v, want %+v", r2, r1)
	}
	// Deterministic: another location yields the same commit.
	r3, err := demo.Ensure(ctx, filepath.Join(t.TempDir(), "demo"))
	if err != nil {
		t.Fatal(err)
	}
	if r3.SHA != r1.SHA {
		t.Errorf("SHA differs between locations: %s vs %s", r3.SHA, r1.SHA)
	}
	// No temporary directories are left behind.
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("leftovers next to the demo: %v", entries)
	}
}

func TestEnsureRefusesForeignContent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := demo.Ensure(ctx, dir); err == nil {
		t.Fatal("Ensure overwrote a non-empty directory")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "precious.txt")); string(b) != "keep me" {
		t.Error("existing content was modified")
	}

	// An existing empty directory is fine.
	empty := t.TempDir()
	r, err := demo.Ensure(ctx, empty)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(empty, "main.go")); err != nil || r.Path != empty {
		t.Errorf("demo not created in empty dir: %v", err)
	}
}
