package recipe

import (
	"reflect"
	"strings"
	"testing"
)

const goodDiff = "diff --git a/main.go b/main.go\n--- a/main.go\n+++ b/main.go\n@@ -1,2 +1,2 @@\n package main\n-func x( ) {}\n+func x() {}\n"

func TestExtractDiff(t *testing.T) {
	for name, tc := range map[string]struct {
		answer, want string
		err          bool
	}{
		"diff fence":        {answer: "Sure:\n\n```diff\n" + goodDiff + "```\nThis fixes it.", want: goodDiff},
		"patch fence":       {answer: "```patch\n" + goodDiff + "```", want: goodDiff},
		"first diff fence":  {answer: "```go\nfunc x() {}\n```\n```diff\n" + goodDiff + "```\n```diff\n--- other\n```", want: goodDiff},
		"plain fence":       {answer: "```\n" + goodDiff + "```", want: goodDiff},
		"bare diff":         {answer: "\n" + goodDiff, want: goodDiff},
		"bare unified":      {answer: "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b", want: "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"},
		"crlf":              {answer: strings.ReplaceAll("```diff\n"+goodDiff+"```\n", "\n", "\r\n"), want: goodDiff},
		"unterminated":      {answer: "```diff\n" + goodDiff, want: goodDiff},
		"markdown fence":    {answer: "```diff\n--- a/R.md\n+++ b/R.md\n@@ -1,3 +1,3 @@\n ```\n-x\n+y\n ```\n```\n", want: "--- a/R.md\n+++ b/R.md\n@@ -1,3 +1,3 @@\n ```\n-x\n+y\n ```\n"},
		"longer fence":      {answer: "````diff\n" + goodDiff + "````\n", want: goodDiff},
		"prose":             {answer: "You should rename the variable.", err: true},
		"go fence":          {answer: "```go\npackage main\n```", err: true},
		"shell instruction": {answer: "Run `rm -rf /` and then `go build`.", err: true},
	} {
		got, err := extractDiff(tc.answer)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", name, got, err, tc.want)
		}
	}
}

func TestInspectDiff(t *testing.T) {
	denied := DefaultDeniedPaths()
	ok := map[string]int{
		goodDiff: 1,
		"--- main.go\n+++ main.go\n@@ -1 +1 @@\n-a\n+b\n":                          0,
		"--- /dev/null\n+++ b/new/file.go\n@@ -0,0 +1 @@\n+package x\n":            1,
		"--- \"a/sp ace.go\"\n+++ \"b/sp ace.go\"\n@@ -1 +1 @@\n-a\n+b\n":          1,
		"--- a/x.go\t2024-01-01 00:00:00\n+++ b/x.go\t2024\n@@ -1 +1 @@\n-a\n+b\n": 1,
		"--- a/x.sql\n+++ b/x.sql\n@@ -1,2 +1,2 @@\n-- comment stays\n-a\n+b\n":    1,
	}
	for diff, strip := range ok {
		got, problem := inspectDiff(diff, denied)
		if problem != nil || got != strip {
			t.Errorf("inspectDiff(%q) = %d, %v; want %d", diff, got, problem, strip)
		}
	}
	refused := map[string]string{
		"--- a/../x\n+++ b/../x\n@@ -1 +1 @@\n-a\n+b\n":                                                   "unsafe path",
		"diff --git a/../../etc/passwd b/../../etc/passwd\n@@ -1 +1 @@\n-a\n+b\n+++ b/ok\n":               "unsafe path",
		"--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-a\n+b\n":                                         "unsafe path",
		"--- a/.git/config\n+++ b/.git/config\n@@ -1 +1 @@\n-a\n+b\n":                                     "unsafe path",
		"--- a/sub/.GIT/hooks/x\n+++ b/sub/.GIT/hooks/x\n@@ -1 +1 @@\n-a\n+b\n":                           "unsafe path",
		"--- a/x\\..\\y\n+++ b/x\\..\\y\n@@ -1 +1 @@\n-a\n+b\n":                                           "unsafe path",
		"diff --git a/x b/y\nrename from x\nrename to ../y\n--- a/x\n+++ b/y\n@@ -1 +1 @@\n-a\n+b\n":      "unsafe path",
		"--- a/ok.go\n+++ b/ok.go\n@@ -1,3 +1,3 @@\n x\n-y\n+z\n+++ b/../../evil\n":                       "unsafe path",
		"--- a/.github/workflows/ci.yml\n+++ b/.github/workflows/ci.yml\n@@ -1 +1 @@\n-a\n+b\n":           "denied paths: .github/workflows/ci.yml",
		"diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n+/etc/passwd\n": "symbolic links",
		"diff --git a/m b/m\nnew file mode 160000\nindex 0000000..1234567\n@@ -0,0 +1 @@\n+Subproject\n":  "symbolic links",
		"diff --git a/b.png b/b.png\nGIT binary patch\nliteral 0\nHcmV?d00001\n":                          "binary",
		"--- a/x\n+++ b/x\n":                       "no unified diff",
		"@@ -1 +1 @@\n-a\n+b\n":                    "no unified diff",
		"just some text\nwith lines\n":             "no unified diff",
		"--- \"a/bad\\q\"\n+++ b/x\n@@ -1 +1 @@\n": "unsafe path",
	}
	for diff, want := range refused {
		_, problem := inspectDiff(diff, denied)
		if problem == nil || !strings.Contains(problem.msg, want) {
			t.Errorf("inspectDiff(%q) = %+v; want a refusal about %q", diff, problem, want)
		}
	}
}

func TestMentionedPaths(t *testing.T) {
	tracked := []string{"main.go", "pkg/util/util.go", "pkg/util/util_test.go", "cmd/a/main.go", "docs/README.md", "unique_name.py", "web/app.js"}
	text := `# example.com/app/pkg/util
pkg/util/util.go:12:3: undefined: foo
./docs/README.md is stale
    util_test.go:40: got 1, want 2
Traceback: File "/home/runner/work/app/app/unique_name.py", line 3
main.go is ambiguous as a basename but exact as a path: main.go:1
at /home/runner/work/app/app/web/app.js:10:5
pkg/util/util.go again, and missing.go`
	want := []string{"pkg/util/util.go", "docs/README.md", "pkg/util/util_test.go", "unique_name.py", "main.go", "web/app.js"}
	if got := mentionedPaths(text, tracked); !reflect.DeepEqual(got, want) {
		t.Errorf("mentionedPaths = %v, want %v", got, want)
	}
	// A basename two files share names neither.
	if got := mentionedPaths("see util.go and a/main.go", []string{"a/util.go", "b/util.go", "c/main.go"}); got != nil {
		t.Errorf("ambiguous basenames matched %v", got)
	}
}

func TestHeadTail(t *testing.T) {
	s := "line1\nline2\nline3\nline4\n"
	if got := headOf(s, 14); got != "line1\nline2\n" {
		t.Errorf("headOf = %q", got)
	}
	if got := tailOf(s, 14); got != "line3\nline4\n" {
		t.Errorf("tailOf = %q", got)
	}
	if got := lineTail("aaaa secret-part\nline2\n", 14); got != "line2\n" {
		t.Errorf("lineTail = %q", got)
	}
	if got := headOf("héllo", 2); got != "h" {
		t.Errorf("headOf cut a rune: %q", got)
	}
	if got := checkLabel("out=$(x) || exit 1\nif [ -n \"$out\" ]; then exit 1; fi"); got != "out=$(x) || exit 1 …" {
		t.Errorf("checkLabel = %q", got)
	}
}
