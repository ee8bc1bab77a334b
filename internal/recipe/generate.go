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
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bmatcuk/doublestar/v4"

	"remediator/internal/gitlocal"
	"remediator/internal/sandbox"
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

// Checkouter provides a disposable work tree at a commit, with tracked
// symlinks checked out as plain files and its git dir outside the work tree;
// *gitlocal.Provider satisfies it.
type Checkouter interface {
	Checkout(ctx context.Context, repo, sha string) (gitlocal.Workspace, error)
}

// Generator turns a CI failure into a proposed fix. The zero values of
// MaxDiffBytes (256 KiB) and DeniedPaths (nil: DefaultDeniedPaths; use an
// empty non-nil slice to deny nothing) are sensible defaults.
//
// Recipe commands and checks run in Sandbox (nil: unsandboxed, but still
// with its resource limits and an empty HOME): only the checkout is
// writable, its git dir and the Go toolchain and module cache are readable.
//
// With Model set, a language model writes the fix when no recipe matches
// the failure, when every matching recipe produced no change, or when a
// matching recipe is a model recipe (Recipe.Model). Its diff goes through
// the same limits as a recipe's and is validated by ModelCheck (or the
// model recipe's Check), run like a recipe check.
type Generator struct {
	Checkout     Checkouter
	Recipes      []Recipe
	MaxDiffBytes int
	DeniedPaths  []string
	Sandbox      *sandbox.Sandbox

	// Model writes fixes no recipe can; nil disables the model path.
	Model ModelClient
	// ModelCheck is the repository's check command, run in the sandbox
	// after the model's diff is applied; "" means none ("applies cleanly"
	// is then the only validation).
	ModelCheck string
	// ModelCheckTimeout bounds ModelCheck; 0 means DefaultModelCheckTimeout
	// (at most MaxTimeout).
	ModelCheckTimeout time.Duration
	// ModelAttempts is how many times the model is asked, a failed answer
	// being sent back with what was wrong; 0 means DefaultModelAttempts.
	ModelAttempts int
	// ModelMaxFiles bounds the files sent as context; 0 means
	// DefaultModelMaxFiles.
	ModelMaxFiles int
	// ModelMaxFileBytes bounds each file sent (bigger ones are cut, head
	// only); 0 means DefaultModelMaxFileBytes.
	ModelMaxFileBytes int

	once     sync.Once
	setupErr error
	sandbox  *sandbox.Sandbox
	env      []string // the complete environment of recipe commands
	readOnly []string // what they may read besides the system dirs
}

// Request identifies the failing commit and the evidence of the failure.
type Request struct {
	Repo, SHA, FailureSummary, LogExcerpt string
}

// Fix is a proposed change ready for human review. Patch applies with
// `git apply` (or gitlocal's OpenChange) on top of BaseSHA; it is bytes,
// exactly as git produced them (files need not be UTF-8).
type Fix struct {
	Recipe, Summary string
	Patch           []byte
	Files           []string // paths touched, sorted
	Digest          string   // hex sha256 of Patch
	BaseSHA         string
	Validated       bool   // Check ran and passed
	Check           string // the check that passed
	// Source says who wrote the fix: SourceRecipe or SourceModel.
	Source string
	// Validation tells a reviewer in one line how the fix was validated,
	// e.g. "check `go build ./...` passed after attempt 2 of 3".
	Validation string
	// Attempts is how many answers the model gave (0 for recipe fixes).
	Attempts int
	// PromptTokens and CompletionTokens are what the model calls cost.
	PromptTokens, CompletionTokens int
}

// Sources of a Fix.
const (
	SourceRecipe = "recipe"
	SourceModel  = "model"
)

// Generate tries the recipes whose Match fits the failure, in order, each in
// a fresh checkout; the first one producing a non-empty diff decides the
// outcome. A command failure or timeout moves on to the next recipe, while a
// diff that is too large, touches denied paths or fails its Check is a
// refusal: Generate returns an error and no Fix. With a Model, a failure no
// recipe matches, or on which every recipe tried changed nothing, goes to
// the model, and so does a matching model recipe; a provider error is then
// returned wrapped (errors.As finds the *llm.APIError).
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
	lim := limits{maxDiff: maxDiff, denied: denied}
	if len(candidates) == 0 {
		return g.fallback(ctx, req, lim, &Error{Kind: KindNoRecipe, Msg: "no recipe matches the failure"})
	}

	if err := g.prepare(ctx); err != nil {
		return Fix{}, err
	}
	sb, env, readOnly := g.sandbox, g.env, g.readOnly

	var ws *workspace
	defer func() {
		if ws != nil {
			ws.Cleanup()
		}
	}()
	var tried []string
	var first *Error
	for _, r := range candidates {
		if err := ctx.Err(); err != nil {
			return Fix{}, &Error{Kind: KindTransient, Recipe: r.Name, Msg: "cancelled", Err: err}
		}
		if ws == nil {
			var err error
			if ws, err = g.checkout(ctx, req, sb, env, readOnly); err != nil {
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
		if r.Model {
			if g.Model == nil {
				return Fix{}, &Error{Kind: KindInvalid, Recipe: r.Name, Msg: "a model recipe matches but no model is configured"}
			}
			// The model path owns the checkout from here.
			owned := ws
			ws = nil
			return g.modelFix(ctx, req, &r, owned, lim)
		}
		fix, err := ws.attempt(ctx, r, maxDiff, denied)
		ws.Cleanup()
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
		return g.fallback(ctx, req, lim, &Error{Kind: KindNoRecipe,
			Msg: fmt.Sprintf("recipes %s match the failure but no tracked file matches their files patterns", strings.Join(names, ", "))})
	}
	if first.Kind == KindNoChange {
		return g.fallback(ctx, req, lim, first)
	}
	return Fix{}, first
}

// limits are the generator's safety limits every fix is held to.
type limits struct {
	maxDiff int
	denied  []string
}

// fallback hands a failure no recipe could fix to the model, if there is
// one; otherwise the recipes' verdict stands.
func (g *Generator) fallback(ctx context.Context, req Request, lim limits, verdict *Error) (Fix, error) {
	if g.Model == nil {
		return Fix{}, verdict
	}
	if err := g.prepare(ctx); err != nil {
		return Fix{}, err
	}
	return g.modelFix(ctx, req, nil, nil, lim)
}

// prepare sets up, once, what every command and check runs with.
func (g *Generator) prepare(ctx context.Context) error {
	g.once.Do(func() { g.setup(ctx) })
	if g.setupErr != nil {
		return &Error{Kind: KindInvalid, Msg: "preparing the recipe sandbox", Err: g.setupErr}
	}
	return nil
}

// workspace is one checkout, used by at most one recipe command.
type workspace struct {
	gitlocal.Workspace
	base     string
	env      []string
	readOnly []string
	sandbox  *sandbox.Sandbox
	config   []byte // the git dir's configuration as the provider wrote it
	tracked  []string
	listed   bool
}

func (g *Generator) checkout(ctx context.Context, req Request, sb *sandbox.Sandbox, env, readOnly []string) (*workspace, error) {
	w, err := g.Checkout.Checkout(ctx, req.Repo, req.SHA)
	if err != nil {
		return nil, &Error{Kind: KindTransient, Msg: "checkout failed", Err: err}
	}
	// git inside the sandbox reads the repository's objects through the
	// workspace's alternate, so that store is readable too.
	ws := &workspace{Workspace: w, env: env, sandbox: sb, readOnly: append([]string{w.GitDir, w.Objects}, readOnly...)}
	if ws.config, err = os.ReadFile(filepath.Join(w.GitDir, "config")); err != nil {
		w.Cleanup()
		return nil, &Error{Kind: KindTransient, Msg: "reading the checkout's configuration", Err: err}
	}
	out, err := ws.git(ctx, nil, "rev-parse", "--verify", "HEAD^{commit}")
	if err != nil {
		w.Cleanup()
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
	fail := func(kind Kind, err error, out *tailBuffer, format string, args ...any) (Fix, error) {
		e := &Error{Kind: kind, Recipe: r.Name, Msg: fmt.Sprintf(format, args...), Err: err}
		if out != nil {
			e.Output = out.String()
		}
		return Fix{}, e
	}
	out := &tailBuffer{max: outputTail}
	err := ws.shell(ctx, r.Command, r.Timeout, out)
	switch {
	case errors.Is(err, errTimedOut):
		return fail(KindTimeout, nil, out, "command timed out after %s", r.Timeout)
	case ctx.Err() != nil:
		return fail(KindTransient, ctx.Err(), out, "cancelled while running the command")
	case isExit(err):
		return fail(KindNoChange, err, out, "command failed")
	case err != nil:
		return fail(KindTransient, err, out, "could not run the command")
	}

	fix, err := ws.collect(ctx, r.Name, limits{maxDiff: maxDiff, denied: denied}, out)
	if err != nil {
		return Fix{}, err
	}
	fix.Summary = summary(r, len(fix.Files))
	fix.Source = SourceRecipe
	fix.Validation = "no check configured"
	if r.Check != "" {
		if err := ws.runCheck(ctx, r.Name, r.Check, r.Timeout); err != nil {
			return Fix{}, err
		}
		fix.Validated = true
		fix.Check = r.Check
		fix.Validation = fmt.Sprintf("check `%s` passed", checkLabel(r.Check))
	}
	return fix, nil
}

// collect turns whatever is in the work tree now into a fix: staged, listed,
// held to the limits (links and submodules, denied paths, size) and diffed
// against the base exactly as a reviewer will see it. out, if any, is the
// output of what changed the tree, kept on a no-change error.
func (ws *workspace) collect(ctx context.Context, name string, lim limits, out *tailBuffer) (Fix, error) {
	fail := func(kind Kind, err error, out *tailBuffer, format string, args ...any) (Fix, error) {
		e := &Error{Kind: kind, Recipe: name, Msg: fmt.Sprintf(format, args...), Err: err}
		if out != nil {
			e.Output = out.String()
		}
		return Fix{}, e
	}
	if _, err := ws.git(ctx, nil, "add", "--all"); err != nil {
		return fail(KindTransient, err, nil, "staging the result")
	}
	raw, err := ws.git(ctx, nil, "diff", "--cached", "--raw", "-z", "--no-abbrev", "--no-renames", "--no-relative", ws.base, "--")
	if err != nil {
		return fail(KindTransient, err, nil, "listing changed files")
	}
	files, links := parseRaw(raw)
	if len(files) == 0 {
		return fail(KindNoChange, nil, out, "command produced no change")
	}
	if len(links) > 0 {
		// A link's target is a path: changing one would let a fix point
		// the repository anywhere, so it is refused like a denied path.
		return Fix{}, &Error{Kind: KindDeniedPath, Recipe: name, Paths: links,
			Msg: "fix creates or changes symbolic links or submodules: " + strings.Join(links, ", ")}
	}
	if bad := deniedOf(files, lim.denied); len(bad) > 0 {
		return Fix{}, &Error{Kind: KindDeniedPath, Recipe: name, Paths: bad,
			Msg: "fix touches denied paths: " + strings.Join(bad, ", ")}
	}
	diff := &headBuffer{max: lim.maxDiff}
	if _, err := ws.git(ctx, diff, "diff", "--cached", "--binary", "--no-color", "--no-ext-diff", "--no-textconv",
		"--no-renames", "--no-relative", "--src-prefix=a/", "--dst-prefix=b/", ws.base, "--"); err != nil {
		return fail(KindTransient, err, nil, "computing the diff")
	}
	if diff.overflow {
		return fail(KindTooLarge, nil, nil, "diff of %d files exceeds %d bytes", len(files), lim.maxDiff)
	}
	if len(diff.buf) == 0 {
		return fail(KindNoChange, nil, out, "command produced an empty diff")
	}
	fix := Fix{
		Recipe:  name,
		Patch:   bytes.Clone(diff.buf),
		Files:   files,
		BaseSHA: ws.base,
	}
	sum := sha256.Sum256(fix.Patch)
	fix.Digest = hex.EncodeToString(sum[:])
	return fix, nil
}

// deniedOf returns the paths matching one of the denied patterns.
func deniedOf(paths, denied []string) []string {
	var bad []string
	for _, f := range paths {
		for _, d := range denied {
			if ok, _ := doublestar.Match(d, f); ok {
				bad = append(bad, f)
				break
			}
		}
	}
	return bad
}

// runCheck runs a check on the fixed tree with the limits of recipe
// commands; a failure is a *Error carrying the tail of its output.
func (ws *workspace) runCheck(ctx context.Context, name, check string, timeout time.Duration) error {
	out := &tailBuffer{max: outputTail}
	err := ws.shell(ctx, check, timeout, out)
	var kind Kind
	var msg string
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errTimedOut):
		kind, msg, err = KindTimeout, fmt.Sprintf("check timed out after %s", timeout), nil
	case ctx.Err() != nil:
		kind, msg, err = KindTransient, "cancelled while running the check", ctx.Err()
	case isExit(err):
		kind, msg = KindCheckFailed, "the check did not pass"
	default:
		kind, msg = KindTransient, "could not run the check"
	}
	return &Error{Kind: kind, Recipe: name, Msg: msg, Err: err, Output: out.String()}
}

// checkLabel is a check command fit for one line of text: its first line,
// shortened.
func checkLabel(check string) string {
	s := strings.TrimSpace(check)
	cut := false
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s, cut = strings.TrimSpace(s[:i]), true
	}
	if len(s) > 80 {
		s, cut = strings.ToValidUTF8(s[:80], ""), true
	}
	if cut {
		s += " …"
	}
	return s
}

// parseRaw reads `git diff --raw -z`: ":oldmode newmode oldsha newsha
// status\0path\0" per file. It returns every path, sorted, and those whose
// old or new mode is a symbolic link (120000) or a submodule (160000).
func parseRaw(raw []byte) (files, links []string) {
	fields := strings.Split(string(raw), "\x00")
	for i := 0; i+1 < len(fields); i += 2 {
		meta, path := fields[i], fields[i+1]
		if !strings.HasPrefix(meta, ":") || path == "" {
			continue
		}
		files = append(files, path)
		modes := strings.Fields(strings.TrimPrefix(meta, ":"))
		if len(modes) >= 2 && (isLinkMode(modes[0]) || isLinkMode(modes[1])) {
			links = append(links, path)
		}
	}
	sort.Strings(files)
	sort.Strings(links)
	return files, links
}

func isLinkMode(m string) bool { return m == "120000" || m == "160000" }

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

// shell runs a recipe's command or check in the sandbox: the checkout
// writable, its git dir and the toolchain read-only. Whatever the command did
// to the git dir's configuration (it can, when unsandboxed) is undone before
// the service's own git calls read it.
func (ws *workspace) shell(ctx context.Context, script string, timeout time.Duration, out *tailBuffer) error {
	argv, env, cleanup, err := ws.sandbox.Command(sandbox.Spec{Dir: ws.Dir, ReadOnly: ws.readOnly, Env: ws.env, Script: script})
	defer cleanup()
	if err != nil {
		return err
	}
	err = execute(ctx, execSpec{dir: ws.Dir, env: env, args: argv, timeout: timeout, stdout: out, stderr: out})
	if rerr := ws.restoreConfig(); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// restoreConfig rewrites the git dir's configuration as the provider wrote
// it (replacing, never following, whatever is at its path).
func (ws *workspace) restoreConfig() error {
	path := filepath.Join(ws.GitDir, "config")
	if err := os.RemoveAll(path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(ws.config); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// git runs the service's own git calls on the workspace: git dir and work
// tree named explicitly (a command may have replaced the work tree's .git),
// with the provider's hardening, so nothing configured can run.
func (ws *workspace) git(ctx context.Context, stdout *headBuffer, args ...string) ([]byte, error) {
	out, stderr, err := ws.gitIO(ctx, nil, stdout, args...)
	if err != nil {
		return nil, fmt.Errorf("git %s: %w%s", strings.Join(args, " "), err, suffix(stderr))
	}
	return out, nil
}

// gitIO is git with input, returning git's stderr apart, for callers that
// report it (git apply's reasons for refusing a patch).
func (ws *workspace) gitIO(ctx context.Context, stdin []byte, stdout *headBuffer, args ...string) ([]byte, *tailBuffer, error) {
	var buf bytes.Buffer
	stderr := &tailBuffer{max: outputTail}
	argv := append([]string{"git"}, gitlocal.Hardening()...)
	argv = append(argv, "--git-dir="+ws.GitDir, "--work-tree="+ws.Dir)
	spec := execSpec{
		dir:     ws.Dir,
		env:     ws.env,
		args:    append(argv, args...),
		timeout: gitTimeout,
		stdout:  &buf,
		stderr:  stderr,
	}
	if stdin != nil {
		spec.stdin = bytes.NewReader(stdin)
	}
	if stdout != nil {
		spec.stdout = stdout
	}
	if err := execute(ctx, spec); err != nil {
		return nil, stderr, err
	}
	return buf.Bytes(), stderr, nil
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
