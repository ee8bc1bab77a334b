// Package sandbox confines recipe commands, which run operator-configured
// shell scripts inside a scratch checkout of an untrusted repository. With
// bubblewrap (bwrap) available the command sees only the system directories
// needed to run shell tools, git and Go, the paths it is given, a private
// HOME and TMPDIR, no network and no other process; without it (mode off, or
// auto on a host that cannot run bwrap) it still gets the private HOME and
// TMPDIR, the environment it is given and nothing else, and the resource
// limits.
//
// The package does not run anything itself after New: Command turns a script,
// an environment and a working directory into the argv and environment to
// exec, so the caller keeps its own exec helper (process group, output pipes,
// timeouts). Wall time is therefore the caller's timeout; killing the process
// the caller started (bwrap) tears down the whole sandbox, because bwrap runs
// it in its own PID namespace with --die-with-parent.
package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Mode says whether recipe commands must, may or must not be sandboxed.
type Mode string

const (
	// ModeAuto sandboxes when bwrap works and otherwise runs commands
	// unsandboxed, with a Warning the service should log loudly at start.
	ModeAuto Mode = "auto"
	// ModeRequired makes New fail when bwrap does not work, so a
	// misconfigured host refuses to start instead of silently running
	// untrusted checkouts unconfined.
	ModeRequired Mode = "required"
	// ModeOff never sandboxes; limits and the private HOME still apply.
	ModeOff Mode = "off"
)

// ParseMode parses a configuration value; the empty string means ModeAuto.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return ModeAuto, nil
	case ModeAuto, ModeRequired, ModeOff:
		return m, nil
	}
	return "", fmt.Errorf("unknown sandbox mode %q: valid values are %q, %q and %q", s, ModeAuto, ModeRequired, ModeOff)
}

// Defaults for the zero fields of Limits.
const (
	DefaultCPUTime = 5 * time.Minute
	// DefaultMemoryBytes bounds address space, not resident memory: the Go
	// toolchain reserves far more virtual memory than it touches, and 4 GiB
	// leaves room for go build, go mod tidy and gofmt on real modules.
	DefaultMemoryBytes int64 = 4 << 30
	DefaultFileBytes   int64 = 256 << 20
)

// Limits bound each process of a command through setrlimit, applied by a
// fixed shell preamble in every mode. They are per process: a command that
// forks gets them again in every child, which is why the caller's wall-time
// timeout stays the bound on the command as a whole. A zero field takes its
// default; a negative one means no limit of that kind.
type Limits struct {
	CPUTime     time.Duration // RLIMIT_CPU, rounded up to whole seconds
	MemoryBytes int64         // RLIMIT_AS, rounded down to KiB
	FileBytes   int64         // RLIMIT_FSIZE, rounded down to 512-byte blocks
}

func (l Limits) withDefaults() Limits {
	if l.CPUTime == 0 {
		l.CPUTime = DefaultCPUTime
	}
	if l.MemoryBytes == 0 {
		l.MemoryBytes = DefaultMemoryBytes
	}
	if l.FileBytes == 0 {
		l.FileBytes = DefaultFileBytes
	}
	return l
}

// Options configure New.
type Options struct {
	Mode   Mode   // "" means ModeAuto
	Bwrap  string // path of the bwrap binary; "" looks up "bwrap" on PATH
	Limits Limits
}

// Sandbox turns commands into sandboxed ones. It is immutable after New and
// safe for concurrent use.
type Sandbox struct {
	mode    Mode
	bwrap   string // absolute path; "" when not enabled
	limits  Limits
	warning string
	// noUserns adds --unshare-user --disable-userns, so the command cannot
	// create nested user namespaces (and with them capabilities over its own
	// mounts). Used when the probe shows the host allows it.
	noUserns bool
	// system is the bwrap arguments exposing the host's system directories,
	// computed once in New from what exists on this host.
	system []string
}

// probeTimeout bounds each trial run in New; a healthy bwrap starts in
// milliseconds.
const probeTimeout = 15 * time.Second

// New checks that the limits can be applied and, unless the mode is off,
// that bwrap works by running a trivial command in a sandbox built exactly
// as Command builds them: the binary being installed is not enough, since
// namespaces may be forbidden (seccomp, sysctls, nested containers).
//
// ModeRequired without a working bwrap is an error. ModeAuto without one
// returns a disabled Sandbox whose Warning explains the risk; ModeOff returns
// a disabled Sandbox whose Warning says so.
func New(ctx context.Context, opts Options) (*Sandbox, error) {
	mode, err := ParseMode(string(opts.Mode))
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	s := &Sandbox{mode: mode, limits: opts.Limits.withDefaults()}

	// A host whose hard limits are already lower is fine (the preamble never
	// raises one), but a shell that cannot run the preamble at all would make
	// every recipe fail with exit status 125: better to refuse to start.
	if err := s.probe(ctx); err != nil {
		return nil, fmt.Errorf("sandbox: applying resource limits: %w", err)
	}
	if mode == ModeOff {
		s.warning = "recipe sandbox is off: recipe commands run with the worker's own filesystem, network and process access " +
			"(only the environment, a private HOME/TMPDIR and resource limits are applied)"
		return s, nil
	}

	err = s.enable(ctx, opts.Bwrap)
	if err == nil {
		return s, nil
	}
	if mode == ModeRequired {
		return nil, fmt.Errorf("sandbox required but unavailable: %w", err)
	}
	s.warning = "recipe sandbox unavailable (" + err.Error() + "): recipe commands run UNSANDBOXED in untrusted checkouts " +
		"with the worker's filesystem, network and process access (only the environment, a private HOME/TMPDIR and " +
		"resource limits are applied); install bubblewrap and allow user namespaces, or require the sandbox"
	return s, nil
}

// enable finds bwrap and keeps the strictest configuration that works here.
func (s *Sandbox) enable(ctx context.Context, bwrap string) error {
	if bwrap == "" {
		bwrap = "bwrap"
	}
	path, err := exec.LookPath(bwrap)
	if err != nil {
		return fmt.Errorf("bwrap not found: %w", err)
	}
	if path, err = filepath.Abs(path); err != nil {
		return err
	}
	s.bwrap, s.system = path, systemBinds()
	// --disable-userns needs a user namespace of our own, which root may be
	// refused (e.g. by a container's seccomp profile) although it can
	// sandbox without one.
	var errs []error
	for _, noUserns := range []bool{true, false} {
		s.noUserns = noUserns
		if err = s.probe(ctx); err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	s.bwrap, s.system, s.noUserns = "", nil, false
	// One line, as it ends up in the start-up warning.
	return fmt.Errorf("bwrap %s does not work: %w; without --disable-userns: %w", path, errs[0], errs[1])
}

// probe runs a trivial command through Command as configured so far.
func (s *Sandbox) probe(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "remediator-sandbox-probe-")
	if err != nil {
		return err
	}
	defer removeAll(dir)
	argv, env, cleanup, err := s.Command(Spec{Dir: dir, Env: []string{"PATH=/usr/bin:/bin"}, Script: "echo ok"})
	if err != nil {
		return err
	}
	defer cleanup()
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = env, dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if err == nil && stdout.String() != "ok\n" {
		err = fmt.Errorf("unexpected output %q", stdout.String())
	}
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}

// Enabled reports whether commands run inside bwrap.
func (s *Sandbox) Enabled() bool { return s.bwrap != "" }

// Warning is what the service should log loudly at start: empty when
// commands are sandboxed, otherwise why they are not and what that risks.
func (s *Sandbox) Warning() string { return s.warning }

// Mode is the configured mode (ModeAuto for an empty one).
func (s *Sandbox) Mode() Mode { return s.mode }

// Limits are the effective limits, defaults filled in.
func (s *Sandbox) Limits() Limits { return s.limits }

// Spec describes one command. All paths must be absolute and clean; they are
// computed by the service, and anything else is rejected rather than
// interpreted. Inside the sandbox every path appears at the same path as on
// the host, so absolute paths stored in the checkout (e.g. a worktree's
// .git file) keep working.
type Spec struct {
	// Dir is the working directory, bound read-write (the scratch checkout).
	// It must exist.
	Dir string
	// Writable are extra paths bound read-write; they must exist.
	Writable []string
	// ReadOnly are extra paths bound read-only (a git dir outside Dir,
	// GOROOT, GOMODCACHE); missing ones are skipped. Binds nest: the most
	// specific path decides, so a ReadOnly path inside Dir (say Dir/.git)
	// stays read-only.
	ReadOnly []string
	// Env is the complete environment of the command (KEY=VALUE), except
	// that HOME and TMPDIR are replaced by an empty private directory each,
	// created for this command and removed by Command's cleanup. Nothing
	// from the worker's own environment is added.
	Env []string
	// Script is run with `sh -c`.
	Script string
}

// Command returns how to exec spec: argv (argv[0] is the absolute path of
// bwrap when the sandbox is enabled, else /bin/sh), the environment to exec
// it with, and a cleanup removing the private HOME and TMPDIR, to be called
// once the command has exited. Run it with spec.Dir as working directory.
// When enabled, nothing the command started outlives bwrap (PID namespace);
// when not, processes that left the process group can (setsid daemons, such
// as the go command's telemetry child) and may recreate files in the removed
// HOME.
//
// Use env exactly as returned and never a nil one: a nil exec.Cmd.Env means
// the worker's own environment, and whatever environment bwrap itself gets is
// readable inside the sandbox through /proc/1/environ. The returned env is
// the command's own (spec.Env with HOME and TMPDIR replaced), so it reveals
// nothing new.
//
// The script is never interpolated into shell text: it is passed as an
// argument to a fixed preamble that applies the limits and then runs
// `exec /bin/sh -c "$1"`. A preamble failure exits with status 125.
//
// bwrap runs with --die-with-parent, which the kernel ties to the thread that
// started it: start it from an ordinary goroutine, not one that locked its
// OS thread and may end with it (the Go runtime then exits the thread).
//
// cleanup is never nil, so it can be deferred before checking err.
func (s *Sandbox) Command(spec Spec) (argv, env []string, cleanup func(), err error) {
	cleanup = func() {}
	if err := spec.validate(); err != nil {
		return nil, nil, cleanup, err
	}
	private, err := os.MkdirTemp("", "remediator-sandbox-")
	if err != nil {
		return nil, nil, cleanup, fmt.Errorf("sandbox: private dir: %w", err)
	}
	home, tmp := filepath.Join(private, "home"), filepath.Join(private, "tmp")
	for _, d := range []string{home, tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			removeAll(private)
			return nil, nil, cleanup, fmt.Errorf("sandbox: private dir: %w", err)
		}
	}
	cleanup = func() { removeAll(private) }

	env = overrideEnv(spec.Env, "HOME="+home, "TMPDIR="+tmp)
	sh := []string{"/bin/sh", "-c", s.preamble(), "sh", spec.Script}
	if !s.Enabled() {
		return sh, env, cleanup, nil
	}

	argv = []string{s.bwrap,
		// Kill the sandbox with bwrap (and bwrap with its parent); a new
		// session keeps the command off the worker's terminal (TIOCSTI).
		"--die-with-parent", "--new-session",
		// Network, PID, IPC, UTS, cgroup and, where possible, user
		// namespaces. As root, bwrap would otherwise keep every capability
		// in the sandbox, enough to remount the read-only binds writable.
		"--unshare-all", "--cap-drop", "ALL", "--hostname", "sandbox",
	}
	if s.noUserns {
		argv = append(argv, "--unshare-user", "--disable-userns")
	}
	argv = append(argv, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp")
	argv = append(argv, s.system...)
	argv = append(argv, specBinds(spec)...)
	argv = append(argv, "--bind", home, home, "--bind", tmp, tmp,
		// The root is bwrap's own tmpfs, holding only mount points: keep
		// the command from writing there.
		"--remount-ro", "/",
		"--chdir", spec.Dir, "--clearenv")
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		argv = append(argv, "--setenv", k, v)
	}
	argv = append(argv, "--")
	argv = append(argv, sh...)
	return argv, env, cleanup, nil
}

// preamble is the fixed shell text applying the limits. Each ulimit is its
// own command (dash applies only the last option of one call) and uses the
// units POSIX sh uses: seconds, KiB and, for -f, 512-byte blocks (bash uses
// 1 KiB blocks only outside POSIX mode, i.e. not when run as sh). A limit is
// only ever lowered: when the hard limit is already below it, setting it
// would fail for an unprivileged worker.
func (s *Sandbox) preamble() string {
	var b strings.Builder
	b.WriteString(`l() { h=$(ulimit -H "$1") || return; if [ "$h" = unlimited ] || [ "$h" -gt "$2" ]; then ulimit "$1" "$2"; fi; }; `)
	lim := func(flag string, n int64) {
		if n >= 0 {
			fmt.Fprintf(&b, "l %s %d && ", flag, n)
		}
	}
	l := s.limits
	if l.CPUTime > 0 {
		lim("-t", int64((l.CPUTime+time.Second-1)/time.Second))
	}
	if l.MemoryBytes > 0 {
		lim("-v", l.MemoryBytes/1024)
	}
	if l.FileBytes > 0 {
		lim("-f", l.FileBytes/512)
	}
	b.WriteString(`: || exit 125; exec /bin/sh -c "$1"`)
	return b.String()
}

// systemDirs are bound read-only (or recreated as the symlinks they are, as
// on merged-/usr systems) so shell tools, git and a Go toolchain under /usr
// run. /opt, /home, /root, /run, /srv, /var and the service's data are left
// out on purpose; a toolchain elsewhere goes into Spec.ReadOnly.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// etcFiles is what of /etc the tools need: the dynamic linker's cache,
// alternatives symlinks (Debian's awk, editor...), user and group names and
// the time zone. Everything else there (credentials, host config) stays out.
var etcFiles = []string{
	"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
	"/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/localtime",
}

func systemBinds() []string {
	var args []string
	for _, d := range systemDirs {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
		case fi.Mode()&fs.ModeSymlink != 0:
			if target, err := os.Readlink(d); err == nil {
				args = append(args, "--symlink", target, d)
			}
		case fi.IsDir():
			args = append(args, "--ro-bind", d, d)
		}
	}
	for _, f := range etcFiles {
		args = append(args, "--ro-bind-try", f, f)
	}
	return args
}

// specBinds binds spec's paths, parents before children so that a nested
// path is mounted on top of its ancestor and decides for its subtree.
func specBinds(spec Spec) []string {
	type bind struct {
		path     string
		writable bool
	}
	binds := []bind{{spec.Dir, true}}
	for _, p := range spec.Writable {
		binds = append(binds, bind{p, true})
	}
	for _, p := range spec.ReadOnly {
		binds = append(binds, bind{p, false})
	}
	depth := func(p string) int { return strings.Count(p, "/") }
	slices.SortStableFunc(binds, func(a, b bind) int { return depth(a.path) - depth(b.path) })
	var args []string
	seen := make(map[string]bool)
	for _, b := range binds {
		if seen[b.path] {
			continue // validate rejected conflicting duplicates
		}
		seen[b.path] = true
		if b.writable {
			args = append(args, "--bind", b.path, b.path)
		} else {
			args = append(args, "--ro-bind-try", b.path, b.path)
		}
	}
	return args
}

func (spec Spec) validate() error {
	check := func(what, p string) error {
		switch {
		case strings.IndexByte(p, 0) >= 0:
			return fmt.Errorf("sandbox: %s %q contains NUL", what, p)
		case !filepath.IsAbs(p) || !strings.HasPrefix(p, "/"):
			return fmt.Errorf("sandbox: %s %q is not absolute", what, p)
		case filepath.Clean(p) != p:
			return fmt.Errorf("sandbox: %s %q is not clean", what, p)
		case p == "/":
			return fmt.Errorf("sandbox: %s must not be /", what)
		}
		return nil
	}
	if err := check("Dir", spec.Dir); err != nil {
		return err
	}
	mustExist := func(what, p string) error {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("sandbox: %s: %w", what, err)
		}
		return nil
	}
	if fi, err := os.Stat(spec.Dir); err != nil {
		return fmt.Errorf("sandbox: Dir: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("sandbox: Dir %q is not a directory", spec.Dir)
	}
	writable := map[string]bool{spec.Dir: true}
	for _, p := range spec.Writable {
		if err := check("Writable path", p); err != nil {
			return err
		}
		if err := mustExist("Writable path", p); err != nil {
			return err
		}
		writable[p] = true
	}
	for _, p := range spec.ReadOnly {
		if err := check("ReadOnly path", p); err != nil {
			return err
		}
		if writable[p] {
			return fmt.Errorf("sandbox: %q is both read-only and writable", p)
		}
	}
	for _, kv := range spec.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.IndexByte(kv, 0) >= 0 {
			return fmt.Errorf("sandbox: invalid environment entry %q", kv)
		}
	}
	if strings.IndexByte(spec.Script, 0) >= 0 {
		return errors.New("sandbox: script contains NUL")
	}
	return nil
}

// overrideEnv returns env without duplicate keys (the last value wins, as
// with exec) and with the overrides replacing any entry of the same key.
func overrideEnv(env []string, overrides ...string) []string {
	all := append(slices.Clone(env), overrides...)
	last := make(map[string]int, len(all))
	for i, kv := range all {
		k, _, _ := strings.Cut(kv, "=")
		last[k] = i
	}
	out := make([]string, 0, len(last))
	for i, kv := range all {
		k, _, _ := strings.Cut(kv, "=")
		if last[k] == i {
			out = append(out, kv)
		}
	}
	return out
}

// removeAll deletes dir even if the command left read-only directories in
// it, which os.RemoveAll cannot empty as a non-root user.
func removeAll(dir string) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(path, 0o700)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}
