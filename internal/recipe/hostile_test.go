package recipe_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"remediator/internal/hostile"
	"remediator/internal/recipe"
	"remediator/internal/sandbox"
)

// requireSandbox returns a working bubblewrap sandbox, or skips loudly
// (fails under CI=true, where .ci/run installs bubblewrap).
func requireSandbox(t *testing.T) *sandbox.Sandbox {
	t.Helper()
	sb, err := sandbox.New(context.Background(), sandbox.Options{Mode: sandbox.ModeRequired})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("bubblewrap sandbox unavailable under CI: %v", err)
		}
		t.Skipf("SKIPPING: bubblewrap sandbox unavailable (apt-get install bubblewrap): %v", err)
	}
	return sb
}

func hostileGenerate(t *testing.T, g *recipe.Generator, failure string) (hostile.Repo, recipe.Fix, error) {
	t.Helper()
	e := newEnv(t)
	h := hostile.New(t, e.root, "hostile", t.TempDir())
	path, sha, err := e.p.Resolve(context.Background(), h.Path, "main")
	if err != nil {
		t.Fatal(err)
	}
	g.Checkout = e.p
	fix, err := g.Generate(context.Background(), recipe.Request{Repo: path, SHA: sha, FailureSummary: failure})
	return h, fix, err
}

// TestHostileRepositoryBuiltinRecipes: the built-in recipes on a repository
// whose tracked links point at a secret, a directory and a go.mod outside
// the checkout read and write nothing through them, run none of the
// repository's programs, and the error shown to callers carries no file
// content.
func TestHostileRepositoryBuiltinRecipes(t *testing.T) {
	for _, failure := range []string{hostile.Failure, "go: updates to go.mod needed; to update it: go mod tidy", "lint: trailing whitespace"} {
		t.Run(strings.Fields(failure)[0], func(t *testing.T) {
			h, fix, err := hostileGenerate(t, &recipe.Generator{Recipes: recipe.Builtin()}, failure)
			if err == nil {
				// A fix that does not touch the links is fine; one that does is not.
				for _, f := range fix.Files {
					if f == "evil.go" || f == "linkdir" || f == "go.mod" {
						t.Errorf("the fix touches the link %s", f)
					}
				}
			} else {
				var re *recipe.Error
				if errors.As(err, &re) && strings.Contains(re.Summary(), h.SecretValue) {
					t.Errorf("the summary shown to callers carries the secret: %s", re.Summary())
				}
			}
			if strings.Contains(string(fix.Patch), h.SecretValue) || (err != nil && strings.Contains(err.Error(), h.SecretValue)) {
				t.Error("the secret's content reached the fix or the error")
			}
			if fired := h.Fired(t); len(fired) > 0 {
				t.Errorf("programs named by the repository ran: %v", fired)
			}
			h.OutsideUnchanged(t)
		})
	}
}

// TestRecipeCannotChangeLinks: a fix that changes a tracked link's target,
// or adds a link, is refused like a denied path.
func TestRecipeCannotChangeLinks(t *testing.T) {
	for name, command := range map[string]string{
		"retarget": `printf '/etc/shadow' > evil.go`,
		"new link": `ln -s /etc/passwd newlink`,
	} {
		t.Run(name, func(t *testing.T) {
			r := recipe.Recipe{Name: "links", Match: "links", Command: command, Timeout: time.Minute}
			_, fix, err := hostileGenerate(t, &recipe.Generator{Recipes: []recipe.Recipe{r}}, "links")
			re := wantKind(t, fix, err, recipe.KindDeniedPath)
			if len(re.Paths) != 1 || (re.Paths[0] != "evil.go" && re.Paths[0] != "newlink") {
				t.Errorf("paths = %v", re.Paths)
			}
		})
	}
}

// TestRecipeSandbox: in the sandbox a recipe cannot write outside the
// checkout, read the worker's secrets (environment or files), or open a TCP
// connection, and its HOME is empty. Each probe writes its outcome into the
// checkout, so the diff reports what the command could do.
func TestRecipeSandbox(t *testing.T) {
	sb := requireSandbox(t)
	t.Setenv("REMEDIATOR_TEST_SECRET", "env-secret-value")
	outsideDir := t.TempDir()
	outside := filepath.Join(outsideDir, "escaped.txt")
	secretFile := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(secretFile, []byte("file-secret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- struct{}{}
			_ = c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	script := strings.Join([]string{
		`{ echo pwned > '` + outside + `' && echo write-outside-ok || echo write-outside-denied; } >> result.txt 2>/dev/null`,
		`{ [ -n "$REMEDIATOR_TEST_SECRET" ] && echo "env:$REMEDIATOR_TEST_SECRET" || echo env-empty; } >> result.txt`,
		`{ grep -q env-secret-value /proc/1/environ /proc/self/environ 2>/dev/null && echo proc-env-leak || echo proc-env-clean; } >> result.txt`,
		`{ cat '` + secretFile + `' 2>/dev/null && echo read-secret-ok || echo read-secret-denied; } >> result.txt`,
		`{ bash -c 'echo hi > /dev/tcp/127.0.0.1/` + strconv.Itoa(port) + `' 2>/dev/null && echo tcp-ok || echo tcp-denied; } >> result.txt`,
		`{ [ -z "$(ls -A "$HOME")" ] && touch "$HOME/x" && echo home-empty-writable || echo home-bad; } >> result.txt`,
	}, "\n")
	r := recipe.Recipe{Name: "probe", Match: "probe", Command: script, Timeout: time.Minute}
	_, fix, err := hostileGenerate(t, &recipe.Generator{Recipes: []recipe.Recipe{r}, Sandbox: sb}, "probe")
	if err != nil {
		t.Fatal(err)
	}
	got := string(fix.Patch)
	for _, want := range []string{"+write-outside-denied", "+env-empty", "+proc-env-clean", "+read-secret-denied", "+tcp-denied", "+home-empty-writable"} {
		if !strings.Contains(got, want) {
			t.Errorf("the probe did not report %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, "secret-value") {
		t.Errorf("a secret reached the diff:\n%s", got)
	}
	if _, err := os.Stat(outside); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the recipe wrote outside the checkout: %v", err)
	}
	select {
	case <-accepted:
		t.Error("the recipe opened a TCP connection")
	case <-time.After(200 * time.Millisecond):
	}
}

// TestSandboxedBuiltinsStillWork: the gofmt recipe (which calls git inside
// the sandbox) fixes the demo repository in the sandbox.
func TestSandboxedBuiltinsStillWork(t *testing.T) {
	sb := requireSandbox(t)
	e := newEnv(t)
	d := e.demo(t)
	g := &recipe.Generator{Checkout: e.p, Recipes: recipe.Builtin(), Sandbox: sb}
	fix, err := g.Generate(context.Background(), recipe.Request{Repo: d.Path, SHA: d.SHA, FailureSummary: d.FailureSummary, LogExcerpt: d.LogExcerpt})
	if err != nil {
		t.Fatal(err)
	}
	if fix.Recipe != "gofmt" || !fix.Validated || !strings.Contains(string(fix.Patch), "diff --git a/main.go b/main.go") {
		t.Errorf("fix = %+v", fix)
	}
}

// TestSandboxedGitReadsTheRepositoryObjects: a recipe may use git history
// (the repository's objects are readable, read-only) in the sandbox.
func TestSandboxedGitReadsTheRepositoryObjects(t *testing.T) {
	sb := requireSandbox(t)
	r := recipe.Recipe{Name: "history", Match: "history", Command: `git log -1 --format=%s > last-commit.txt && git show HEAD:main.go > copy.txt`, Timeout: time.Minute}
	_, fix, err := hostileGenerate(t, &recipe.Generator{Recipes: []recipe.Recipe{r}, Sandbox: sb}, "history")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(fix.Patch), "+innocent") || !strings.Contains(string(fix.Patch), "+package main") {
		t.Fatalf("git in the sandbox could not read the history:\n%s", fix.Patch)
	}
}
