package policy

import (
	"os"
	"slices"
	"strings"
	"testing"
)

const samplePolicy = `levels:
  LOW:    {approvals: 1, roles: [approver, admin]}
  MEDIUM: {approvals: 2, roles: [approver, admin]}
  HIGH:   {approvals: 2, roles: [admin]}
protected:
  paths: [".github/workflows/**", "CODEOWNERS"]
  mode: refuse
rules:
  - name: payments
    level: HIGH
    repos: ["acme/payments*"]
  - name: model-fixes
    level: MEDIUM
    sources: [model]
  - name: docs
    level: LOW
    paths: ["docs/**", "**/*.md"]
  - name: big
    level: MEDIUM
    min_diff_bytes: 10000
default: MEDIUM
`

func TestPolicyEvaluate(t *testing.T) {
	p, err := Parse([]byte(samplePolicy), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		in         EvalInput
		level      string
		rule       string
		approvals  int
		roles      string
		protected  int
		protection string
	}{
		{"repo rule wins over docs", EvalInput{Repo: "acme/payments-api", Input: Input{Files: []string{"docs/x.md"}, Source: SourceRecipe}}, LevelHigh, "payments", 2, "admin", 0, ""},
		{"docs", EvalInput{Repo: "acme/api", Input: Input{Files: []string{"docs/a.md", "README.md"}, Source: SourceRecipe}}, LevelLow, "docs", 1, "approver,admin", 0, ""},
		{"model beats docs (higher)", EvalInput{Repo: "acme/api", Input: Input{Files: []string{"docs/a.md"}, Source: SourceModel}}, LevelMedium, "model-fixes", 2, "approver,admin", 0, ""},
		{"size", EvalInput{Repo: "acme/api", Input: Input{Files: []string{"docs/a.md"}, Source: SourceRecipe, DiffBytes: 20000}}, LevelMedium, "big", 2, "approver,admin", 0, ""},
		{"default", EvalInput{Repo: "acme/api", Input: Input{Files: []string{"main.go"}, Source: SourceRecipe}}, LevelMedium, "default", 2, "approver,admin", 0, ""},
		{"protected", EvalInput{Repo: "acme/api", Input: Input{Files: []string{".github/workflows/ci.yml", "main.go"}, Source: SourceRecipe}}, LevelMedium, "default", 2, "approver,admin", 1, ProtectedRefuse},
	}
	for _, c := range cases {
		r := p.Evaluate(c.in)
		if r.Level != c.level || r.Rule != c.rule || r.Approvals != c.approvals || strings.Join(r.Roles, ",") != c.roles ||
			len(r.ProtectedFiles) != c.protected || r.ProtectedMode != c.protection {
			t.Errorf("%s: got level %s rule %q approvals %d roles %v protected %v %q", c.name, r.Level, r.Rule, r.Approvals, r.Roles, r.ProtectedFiles, r.ProtectedMode)
		}
		if again := p.Evaluate(c.in); again.Rule != r.Rule || again.Level != r.Level {
			t.Errorf("%s: not deterministic", c.name)
		}
	}
}

func TestDefaultPolicy(t *testing.T) {
	p := Default()
	r := p.Evaluate(EvalInput{Repo: "/repos/demo", Input: Input{FailureSummary: "gofmt", Files: []string{"main.go"}, Source: SourceRecipe}})
	if r.Level != LevelLow || r.Rule != "built-in heuristics" || r.Approvals != 1 || !strings.Contains(strings.Join(r.Roles, ","), "approver") {
		t.Fatalf("gofmt fix: %+v", r)
	}
	r = p.Evaluate(EvalInput{Repo: "/repos/demo", Input: Input{FailureSummary: "terraform plan failed", Files: []string{"main.tf"}}})
	if r.Level != LevelHigh || strings.Join(r.Roles, ",") != "admin" {
		t.Fatalf("HIGH needs an admin: %+v", r)
	}
	r = p.Evaluate(EvalInput{Repo: "/repos/demo", Input: Input{FailureSummary: "lint", Files: []string{"CODEOWNERS"}}})
	if len(r.ProtectedFiles) != 1 || r.ProtectedMode != ProtectedAdmin {
		t.Fatalf("CODEOWNERS is protected: %+v", r)
	}
}

func TestPolicyErrorsNameTheLine(t *testing.T) {
	for name, tc := range map[string]struct{ doc, want string }{
		"unknown key":        {"levels:\n  LOW: {approvals: 1, roles: [approver]}\nrulez: []\n", "line 3"},
		"unknown level":      {"rules:\n  - name: a\n    level: CRITICAL\n    paths: [x]\n", "p.yaml:2: rule \"a\": unknown level"},
		"no condition":       {"rules:\n  - name: a\n    level: LOW\n", "p.yaml:2: rule \"a\" has no condition"},
		"duplicate rule":     {"rules:\n  - name: a\n    level: LOW\n    paths: [x]\n  - name: a\n    level: LOW\n    paths: [y]\n", "p.yaml:5: rule \"a\" is defined twice"},
		"bad role":           {"levels:\n  LOW: {approvals: 1, roles: [approver]}\n  HIGH: {approvals: 1, roles: [root]}\n", "p.yaml:3: HIGH: unknown role"},
		"zero approvals":     {"levels:\n  HIGH: {approvals: 0, roles: [admin]}\n", "p.yaml:2: HIGH: approvals must be between 1 and 10"},
		"bad glob":           {"rules:\n  - name: a\n    level: LOW\n    paths: [\"a/[b\"]\n", "p.yaml:2: rule \"a\": pattern"},
		"typo in a rule":     {"rules:\n  - name: a\n    level: LOW\n    repos: [acme/docs]\n    path: [\"**/*.md\"]\n", "p.yaml: line 5: rule field \"path\" is not known"},
		"two documents":      {"default: LOW\n---\ndefault: HIGH\n", "one YAML document"},
		"empty file":         {"", "p.yaml:1: the policy file is empty"},
		"hyphenated word":    {"rules:\n  - name: a\n    level: HIGH\n    failure_words: [CVE-2024-1]\n", "letters and digits"},
		"admin unreachable":  {"levels:\n  LOW: {approvals: 1, roles: [approver]}\nprotected:\n  paths: [x]\n  mode: admin\n", "no admin may approve"},
		"bad mode":           {"protected:\n  paths: [x]\n  mode: maybe\n", "p.yaml:3: protected.mode"},
		"bad default":        {"default: SOMETIMES\n", "p.yaml:1: default must be"},
		"bad duration":       {"levels:\n  LOW: {approvals: 1, roles: [approver], remind_every: soon}\n", "p.yaml:2: LOW: remind_every must be a duration"},
		"reminder spam":      {"levels:\n  LOW: {approvals: 1, roles: [approver], remind_every: 1m}\n", "p.yaml:2: LOW: remind_every"},
		"escalate nowhere":   {"levels:\n  LOW: {approvals: 1, roles: [approver], escalate_before: 1h}\n", "go together"},
		"escalate to a link": {"levels:\n  LOW: {approvals: 1, roles: [approver], escalate_before: 1h, escalate_to: \"<https://evil|click>\"}\n", "escalate_to must be"},
		"escalate late":      {"levels:\n  LOW: {approvals: 1, roles: [approver], deadline: 2h, escalate_before: 3h, escalate_to: ops}\n", "shorter than the deadline"},
		"bad source":         {"rules:\n  - name: a\n    level: LOW\n    sources: [human]\n", "p.yaml:2: rule \"a\": unknown source"},
		"not a policy doc":   {"- just\n- a list\n", "p.yaml"},
		"unknown group":      {"levels:\n  HIGH: {approvals: 1, groups: [leads]}\n", "p.yaml:2: HIGH: group \"leads\" is not defined"},
		"empty group":        {"groups:\n  leads: []\n", "p.yaml:2: group \"leads\" has no members"},
		"bad group name":     {"groups:\n  \"le ads\": [a]\n", "p.yaml:2: group name"},
		"nobody approves":    {"levels:\n  HIGH: {approvals: 1}\n", "p.yaml:2: HIGH: roles (approver, admin) or groups"},
	} {
		_, err := Parse([]byte(tc.doc), "p.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want an error containing %q, got %v", name, tc.want, err)
		}
	}
}

// A level may let the members of named groups approve besides its roles;
// Evaluate resolves the members, so the workflow records who they are.
func TestPolicyGroups(t *testing.T) {
	p, err := Parse([]byte("groups:\n  sre-leads: [carol, dave]\n  db: [erin, carol]\nlevels:\n  HIGH: {approvals: 2, roles: [admin], groups: [sre-leads, db]}\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := p.Evaluate(EvalInput{Input: Input{FailureSummary: "terraform apply failed"}})
	if r.Level != LevelHigh || !slices.Equal(r.Roles, []string{"admin"}) || !slices.Equal(r.Groups, []string{"sre-leads", "db"}) ||
		!slices.Equal(r.Members, []string{"carol", "dave", "erin"}) {
		t.Fatalf("groups: %+v", r)
	}
	low := p.Evaluate(EvalInput{Input: Input{FailureSummary: "gofmt"}, Repo: "x"})
	if len(low.Members) != 0 || len(low.Roles) == 0 {
		t.Fatalf("a level without groups has no members: %+v", low)
	}
	only, err := Parse([]byte("protected: {paths: []}\ngroups:\n  leads: [carol]\nlevels:\n  HIGH: {approvals: 1, groups: [leads]}\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if r := only.Evaluate(EvalInput{Input: Input{FailureSummary: "terraform apply failed"}}); len(r.Roles) != 0 || !slices.Equal(r.Members, []string{"carol"}) {
		t.Fatalf("a groups-only level lets no role approve: %+v", r)
	}
}

func TestPolicyTiming(t *testing.T) {
	p, err := Parse([]byte("levels:\n  HIGH: {approvals: 1, roles: [admin], deadline: 8h, remind_every: 2h, escalate_before: 1h, escalate_to: \"@oncall\"}\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := p.Evaluate(EvalInput{Input: Input{FailureSummary: "terraform apply failed"}})
	if r.Level != LevelHigh || r.Deadline.Hours() != 8 || r.RemindEvery.Hours() != 2 || r.EscalateBefore.Hours() != 1 || r.EscalateTo != "@oncall" {
		t.Fatalf("timing: %+v", r)
	}
}

// A rule over the heuristics only raises the level; a file that leaves out
// the protected paths or a level keeps the built-in ones.
func TestPolicyKeepsTheBuiltInGuarantees(t *testing.T) {
	p, err := Parse([]byte("rules:\n  - name: docs\n    level: LOW\n    paths: [\"**/*.md\"]\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := p.Evaluate(EvalInput{Repo: "acme/api", Input: Input{FailureSummary: "terraform prod secret", Files: []string{"README.md", "infra/main.tf"}, Source: SourceModel}})
	if r.Level != LevelHigh || r.Rule != "built-in heuristics" || strings.Join(r.Roles, ",") != "admin" {
		t.Fatalf("a LOW rule lowered an infrastructure fix: %+v", r)
	}
	r = p.Evaluate(EvalInput{Repo: "acme/api", Input: Input{FailureSummary: "typo", Files: []string{"docs/a.md", ".github/workflows/ci.yml"}}})
	if r.ProtectedMode != ProtectedAdmin || len(r.ProtectedFiles) != 1 {
		t.Fatalf("the built-in protected paths were dropped: %+v", r)
	}
	p, err = Parse([]byte("protected: {paths: []}\nrules:\n  - name: pay\n    level: HIGH\n    repos: [\"Acme/Payments*\"]\n    paths: [\"services/*/deploy/**\"]\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r = p.Evaluate(EvalInput{Repo: "acme/payments-api", Input: Input{Files: []string{"services/api/deploy/x.yaml"}}})
	if r.Rule != "pay" || r.Level != LevelHigh || len(r.ProtectedFiles) != 0 {
		t.Fatalf("case-insensitive repos and ** in the middle: %+v", r)
	}
}

// The example in the README's "Change safety" section is a valid policy.
func TestReadmeExamplePolicy(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Skip("README.md not found")
	}
	doc := string(b)
	i := strings.Index(doc, "## Change safety")
	if i < 0 {
		t.Fatal("README has no Change safety section")
	}
	start := strings.Index(doc[i:], "```yaml\n")
	end := strings.Index(doc[i+start+8:], "```")
	if start < 0 || end < 0 {
		t.Fatal("no yaml example in the Change safety section")
	}
	p, err := Parse([]byte(doc[i+start+8:i+start+8+end]), "README.md")
	if err != nil {
		t.Fatalf("the README's example policy does not parse: %v", err)
	}
	if len(p.Rules) != 5 || p.Levels[LevelHigh].Approvals != 2 || p.Levels[LevelHigh].EscalateTo != "@platform-oncall" {
		t.Fatalf("example parsed as %+v", p)
	}
}
