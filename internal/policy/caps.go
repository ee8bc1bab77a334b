package policy

import (
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxCap bounds a repository cap (max_active, max_per_hour).
const MaxCap = 10000

// Cap limits the remediations of the repositories its globs match: at most
// MaxActive running and MaxPerHour started in any hour (0: no cap). It
// overrides REMEDIATOR_REPO_MAX_ACTIVE and REMEDIATOR_REPO_MAX_PER_HOUR.
type Cap struct {
	Repos      []string `json:"repos"`
	MaxActive  int      `json:"max_active"`
	MaxPerHour int      `json:"max_per_hour"`
}

// CapsFor returns the caps of the first caps: entry matching repo (globs
// as the rules', without case); ok is false when none does and the
// configured defaults apply.
func (p Policy) CapsFor(repo string) (maxActive, maxPerHour int, ok bool) {
	for _, c := range p.Caps {
		if slices.ContainsFunc(c.Repos, func(g string) bool { return globMatch(strings.ToLower(g), strings.ToLower(repo)) }) {
			return c.MaxActive, c.MaxPerHour, true
		}
	}
	return 0, 0, false
}

// fileCap is one entry of the file's caps: list; both caps are required
// (0 says "no cap" explicitly), unknown keys are errors.
type fileCap struct {
	Repos      []string `yaml:"repos"`
	MaxActive  *int     `yaml:"max_active"`
	MaxPerHour *int     `yaml:"max_per_hour"`
	line       int
}

var capKeys = []string{"repos", "max_active", "max_per_hour"}

func (c *fileCap) UnmarshalYAML(n *yaml.Node) error {
	if err := knownKeys(n, "a caps entry", "caps", capKeys); err != nil {
		return err
	}
	type plain fileCap
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*c = fileCap(p)
	c.line = n.Line
	return nil
}

// parseCaps checks the file's caps: entries, reporting each problem with
// its line through fail.
func parseCaps(entries []fileCap, listLine int, fail func(line int, format string, args ...any)) []Cap {
	var out []Cap
	for i, c := range entries {
		if c.line == 0 {
			fail(listLine, "caps entry %d is empty", i+1)
			continue
		}
		if len(c.Repos) == 0 {
			fail(c.line, "caps entry %d: repos must name the repositories it caps (globs)", i+1)
		}
		for _, g := range c.Repos {
			if err := checkGlob(g); err != nil {
				fail(c.line, "caps entry %d: pattern %q: %v", i+1, g, err)
			}
		}
		if c.MaxActive == nil || c.MaxPerHour == nil {
			fail(c.line, "caps entry %d: max_active and max_per_hour are both required (0: no cap)", i+1)
			continue
		}
		for _, v := range []struct {
			key string
			n   int
		}{{"max_active", *c.MaxActive}, {"max_per_hour", *c.MaxPerHour}} {
			if v.n < 0 || v.n > MaxCap {
				fail(c.line, "caps entry %d: %s must be between 0 (no cap) and %d, not %d", i+1, v.key, MaxCap, v.n)
			}
		}
		out = append(out, Cap{Repos: c.Repos, MaxActive: *c.MaxActive, MaxPerHour: *c.MaxPerHour})
	}
	return out
}
