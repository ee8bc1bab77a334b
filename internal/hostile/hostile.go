// Package hostile builds git repositories the way a hostile contributor
// would craft them, for the tests of every package that touches repository
// content: tracked symlinks out of the checkout, hooks, and configuration
// that names programs (fsmonitor, alternateRefsCommand, filter / textconv /
// diff drivers, credential helpers, ssh). Every program it plants records
// that it ran by creating a marker file, so a test proves "nothing ran" by
// finding no markers. Only tests import it.
package hostile

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Repo is a crafted repository and the places a test checks afterwards.
type Repo struct {
	Path    string // the repository (a work tree with .git)
	Markers string // a program that ran left a file here
	// Secret is a file outside every git root whose content must never show
	// up anywhere (evil.go links to it).
	Secret, SecretValue string
	// Outside is a directory outside the checkout that the repository's
	// links point into; nothing may be written there.
	Outside string
	// GofmtTarget is a tracked Go file with a real gofmt defect, so the
	// gofmt recipe has something to fix.
	GofmtTarget string
}

// Failure is a CI failure the gofmt recipe matches; WhitespaceFailure one
// the trailing-whitespace recipe matches (it fixes notes.txt).
const (
	Failure           = "lint: gofmt check failed"
	WhitespaceFailure = "lint: trailing whitespace"
)

// New creates the repository at root/name with one commit on main, then arms
// it: hooks, configuration and alternates are added after the commit, so
// setting it up runs none of them. secretDir must be outside root.
func New(t testing.TB, root, name, secretDir string) Repo {
	t.Helper()
	r := Repo{
		Path:        filepath.Join(root, name),
		Markers:     filepath.Join(secretDir, "markers"),
		Secret:      filepath.Join(secretDir, "secret.txt"),
		SecretValue: "TOPSECRET-" + strings.Repeat("z", 16),
		Outside:     filepath.Join(secretDir, "outside"),
	}
	for _, d := range []string{r.Path, r.Markers, r.Outside, filepath.Join(r.Outside, "elsewhere")} {
		mkdir(t, d)
	}
	writeFile(t, r.Secret, r.SecretValue+"\n", 0o600)
	writeFile(t, filepath.Join(r.Outside, "victim.go"), "package victim\nfunc  X(){}\n", 0o644)
	writeFile(t, filepath.Join(r.Outside, "elsewhere", "go.mod"), "module elsewhere\n\ngo 1.21\n", 0o644)

	run(t, r.Path, "git", "init", "-q", "-b", "main")
	r.GofmtTarget = "main.go"
	writeFile(t, filepath.Join(r.Path, "main.go"), "package main\n\nfunc main()  {\n\tprintln( \"hi\")\n}\n", 0o644)
	// Trailing whitespace in a plain file: the trailing-whitespace recipe
	// fixes it without touching any link, so a change can be opened.
	writeFile(t, filepath.Join(r.Path, "notes.txt"), "hello  \nworld\n", 0o644)
	// Links out of the checkout: a file, a directory, and a go.mod.
	symlink(t, r.Secret, filepath.Join(r.Path, "evil.go"))
	symlink(t, r.Outside, filepath.Join(r.Path, "linkdir"))
	symlink(t, filepath.Join(r.Outside, "elsewhere", "go.mod"), filepath.Join(r.Path, "go.mod"))
	writeFile(t, filepath.Join(r.Path, ".gitattributes"), "* filter=evil diff=evil merge=evil\n", 0o644)
	run(t, r.Path, "git", "add", "-A")
	run(t, r.Path, "git", "commit", "-q", "-m", "innocent")

	// Arm it. Every program name below is one a repository can configure.
	hooks := filepath.Join(r.Path, ".git", "hooks")
	evilHooks := filepath.Join(r.Path, "evilhooks")
	mkdir(t, hooks)
	mkdir(t, evilHooks)
	for _, h := range []string{"pre-receive", "update", "post-receive", "post-update", "reference-transaction",
		"pre-commit", "commit-msg", "post-commit", "post-checkout", "pre-push", "pre-auto-gc", "post-index-change",
		"fsmonitor-watchman", "push-to-checkout", "proc-receive"} {
		r.script(t, filepath.Join(hooks, h), "hook-"+h)
		r.script(t, filepath.Join(evilHooks, h), "hookspath-"+h)
	}
	config := map[string]string{
		"core.hooksPath":             evilHooks,
		"core.fsmonitor":             r.script(t, filepath.Join(evilHooks, "fsmonitor"), "fsmonitor"),
		"core.alternateRefsCommand":  r.script(t, filepath.Join(evilHooks, "altrefs"), "alternateRefsCommand"),
		"core.sshCommand":            r.script(t, filepath.Join(evilHooks, "ssh"), "sshCommand"),
		"core.pager":                 r.script(t, filepath.Join(evilHooks, "pager"), "pager"),
		"core.editor":                r.script(t, filepath.Join(evilHooks, "editor"), "editor"),
		"credential.helper":          "!" + r.script(t, filepath.Join(evilHooks, "cred"), "credential"),
		"filter.evil.clean":          r.script(t, filepath.Join(evilHooks, "clean"), "filter-clean"),
		"filter.evil.smudge":         r.script(t, filepath.Join(evilHooks, "smudge"), "filter-smudge"),
		"filter.evil.process":        r.script(t, filepath.Join(evilHooks, "process"), "filter-process"),
		"diff.evil.textconv":         r.script(t, filepath.Join(evilHooks, "textconv"), "textconv"),
		"diff.evil.command":          r.script(t, filepath.Join(evilHooks, "diffcmd"), "diff-driver"),
		"diff.external":              r.script(t, filepath.Join(evilHooks, "extdiff"), "diff-external"),
		"merge.evil.driver":          r.script(t, filepath.Join(evilHooks, "merge"), "merge-driver"),
		"gpg.program":                r.script(t, filepath.Join(evilHooks, "gpg"), "gpg"),
		"commit.gpgSign":             "true",
		"uploadpack.packObjectsHook": r.script(t, filepath.Join(evilHooks, "packhook"), "packObjectsHook"),
		"gc.auto":                    "1",
		"gc.autoDetach":              "false",
		"receive.denyCurrentBranch":  "ignore",
	}
	keys := make([]string, 0, len(config))
	for k := range config {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		run(t, r.Path, "git", "config", k, config[k])
	}
	// An alternate object store (under the roots: one outside them makes
	// the repository unusable) makes a push into this repository run
	// core.alternateRefsCommand.
	other := filepath.Join(root, name+"-alt.git")
	run(t, root, "git", "init", "-q", "--bare", other)
	writeFile(t, filepath.Join(r.Path, ".git", "objects", "info", "alternates"), filepath.Join(other, "objects")+"\n", 0o644)
	// Nothing ran while arming it.
	if fired := r.Fired(t); len(fired) > 0 {
		t.Fatalf("hostile repo: programs ran while setting up: %v", fired)
	}
	return r
}

// Fired lists the programs of the repository that ran.
func (r Repo) Fired(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir(r.Markers)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// OutsideUnchanged fails the test when anything under Outside or the secret
// changed.
func (r Repo) OutsideUnchanged(t testing.TB) {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(r.Outside, "victim.go")); err != nil || string(b) != "package victim\nfunc  X(){}\n" {
		t.Errorf("a file outside the checkout was rewritten through a link: %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(r.Outside, "elsewhere", "go.mod")); err != nil || string(b) != "module elsewhere\n\ngo 1.21\n" {
		t.Errorf("go.mod outside the checkout was rewritten through a link: %q %v", b, err)
	}
	if b, err := os.ReadFile(r.Secret); err != nil || string(b) != r.SecretValue+"\n" {
		t.Errorf("the secret file changed: %v", err)
	}
	entries, _ := os.ReadDir(r.Outside)
	for _, e := range entries {
		if e.Name() != "victim.go" && e.Name() != "elsewhere" {
			t.Errorf("a file appeared outside the checkout: %s", e.Name())
		}
	}
}

// script writes an executable that leaves a marker named name, and returns
// its path.
func (r Repo) script(t testing.TB, path, name string) string {
	t.Helper()
	writeFile(t, path, "#!/bin/sh\ntouch '"+filepath.Join(r.Markers, name)+"'\ncat >/dev/null 2>&1 </dev/null\nexit 0\n", 0o755)
	return path
}

// GitEnv is a git environment for test setup that ignores the machine's
// configuration.
func GitEnv() []string {
	return []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir(), "LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=" + os.DevNull,
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_AUTHOR_DATE=@1700000000 +0000", "GIT_COMMITTER_DATE=@1700000000 +0000",
	}
}

func run(t testing.TB, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = GitEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func mkdir(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	mkdir(t, filepath.Dir(path))
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func symlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
