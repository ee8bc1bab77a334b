package policy

import "testing"

func TestAssess(t *testing.T) {
	cases := []struct {
		name  string
		in    Input
		level string
	}{
		{"seed low", Input{FailureSummary: "lint: flake8 failed"}, LevelLow},
		{"seed high", Input{FailureSummary: "deploy prod: terraform apply"}, LevelHigh},
		{"product is not prod", Input{FailureSummary: "Build product page"}, LevelMedium},
		{"william is not iam", Input{FailureSummary: "Pipeline: william"}, LevelMedium},
		{"latest is not test", Input{FailureSummary: "Release latest image"}, LevelMedium},
		{"infra file", Input{FailureSummary: "lint failed", Files: []string{"infra/main.tf"}}, LevelHigh},
		{"workflow file", Input{FailureSummary: "gofmt", Files: []string{".github/workflows/ci.yml"}}, LevelHigh},
		{"docs only", Input{FailureSummary: "build broke", Files: []string{"README.md", "pkg/a_test.go"}}, LevelLow},
		{"model never low", Input{FailureSummary: "gofmt check failed", Files: []string{"main.go"}, Source: SourceModel}, LevelMedium},
		{"big diff never low", Input{FailureSummary: "gofmt", DiffBytes: 1 << 20}, LevelMedium},
		{"recipe gofmt", Input{FailureSummary: "lint: gofmt check failed", Files: []string{"main.go"}, Source: SourceRecipe}, LevelLow},
	}
	for _, c := range cases {
		got := Assess(c.in)
		if got.Level != c.level {
			t.Errorf("%s: level %s (%s), want %s", c.name, got.Level, got.Reason, c.level)
		}
		if got.Reason == "" || got.Score == 0 || got.Gate == "" {
			t.Errorf("%s: incomplete assessment %+v", c.name, got)
		}
	}
}

func TestSeverity(t *testing.T) {
	for level, want := range map[string]string{LevelHigh: "SEV-2", LevelMedium: "SEV-3", LevelLow: "SEV-4", "": "SEV-3"} {
		if got := Severity(level); got != want {
			t.Errorf("Severity(%q) = %s, want %s", level, got, want)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	for _, c := range []struct {
		p, n string
		ok   bool
	}{
		{"**/*.tf", "main.tf", true}, {"**/*.tf", "a/b/main.tf", true}, {"charts/**", "charts/x/y.yaml", true},
		{"charts/**", "mycharts/x", false}, {"CODEOWNERS", "CODEOWNERS", true}, {"**/Dockerfile", "svc/Dockerfile", true},
		{"**/*.md", "main.go", false},
	} {
		if got := globMatch(c.p, c.n); got != c.ok {
			t.Errorf("globMatch(%q, %q) = %v", c.p, c.n, got)
		}
	}
}
