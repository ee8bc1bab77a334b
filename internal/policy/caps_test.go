package policy

import (
	"strings"
	"testing"
)

// TestPolicyCaps: the first caps: entry whose globs match the repository
// (without case) sets both caps; other repositories keep the defaults.
func TestPolicyCaps(t *testing.T) {
	p, err := Parse([]byte(`caps:
  - repos: ["acme/payments*", "gitlab:acme/**"]
    max_active: 2
    max_per_hour: 10
  - repos: ["acme/*"]
    max_active: 0
    max_per_hour: 500
`), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		repo           string
		active, hourly int
		matched        bool
	}{
		{"acme/payments-api", 2, 10, true}, // the first match wins over acme/*
		{"ACME/Payments", 2, 10, true},
		{"gitlab:acme/infra/tf", 2, 10, true},
		{"acme/web", 0, 500, true},
		{"other/web", 0, 0, false},
	} {
		a, h, ok := p.CapsFor(tc.repo)
		if a != tc.active || h != tc.hourly || ok != tc.matched {
			t.Errorf("%s: got %d/%d/%t, want %d/%d/%t", tc.repo, a, h, ok, tc.active, tc.hourly, tc.matched)
		}
	}
	if _, _, ok := Default().CapsFor("acme/web"); ok {
		t.Error("the built-in policy has no caps")
	}
}

// TestPolicyCapsErrorsNameTheLine: a caps: entry is checked strictly.
func TestPolicyCapsErrorsNameTheLine(t *testing.T) {
	for name, tc := range map[string]struct{ doc, want string }{
		"unknown key":   {"caps:\n  - repos: [a/b]\n    max_active: 1\n    max_per_hour: 1\n    max_total: 3\n", "line 5: caps field \"max_total\" is not known"},
		"no repos":      {"caps:\n  - max_active: 1\n    max_per_hour: 1\n", "p.yaml:2: caps entry 1: repos must name"},
		"missing cap":   {"rules: []\ncaps:\n  - repos: [a/b]\n    max_active: 1\n", "p.yaml:3: caps entry 1: max_active and max_per_hour are both required"},
		"negative":      {"caps:\n  - repos: [a/b]\n    max_active: -1\n    max_per_hour: 1\n", "p.yaml:2: caps entry 1: max_active must be between 0 (no cap) and 10000, not -1"},
		"too large":     {"caps:\n  - repos: [a/b]\n    max_active: 1\n    max_per_hour: 10001\n", "p.yaml:2: caps entry 1: max_per_hour must be between"},
		"bad glob":      {"caps:\n  - repos: [\"a/[b\"]\n    max_active: 1\n    max_per_hour: 1\n", "p.yaml:2: caps entry 1: pattern \"a/[b\""},
		"empty entry":   {"caps:\n  - {}\n", "p.yaml:2: caps entry 1: repos must name"},
		"not a mapping": {"caps:\n  - a/b\n", "line 2: a caps entry must be a mapping"},
		"second entry":  {"caps:\n  - {repos: [a/b], max_active: 1, max_per_hour: 1}\n  - {repos: [c/d], max_active: x, max_per_hour: 1}\n", "p.yaml"},
	} {
		_, err := Parse([]byte(tc.doc), "p.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want an error containing %q, got %v", name, tc.want, err)
		}
	}
}
