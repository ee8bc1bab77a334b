package policy

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/bmatcuk/doublestar/v4"
	"gopkg.in/yaml.v3"
)

// escalateTarget: a Slack mention token (which notifies) or a plain name
// (shown as text).
var escalateTarget = regexp.MustCompile(`^(<(!subteam\^[A-Z0-9]{2,20}|@[UW][A-Z0-9]{2,20}|!here|!channel)>|[A-Za-z0-9@._ -]{1,80})$`)

// groupName is a policy group's name.
var groupName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Roles that may be named in a level's roles.
var knownRoles = []string{"approver", "admin"}

// Protected-path modes.
const (
	// ProtectedAdmin: a diff touching a protected path needs an approval
	// by an admin on top of the quorum.
	ProtectedAdmin = "admin"
	// ProtectedRefuse: such a diff is never opened.
	ProtectedRefuse = "refuse"
)

// Policy maps what a fix is (repository, files, source, size, failure) to a
// risk level, and each level to who must approve it. It is data: the worker
// records the policy it runs with in the workflow's history (the Setup
// step), and Evaluate is pure, so a replay decides exactly as the run did.
type Policy struct {
	// Name is where the policy came from (file name, or "built-in").
	Name      string               `json:"name"`
	Levels    map[string]LevelRule `json:"levels"`
	Protected Protected            `json:"protected"`
	Rules     []Rule               `json:"rules,omitempty"`
	// Default is the level when no rule matches, or "heuristics": the
	// built-in assessment (Assess) decides.
	Default string `json:"default"`
	// Groups are named sets of people (API subjects) a level may let
	// approve besides its roles.
	Groups map[string][]string `json:"groups,omitempty"`
	// Caps override the per-repository admission caps (caps.go).
	Caps []Cap `json:"caps,omitempty"`
}

// LevelRule says who must approve a fix of one level.
type LevelRule struct {
	// Approvals is the quorum: distinct approvers, none of them the
	// requester.
	Approvals int `json:"approvals"`
	// Roles are the roles allowed to approve at this level.
	Roles []string `json:"roles"`
	// Groups name the policy's groups whose members may approve at this
	// level (with the approver role) whatever their other roles.
	Groups []string `json:"groups,omitempty"`
	// Deadline, when set, shortens the approval window to this long after
	// the fix is ready (never lengthens the request's deadline).
	Deadline time.Duration `json:"deadline,omitempty"`
	// RemindEvery repeats the approval request while nobody decided.
	RemindEvery time.Duration `json:"remind_every,omitempty"`
	// EscalateBefore is how long before the deadline the request is
	// escalated to EscalateTo (a Slack handle or group, a team name).
	EscalateBefore time.Duration `json:"escalate_before,omitempty"`
	EscalateTo     string        `json:"escalate_to,omitempty"`
}

// Protected paths need an admin approval on top of the quorum, or are
// refused.
type Protected struct {
	Paths []string `json:"paths"`
	Mode  string   `json:"mode"`
}

// Rule sets Level when every condition it names holds (a list holds when
// any of its entries does). The highest level among matching rules wins;
// between equal levels, the first rule.
type Rule struct {
	Name         string   `json:"name"`
	Level        string   `json:"level"`
	Repos        []string `json:"repos,omitempty"`
	Paths        []string `json:"paths,omitempty"`
	Sources      []string `json:"sources,omitempty"`
	MinDiffBytes int      `json:"min_diff_bytes,omitempty"`
	FailureWords []string `json:"failure_words,omitempty"`
}

// EvalInput is what the policy looks at: Assess's input and the repository.
type EvalInput struct {
	Input
	Repo string
}

// Result is the policy's answer for one fix.
type Result struct {
	Assessment
	// Rule names what set the level: a rule's name, "default" or
	// "built-in heuristics"; Policy names the policy.
	Rule      string   `json:"rule"`
	Policy    string   `json:"policy"`
	Approvals int      `json:"approvals"`
	Roles     []string `json:"roles"`
	// Groups are the level's named groups and Members their people.
	Groups  []string `json:"groups,omitempty"`
	Members []string `json:"members,omitempty"`
	// ProtectedFiles are the fix's files under protected paths; with
	// ProtectedMode admin they need an admin approval, with refuse the fix
	// is not opened.
	ProtectedFiles []string `json:"protected_files,omitempty"`
	ProtectedMode  string   `json:"protected_mode,omitempty"`
	// The level's timing: see LevelRule.
	Deadline       time.Duration `json:"deadline,omitempty"`
	RemindEvery    time.Duration `json:"remind_every,omitempty"`
	EscalateBefore time.Duration `json:"escalate_before,omitempty"`
	EscalateTo     string        `json:"escalate_to,omitempty"`
}

//go:embed default.yaml
var defaultYAML []byte

// Default is the built-in policy (default.yaml): one approval by an approver
// for LOW and MEDIUM, one by an admin for HIGH, the built-in heuristics for
// the level, CI configuration and CODEOWNERS protected (admin).
func Default() Policy {
	p, err := parse(defaultYAML, "built-in", nil)
	if err != nil {
		panic("policy: the built-in policy is invalid: " + err.Error())
	}
	return p
}

// levelRank orders levels.
func levelRank(l string) int {
	switch l {
	case LevelLow:
		return 1
	case LevelMedium:
		return 2
	case LevelHigh:
		return 3
	}
	return 0
}

// Evaluate applies the policy to one fix. It is deterministic.
func (p Policy) Evaluate(in EvalInput) Result {
	res := Result{Policy: p.Name}
	best := -1
	for i, r := range p.Rules {
		if r.matches(in) && (best < 0 || levelRank(r.Level) > levelRank(p.Rules[best].Level)) {
			best = i
		}
	}
	heuristics := p.Default == "heuristics" || p.Default == ""
	switch {
	case best >= 0 && heuristics:
		// Over the heuristics a rule can only raise the level: a "docs are
		// LOW" rule must not lower a fix that also touches infrastructure.
		r := p.Rules[best]
		if h := Assess(in.Input); levelRank(h.Level) > levelRank(r.Level) {
			res.Assessment = h
			res.Assessment.Reason += " (above rule " + quote(r.Name) + ": " + r.Level + ")"
			res.Rule = "built-in heuristics"
		} else {
			res.Assessment = assessmentFor(r.Level, "policy rule "+quote(r.Name))
			res.Rule = r.Name
		}
	case best >= 0:
		r := p.Rules[best]
		res.Assessment = assessmentFor(r.Level, "policy rule "+quote(r.Name))
		res.Rule = r.Name
	case heuristics:
		res.Assessment = Assess(in.Input)
		res.Rule = "built-in heuristics"
	default:
		res.Assessment = assessmentFor(p.Default, "the policy's default level")
		res.Rule = "default"
	}
	lr := p.Levels[res.Level]
	res.Approvals, res.Roles = max(lr.Approvals, 1), slices.Clone(lr.Roles)
	res.Deadline, res.RemindEvery, res.EscalateBefore, res.EscalateTo = lr.Deadline, lr.RemindEvery, lr.EscalateBefore, lr.EscalateTo
	if len(res.Roles) == 0 && len(lr.Groups) == 0 {
		res.Roles = []string{"approver", "admin"}
	}
	for _, g := range lr.Groups {
		res.Groups = append(res.Groups, g)
		for _, m := range p.Groups[g] {
			if !slices.Contains(res.Members, m) {
				res.Members = append(res.Members, m)
			}
		}
	}
	slices.Sort(res.Members)
	for _, f := range in.Files {
		if matchAny(p.Protected.Paths, f) != "" {
			res.ProtectedFiles = append(res.ProtectedFiles, f)
		}
	}
	if len(res.ProtectedFiles) > 0 {
		res.ProtectedMode = p.Protected.Mode
	}
	return res
}

func (r Rule) matches(in EvalInput) bool {
	if len(r.Repos) > 0 && !slices.ContainsFunc(r.Repos, func(g string) bool { return globMatch(strings.ToLower(g), strings.ToLower(in.Repo)) }) {
		return false
	}
	if len(r.Paths) > 0 && !slices.ContainsFunc(in.Files, func(f string) bool { return matchAny(r.Paths, f) != "" }) {
		return false
	}
	if len(r.Sources) > 0 && !slices.Contains(r.Sources, in.Source) {
		return false
	}
	if r.MinDiffBytes > 0 && in.DiffBytes < r.MinDiffBytes {
		return false
	}
	if len(r.FailureWords) > 0 {
		words := wordSet(in.FailureSummary + "\n" + firstBytes(in.LogExcerpt, 4096))
		if !slices.ContainsFunc(r.FailureWords, func(w string) bool { return words[strings.ToLower(w)] }) {
			return false
		}
	}
	return true
}

func assessmentFor(level, reason string) Assessment {
	switch level {
	case LevelHigh:
		return high(reason)
	case LevelLow:
		return Assessment{Level: LevelLow, Score: 20, Gate: "ALLOW", BlastRadius: "non-prod", ChangeType: "tests_docs_format", Reason: reason}
	}
	return medium(reason)
}

// The file format, decoded strictly (unknown keys are errors) with the line
// of every rule kept for the messages.
type fileLevel struct {
	Approvals      int      `yaml:"approvals"`
	Roles          []string `yaml:"roles"`
	Groups         []string `yaml:"groups"`
	Deadline       string   `yaml:"deadline"`
	RemindEvery    string   `yaml:"remind_every"`
	EscalateBefore string   `yaml:"escalate_before"`
	EscalateTo     string   `yaml:"escalate_to"`
}

type fileProtected struct {
	Paths []string `yaml:"paths"`
	Mode  string   `yaml:"mode"`
}

type fileRule struct {
	Name         string   `yaml:"name"`
	Level        string   `yaml:"level"`
	Repos        []string `yaml:"repos"`
	Paths        []string `yaml:"paths"`
	Sources      []string `yaml:"sources"`
	MinDiffBytes int      `yaml:"min_diff_bytes"`
	FailureWords []string `yaml:"failure_words"`
	line         int
}

// ruleKeys are the fields a rule may have: anything else is an error (a
// typo such as "path" must not silently widen a rule).
var ruleKeys = []string{"name", "level", "repos", "paths", "sources", "min_diff_bytes", "failure_words"}

func (r *fileRule) UnmarshalYAML(n *yaml.Node) error {
	if err := knownKeys(n, "a rule", "rule", ruleKeys); err != nil {
		return err
	}
	type plain fileRule
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*r = fileRule(p)
	r.line = n.Line
	return nil
}

// knownKeys refuses a node that is not a mapping (what names it) or that
// has a key outside keys (field names the entry's kind in the message).
func knownKeys(n *yaml.Node, what, field string, keys []string) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %s must be a mapping", n.Line, what)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; !slices.Contains(keys, k.Value) {
			return fmt.Errorf("line %d: %s field %q is not known (%s)", k.Line, field, k.Value, strings.Join(keys, ", "))
		}
	}
	return nil
}

type file struct {
	Levels    map[string]fileLevel `yaml:"levels"`
	Protected *fileProtected       `yaml:"protected"`
	Rules     []fileRule           `yaml:"rules"`
	Default   string               `yaml:"default"`
	Groups    map[string][]string  `yaml:"groups"`
	Caps      []fileCap            `yaml:"caps"`
}

// Parse reads a policy file. Errors name the file and the line. What the
// file leaves out is the built-in policy's: its levels and its protected
// paths (write `protected: {paths: []}` to protect nothing).
func Parse(data []byte, name string) (Policy, error) {
	base := Default()
	return parse(data, name, &base)
}

func parse(data []byte, name string, base *Policy) (Policy, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return Policy{}, fmt.Errorf("%s:1: the policy file is empty", name)
	}
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return Policy{}, fmt.Errorf("%s: %w", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Policy{}, fmt.Errorf("%s: a policy file is one YAML document", name)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	lineOf := func(keys ...string) int { return keyLine(&root, keys...) }
	var errs []error
	fail := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, args...)))
	}
	p := Policy{Name: name, Levels: map[string]LevelRule{}, Default: f.Default}
	for _, lvl := range []string{LevelLow, LevelMedium, LevelHigh} {
		p.Levels[lvl] = LevelRule{Approvals: 1, Roles: []string{"approver", "admin"}}
		if base != nil {
			p.Levels[lvl] = base.Levels[lvl]
		}
	}
	if base != nil {
		p.Protected = base.Protected
	}
	for _, g := range slices.Sorted(maps.Keys(f.Groups)) {
		line := lineOf("groups", g)
		if !groupName.MatchString(g) {
			fail(line, "group name %q: letters, digits, '.', '_' and '-' only", g)
			continue
		}
		if len(f.Groups[g]) == 0 {
			fail(line, "group %q has no members", g)
		}
		for _, m := range f.Groups[g] {
			if strings.TrimSpace(m) == "" || m != strings.TrimSpace(m) || strings.ContainsAny(m, "\x00\n\r\t") {
				fail(line, "group %q: member %q is not a subject", g, m)
			}
		}
		if p.Groups == nil {
			p.Groups = map[string][]string{}
		}
		p.Groups[g] = slices.Clone(f.Groups[g])
	}
	for _, lvl := range slices.Sorted(maps.Keys(f.Levels)) {
		lr := f.Levels[lvl]
		line := lineOf("levels", lvl)
		if levelRank(lvl) == 0 {
			fail(line, "unknown level %q (LOW, MEDIUM or HIGH)", lvl)
			continue
		}
		if lr.Approvals < 1 || lr.Approvals > 10 {
			fail(line, "%s: approvals must be between 1 and 10, not %d", lvl, lr.Approvals)
		}
		if len(lr.Roles) == 0 && len(lr.Groups) == 0 {
			fail(line, "%s: roles (approver, admin) or groups must name who may approve", lvl)
		}
		for _, g := range lr.Groups {
			if _, ok := f.Groups[g]; !ok {
				fail(line, "%s: group %q is not defined under groups", lvl, g)
			}
		}
		for _, r := range lr.Roles {
			if !slices.Contains(knownRoles, r) {
				fail(line, "%s: unknown role %q (approver or admin)", lvl, r)
			}
		}
		rule := LevelRule{Approvals: lr.Approvals, Roles: lr.Roles, Groups: lr.Groups, EscalateTo: strings.TrimSpace(lr.EscalateTo)}
		for _, d := range []struct {
			key, val string
			min      time.Duration
			into     *time.Duration
		}{{"deadline", lr.Deadline, time.Minute, &rule.Deadline}, {"remind_every", lr.RemindEvery, 5 * time.Minute, &rule.RemindEvery},
			{"escalate_before", lr.EscalateBefore, time.Minute, &rule.EscalateBefore}} {
			if d.val == "" {
				continue
			}
			v, err := time.ParseDuration(d.val)
			if err != nil || v < d.min || v > 30*24*time.Hour {
				fail(line, "%s: %s must be a duration between %s and 720h, not %q", lvl, d.key, d.min, d.val)
				continue
			}
			*d.into = v
		}
		if rule.EscalateTo != "" && !escalateTarget.MatchString(rule.EscalateTo) {
			fail(line, "%s: escalate_to must be a Slack mention (<!subteam^ID>, <@U…>, <!here>, <!channel>) or a plain name, not %q", lvl, rule.EscalateTo)
		}
		if (rule.EscalateBefore > 0) != (rule.EscalateTo != "") {
			fail(line, "%s: escalate_before and escalate_to go together", lvl)
		}
		if rule.Deadline > 0 && rule.EscalateBefore >= rule.Deadline {
			fail(line, "%s: escalate_before must be shorter than the deadline", lvl)
		}
		p.Levels[lvl] = rule
	}
	switch {
	case f.Protected == nil:
	default:
		p.Protected = Protected{Paths: f.Protected.Paths, Mode: f.Protected.Mode}
		if p.Protected.Mode == "" {
			p.Protected.Mode = ProtectedAdmin
		}
		if p.Protected.Mode != ProtectedAdmin && p.Protected.Mode != ProtectedRefuse {
			fail(lineOf("protected", "mode"), "protected.mode must be admin or refuse, not %q", p.Protected.Mode)
		}
		for _, g := range p.Protected.Paths {
			if err := checkGlob(g); err != nil {
				fail(lineOf("protected", "paths"), "protected path %q: %v", g, err)
			}
		}
	}
	if p.Default != "" && p.Default != "heuristics" && levelRank(p.Default) == 0 {
		fail(lineOf("default"), "default must be heuristics, LOW, MEDIUM or HIGH, not %q", p.Default)
	}
	seen := map[string]bool{}
	if p.Protected.Mode == ProtectedAdmin && len(p.Protected.Paths) > 0 {
		for _, lvl := range []string{LevelLow, LevelMedium, LevelHigh} {
			if !slices.Contains(p.Levels[lvl].Roles, "admin") {
				fail(lineOf("protected", "mode"), "protected.mode admin, but no admin may approve at %s: such a fix could never be approved", lvl)
			}
		}
	}
	for _, r := range f.Rules {
		if r.line == 0 {
			fail(lineOf("rules"), "a rule is empty")
			continue
		}
		for _, w := range r.FailureWords {
			if w == "" || strings.IndexFunc(w, func(c rune) bool { return !unicode.IsLetter(c) && !unicode.IsDigit(c) }) >= 0 {
				fail(r.line, "rule %q: failure word %q: words are letters and digits only (the failure text is split at everything else)", r.Name, w)
			}
		}
		if strings.TrimSpace(r.Name) == "" {
			fail(r.line, "a rule needs a name")
		} else if seen[r.Name] {
			fail(r.line, "rule %q is defined twice", r.Name)
		}
		seen[r.Name] = true
		if levelRank(r.Level) == 0 {
			fail(r.line, "rule %q: unknown level %q (LOW, MEDIUM or HIGH)", r.Name, r.Level)
		}
		if len(r.Repos) == 0 && len(r.Paths) == 0 && len(r.Sources) == 0 && r.MinDiffBytes == 0 && len(r.FailureWords) == 0 {
			fail(r.line, "rule %q has no condition: it would match every fix (use default instead)", r.Name)
		}
		for _, g := range append(slices.Clone(r.Repos), r.Paths...) {
			if err := checkGlob(g); err != nil {
				fail(r.line, "rule %q: pattern %q: %v", r.Name, g, err)
			}
		}
		for _, s := range r.Sources {
			if s != SourceRecipe && s != SourceModel {
				fail(r.line, "rule %q: unknown source %q (recipe or model)", r.Name, s)
			}
		}
		if r.MinDiffBytes < 0 {
			fail(r.line, "rule %q: min_diff_bytes must not be negative", r.Name)
		}
		p.Rules = append(p.Rules, Rule{Name: r.Name, Level: r.Level, Repos: r.Repos, Paths: r.Paths, Sources: r.Sources,
			MinDiffBytes: r.MinDiffBytes, FailureWords: r.FailureWords})
	}
	p.Caps = parseCaps(f.Caps, lineOf("caps"), fail)
	if err := errors.Join(errs...); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// checkGlob accepts doublestar patterns ("**" anywhere).
func checkGlob(g string) error {
	if strings.TrimSpace(g) == "" {
		return errors.New("empty pattern")
	}
	if !doublestar.ValidatePattern(g) {
		return errors.New("not a valid pattern")
	}
	return nil
}

// keyLine finds the line of a key path in the document (1 when absent).
func keyLine(root *yaml.Node, keys ...string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 1
	for _, k := range keys {
		if n == nil || n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				line, next = n.Content[i].Line, n.Content[i+1]
				break
			}
		}
		n = next
	}
	return line
}
