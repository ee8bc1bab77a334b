// Package gitlocal is the offline change-request provider: it resolves refs,
// makes scratch checkouts and opens "changes" (pushed branches plus a JSON
// record) against real git repositories on the local disk. The embedded dev
// mode and the tests use it in place of a hosted forge.
package gitlocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"remediator/internal/procgroup"
)

const (
	// defaultCmdTimeout caps a single git invocation when the caller's context
	// has no deadline, so a wedged git never blocks a worker forever.
	defaultCmdTimeout = 10 * time.Minute
	// lockTimeout bounds how long OpenChange waits for another writer of the
	// same repository before giving up with a transient error.
	lockTimeout = 2 * time.Minute
)

// Options configures a Provider. Roots is the security boundary: the service
// may only read or write repositories that live under one of them.
type Options struct {
	Roots      []string // absolute dirs; a repository must live under one of them (fail closed: empty = nothing allowed)
	ScratchDir string   // where temporary clones go ("" = os.TempDir())
	GitBinary  string   // "" = "git"

	AuthorName, AuthorEmail string // for commits made by the service (defaults "remediator", "remediator@localhost")
}

// Provider works on local repositories through the git binary. It is safe for
// concurrent use; OpenChange serialises writers per repository both within
// the process and across processes.
type Provider struct {
	roots       []string
	scratch     string
	git         string
	authorName  string
	authorEmail string
	locks       keyedLocks
}

// New validates the options up front so that misconfiguration surfaces at
// start-up rather than on the first remediation.
func New(opts Options) (*Provider, error) {
	p := &Provider{
		git:         opts.GitBinary,
		authorName:  opts.AuthorName,
		authorEmail: opts.AuthorEmail,
	}
	if p.git == "" {
		p.git = "git"
	}
	if _, err := exec.LookPath(p.git); err != nil {
		return nil, fmt.Errorf("gitlocal: git binary %q: %w", p.git, err)
	}
	if p.authorName == "" {
		p.authorName = "remediator"
	}
	if p.authorEmail == "" {
		p.authorEmail = "remediator@localhost"
	}
	for _, s := range []string{p.authorName, p.authorEmail} {
		if strings.ContainsAny(s, "\x00\n<>") {
			return nil, fmt.Errorf("gitlocal: invalid author identity %q", s)
		}
	}
	for _, r := range opts.Roots {
		clean, err := cleanAbs(r)
		if err != nil {
			return nil, fmt.Errorf("gitlocal: root %q: %w", r, err)
		}
		if real, err := filepath.EvalSymlinks(clean); err == nil {
			clean = real
		}
		p.roots = append(p.roots, clean)
	}
	scratch := opts.ScratchDir
	if scratch == "" {
		scratch = os.TempDir()
	}
	scratch, err := cleanAbs(scratch)
	if err != nil {
		return nil, fmt.Errorf("gitlocal: scratch dir: %w", err)
	}
	p.scratch = scratch
	return p, nil
}

// cleanAbs rejects the path shapes that are commonly used to escape a
// directory allow-list before any filesystem access happens.
func cleanAbs(path string) (string, error) {
	switch {
	case path == "":
		return "", errors.New("empty path")
	case strings.ContainsRune(path, 0):
		return "", errors.New("path contains NUL")
	case !filepath.IsAbs(path):
		return "", fmt.Errorf("path %q is not absolute", path)
	}
	for _, el := range strings.Split(filepath.ToSlash(path), "/") {
		if el == ".." {
			return "", fmt.Errorf("path %q has a .. element", path)
		}
	}
	return filepath.Clean(path), nil
}

func under(path, root string) bool {
	if path == root {
		return true
	}
	if !strings.HasSuffix(root, string(filepath.Separator)) {
		root += string(filepath.Separator)
	}
	return strings.HasPrefix(path, root)
}

func (p *Provider) inRoots(path string) bool {
	for _, r := range p.roots {
		if under(path, r) {
			return true
		}
	}
	return false
}

// repoInfo is a repository that passed validation.
type repoInfo struct {
	path      string // real path of the work tree (or of the bare repository)
	gitDir    string // per-worktree git dir
	commonDir string // shared git dir: refs, objects, our records
}

// openRepo turns an untrusted repository reference into a validated repoInfo.
func (p *Provider) openRepo(ctx context.Context, op, repo string) (*repoInfo, error) {
	bad := func(format string, args ...any) (*repoInfo, error) {
		return nil, newErr(KindInvalidRepo, op, format, args...)
	}
	if strings.ContainsRune(repo, 0) {
		return bad("repository reference contains NUL")
	}
	path := repo
	if len(repo) >= 5 && strings.EqualFold(repo[:5], "file:") {
		u, err := url.Parse(repo)
		if err != nil {
			return bad("repository URL: %v", err)
		}
		if u.Opaque != "" || (u.Host != "" && u.Host != "localhost") || u.User != nil ||
			u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			return bad("unsupported file URL %q: want file:///absolute/path", repo)
		}
		path = u.Path
		if strings.ContainsRune(path, 0) {
			return bad("repository reference contains NUL")
		}
	} else if strings.Contains(repo, "://") {
		return bad("unsupported repository URL %q: only local paths and file:// URLs", repo)
	}
	clean, err := cleanAbs(path)
	if err != nil {
		return bad("repository: %v", err)
	}
	real, err := filepath.EvalSymlinks(clean)
	if err != nil {
		return bad("repository %s: %v", clean, err)
	}
	if !p.inRoots(real) {
		return bad("repository %s is outside the allowed roots", real)
	}
	if st, err := os.Stat(real); err != nil || !st.IsDir() {
		return bad("repository %s is not a directory", real)
	}
	out, err := p.run(ctx, real, []string{"GIT_CEILING_DIRECTORIES=" + ceiling(real)}, nil,
		"rev-parse", "--path-format=absolute", "--is-bare-repository", "--git-dir", "--git-common-dir")
	if err != nil {
		if ctx.Err() != nil || !isExitError(err) {
			return nil, wrapErr(KindTransient, op, err)
		}
		return bad("%s is not a git repository: %v", real, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 {
		return bad("%s: unexpected rev-parse output %q", real, out)
	}
	info := &repoInfo{path: real}
	for i, d := range lines[1:] {
		r, err := filepath.EvalSymlinks(d)
		if err != nil {
			return bad("%s: git dir %s: %v", real, d, err)
		}
		if !p.inRoots(r) {
			return bad("%s: git dir %s is outside the allowed roots", real, r)
		}
		if i == 0 {
			info.gitDir = r
		} else {
			info.commonDir = r
		}
	}
	if lines[0] == "true" {
		if info.gitDir != real {
			return bad("%s is inside, not at the top of, a bare repository", real)
		}
		return info, nil
	}
	top, err := p.run(ctx, real, []string{"GIT_CEILING_DIRECTORIES=" + ceiling(real)}, nil, "rev-parse", "--show-toplevel")
	if err != nil {
		if ctx.Err() != nil || !isExitError(err) {
			return nil, wrapErr(KindTransient, op, err)
		}
		return bad("%s is not the top of a work tree: %v", real, err)
	}
	topReal, err := filepath.EvalSymlinks(strings.TrimSpace(string(top)))
	if err != nil || topReal != real {
		return bad("%s is not the top of a work tree (top is %s)", real, strings.TrimSpace(string(top)))
	}
	return info, nil
}

// ceiling stops git's upward repository discovery at dir itself, so that a
// plain directory nested in some other repository is never mistaken for it.
func ceiling(dir string) string {
	parent := filepath.Dir(dir)
	if strings.ContainsRune(parent, filepath.ListSeparator) {
		return ""
	}
	return parent
}

// Resolve is the single place where user-supplied refs become immutable
// commit ids; everything downstream works on shas only.
func (p *Provider) Resolve(ctx context.Context, repo, ref string) (repoPath, sha string, err error) {
	const op = "resolve"
	r, err := p.openRepo(ctx, op, repo)
	if err != nil {
		return "", "", err
	}
	sha, err = p.resolveCommit(ctx, op, r, ref)
	if err != nil {
		return "", "", err
	}
	return r.path, sha, nil
}

func (p *Provider) resolveCommit(ctx context.Context, op string, r *repoInfo, ref string) (string, error) {
	if ref == "" {
		ref = "HEAD"
	}
	if strings.ContainsAny(ref, "\x00\n") || strings.HasPrefix(ref, "-") {
		return "", newErr(KindNotFound, op, "invalid ref %q", ref)
	}
	out, err := p.gitDir(ctx, r, nil, "rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}")
	if err != nil {
		if ctx.Err() != nil || !isExitError(err) {
			return "", wrapErr(KindTransient, op, err)
		}
		return "", newErr(KindNotFound, op, "ref %q not found in %s", ref, r.path)
	}
	sha := strings.TrimSpace(string(out))
	if !isHexSHA(sha) {
		return "", newErr(KindTransient, op, "unexpected rev-parse output %q", sha)
	}
	return sha, nil
}

func isHexSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Checkout gives fix generators a disposable work tree so that commands they
// run can never touch the user's repository. The clone shares the source's
// object store (alternates) to stay cheap, has no remotes, and sits detached
// at the resolved commit. cleanup is idempotent.
func (p *Provider) Checkout(ctx context.Context, repo, sha string) (dir string, cleanup func(), err error) {
	const op = "checkout"
	r, err := p.openRepo(ctx, op, repo)
	if err != nil {
		return "", nil, err
	}
	full, err := p.resolveCommit(ctx, op, r, sha)
	if err != nil {
		return "", nil, err
	}
	dir, cleanup, err = p.cloneScratch(ctx, op, r)
	if err != nil {
		return "", nil, err
	}
	steps := [][]string{
		{"-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", full, "--"},
		{"remote", "remove", "origin"},
	}
	for _, args := range steps {
		if _, err := p.run(ctx, dir, nil, nil, args...); err != nil {
			cleanup()
			return "", nil, wrapErr(KindTransient, op, err)
		}
	}
	return dir, cleanup, nil
}

// cloneScratch makes a --shared, not-checked-out clone of r in a fresh
// directory under the scratch dir.
func (p *Provider) cloneScratch(ctx context.Context, op string, r *repoInfo) (string, func(), error) {
	if err := os.MkdirAll(p.scratch, 0o755); err != nil {
		return "", nil, wrapErr(KindTransient, op, err)
	}
	tmp, err := os.MkdirTemp(p.scratch, "remediator-")
	if err != nil {
		return "", nil, wrapErr(KindTransient, op, err)
	}
	var once sync.Once
	cleanup := func() { once.Do(func() { removeAll(tmp) }) }
	name := strings.TrimSuffix(filepath.Base(r.path), ".git")
	if name == "" || name == "." || name == string(filepath.Separator) {
		name = "repo"
	}
	dir := filepath.Join(tmp, name)
	if _, err := p.run(ctx, tmp, nil, nil, "clone", "--quiet", "--shared", "--no-checkout", "--template=", "--", r.path, dir); err != nil {
		cleanup()
		return "", nil, wrapErr(KindTransient, op, err)
	}
	return dir, cleanup, nil
}

// removeAll also removes trees that tools made read-only (the Go module
// cache does this), which plain os.RemoveAll cannot.
func removeAll(dir string) {
	if err := os.RemoveAll(dir); err == nil {
		return
	}
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(path, 0o700)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

// gitError keeps git's stderr, which is usually the only useful diagnostic.
type gitError struct {
	args   []string
	stderr string
	err    error
}

func (e *gitError) Error() string {
	msg := fmt.Sprintf("git %s: %v", strings.Join(e.args, " "), e.err)
	if e.stderr != "" {
		msg += ": " + e.stderr
	}
	return msg
}

func (e *gitError) Unwrap() error { return e.err }

func isExitError(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}

// env is the whole environment git runs with: nothing is inherited except
// PATH, so user or system git configuration, credentials helpers and GIT_*
// variables of the service process cannot change behaviour.
func (p *Provider) env(extra []string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	env := []string{
		"PATH=" + path,
		"HOME=" + p.scratch,
		"LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + os.DevNull,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=" + p.authorName,
		"GIT_AUTHOR_EMAIL=" + p.authorEmail,
		"GIT_COMMITTER_NAME=" + p.authorName,
		"GIT_COMMITTER_EMAIL=" + p.authorEmail,
	}
	for _, e := range extra {
		if !strings.HasSuffix(e, "=") {
			env = append(env, e)
		}
	}
	return env
}

// gitDir runs git against a validated repository without relying on
// repository discovery.
func (p *Provider) gitDir(ctx context.Context, r *repoInfo, stdin []byte, args ...string) ([]byte, error) {
	return p.run(ctx, r.gitDir, nil, stdin, append([]string{"--git-dir=" + r.gitDir}, args...)...)
}

// run executes git in dir and returns stdout. Failures carry stderr.
func (p *Provider) run(ctx context.Context, dir string, extraEnv []string, stdin []byte, args ...string) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultCmdTimeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, p.git, args...)
	cmd.Dir = dir
	cmd.Env = p.env(extraEnv)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 2 * time.Second
	procgroup.Set(cmd)
	err := cmd.Run()
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("%w (%v)", cerr, err)
		}
		return stdout.Bytes(), &gitError{args: args, stderr: strings.TrimSpace(stderr.String()), err: err}
	}
	return stdout.Bytes(), nil
}

// keyedLocks is an in-process mutex per key that honours context
// cancellation; entries are dropped when no one holds or waits for them.
type keyedLocks struct {
	mu sync.Mutex
	m  map[string]*lockEntry
}

type lockEntry struct {
	ch   chan struct{}
	refs int
}

func (l *keyedLocks) lock(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*lockEntry)
	}
	e := l.m[key]
	if e == nil {
		e = &lockEntry{ch: make(chan struct{}, 1)}
		l.m[key] = e
	}
	e.refs++
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
	select {
	case e.ch <- struct{}{}:
		return func() { <-e.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
