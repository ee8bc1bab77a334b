// Package recipe generates fixes for CI failures: a recipe recognises a
// failure by its log and runs a command in a scratch checkout of the failing
// commit; the resulting diff, if it passes the recipe's check and the
// generator's safety limits, is the proposed fix a human then approves.
package recipe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
)

const (
	// DefaultTimeout applies to recipes that do not set one.
	DefaultTimeout = 2 * time.Minute
	// MaxTimeout keeps a misconfigured recipe from tying up a worker.
	// It stays below the GenerateFix activity's start-to-close timeout (15m).
	MaxTimeout = 10 * time.Minute
	// maxRecipeFile bounds LoadFile's input; recipe files are small.
	maxRecipeFile = 1 << 20
)

// Recipe maps a failure signature to a command that fixes it.
type Recipe struct {
	Name        string        `json:"name"`
	Description string        `json:"description"`
	Match       string        `json:"match"`           // Go regexp, matched against summary + "\n" + log excerpt
	Files       []string      `json:"files,omitempty"` // doublestar globs; at least one tracked file must match (e.g. "**/*.go")
	Command     string        `json:"command"`         // run with `sh -c` in the checkout
	Check       string        `json:"check,omitempty"` // optional: run after Command; must exit 0 for the fix to count as validated
	Timeout     time.Duration `json:"timeout"`         // default 2m; JSON uses a duration string like "90s"
	// Model makes the generator's language model write the fix instead of
	// a command (a model recipe has no Command); Check then validates the
	// model's diff, in place of the generator's ModelCheck.
	Model bool `json:"model,omitempty"`
}

// MarshalJSON writes Timeout as a duration string so recipe files stay
// readable and round-trip through LoadFile.
func (r Recipe) MarshalJSON() ([]byte, error) {
	type plain Recipe
	return json.Marshal(struct {
		plain
		Timeout string `json:"timeout"`
	}{plain(r), r.Timeout.String()})
}

// UnmarshalJSON accepts Timeout as a duration string ("90s", "2m") and rejects
// unknown fields, so a typo in a recipe file is an error, not a silently
// ignored setting.
func (r *Recipe) UnmarshalJSON(data []byte) error {
	type plain Recipe
	var aux struct {
		plain
		Timeout json.RawMessage `json:"timeout"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&aux); err != nil {
		return err
	}
	*r = Recipe(aux.plain)
	r.Timeout = 0
	if len(aux.Timeout) > 0 && string(aux.Timeout) != "null" {
		var s string
		if err := json.Unmarshal(aux.Timeout, &s); err != nil {
			return fmt.Errorf("timeout must be a duration string such as \"90s\", got %s", aux.Timeout)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("timeout: %w", err)
		}
		r.Timeout = d
	}
	return nil
}

// Validate reports configuration mistakes before a recipe ever runs. A zero
// Timeout is invalid here; LoadFile and Generator substitute DefaultTimeout
// first.
func (r Recipe) Validate() error {
	if !validName(r.Name) {
		return fmt.Errorf("recipe name %q: want 1-64 characters of [a-z0-9-]", r.Name)
	}
	if strings.TrimSpace(r.Match) == "" {
		return fmt.Errorf("recipe %s: match is empty", r.Name)
	}
	if _, err := regexp.Compile(r.Match); err != nil {
		return fmt.Errorf("recipe %s: match: %w", r.Name, err)
	}
	for _, f := range r.Files {
		if f == "" || !doublestar.ValidatePattern(f) {
			return fmt.Errorf("recipe %s: invalid files pattern %q", r.Name, f)
		}
	}
	switch {
	case r.Model && strings.TrimSpace(r.Command) != "":
		return fmt.Errorf("recipe %s: a model recipe has no command (the model writes the fix)", r.Name)
	case !r.Model && strings.TrimSpace(r.Command) == "":
		return fmt.Errorf("recipe %s: command is empty", r.Name)
	}
	if strings.ContainsRune(r.Command, 0) || strings.ContainsRune(r.Check, 0) {
		return fmt.Errorf("recipe %s: command or check contains NUL", r.Name)
	}
	if r.Timeout <= 0 || r.Timeout > MaxTimeout {
		return fmt.Errorf("recipe %s: timeout %s out of range (0, %s]", r.Name, r.Timeout, MaxTimeout)
	}
	return nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// goFiles lists the tracked Go files gofmt should look at, NUL-separated:
// vendored code and testdata (which may be deliberately malformed) are left
// alone.
const goFiles = `git ls-files -z -- '*.go' ':(exclude)vendor/' ':(exclude,glob)**/testdata/**'`

// whitespaceGrep finds tracked text files (git grep -I skips binaries) with
// trailing whitespace; patches are excluded because there trailing
// whitespace is content.
const whitespaceGrep = `git grep -I -e '[[:blank:]]$' -- . ':(exclude)vendor/' ':(exclude)*.patch' ':(exclude)*.diff'`

// Builtin returns the recipes that cover the most common mechanical CI
// failures. Each call returns a fresh slice the caller may modify.
func Builtin() []Recipe {
	return []Recipe{
		{
			Name:        "gofmt",
			Description: "Format Go source files with gofmt",
			Match:       `(?i)gofmt|go fmt|not (properly )?formatted|needs formatting`,
			Files:       []string{"**/*.go"},
			Command:     goFiles + ` | xargs -0 -r gofmt -w --`,
			Check: `out=$(` + goFiles + ` | xargs -0 -r gofmt -l --) || exit 1
if [ -n "$out" ]; then printf 'still not gofmt-formatted:\n%s\n' "$out"; exit 1; fi`,
			Timeout: DefaultTimeout,
		},
		{
			Name:        "go-mod-tidy",
			Description: "Update go.mod and go.sum with go mod tidy (offline: only modules already in the module cache)",
			Match:       `go mod tidy|missing go\.sum entry|updates to go\.mod needed`,
			Files:       []string{"go.mod"},
			Command:     `go mod tidy`,
			Check:       `go mod tidy -diff`,
			Timeout:     5 * time.Minute,
		},
		{
			Name:        "trailing-whitespace",
			Description: "Strip trailing spaces and tabs from tracked text files",
			Match:       `(?i)trailing whitespace`,
			Command:     strings.Replace(whitespaceGrep, "git grep -I", "git grep -I -l -z", 1) + ` | xargs -0 -r sed -i -e 's/[[:blank:]]*$//' --`,
			Check:       `if ` + strings.Replace(whitespaceGrep, "git grep -I", "git grep -I -n", 1) + `; then exit 1; else test $? -eq 1; fi`,
			Timeout:     DefaultTimeout,
		},
	}
}

// LoadFile reads operator-defined recipes (a JSON array) and validates them
// as a whole, so a broken file is rejected at start-up. Missing timeouts
// become DefaultTimeout.
func LoadFile(path string) ([]Recipe, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRecipeFile+1))
	if err != nil {
		return nil, fmt.Errorf("recipe: %s: %w", path, err)
	}
	if len(data) > maxRecipeFile {
		return nil, fmt.Errorf("recipe: %s: larger than %d bytes", path, maxRecipeFile)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var recipes []Recipe
	if err := dec.Decode(&recipes); err != nil {
		return nil, fmt.Errorf("recipe: %s: %w", path, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("recipe: %s: trailing data after the JSON array", path)
	}
	if recipes == nil {
		return nil, fmt.Errorf("recipe: %s: want a JSON array of recipes", path)
	}
	seen := make(map[string]bool, len(recipes))
	for i := range recipes {
		if recipes[i].Timeout == 0 {
			recipes[i].Timeout = DefaultTimeout
		}
		if err := recipes[i].Validate(); err != nil {
			return nil, fmt.Errorf("recipe: %s: entry %d: %w", path, i, err)
		}
		if seen[recipes[i].Name] {
			return nil, fmt.Errorf("recipe: %s: duplicate recipe name %q", path, recipes[i].Name)
		}
		seen[recipes[i].Name] = true
	}
	return recipes, nil
}
