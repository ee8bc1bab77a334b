// Package policy assesses the risk of a proposed fix. It is pure code with
// no I/O and no clock, so the workflow can call it and replays get the same
// answer. The levels are the seed's (LOW / MEDIUM / HIGH, gates ALLOW /
// REVIEW / COMMANDER), but words are matched whole — "product" is not
// "prod", "william" is not "iam", "latest" is not "test" — and the files a
// fix touches and where it came from count, not only the failure's text.
package policy

import (
	"slices"
	"strings"
	"unicode"

	"github.com/bmatcuk/doublestar/v4"
)

// Levels of risk.
const (
	LevelLow    = "LOW"
	LevelMedium = "MEDIUM"
	LevelHigh   = "HIGH"
)

// Sources of a fix.
const (
	SourceRecipe = "recipe"
	SourceModel  = "model"
)

// Input is what the assessment looks at. Files and Source are empty when
// only the failure is known (before a fix exists).
type Input struct {
	FailureSummary string
	LogExcerpt     string
	Files          []string
	Source         string
	DiffBytes      int
}

// Assessment is the outcome, in the seed's vocabulary.
type Assessment struct {
	Level       string `json:"level"`
	Score       int    `json:"score"`
	Gate        string `json:"gate"`         // ALLOW, REVIEW, COMMANDER
	BlastRadius string `json:"blast_radius"` // prod, non-prod
	ChangeType  string `json:"change_type"`
	// Reason names what set the level, for people reading the decision.
	Reason string `json:"reason"`
}

// highWords in the failure mean infrastructure, production or security.
var highWords = []string{"terraform", "helm", "kubernetes", "k8s", "prod", "production", "iam", "security", "policy", "secrets", "secret", "credentials"}

// lowWords mean tests, docs or formatting.
var lowWords = []string{"lint", "linter", "format", "formatting", "gofmt", "fmt", "prettier", "docs", "readme", "typo", "test", "tests", "whitespace"}

// highPaths are files whose change reaches infrastructure or CI.
var highPaths = []string{"**/*.tf", "**/*.tfvars", "**/Chart.yaml", "charts/**", "helm/**", "k8s/**", "kubernetes/**", "deploy/**", ".github/**", ".gitlab-ci.yml", "CODEOWNERS", "**/Dockerfile", "**/*.pem"}

// lowPaths are documentation and tests.
var lowPaths = []string{"**/*.md", "docs/**", "**/*_test.go", "**/test/**", "**/tests/**", "**/*.txt"}

// Assess rates a failure and, when known, its fix. HIGH wins over LOW; a
// fix written by a model is never LOW (nobody wrote it as a known recipe),
// and a large diff is at least MEDIUM.
func Assess(in Input) Assessment {
	text := in.FailureSummary + "\n" + firstBytes(in.LogExcerpt, 4096)
	words := wordSet(text)
	for _, w := range highWords {
		if words[w] {
			return high("the failure mentions " + quote(w))
		}
	}
	for _, f := range in.Files {
		if p := matchAny(highPaths, f); p != "" {
			return high("the fix touches " + quote(f))
		}
	}
	lowReason := ""
	for _, w := range lowWords {
		if words[w] {
			lowReason = "the failure mentions " + quote(w)
			break
		}
	}
	if len(in.Files) > 0 && allMatch(lowPaths, in.Files) {
		lowReason = "the fix touches only documentation and tests"
	}
	switch {
	case lowReason != "" && in.Source == SourceModel:
		return medium(lowReason + ", but a model wrote the fix")
	case lowReason != "" && in.DiffBytes > 64<<10:
		return medium(lowReason + ", but the diff is large")
	case lowReason != "":
		return Assessment{Level: LevelLow, Score: 20, Gate: "ALLOW", BlastRadius: "non-prod", ChangeType: "tests_docs_format", Reason: lowReason}
	case in.Source == SourceModel:
		return medium("a model wrote the fix to application code")
	}
	return medium("application code")
}

// Severity maps a level to the incident severity the seed used.
func Severity(level string) string {
	switch level {
	case LevelHigh:
		return "SEV-2"
	case LevelLow:
		return "SEV-4"
	}
	return "SEV-3"
}

func high(reason string) Assessment {
	return Assessment{Level: LevelHigh, Score: 85, Gate: "COMMANDER", BlastRadius: "prod", ChangeType: "infra_or_security", Reason: reason}
}

func medium(reason string) Assessment {
	return Assessment{Level: LevelMedium, Score: 55, Gate: "REVIEW", BlastRadius: "non-prod", ChangeType: "application_logic", Reason: reason}
}

// wordSet splits text into lower-case words of letters and digits.
func wordSet(text string) map[string]bool {
	out := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		out[w] = true
	}
	return out
}

func matchAny(patterns []string, file string) string {
	for _, p := range patterns {
		if globMatch(p, file) {
			return p
		}
	}
	return ""
}

func allMatch(patterns []string, files []string) bool {
	return !slices.ContainsFunc(files, func(f string) bool { return matchAny(patterns, f) == "" })
}

// globMatch matches a slash-separated path against a pattern with "**"
// anywhere (doublestar, as the recipes' globs).
func globMatch(pattern, name string) bool {
	ok, err := doublestar.Match(pattern, name)
	return err == nil && ok
}

func firstBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func quote(s string) string { return "“" + s + "”" }
