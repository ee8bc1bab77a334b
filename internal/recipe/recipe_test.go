package recipe_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"remediator/internal/demo"
	"remediator/internal/gitlocal"
	"remediator/internal/recipe"
)

type env struct {
	root string
	p    *gitlocal.Provider
}

func newEnv(t *testing.T) *env {
	t.Helper()
	root := t.TempDir()
	p, err := gitlocal.New(gitlocal.Options{Roots: []string{root}, ScratchDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return &env{root: root, p: p}
}

func (e *env) demo(t *testing.T) demo.Repo {
	t.Helper()
	r, err := demo.Ensure(context.Background(), filepath.Join(e.root, "demo"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
		"GOFLAGS=-mod=readonly", "GOPROXY=off", "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v in %s: %v\n%s", name, args, dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

// makeRepo commits files into a new repository under the provider's root.
func (e *env) makeRepo(t *testing.T, name string, files map[string]string) (string, string) {
	t.Helper()
	dir := filepath.Join(e.root, name)
	for p, body := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, dir, "git", "init", "-q", "-b", "main")
	run(t, dir, "git", "add", "-A")
	run(t, dir, "git", "commit", "-q", "-m", "init")
	return dir, run(t, dir, "git", "rev-parse", "HEAD")
}

// applyFresh applies the fix to a fresh clone of repo at its base and
// returns the clone.
func applyFresh(t *testing.T, repo string, fix recipe.Fix) string {
	t.Helper()
	clone := filepath.Join(t.TempDir(), "clone")
	run(t, filepath.Dir(clone), "git", "clone", "-q", repo, clone)
	run(t, clone, "git", "checkout", "-q", "--detach", fix.BaseSHA)
	patch := filepath.Join(t.TempDir(), "fix.patch")
	if err := os.WriteFile(patch, fix.Patch, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, clone, "git", "apply", "--index", patch)
	return clone
}

func wantKind(t *testing.T, fix recipe.Fix, err error, kind recipe.Kind) *recipe.Error {
	t.Helper()
	if got := recipe.KindOf(err); got != kind {
		t.Fatalf("want kind %q, got %q: %v", kind, got, err)
	}
	if !reflect.DeepEqual(fix, recipe.Fix{}) {
		t.Errorf("a Fix was returned along with error %v: %+v", err, fix)
	}
	e, ok := err.(*recipe.Error)
	if !ok {
		t.Fatalf("error %T is not *recipe.Error", err)
	}
	return e
}

func TestGofmtRecipeFixesDemo(t *testing.T) {
	e := newEnv(t)
	d := e.demo(t)
	g := &recipe.Generator{Checkout: e.p, Recipes: recipe.Builtin()}
	fix, err := g.Generate(context.Background(), recipe.Request{
		Repo: d.Path, SHA: d.SHA, FailureSummary: d.FailureSummary, LogExcerpt: d.LogExcerpt,
	})
	if err != nil {
		t.Fatal(err)
	}
	if fix.Recipe != "gofmt" || fix.BaseSHA != d.SHA || !fix.Validated {
		t.Errorf("unexpected fix %+v", fix)
	}
	if !reflect.DeepEqual(fix.Files, []string{"main.go", "util.go"}) {
		t.Errorf("Files = %v", fix.Files)
	}
	sum := sha256.Sum256(fix.Patch)
	if fix.Digest != hex.EncodeToString(sum[:]) {
		t.Errorf("Digest %s is not sha256 of the diff", fix.Digest)
	}
	if !strings.Contains(string(fix.Patch), "diff --git a/main.go b/main.go") || !strings.Contains(fix.Check, "gofmt") {
		t.Errorf("diff/check look wrong:\n%s\n%s", fix.Patch, fix.Check)
	}
	clone := applyFresh(t, d.Path, fix)
	if out := run(t, clone, "gofmt", "-l", "."); out != "" {
		t.Errorf("gofmt -l after applying the fix: %q", out)
	}
	run(t, clone, "go", "test", "./...")
	// The source repository is untouched.
	if out := run(t, d.Path, "gofmt", "-l", "."); out != "main.go\nutil.go" {
		t.Errorf("demo repository was modified: gofmt -l = %q", out)
	}
	if st := run(t, d.Path, "git", "status", "--porcelain"); st != "" {
		t.Errorf("demo work tree dirty: %s", st)
	}

	// The fix is what gitlocal opens as a change.
	ch, err := e.p.OpenChange(context.Background(), gitlocal.ChangeRequest{
		Repo: d.Path, Branch: "autofix/demo", BaseBranch: d.Branch, BaseSHA: fix.BaseSHA,
		Patch: fix.Patch, Title: "Format Go code", CommitTime: time.Unix(1714564800, 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ch.Files, fix.Files) {
		t.Errorf("change files %v != fix files %v", ch.Files, fix.Files)
	}

	// Deterministic: the same request yields the same digest.
	again, err := g.Generate(context.Background(), recipe.Request{
		Repo: d.Path, SHA: d.SHA, FailureSummary: d.FailureSummary, LogExcerpt: d.LogExcerpt,
	})
	if err != nil || again.Digest != fix.Digest {
		t.Errorf("second run: digest %s vs %s, err %v", again.Digest, fix.Digest, err)
	}
}

func TestNoRecipe(t *testing.T) {
	e := newEnv(t)
	d := e.demo(t)
	g := &recipe.Generator{Checkout: e.p, Recipes: recipe.Builtin()}
	fix, err := g.Generate(context.Background(), recipe.Request{
		Repo: d.Path, SHA: d.SHA, FailureSummary: "test: TestGreeting failed", LogExcerpt: "--- FAIL: TestGreeting",
	})
	wantKind(t, fix, err, recipe.KindNoRecipe)

	// The log matches gofmt, but the repository has no Go files.
	repo, sha := e.makeRepo(t, "docs", map[string]string{"README.md": "docs\n"})
	fix, err = g.Generate(context.Background(), recipe.Request{
		Repo: repo, SHA: sha, FailureSummary: "lint: gofmt check failed",
	})
	wantKind(t, fix, err, recipe.KindNoRecipe)
}

func custom(r recipe.Recipe) []recipe.Recipe {
	if r.Match == "" {
		r.Match = "gofmt"
	}
	if r.Timeout == 0 {
		r.Timeout = 30 * time.Second
	}
	return []recipe.Recipe{r}
}

func (e *env) generate(t *testing.T, g *recipe.Generator) (recipe.Fix, error) {
	t.Helper()
	d := e.demo(t)
	g.Checkout = e.p
	return g.Generate(context.Background(), recipe.Request{
		Repo: d.Path, SHA: d.SHA, FailureSummary: d.FailureSummary, LogExcerpt: d.LogExcerpt,
	})
}

func TestNoChange(t *testing.T) {
	e := newEnv(t)
	fix, err := e.generate(t, &recipe.Generator{Recipes: custom(recipe.Recipe{Name: "noop", Command: "true"})})
	wantKind(t, fix, err, recipe.KindNoChange)

	// A failing command is not a fix either, even if it changed files.
	fix, err = e.generate(t, &recipe.Generator{Recipes: custom(recipe.Recipe{Name: "broken", Command: "echo x >> main.go; echo boom >&2; exit 3"})})
	if re := wantKind(t, fix, err, recipe.KindNoChange); !strings.Contains(re.Output, "boom") {
		t.Errorf("error should carry the command output: %v", err)
	}

	// The next matching recipe gets its chance in a fresh checkout.
	fix, err = e.generate(t, &recipe.Generator{Recipes: append(
		custom(recipe.Recipe{Name: "broken", Command: "echo x >> main.go; exit 3"}),
		recipe.Builtin()[0])})
	if err != nil || fix.Recipe != "gofmt" || !reflect.DeepEqual(fix.Files, []string{"main.go", "util.go"}) {
		t.Errorf("fallback to gofmt: %+v %v", fix, err)
	}
}

func TestDeniedPath(t *testing.T) {
	e := newEnv(t)
	fix, err := e.generate(t, &recipe.Generator{Recipes: custom(recipe.Recipe{
		Name:    "ci-hack",
		Command: "gofmt -w main.go && mkdir -p .github/workflows && echo 'on: []' > .github/workflows/ci.yml && echo x > .github/workflows/new.yml",
	})})
	re := wantKind(t, fix, err, recipe.KindDeniedPath)
	if !reflect.DeepEqual(re.Paths, []string{".github/workflows/ci.yml", ".github/workflows/new.yml"}) {
		t.Errorf("Paths = %v", re.Paths)
	}
	if !strings.Contains(err.Error(), ".github/workflows/ci.yml") {
		t.Errorf("message should list the paths: %v", err)
	}

	// Custom deny list.
	fix, err = e.generate(t, &recipe.Generator{
		DeniedPaths: []string{"**/util.go"},
		Recipes:     []recipe.Recipe{recipe.Builtin()[0]},
	})
	wantKind(t, fix, err, recipe.KindDeniedPath)
}

func TestTooLarge(t *testing.T) {
	e := newEnv(t)
	fix, err := e.generate(t, &recipe.Generator{MaxDiffBytes: 64, Recipes: recipe.Builtin()})
	wantKind(t, fix, err, recipe.KindTooLarge)
}

func TestTimeout(t *testing.T) {
	e := newEnv(t)
	for _, cmd := range []string{"sleep 10", "sleep 10 & sleep 10", "(sleep 10; echo late > late.txt) & exit 0"} {
		start := time.Now()
		fix, err := e.generate(t, &recipe.Generator{Recipes: custom(recipe.Recipe{
			Name: "slow", Command: cmd, Timeout: 200 * time.Millisecond,
		})})
		elapsed := time.Since(start)
		if cmd == "(sleep 10; echo late > late.txt) & exit 0" {
			// Exits at once, leaving a background job that is killed: no change.
			wantKind(t, fix, err, recipe.KindNoChange)
		} else {
			wantKind(t, fix, err, recipe.KindTimeout)
		}
		if elapsed > 5*time.Second {
			t.Errorf("%q took %s", cmd, elapsed)
		}
	}
}

func TestCheckFailed(t *testing.T) {
	e := newEnv(t)
	gofmt := recipe.Builtin()[0]
	gofmt.Check = "echo 'still broken'; exit 1"
	fix, err := e.generate(t, &recipe.Generator{Recipes: []recipe.Recipe{gofmt}})
	re := wantKind(t, fix, err, recipe.KindCheckFailed)
	if !strings.Contains(re.Output, "still broken") {
		t.Errorf("message should include the check output: %v", err)
	}

	// A recipe without Check yields an unvalidated fix.
	gofmt.Check = ""
	fix, err = e.generate(t, &recipe.Generator{Recipes: []recipe.Recipe{gofmt}})
	if err != nil || fix.Validated || fix.Check != "" {
		t.Errorf("unchecked fix: %+v %v", fix, err)
	}
}

func TestTransientCheckoutError(t *testing.T) {
	e := newEnv(t)
	g := &recipe.Generator{Checkout: e.p, Recipes: recipe.Builtin()}
	fix, err := g.Generate(context.Background(), recipe.Request{
		Repo: t.TempDir(), SHA: "HEAD", FailureSummary: "gofmt",
	})
	wantKind(t, fix, err, recipe.KindTransient)
	if gitlocal.KindOf(err) != gitlocal.KindInvalidRepo {
		t.Errorf("provider error not preserved: %v", err)
	}
	fix, err = g.Generate(context.Background(), recipe.Request{Repo: e.root, FailureSummary: "gofmt"})
	wantKind(t, fix, err, recipe.KindInvalid)
}

func TestGoModTidyRecipe(t *testing.T) {
	e := newEnv(t)
	repo, sha := e.makeRepo(t, "app", map[string]string{
		"go.mod":     "module example.com/app\n\ngo 1.22\n\nreplace example.com/lib => ./lib\n",
		"main.go":    "package main\n\nimport \"example.com/lib\"\n\nfunc main() { println(lib.Answer()) }\n",
		"lib/go.mod": "module example.com/lib\n\ngo 1.22\n",
		"lib/lib.go": "package lib\n\n// Answer is the answer.\nfunc Answer() int { return 42 }\n",
	})
	g := &recipe.Generator{Checkout: e.p, Recipes: recipe.Builtin()}
	fix, err := g.Generate(context.Background(), recipe.Request{
		Repo: repo, SHA: sha, FailureSummary: "build failed",
		LogExcerpt: "main.go:3:8: no required module provides package example.com/lib; to add it:\n\tgo get example.com/lib\ngo: updates to go.mod needed; to update it:\n\tgo mod tidy",
	})
	if err != nil {
		t.Fatal(err)
	}
	if fix.Recipe != "go-mod-tidy" || !fix.Validated || !reflect.DeepEqual(fix.Files, []string{"go.mod"}) {
		t.Fatalf("unexpected fix %+v", fix)
	}
	if !strings.Contains(string(fix.Patch), "+require example.com/lib") {
		t.Errorf("diff does not add the requirement:\n%s", fix.Patch)
	}
	clone := applyFresh(t, repo, fix)
	run(t, clone, "go", "build", "./...") // GOFLAGS=-mod=readonly: go.mod must be complete
}

func TestTrailingWhitespaceRecipe(t *testing.T) {
	e := newEnv(t)
	binary := "bin\x00ary  \n"
	repo, sha := e.makeRepo(t, "ws", map[string]string{
		"README.md":       "title  \n\ntext\t\nclean\n",
		"src/a.txt":       "a \nb\n",
		"src/clean.txt":   "fine\n",
		"data.bin":        binary,
		"fixes/x.patch":   "-old \n+new \n",
		"-dash.txt":       "dash \n",
		"dir with sp/b.c": "int x; \n",
	})
	g := &recipe.Generator{Checkout: e.p, Recipes: recipe.Builtin()}
	fix, err := g.Generate(context.Background(), recipe.Request{
		Repo: repo, SHA: sha, FailureSummary: "pre-commit failed",
		LogExcerpt: "trim trailing whitespace.................................................Failed",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"-dash.txt", "README.md", "dir with sp/b.c", "src/a.txt"}
	if fix.Recipe != "trailing-whitespace" || !fix.Validated || !reflect.DeepEqual(fix.Files, want) {
		t.Fatalf("unexpected fix: recipe %s validated %v files %q", fix.Recipe, fix.Validated, fix.Files)
	}
	clone := applyFresh(t, repo, fix)
	for path, wantBody := range map[string]string{
		"README.md":       "title\n\ntext\nclean\n",
		"src/a.txt":       "a\nb\n",
		"data.bin":        binary,
		"fixes/x.patch":   "-old \n+new \n",
		"dir with sp/b.c": "int x;\n",
	} {
		got, err := os.ReadFile(filepath.Join(clone, path))
		if err != nil || string(got) != wantBody {
			t.Errorf("%s = %q (%v), want %q", path, got, err, wantBody)
		}
	}
}

func TestBuiltin(t *testing.T) {
	names := map[string]bool{}
	for _, r := range recipe.Builtin() {
		if err := r.Validate(); err != nil {
			t.Error(err)
		}
		names[r.Name] = true
	}
	for _, n := range []string{"gofmt", "go-mod-tidy", "trailing-whitespace"} {
		if !names[n] {
			t.Errorf("missing builtin %s", n)
		}
	}
	b := recipe.Builtin()
	b[0].Name = "changed"
	if recipe.Builtin()[0].Name != "gofmt" {
		t.Error("Builtin shares state between calls")
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		t.Helper()
		f, err := os.CreateTemp(dir, "*.json")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(body); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return f.Name()
	}
	good := write(`[
  {"name": "prettier", "description": "Format JS", "match": "Code style issues", "files": ["**/*.js"],
   "command": "npx --no-install prettier --write .", "check": "npx --no-install prettier --check .", "timeout": "90s"},
  {"name": "gofmt-2", "match": "gofmt", "command": "gofmt -w ."}
]`)
	rs, err := recipe.LoadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Timeout != 90*time.Second || rs[1].Timeout != recipe.DefaultTimeout ||
		!reflect.DeepEqual(rs[0].Files, []string{"**/*.js"}) || rs[0].Check == "" {
		t.Errorf("loaded %+v", rs)
	}
	// Round trip through JSON.
	data, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"timeout":"1m30s"`) {
		t.Errorf("marshalled timeout: %s", data)
	}
	back, err := recipe.LoadFile(write(string(data)))
	if err != nil || !reflect.DeepEqual(back, rs) {
		t.Errorf("round trip: %+v %v", back, err)
	}

	for name, body := range map[string]string{
		"bad name":      `[{"name": "Bad_Name", "match": "x", "command": "true"}]`,
		"duplicate":     `[{"name": "a", "match": "x", "command": "true"}, {"name": "a", "match": "y", "command": "true"}]`,
		"bad regexp":    `[{"name": "a", "match": "(", "command": "true"}]`,
		"empty match":   `[{"name": "a", "match": "", "command": "true"}]`,
		"empty command": `[{"name": "a", "match": "x", "command": "  "}]`,
		"too long":      `[{"name": "a", "match": "x", "command": "true", "timeout": "31m"}]`,
		"negative":      `[{"name": "a", "match": "x", "command": "true", "timeout": "-1s"}]`,
		"numeric":       `[{"name": "a", "match": "x", "command": "true", "timeout": 90}]`,
		"bad duration":  `[{"name": "a", "match": "x", "command": "true", "timeout": "soon"}]`,
		"bad glob":      `[{"name": "a", "match": "x", "command": "true", "files": ["[a-"]}]`,
		"unknown field": `[{"name": "a", "match": "x", "command": "true", "comand": "x"}]`,
		"not an array":  `{"name": "a", "match": "x", "command": "true"}`,
		"null":          `null`,
		"trailing":      `[] []`,
		"syntax":        `[{"name": "a",]`,
	} {
		if _, err := recipe.LoadFile(write(body)); err == nil {
			t.Errorf("%s: LoadFile accepted %s", name, body)
		}
	}
	if _, err := recipe.LoadFile(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestGofmtRecipeSkipsVendorAndTestdata(t *testing.T) {
	e := newEnv(t)
	repo, sha := e.makeRepo(t, "mod", map[string]string{
		"go.mod":                    "module example.com/m\n\ngo 1.22\n",
		"a.go":                      "package m\nfunc A( ) {}\n",
		"sub/b.go":                  "package sub\n\nfunc B() {}\n",
		"vendor/x/y/y.go":           "package y\nfunc Y( ) {}\n",
		"pkg/testdata/broken.go":    "package broken\nfunc (\n",
		"pkg/testdata/formatted.go": "package f\nfunc F( ) {}\n",
	})
	g := &recipe.Generator{Checkout: e.p, Recipes: recipe.Builtin()}
	fix, err := g.Generate(context.Background(), recipe.Request{
		Repo: repo, SHA: sha, FailureSummary: "lint", LogExcerpt: "a.go\nError: files are not gofmt-formatted",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !fix.Validated || !reflect.DeepEqual(fix.Files, []string{"a.go"}) {
		t.Errorf("fix: validated=%v files=%v", fix.Validated, fix.Files)
	}
}
