package recipe_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"remediator/internal/hostile"
	"remediator/internal/llm"
	"remediator/internal/llm/llmtest"
	"remediator/internal/recipe"
)

const modelName = "fake-model"

func modelClient(t *testing.T, srv *llmtest.Server) *llm.Client {
	t.Helper()
	c, err := llm.New(llm.Config{BaseURL: srv.URL(), Model: modelName, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// calcRepo is a Go module whose one package does not compile.
func (e *env) calcRepo(t *testing.T) (string, string) {
	t.Helper()
	return e.makeRepo(t, "calc", map[string]string{
		"go.mod":       "module example.com/calc\n\ngo 1.22\n",
		"calc/calc.go": "package calc\n\n// Add returns the sum.\nfunc Add(a, b int) int {\n\treturn a + c\n}\n",
		"README.md":    "calc\n",
	})
}

const calcLog = "# example.com/calc/calc\ncalc/calc.go:5:13: undefined: c\n"

// calcFix is a correct diff, as a model writes it.
const calcFix = `diff --git a/calc/calc.go b/calc/calc.go
--- a/calc/calc.go
+++ b/calc/calc.go
@@ -3,4 +3,4 @@
 // Add returns the sum.
 func Add(a, b int) int {
-	return a + c
+	return a + b
 }
`

// calcStale does not apply: its context is not the file's.
const calcStale = `--- a/calc/calc.go
+++ b/calc/calc.go
@@ -3,4 +3,4 @@
 // Add adds.
 func Add(x, y int) int {
-	return x + z
+	return x + y
 }
`

func TestModelFixesCompileError(t *testing.T) {
	sb := requireSandbox(t)
	e := newEnv(t)
	repo, sha := e.calcRepo(t)
	srv := llmtest.New(t)
	srv.Queue(llmtest.Fence(calcFix))
	g := &recipe.Generator{Checkout: e.p, Recipes: recipe.Builtin(), Sandbox: sb, Model: modelClient(t, srv), ModelCheck: "go build ./..."}
	fix, err := g.Generate(context.Background(), recipe.Request{Repo: repo, SHA: sha, FailureSummary: "build failed", LogExcerpt: calcLog})
	if err != nil {
		t.Fatal(err)
	}
	if fix.Source != recipe.SourceModel || fix.Recipe != "model:"+modelName || !fix.Validated || fix.Check != "go build ./..." ||
		fix.Attempts != 1 || fix.BaseSHA != sha || !reflect.DeepEqual(fix.Files, []string{"calc/calc.go"}) {
		t.Fatalf("unexpected fix %+v", fix)
	}
	if fix.Summary != "Fix proposed by model fake-model for 1 file" || fix.Validation != "check `go build ./...` passed after attempt 1 of 3" {
		t.Errorf("summary %q, validation %q", fix.Summary, fix.Validation)
	}
	if fix.PromptTokens <= 0 || fix.CompletionTokens <= 0 {
		t.Errorf("tokens %d/%d", fix.PromptTokens, fix.CompletionTokens)
	}
	clone := applyFresh(t, repo, fix)
	run(t, clone, "go", "build", "./...")

	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if len(r.Messages) != 2 || r.Messages[0].Role != "system" || r.Messages[1].Role != "user" {
		t.Fatalf("messages %+v", r.Messages)
	}
	sys, user := r.Messages[0].Content, r.Messages[1].Content
	for _, want := range []string{"```diff", "a/ and b/", "Do not touch files you were not shown"} {
		if !strings.Contains(sys, want) {
			t.Errorf("system prompt lacks %q", want)
		}
	}
	for _, want := range []string{"build failed", "undefined: c", "File: calc/calc.go", "\treturn a + c\n"} {
		if !strings.Contains(user, want) {
			t.Errorf("user prompt lacks %q:\n%s", want, user)
		}
	}
	if strings.Contains(user, "File: README.md") || strings.Contains(user, "File: go.mod") {
		t.Errorf("files the log does not name were sent:\n%s", user)
	}
	if r.Model != modelName || r.Temperature == nil || *r.Temperature != 0 {
		t.Errorf("model %q temperature %v", r.Model, r.Temperature)
	}
}

// TestModelRetriesWithFeedback: recipes that change nothing hand over to
// the model; its first diff does not apply, the second request carries
// that answer and git's reason, and the second diff is the fix.
func TestModelRetriesWithFeedback(t *testing.T) {
	e := newEnv(t)
	repo, sha := e.calcRepo(t)
	srv := llmtest.New(t)
	srv.Queue(llmtest.Fence(calcStale), llmtest.Fence(calcFix))
	g := &recipe.Generator{Checkout: e.p, Model: modelClient(t, srv), ModelCheck: "grep -q 'a + b' calc/calc.go",
		Recipes: []recipe.Recipe{{Name: "noop", Match: "undefined", Command: "true", Timeout: time.Minute}}}
	fix, err := g.Generate(context.Background(), recipe.Request{Repo: repo, SHA: sha, FailureSummary: "build failed", LogExcerpt: calcLog})
	if err != nil {
		t.Fatal(err)
	}
	if fix.Attempts != 2 || fix.Validation != "check `grep -q 'a + b' calc/calc.go` passed after attempt 2 of 3" || fix.Source != recipe.SourceModel {
		t.Errorf("fix %+v", fix)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	second := reqs[1].Messages
	if len(second) != 4 || second[2].Role != "assistant" || second[3].Role != "user" {
		t.Fatalf("second conversation %+v", second)
	}
	if !strings.Contains(second[2].Content, "func Add(x, y int) int") {
		t.Errorf("the previous answer was not sent back: %q", second[2].Content)
	}
	if fb := second[3].Content; !strings.Contains(fb, "does not apply") || !strings.Contains(fb, "patch does not apply") {
		t.Errorf("the feedback lacks the reason and git's message: %q", fb)
	}
	if reqs[0].Messages[1].Content != second[1].Content {
		t.Error("the first prompt changed between attempts")
	}
}

func TestModelGivesUp(t *testing.T) {
	e := newEnv(t)
	repo, sha := e.calcRepo(t)
	for _, tc := range []struct {
		name, answer, summary, output string
	}{
		{"prose", "You should use b instead of c.", "the answer holds no unified diff", ""},
		{"stale diff", llmtest.Fence(calcStale), "the diff does not apply to the files as shown", "patch does not apply"},
		{"check fails", llmtest.Fence(strings.Replace(calcFix, "+\treturn a + b", "+\treturn a - b", 1)), "", "return a - b"},
		{"no change", llmtest.Fence("--- a/calc/calc.go\n+++ b/calc/calc.go\n@@ -4,3 +4,3 @@\n func Add(a, b int) int {\n-\treturn a + c\n+\treturn a + c\n }\n"), "the diff changes nothing", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := llmtest.New(t)
			srv.Respond(func(llmtest.Request) (int, string) { return http.StatusOK, tc.answer })
			g := &recipe.Generator{Checkout: e.p, Model: modelClient(t, srv), ModelAttempts: 2,
				ModelCheck: "grep -q 'a + b' calc/calc.go || { cat calc/calc.go; exit 1; }"}
			fix, err := g.Generate(context.Background(), recipe.Request{Repo: repo, SHA: sha, FailureSummary: "build failed", LogExcerpt: calcLog})
			re := wantKind(t, fix, err, recipe.KindModelFailed)
			if n := len(srv.Requests()); n != 2 {
				t.Errorf("%d model calls, want ModelAttempts = 2", n)
			}
			summary := re.Summary()
			if tc.name == "check fails" {
				tc.summary = "the check `" + g.ModelCheck + "` did not pass"
			}
			if !strings.Contains(summary, "no acceptable fix in 2 attempts; the last one: "+tc.summary) || !strings.Contains(summary, re.Recipe) {
				t.Errorf("summary %q lacks %q", summary, tc.summary)
			}
			if strings.Contains(summary, "return a") || strings.Contains(summary, "patch does not apply") {
				t.Errorf("the summary carries file content or output: %q", summary)
			}
			if !strings.Contains(re.Output, tc.output) {
				t.Errorf("output %q lacks %q", re.Output, tc.output)
			}
		})
	}
}

func TestModelRefusesDeniedAndUnsafePaths(t *testing.T) {
	e := newEnv(t)
	repo, sha := e.makeRepo(t, "ci", map[string]string{
		"main.go":                  "package main\n\nfunc main() {}\n",
		".github/workflows/ci.yml": "on: push\n",
	})
	workflow := "--- a/.github/workflows/ci.yml\n+++ b/.github/workflows/ci.yml\n@@ -1 +1 @@\n-on: push\n+on: []\n"
	newWorkflow := "diff --git a/.github/workflows/x.yml b/.github/workflows/x.yml\nnew file mode 100644\n--- /dev/null\n+++ b/.github/workflows/x.yml\n@@ -0,0 +1 @@\n+on: []\n"
	for _, tc := range []struct {
		name, diff, want string
		paths            []string
	}{
		{"workflow", workflow, "the diff touches denied paths: .github/workflows/ci.yml", []string{".github/workflows/ci.yml"}},
		{"new workflow", newWorkflow, "the diff touches denied paths: .github/workflows/x.yml", []string{".github/workflows/x.yml"}},
		{"dotdot", "--- a/../escape.txt\n+++ b/../escape.txt\n@@ -0,0 +1 @@\n+x\n", `unsafe path "../escape.txt"`, nil},
		{"git dir", "--- a/.git/config\n+++ b/.git/config\n@@ -1 +1 @@\n-a\n+b\n", `unsafe path ".git/config"`, nil},
		{"link", "diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n+/etc/passwd\n\\ No newline at end of file\n", "symbolic links", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := llmtest.New(t)
			srv.Respond(func(llmtest.Request) (int, string) { return http.StatusOK, llmtest.Fence(tc.diff) })
			g := &recipe.Generator{Checkout: e.p, Model: modelClient(t, srv)}
			fix, err := g.Generate(context.Background(), recipe.Request{Repo: repo, SHA: sha,
				FailureSummary: "lint failed", LogExcerpt: "main.go:3: x\n.github/workflows/ci.yml: bad"})
			re := wantKind(t, fix, err, recipe.KindModelFailed)
			if !strings.Contains(re.Summary(), tc.want) || !reflect.DeepEqual(re.Paths, tc.paths) {
				t.Errorf("summary %q paths %v; want %q %v", re.Summary(), re.Paths, tc.want, tc.paths)
			}
			reqs := srv.Requests()
			if len(reqs) != recipe.DefaultModelAttempts {
				t.Fatalf("%d requests", len(reqs))
			}
			if fb := reqs[1].Messages[3].Content; !strings.Contains(fb, tc.want) {
				t.Errorf("the feedback lacks the reason: %q", fb)
			}
			if user := reqs[0].Messages[1].Content; strings.Contains(user, "File: .github") || !strings.Contains(user, "File: main.go") {
				t.Errorf("a denied file was shown, or main.go was not:\n%s", user)
			}
		})
	}
}

// Planted credentials of the right shapes.
var (
	plantedGitHub = "ghp_" + strings.Repeat("Zx9", 12)
	plantedAWS    = "AKIA" + "Q3EXAMPLE7KEY4XY"
	plantedJWT    = "eyJhbGciOiJSUzI1NiJ9" + ".eyJzdWIiOiJkZXBsb3kifQ" + ".c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl"
	plantedPEM    = "MIIEpAIBAAKCAQEAplantedkeymaterial0123456789ABCDEFGHIJKLMNOP"
)

func TestModelNeverSeesSecrets(t *testing.T) {
	e := newEnv(t)
	secrets := "export GITHUB_TOKEN=" + plantedGitHub + "\nexport AWS_ACCESS_KEY_ID=" + plantedAWS + "\nexport SESSION=" + plantedJWT +
		"\ncat > key.pem <<'EOF'\n-----BEGIN RSA PRIVATE KEY-----\n" + plantedPEM + "\nQUJDREVGR0hJSktMTU5PUA\n-----END RSA PRIVATE KEY-----\nEOF\n"
	repo, sha := e.makeRepo(t, "secrets", map[string]string{
		"deploy/env.sh": "#!/bin/sh\n# deployment settings\nset -e\n" + secrets,
	})
	log := "+ sh deploy/env.sh\n" + secrets + "deploy/env.sh: line 3: FIXED marker missing\n"
	// The first diff applies but fails the check, which prints the file
	// (secrets included); the second passes.
	touch := func(line string) string {
		return llmtest.Fence("--- a/deploy/env.sh\n+++ b/deploy/env.sh\n@@ -1,3 +1,4 @@\n #!/bin/sh\n # deployment settings\n+" + line + "\n set -e\n")
	}
	srv := llmtest.New(t)
	srv.Queue(touch("# touched"), touch("# FIXED"))
	g := &recipe.Generator{Checkout: e.p, Model: modelClient(t, srv),
		ModelCheck: "grep -q FIXED deploy/env.sh || { cat deploy/env.sh; exit 1; }"}
	fix, err := g.Generate(context.Background(), recipe.Request{Repo: repo, SHA: sha,
		FailureSummary: "deploy failed with token " + plantedGitHub, LogExcerpt: log})
	if err != nil {
		t.Fatal(err)
	}
	if fix.Attempts != 2 {
		t.Errorf("attempts %d", fix.Attempts)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	for i, r := range reqs {
		for name, secret := range map[string]string{"github": plantedGitHub, "aws": plantedAWS, "jwt": plantedJWT, "jwt payload": "eyJzdWIiOiJkZXBsb3kifQ", "pem": plantedPEM, "pem 2": "QUJDREVGR0hJSktMTU5PUA"} {
			if strings.Contains(string(r.Body), secret) {
				t.Errorf("request %d carries the %s secret", i+1, name)
			}
		}
	}
	// The evidence was sent, redacted: in the summary, the log, the file and
	// the check's output fed back.
	first, second := reqs[0].Messages[1].Content, reqs[1].Messages[3].Content
	for _, want := range []string{"deploy failed with token [REDACTED:github-token]", "File: deploy/env.sh", "[REDACTED:private-key]", "[REDACTED:jwt]", "[REDACTED:aws-access-key-id]"} {
		if !strings.Contains(first, want) {
			t.Errorf("the first prompt lacks %q", want)
		}
	}
	if !strings.Contains(second, "did not pass") || !strings.Contains(second, "GITHUB_TOKEN=[REDACTED:github-token]") {
		t.Errorf("the feedback lacks the redacted check output: %q", second)
	}
}

func TestModelRecipeUsesItsOwnCheck(t *testing.T) {
	sb := requireSandbox(t)
	e := newEnv(t)
	repo, sha := e.calcRepo(t)
	srv := llmtest.New(t)
	srv.Queue(llmtest.Fence(calcFix))
	r := recipe.Recipe{Name: "model-build", Match: "undefined", Model: true, Check: "grep -q 'a + b' calc/calc.go", Timeout: time.Minute}
	g := &recipe.Generator{Checkout: e.p, Sandbox: sb, Model: modelClient(t, srv), ModelCheck: "false",
		Recipes: []recipe.Recipe{{Name: "other", Match: "nomatch", Command: "true"}, r}}
	fix, err := g.Generate(context.Background(), recipe.Request{Repo: repo, SHA: sha, FailureSummary: "build failed", LogExcerpt: calcLog})
	if err != nil {
		t.Fatal(err)
	}
	if fix.Recipe != "model-build" || fix.Check != r.Check || !fix.Validated || fix.Source != recipe.SourceModel {
		t.Errorf("fix %+v", fix)
	}

	// Without a model, a model recipe is a configuration mistake.
	g = &recipe.Generator{Checkout: e.p, Recipes: []recipe.Recipe{r}}
	fix, err = g.Generate(context.Background(), recipe.Request{Repo: repo, SHA: sha, FailureSummary: "build failed", LogExcerpt: calcLog})
	wantKind(t, fix, err, recipe.KindInvalid)
}

func TestModelRecipeValidation(t *testing.T) {
	ok := recipe.Recipe{Name: "m", Match: "x", Model: true, Timeout: time.Minute}
	if err := ok.Validate(); err != nil {
		t.Errorf("a model recipe without a command: %v", err)
	}
	both := ok
	both.Command = "gofmt -w ."
	if err := both.Validate(); err == nil {
		t.Error("a recipe with both a command and model accepted")
	}
	none := ok
	none.Model = false
	if err := none.Validate(); err == nil {
		t.Error("a recipe with neither a command nor model accepted")
	}
}

func TestModelContextIsBounded(t *testing.T) {
	e := newEnv(t)
	files := map[string]string{"big.txt": strings.Repeat("0123456789abcdef\n", 4096)} // 68 KiB
	var names []string
	for i := range 12 {
		name := fmt.Sprintf("pkg/f%02d.go", i)
		files[name] = fmt.Sprintf("package pkg\n\nconst F%02d = %d\n", i, i)
		names = append(names, name)
	}
	for i := range 8 {
		files[fmt.Sprintf("large/l%d.txt", i)] = strings.Repeat(fmt.Sprintf("large file %d line\n", i), 2500) // 47 KiB
	}
	repo, sha := e.makeRepo(t, "many", files)
	ask := func(g *recipe.Generator, log string) string {
		t.Helper()
		srv := llmtest.New(t)
		srv.Queue("no idea")
		g.Checkout, g.Model, g.ModelAttempts = e.p, modelClient(t, srv), 1
		fix, err := g.Generate(context.Background(), recipe.Request{Repo: repo, SHA: sha, FailureSummary: "failed", LogExcerpt: log})
		wantKind(t, fix, err, recipe.KindModelFailed)
		return srv.Requests()[0].Messages[1].Content
	}

	user := ask(&recipe.Generator{ModelMaxFiles: 3, ModelMaxFileBytes: 4096}, "big.txt\n"+strings.Join(names, "\n"))
	for _, want := range []string{"File: big.txt (69632 bytes)", "[cut: only the first 4080 of 69632 bytes of big.txt are shown]", "File: pkg/f00.go", "File: pkg/f01.go"} {
		if !strings.Contains(user, want) {
			t.Errorf("prompt lacks %q", want)
		}
	}
	if strings.Contains(user, "File: pkg/f02.go") {
		t.Error("more than ModelMaxFiles files were sent")
	}
	if n := strings.Count(user, "0123456789abcdef\n"); n != 4096/17 {
		t.Errorf("%d lines of big.txt were sent, want the first %d", n, 4096/17)
	}

	// Eight 47 KiB files at 64 KiB each: the prompt budget stops them.
	var large []string
	for i := range 8 {
		large = append(large, fmt.Sprintf("large/l%d.txt", i))
	}
	user = ask(&recipe.Generator{ModelMaxFileBytes: 64 << 10}, strings.Join(large, "\n"))
	if len(user) > 192<<10 {
		t.Errorf("prompt of %d bytes exceeds the budget", len(user))
	}
	if !strings.Contains(user, "File: large/l0.txt") || strings.Contains(user, "File: large/l7.txt") {
		t.Errorf("the budget did not bound the files: %d bytes", len(user))
	}

	// The log excerpt is cut to its last 16 KiB.
	log := strings.Repeat("early line that is dropped\n", 2000) + "the last line\n"
	user = ask(&recipe.Generator{}, log)
	if !strings.Contains(user, "the last line") || strings.Count(user, "early line that is dropped") > (16<<10)/27 {
		t.Errorf("the excerpt was not cut to its end: %d bytes", len(user))
	}
}

func TestModelProviderErrorsStayTyped(t *testing.T) {
	e := newEnv(t)
	repo, sha := e.calcRepo(t)
	srv := llmtest.New(t)
	srv.FailNext(1, http.StatusTooManyRequests, llmtest.ErrorBody("Rate limit reached", "requests", "rate_limit_exceeded"), http.Header{"Retry-After": {"20"}})
	g := &recipe.Generator{Checkout: e.p, Model: modelClient(t, srv)}
	fix, err := g.Generate(context.Background(), recipe.Request{Repo: repo, SHA: sha, FailureSummary: "build failed", LogExcerpt: calcLog})
	wantKind(t, fix, err, recipe.KindTransient)
	var apiErr *llm.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatus() != http.StatusTooManyRequests || apiErr.RetryAfterDelay() != 20*time.Second {
		t.Errorf("the provider's error is not reachable: %v", err)
	}
	if len(srv.Requests()) != 1 {
		t.Errorf("a provider error was retried inside the generator: %d calls", len(srv.Requests()))
	}

	// Without a model the verdict of the recipes stands.
	g = &recipe.Generator{Checkout: e.p}
	fix, err = g.Generate(context.Background(), recipe.Request{Repo: repo, SHA: sha, FailureSummary: "build failed", LogExcerpt: calcLog})
	wantKind(t, fix, err, recipe.KindNoRecipe)
}

// TestModelOnHostileRepository: the model sees no file through a link and
// nothing the repository configures runs; a diff retargeting a link is
// refused, and the fix of a plain file goes through.
func TestModelOnHostileRepository(t *testing.T) {
	sb := requireSandbox(t)
	e := newEnv(t)
	h := hostile.New(t, e.root, "hostile", t.TempDir())
	path, sha, err := e.p.Resolve(context.Background(), h.Path, "main")
	if err != nil {
		t.Fatal(err)
	}
	retarget := "--- a/evil.go\n+++ b/evil.go\n@@ -1 +1 @@\n-" + h.Secret + "\n\\ No newline at end of file\n+/etc/shadow\n\\ No newline at end of file\n"
	gofmt := "--- a/main.go\n+++ b/main.go\n@@ -1,5 +1,5 @@\n package main\n \n-func main()  {\n-\tprintln( \"hi\")\n+func main() {\n+\tprintln(\"hi\")\n }\n"
	srv := llmtest.New(t)
	srv.Queue(llmtest.Fence(retarget), llmtest.Fence(gofmt))
	g := &recipe.Generator{Checkout: e.p, Sandbox: sb, Model: modelClient(t, srv), ModelCheck: "gofmt -l main.go | grep -q . && exit 1 || exit 0"}
	fix, err := g.Generate(context.Background(), recipe.Request{Repo: path, SHA: sha, FailureSummary: "build failed",
		LogExcerpt: "main.go:3: bad\nevil.go:1: bad\nlinkdir/victim.go: bad\ngo.mod: bad\n"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fix.Files, []string{"main.go"}) || fix.Attempts != 2 {
		t.Errorf("fix %+v", fix)
	}
	reqs := srv.Requests()
	if fb := reqs[1].Messages[3].Content; !strings.Contains(fb, "symbolic links") {
		t.Errorf("feedback %q", fb)
	}
	user := reqs[0].Messages[1].Content
	if strings.Contains(user, "File: evil.go") || strings.Contains(user, "File: go.mod") || !strings.Contains(user, "File: main.go") {
		t.Errorf("files through links were shown:\n%s", user)
	}
	for _, r := range reqs {
		if strings.Contains(string(r.Body), h.SecretValue) {
			t.Error("the secret behind a link reached the model")
		}
	}
	if fired := h.Fired(t); len(fired) > 0 {
		t.Errorf("programs named by the repository ran: %v", fired)
	}
	h.OutsideUnchanged(t)
}

func TestRecipeFixesSayHowTheyWereValidated(t *testing.T) {
	e := newEnv(t)
	gofmt := recipe.Builtin()[0]
	fix, err := e.generate(t, &recipe.Generator{Recipes: []recipe.Recipe{gofmt}})
	if err != nil {
		t.Fatal(err)
	}
	// The built-in check is a script: its first line stands for it.
	if fix.Source != recipe.SourceRecipe || fix.Attempts != 0 ||
		!strings.HasPrefix(fix.Validation, "check `out=$(git ls-files") || !strings.HasSuffix(fix.Validation, " …` passed") {
		t.Errorf("source %q validation %q", fix.Source, fix.Validation)
	}
	gofmt.Check = ""
	fix, err = e.generate(t, &recipe.Generator{Recipes: []recipe.Recipe{gofmt}})
	if err != nil || fix.Validation != "no check configured" || fix.Source != recipe.SourceRecipe {
		t.Errorf("unchecked fix: %q %q %v", fix.Source, fix.Validation, err)
	}
}

func TestLoadFileModelRecipe(t *testing.T) {
	path := t.TempDir() + "/recipes.json"
	body := `[{"name": "model-build", "match": "undefined:", "model": true, "check": "go build ./...", "timeout": "5m"}]`
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := recipe.LoadFile(path)
	if err != nil || len(rs) != 1 || !rs[0].Model || rs[0].Command != "" || rs[0].Check != "go build ./..." {
		t.Fatalf("%+v %v", rs, err)
	}
	bad := `[{"name": "both", "match": "x", "model": true, "command": "make fix"}]`
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := recipe.LoadFile(path); err == nil {
		t.Error("a recipe with a command and model accepted")
	}
}
