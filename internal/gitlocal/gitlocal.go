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
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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
	// canon remembers recent canonicalisations (see canonCache).
	canon canonCache
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
	if op == opCanonical {
		if info, ok := p.canon.get(real); ok {
			return info, nil
		}
		stamp := repoStamp(real)
		info, err := p.probeRepo(ctx, op, real)
		if err == nil {
			p.canon.put(real, stamp, info)
		}
		return info, err
	}
	return p.probeRepo(ctx, op, real)
}

// probeRepo asks git whether real is the top of a repository of its own,
// with its object store under the roots and no lazy fetch.
func (p *Provider) probeRepo(ctx context.Context, op, real string) (*repoInfo, error) {
	bad := func(format string, args ...any) (*repoInfo, error) {
		return nil, newErr(KindInvalidRepo, op, format, args...)
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
	// The git dir is the repository's own (<path>/.git, or <path> for a bare
	// one): a gitfile or linked worktree pointing into another repository
	// would act on that one under this one's name and scope.
	ownGitDir := filepath.Join(real, ".git")
	if lines[0] == "true" {
		ownGitDir = real
	}
	if info.gitDir != ownGitDir || info.commonDir != ownGitDir {
		return bad("%s: its git dir %s is not its own", real, info.commonDir)
	}
	if err := p.checkObjectStore(filepath.Join(info.commonDir, "objects"), 0); err != nil {
		return bad("%s: %v", real, err)
	}
	if out, err := p.run(ctx, real, nil, nil, "--git-dir="+info.gitDir, "config", "--get-regexp", `^extensions\.partialclone$`); err == nil && len(bytes.TrimSpace(out)) > 0 {
		return bad("%s is a partial clone: missing objects would be fetched", real)
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

// Canonical is the one way an untrusted repository reference becomes one the
// service acts on: a local path or file:// URL, or a forge-style "owner/name"
// looked up under each root in order, resolved through every symlink, "."
// and "..", checked to be the top of a git repository under the roots, and
// returned as the real path. Callers show nothing of the error but "not a
// repository this service can act on": whether a path exists, is outside the
// roots or is no repository must not be told apart by clients.
func (p *Provider) Canonical(ctx context.Context, repo string) (string, error) {
	const op = opCanonical
	if isForgeName(repo) {
		for _, root := range p.roots {
			r, err := p.openRepo(ctx, op, filepath.Join(root, filepath.FromSlash(repo)))
			if err == nil {
				return r.path, nil
			}
			if KindOf(err) != KindInvalidRepo {
				return "", err
			}
		}
		return "", newErr(KindInvalidRepo, op, "no repository %s under the roots", repo)
	}
	r, err := p.openRepo(ctx, op, repo)
	if err != nil {
		return "", err
	}
	return r.path, nil
}

// forgeName is "owner/name" as forges spell it.
var forgeName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$`)

func isForgeName(s string) bool {
	if !forgeName.MatchString(s) {
		return false
	}
	for _, el := range strings.Split(s, "/") {
		if el == "." || el == ".." {
			return false
		}
	}
	return true
}

// ScopeNames are the names a canonical repository answers to in repository
// globs: its path, and its path relative to each root holding it (so a
// principal scoped to "teamA/**" sees <root>/teamA/...).
func (p *Provider) ScopeNames(canonical string) []string {
	names := []string{canonical}
	for _, root := range p.roots {
		if rel, err := filepath.Rel(root, canonical); err == nil && canonical != root && under(canonical, root) {
			names = append(names, filepath.ToSlash(rel))
		}
	}
	return names
}

// Roots are the configured roots, cleaned and resolved.
func (p *Provider) Roots() []string { return slices.Clone(p.roots) }

// maxAlternates bounds the chain of alternate object stores, as git does.
const maxAlternates = 5

// checkObjectStore keeps reads of repository objects under the roots: the
// object directory and every alternate it names (recursively) must resolve
// inside them, so a repository cannot lead a checkout into another store on
// the machine through a link or objects/info/alternates.
func (p *Provider) checkObjectStore(dir string, depth int) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("object store %s: %w", dir, err)
	}
	if !p.inRoots(real) {
		return fmt.Errorf("object store %s is outside the allowed roots", real)
	}
	f, err := os.Open(filepath.Join(real, "info", "alternates"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if depth >= maxAlternates {
			return errors.New("too many nested alternate object stores")
		}
		if !filepath.IsAbs(line) {
			line = filepath.Join(real, line)
		}
		if err := p.checkObjectStore(line, depth+1); err != nil {
			return err
		}
	}
	return nil
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

// Workspace is a disposable checkout for fix generators. Its git dir lives
// outside the work tree, so a sandbox can bind it read-only while commands
// write the work tree, and the service's own git calls name it explicitly.
type Workspace struct {
	Dir     string // the work tree
	GitDir  string // its git dir (the work tree's .git is a gitfile pointing here)
	Objects string // the repository's object store, its alternate (read-only for commands)
	Cleanup func() // idempotent
}

// workspaceConfig is the whole git configuration of a workspace: symlinks
// are checked out as plain files holding the link text, so no tracked link
// can lead a command out of the checkout, and nothing the configuration could
// name runs.
var workspaceConfig = [][2]string{
	{"core.symlinks", "false"},
	{"core.hooksPath", os.DevNull},
	{"core.fsmonitor", "false"},
	{"gc.auto", "0"},
	{"maintenance.auto", "false"},
}

// Checkout gives fix generators a disposable work tree at sha. The target
// repository is read only through its object store (an alternate of a fresh
// git dir of ours): none of its configuration, hooks or attributes drivers
// is consulted, and no transport (upload-pack) runs in it. cleanup is
// idempotent.
func (p *Provider) Checkout(ctx context.Context, repo, sha string) (Workspace, error) {
	const op = "checkout"
	r, err := p.openRepo(ctx, op, repo)
	if err != nil {
		return Workspace{}, err
	}
	full, err := p.resolveCommit(ctx, op, r, sha)
	if err != nil {
		return Workspace{}, err
	}
	tmp, cleanup, err := p.scratchDir(op)
	if err != nil {
		return Workspace{}, err
	}
	objects, err := filepath.EvalSymlinks(filepath.Join(r.commonDir, "objects"))
	if err != nil {
		cleanup()
		return Workspace{}, wrapErr(KindTransient, op, err)
	}
	// Fixed names, never one taken from the repository: a work tree named
	// like the git dir would let tracked files write the git dir.
	ws := Workspace{Dir: filepath.Join(tmp, "work"), GitDir: filepath.Join(tmp, "gitdir"), Objects: objects, Cleanup: cleanup}
	fail := func(err error) (Workspace, error) {
		cleanup()
		return Workspace{}, wrapErr(KindTransient, op, err)
	}
	if _, err := p.run(ctx, tmp, nil, nil, "init", "--quiet", "--template=", "--separate-git-dir="+ws.GitDir, "--", ws.Dir); err != nil {
		return fail(err)
	}
	alternates := filepath.Join(ws.GitDir, "objects", "info", "alternates")
	if err := os.MkdirAll(filepath.Dir(alternates), 0o755); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(alternates, []byte(ws.Objects+"\n"), 0o644); err != nil {
		return fail(err)
	}
	for _, kv := range workspaceConfig {
		if _, err := p.WorkspaceGit(ctx, ws, nil, "config", kv[0], kv[1]); err != nil {
			return fail(err)
		}
	}
	if _, err := p.WorkspaceGit(ctx, ws, nil, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", full, "--"); err != nil {
		return fail(err)
	}
	return ws, nil
}

// WorkspaceGit runs git on a workspace with its git dir and work tree named
// explicitly, so a command that replaced the work tree's .git cannot point
// the service's own git calls elsewhere.
func (p *Provider) WorkspaceGit(ctx context.Context, ws Workspace, stdin []byte, args ...string) ([]byte, error) {
	return p.run(ctx, ws.Dir, nil, stdin, append([]string{"--git-dir=" + ws.GitDir, "--work-tree=" + ws.Dir}, args...)...)
}

// scratchDir makes a fresh private directory under the scratch dir.
func (p *Provider) scratchDir(op string) (string, func(), error) {
	if err := os.MkdirAll(p.scratch, 0o755); err != nil {
		return "", nil, wrapErr(KindTransient, op, err)
	}
	tmp, err := os.MkdirTemp(p.scratch, "remediator-")
	if err != nil {
		return "", nil, wrapErr(KindTransient, op, err)
	}
	var once sync.Once
	return tmp, func() { once.Do(func() { removeAll(tmp) }) }, nil
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

// hardening is put on the command line of every git call. Command-line
// configuration outranks every file, including the target repository's own
// config (and anything it includes), so nothing a repository configures can
// run a program in the worker: no hooks (core.hooksPath), no fsmonitor, no
// transport at all (protocol.allow: the provider never pushes or clones, so
// receive-pack, upload-pack and core.alternateRefsCommand never run), no
// credential helper, no automatic gc or maintenance, no signing program.
// Filter, textconv and diff drivers need configuration to run; the provider
// never checks out from, adds to, or diffs with drivers in a target
// repository, and workspaces have a configuration of our own.
var hardening = []string{
	"-c", "core.hooksPath=" + os.DevNull,
	"-c", "core.fsmonitor=false",
	"-c", "core.useReplaceRefs=false",
	"-c", "protocol.allow=never",
	"-c", "credential.helper=",
	"-c", "gc.auto=0",
	"-c", "maintenance.auto=false",
	"-c", "commit.gpgSign=false",
	"-c", "core.pager=cat",
}

// Hardening returns the command-line configuration every git call on
// repository content needs, for packages that run git themselves.
func Hardening() []string { return slices.Clone(hardening) }

// SafeGitEnv is the environment every git call on repository content
// carries, besides its identity: no transport of any kind (GIT_ALLOW_PROTOCOL
// outranks a repository's protocol.<name>.allow, which -c protocol.allow
// does not), no lazy fetch of missing objects (a partial clone's remote could
// name a program), and neither replace refs nor grafts, which would make git
// read a tree other than the commit's own (the approved diff would be applied
// to content nobody reviewed).
var SafeGitEnv = []string{
	"GIT_ALLOW_PROTOCOL=none",
	"GIT_NO_LAZY_FETCH=1",
	"GIT_NO_REPLACE_OBJECTS=1",
	"GIT_GRAFT_FILE=" + os.DevNull,
	"GIT_CONFIG_NOSYSTEM=1",
	"GIT_CONFIG_GLOBAL=" + os.DevNull,
	"GIT_TERMINAL_PROMPT=0",
}

// env is the whole environment git runs with: nothing is inherited except
// PATH, so user or system git configuration, credentials helpers and GIT_*
// variables of the service process cannot change behaviour.
func (p *Provider) env(extra []string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	env := append([]string{
		"PATH=" + path,
		"HOME=" + p.scratch,
		"LC_ALL=C",
	}, SafeGitEnv...)
	env = append(env,
		"GIT_AUTHOR_NAME="+p.authorName,
		"GIT_AUTHOR_EMAIL="+p.authorEmail,
		"GIT_COMMITTER_NAME="+p.authorName,
		"GIT_COMMITTER_EMAIL="+p.authorEmail,
	)
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
	return p.runGitDir(ctx, r, nil, stdin, args...)
}

// runGitDir is gitDir with extra environment (a private index, dates).
func (p *Provider) runGitDir(ctx context.Context, r *repoInfo, env []string, stdin []byte, args ...string) ([]byte, error) {
	return p.run(ctx, r.gitDir, env, stdin, append([]string{"--git-dir=" + r.gitDir}, args...)...)
}

// run executes git in dir and returns stdout. Failures carry stderr.
func (p *Provider) run(ctx context.Context, dir string, extraEnv []string, stdin []byte, args ...string) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultCmdTimeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, p.git, append(slices.Clone(hardening), args...)...)
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
