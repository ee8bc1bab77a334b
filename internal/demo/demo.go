// Package demo creates a small, real git repository whose CI lint step
// really fails, so the embedded dev mode can show an end-to-end remediation
// (failure → fix → approval → change) without any external service.
package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Repo is everything needed to start a remediation against the demo
// repository.
type Repo struct {
	Path, Branch, SHA, FailureSummary, LogExcerpt string
}

const (
	branch = "main"
	// commitDate and the fixed identity make the demo commit, and thus SHA,
	// identical on every machine.
	commitDate     = "@1704067200 +0000"
	authorName     = "Demo Developer"
	authorEmail    = "dev@example.com"
	commitMessage  = "Add greeting CLI"
	failureSummary = "lint: gofmt check failed"
	logExcerpt     = `Run test -z "$(gofmt -l .)" || { gofmt -l .; echo "Error: the files above are not gofmt-formatted"; exit 1; }
main.go
util.go
Error: the files above are not gofmt-formatted
Error: Process completed with exit code 1.`
)

type file struct {
	path string
	mode os.FileMode
	body string
}

// files is the repository content. main.go and util.go are deliberately not
// gofmt-formatted; everything else is.
func files() []file {
	return []file{
		{"go.mod", 0o644, "module example.com/demo\n\ngo 1.22\n"},
		{"main.go", 0o644, `package main

import (
"fmt"
"os"
)

func main() {
  name := "world"
  if len(os.Args) > 1 {
    name = os.Args[1]
  }
	fmt.Println(greeting( name ))
}
`},
		{"util.go", 0o644, `package main

import "strings"

// greeting returns a friendly greeting for name.
func greeting(name string) string {
    return "Hello, "+strings.TrimSpace(name)+"!"
}
`},
		{"greeting_test.go", 0o644, `package main

import "testing"

func TestGreeting(t *testing.T) {
	if got := greeting(" Ada "); got != "Hello, Ada!" {
		t.Fatalf("greeting = %q", got)
	}
}
`},
		{"ci/lint.sh", 0o755, `#!/bin/sh
# The lint step CI runs; reproduce the failure locally with: sh ci/lint.sh
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "$unformatted"
	echo "Error: the files above are not gofmt-formatted"
	exit 1
fi
`},
		{".github/workflows/ci.yml", 0o644, `name: ci
on: [push, pull_request]
jobs:
  lint:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-go@v5
      - run: test -z "$(gofmt -l .)" || { gofmt -l .; echo "Error: the files above are not gofmt-formatted"; exit 1; }
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-go@v5
      - run: go test ./...
`},
		{"README.md", 0o644, `# demo

A tiny Go program used by remediator's dev mode. Its lint step fails because
main.go and util.go are not gofmt-formatted; remediator proposes the fix.
`},
	}
}

// Ensure is idempotent so dev mode can call it on every start: an existing
// demo repository at dir is reused as is (even if branches were added), a
// missing or empty dir gets a fresh one, and anything else at dir is refused
// rather than overwritten.
func Ensure(ctx context.Context, dir string) (Repo, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Minute)
		defer cancel()
	}
	if dir == "" || strings.ContainsRune(dir, 0) {
		return Repo{}, fmt.Errorf("demo: invalid directory %q", dir)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Repo{}, fmt.Errorf("demo: %w", err)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return Repo{}, fmt.Errorf("demo: %w", err)
	}
	// Build next to dir and rename into place, so a concurrent or interrupted
	// Ensure never leaves a half-made repository at dir.
	tmp, err := os.MkdirTemp(parent, ".demo-*")
	if err != nil {
		return Repo{}, fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(tmp)
	sha, err := build(ctx, tmp)
	if err != nil {
		return Repo{}, fmt.Errorf("demo: create repository: %w", err)
	}
	repo := Repo{Path: dir, Branch: branch, SHA: sha, FailureSummary: failureSummary, LogExcerpt: logExcerpt}

	if ok, err := isDemo(ctx, dir, sha); err != nil || ok {
		return repo, err
	}
	// os.Rename refuses to replace a directory, even an empty one; os.Remove
	// only removes dir if it is empty, so nothing of value can be lost.
	_ = os.Remove(dir)
	if err := os.Rename(tmp, dir); err != nil {
		// Lost a race with another Ensure, or dir is something else.
		if ok, derr := isDemo(ctx, dir, sha); derr != nil || ok {
			return repo, derr
		}
		return Repo{}, fmt.Errorf("demo: %s exists and is not the demo repository", dir)
	}
	return repo, nil
}

// isDemo reports whether dir already holds the demo repository. A missing or
// empty dir is not an error; any other content that is not the demo is.
func isDemo(ctx context.Context, dir, sha string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(entries) == 0) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("demo: %w", err)
	}
	gitDir := filepath.Join(dir, ".git")
	if _, err := git(ctx, dir, "--git-dir="+gitDir, "cat-file", "-e", sha+"^{commit}"); err != nil {
		return false, fmt.Errorf("demo: %s exists and is not the demo repository", dir)
	}
	if _, err := git(ctx, dir, "--git-dir="+gitDir, "rev-parse", "--verify", "--quiet", "refs/heads/"+branch); err != nil {
		return false, fmt.Errorf("demo: %s has no %s branch", dir, branch)
	}
	return true, nil
}

func build(ctx context.Context, dir string) (string, error) {
	for _, f := range files() {
		path := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(path, []byte(f.body), f.mode); err != nil {
			return "", err
		}
	}
	steps := [][]string{
		{"init", "--quiet", "--initial-branch=" + branch, "--object-format=sha1", "."},
		{"add", "--all"},
		{"commit", "--quiet", "--no-verify", "--no-gpg-sign", "-m", commitMessage},
	}
	for _, args := range steps {
		if _, err := git(ctx, dir, args...); err != nil {
			return "", err
		}
	}
	out, err := git(ctx, dir, "rev-parse", "HEAD")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// git runs with a clean environment so that the user's git configuration
// (signing, hooks, default branch, autocrlf) cannot change the demo commit.
func git(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	cmd.Env = []string{
		"PATH=" + path,
		"HOME=" + os.TempDir(),
		"LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + os.DevNull,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_CEILING_DIRECTORIES=" + filepath.Dir(dir),
		"GIT_AUTHOR_NAME=" + authorName, "GIT_AUTHOR_EMAIL=" + authorEmail, "GIT_AUTHOR_DATE=" + commitDate,
		"GIT_COMMITTER_NAME=" + authorName, "GIT_COMMITTER_EMAIL=" + authorEmail, "GIT_COMMITTER_DATE=" + commitDate,
	}
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
