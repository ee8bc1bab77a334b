package recipe

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
)

const (
	// DefaultMaxDiffBytes keeps proposed fixes reviewable by a human.
	DefaultMaxDiffBytes = 256 << 10
	// gitTimeout bounds the generator's own git calls in the checkout.
	gitTimeout = 5 * time.Minute
	// outputTail is how much command output is kept for error messages.
	outputTail = 4 << 10
)

// DefaultDeniedPaths keeps automation from editing CI definitions, which
// would let a fix change how it is itself validated.
func DefaultDeniedPaths() []string { return []string{".github/workflows/**"} }

// Checkouter provides a disposable work tree at a commit;
// *gitlocal.Provider satisfies it.
type Checkouter interface {
	Checkout(ctx context.Context, repo, sha string) (dir string, cleanup func(), err error)
}

// Generator turns a CI failure into a proposed fix. The zero values of
// MaxDiffBytes (256 KiB) and DeniedPaths (nil: DefaultDeniedPaths; use an
// empty non-nil slice to deny nothing) are sensible defaults.
type Generator struct {
	Checkout     Checkouter
	Recipes      []Recipe
	MaxDiffBytes int
	DeniedPaths  []string
}

// Request identifies the failing commit and the evidence of the failure.
type Request struct {
	Repo, SHA, FailureSummary, LogExcerpt string
}

// Fix is a proposed change ready for human review. Diff applies with
// `git apply` (or gitlocal's OpenChange) on top of BaseSHA.
type Fix struct {
	Recipe, Summary, Diff string
	Files                 []string // paths touched, sorted
	Digest                string   // hex sha256 of Diff
	BaseSHA               string
	Validated             bool   // Check ran and passed
	Check                 string // what ran, and its tail of output if useful
}

// Generate tries the recipes whose Match fits the failure, in order, each in
// a fresh checkout; the first one producing a non-empty diff decides the
// outcome. A command failure or timeout moves on to the next recipe, while a
// diff that is too large, touches denied paths or fails its Check is a
// refusal: Generate returns an error and no Fix.
func (g *Generator) Generate(ctx context.Context, req Request) (Fix, error) {
	if g.Checkout == nil {
		return Fix{}, &Error{Kind: KindInvalid, Msg: "generator has no Checkout provider"}
	}
	if req.Repo == "" || req.SHA == "" {
		return Fix{}, &Error{Kind: KindInvalid, Msg: "request needs Repo and SHA"}
	}
	maxDiff := g.MaxDiffBytes
	if maxDiff <= 0 {
		maxDiff = DefaultMaxDiffBytes
	}
	denied := g.DeniedPaths
	if denied == nil {
		denied = DefaultDeniedPaths()
	}
	for _, d := range denied {
		if !doublestar.ValidatePattern(d) {
			return Fix{}, &Error{Kind: KindInvalid, Msg: fmt.Sprintf("invalid denied path pattern %q", d)}
		}
	}

	text := req.FailureSummary + "\n" + req.LogExcerpt
	var candidates []Recipe
	for _, r := range g.Recipes {
		if r.Timeout == 0 {
			r.Timeout = DefaultTimeout
		}
		if err := r.Validate(); err != nil {
			return Fix{}, &Error{Kind: KindInvalid, Recipe: r.Name, Msg: "invalid recipe", Err: err}
		}
		if regexp.MustCompile(r.Match).MatchString(text) {
			candidates = append(candidates, r)
		}
	}
	if len(candidates) == 0 {
		return Fix{}, &Error{Kind: KindNoRecipe, Msg: "no recipe matches the failure"}
	}

	home, cleanupHome, err := commandHome()
	if err != nil {
		return Fix{}, &Error{Kind: KindTransient, Msg: "preparing command home", Err: err}
	}
	defer cleanupHome()
	env := commandEnv(home)

	var ws *workspace
	defer func() {
		if ws != nil {
			ws.cleanup()
		}
	}()
	var tried []string
	var first *Error
	for _, r := range candidates {
		if err := ctx.Err(); err != nil {
			return Fix{}, &Error{Kind: KindTransient, Recipe: r.Name, Msg: "cancelled", Err: err}
		}
		if ws == nil {
			if ws, err = g.checkout(ctx, req, env); err != nil {
				return Fix{}, err
			}
		}
		if len(r.Files) > 0 {
			ok, err := ws.tracks(ctx, r.Files)
			if err != nil {
				return Fix{}, &Error{Kind: KindTransient, Recipe: r.Name, Msg: "listing tracked files", Err: err}
			}
			if !ok {
				continue // the untouched checkout can serve the next recipe
			}
		}
		tried = append(tried, r.Name)
		fix, err := ws.attempt(ctx, r, maxDiff, denied)
		ws.cleanup()
		ws = nil
		if err == nil {
			return fix, nil
		}
		var e *Error
		if !errors.As(err, &e) || (e.Kind != KindNoChange && e.Kind != KindTimeout) {
			return Fix{}, err
		}
		if first == nil || (first.Kind == KindNoChange && e.Kind != KindNoChange) {
			first = e
		}
	}
	if len(tried) == 0 {
		names := make([]string, len(candidates))
		for i, c := range candidates {
			names[i] = c.Name
		}
		return Fix{}, &Error{Kind: KindNoRecipe,
			Msg: fmt.Sprintf("recipes %s match the failure but no tracked file matches their files patterns", strings.Join(names, ", "))}
	}
	return Fix{}, first
}

// commandHome picks HOME for recipe commands: the service's own, so Go's
// module and build caches stay warm, or a temporary one if there is none.
func commandHome() (string, func(), error) {
	if h := os.Getenv("HOME"); h != "" {
		return h, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "remediator-home-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { removeAll(dir) }, nil
}

// workspace is one checkout, used by at most one recipe command.
type workspace struct {
	dir, base string
	env       []string
	cleanup   func()
	tracked   []string
	listed    bool
}

func (g *Generator) checkout(ctx context.Context, req Request, env []string) (*workspace, error) {
	dir, cleanup, err := g.Checkout.Checkout(ctx, req.Repo, req.SHA)
	if err != nil {
		return nil, &Error{Kind: KindTransient, Msg: "checkout failed", Err: err}
	}
	ws := &workspace{dir: dir, env: env, cleanup: cleanup}
	out, err := ws.git(ctx, nil, "rev-parse", "--verify", "HEAD^{commit}")
	if err != nil {
		cleanup()
		return nil, &Error{Kind: KindTransient, Msg: "checkout has no HEAD", Err: err}
	}
	ws.base = strings.TrimSpace(string(out))
	return ws, nil
}

// tracks reports whether any tracked file matches one of the patterns.
func (ws *workspace) tracks(ctx context.Context, patterns []string) (bool, error) {
	if !ws.listed {
		out, err := ws.git(ctx, nil, "ls-files", "-z")
		if err != nil {
			return false, err
		}
		ws.tracked = splitNUL(out)
		ws.listed = true
	}
	for _, f := range ws.tracked {
		for _, p := range patterns {
			if ok, _ := doublestar.Match(p, f); ok {
				return true, nil
			}
		}
	}
	return false, nil
}

func (ws *workspace) attempt(ctx context.Context, r Recipe, maxDiff int, denied []string) (Fix, error) {
	fail := func(kind Kind, err error, format string, args ...any) (Fix, error) {
		return Fix{}, &Error{Kind: kind, Recipe: r.Name, Msg: fmt.Sprintf(format, args...), Err: err}
	}
	out := &tailBuffer{max: outputTail}
	err := ws.shell(ctx, r.Command, r.Timeout, out)
	switch {
	case errors.Is(err, errTimedOut):
		return fail(KindTimeout, nil, "command timed out after %s%s", r.Timeout, suffix(out))
	case ctx.Err() != nil:
		return fail(KindTransient, ctx.Err(), "cancelled while running the command")
	case isExit(err):
		return fail(KindNoChange, err, "command failed%s", suffix(out))
	case err != nil:
		return fail(KindTransient, err, "could not run the command")
	}

	if _, err := ws.git(ctx, nil, "add", "--all"); err != nil {
		return fail(KindTransient, err, "staging the result")
	}
	names, err := ws.git(ctx, nil, "diff", "--cached", "--name-only", "-z", "--no-renames", "--no-relative", ws.base, "--")
	if err != nil {
		return fail(KindTransient, err, "listing changed files")
	}
	files := splitNUL(names)
	sort.Strings(files)
	if len(files) == 0 {
		return fail(KindNoChange, nil, "command produced no change%s", suffix(out))
	}
	var bad []string
	for _, f := range files {
		for _, d := range denied {
			if ok, _ := doublestar.Match(d, f); ok {
				bad = append(bad, f)
				break
			}
		}
	}
	if len(bad) > 0 {
		return Fix{}, &Error{Kind: KindDeniedPath, Recipe: r.Name, Paths: bad,
			Msg: "fix touches denied paths: " + strings.Join(bad, ", ")}
	}
	diff := &headBuffer{max: maxDiff}
	if _, err := ws.git(ctx, diff, "diff", "--cached", "--binary", "--no-color", "--no-ext-diff", "--no-textconv",
		"--no-renames", "--no-relative", "--src-prefix=a/", "--dst-prefix=b/", ws.base, "--"); err != nil {
		return fail(KindTransient, err, "computing the diff")
	}
	if diff.overflow {
		return fail(KindTooLarge, nil, "diff of %d files exceeds %d bytes", len(files), maxDiff)
	}
	if len(diff.buf) == 0 {
		return fail(KindNoChange, nil, "command produced an empty diff")
	}

	fix := Fix{
		Recipe:  r.Name,
		Summary: summary(r, len(files)),
		Diff:    string(diff.buf),
		Files:   files,
		BaseSHA: ws.base,
	}
	sum := sha256.Sum256(diff.buf)
	fix.Digest = hex.EncodeToString(sum[:])

	if r.Check != "" {
		out := &tailBuffer{max: outputTail}
		err := ws.shell(ctx, r.Check, r.Timeout, out)
		switch {
		case errors.Is(err, errTimedOut):
			return fail(KindTimeout, nil, "check timed out after %s%s", r.Timeout, suffix(out))
		case ctx.Err() != nil:
			return fail(KindTransient, ctx.Err(), "cancelled while running the check")
		case isExit(err):
			return fail(KindCheckFailed, err, "check %q failed%s", r.Check, suffix(out))
		case err != nil:
			return fail(KindTransient, err, "could not run the check")
		}
		fix.Validated = true
		fix.Check = r.Check + "\n(passed)"
		if s := out.String(); s != "" {
			fix.Check += "\n" + s
		}
	}
	return fix, nil
}

func summary(r Recipe, n int) string {
	what := r.Description
	if what == "" {
		what = "automated fix"
	}
	plural := "s"
	if n == 1 {
		plural = ""
	}
	return fmt.Sprintf("%s: %s (%d file%s changed)", r.Name, what, n, plural)
}

func suffix(out *tailBuffer) string {
	if s := out.String(); s != "" {
		return ":\n" + s
	}
	return ""
}

func isExit(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}

func (ws *workspace) shell(ctx context.Context, script string, timeout time.Duration, out *tailBuffer) error {
	return execute(ctx, execSpec{
		dir:     ws.dir,
		env:     ws.env,
		args:    []string{"sh", "-c", script},
		timeout: timeout,
		stdout:  out,
		stderr:  out,
	})
}

// git runs git in the checkout. A recipe command may have rewritten the
// checkout's config, so features that would execute configured programs are
// switched off.
func (ws *workspace) git(ctx context.Context, stdout *headBuffer, args ...string) ([]byte, error) {
	var buf bytes.Buffer
	stderr := &tailBuffer{max: outputTail}
	spec := execSpec{
		dir:     ws.dir,
		env:     ws.env,
		args:    append([]string{"git", "-c", "core.fsmonitor=false", "-c", "core.hooksPath=" + os.DevNull}, args...),
		timeout: gitTimeout,
		stdout:  &buf,
		stderr:  stderr,
	}
	if stdout != nil {
		spec.stdout = stdout
	}
	if err := execute(ctx, spec); err != nil {
		return nil, fmt.Errorf("git %s: %w%s", strings.Join(args, " "), err, suffix(stderr))
	}
	return buf.Bytes(), nil
}

func splitNUL(b []byte) []string {
	var out []string
	for _, s := range strings.Split(string(b), "\x00") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// removeAll also removes trees that tools made read-only (the Go module
// cache does this).
func removeAll(dir string) {
	if err := os.RemoveAll(dir); err == nil {
		return
	}
	_ = chmodTree(dir)
	_ = os.RemoveAll(dir)
}
