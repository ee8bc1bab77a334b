package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"remediator/internal/sandbox"
)

const hostPath = "PATH=/usr/local/bin:/usr/bin:/bin"

// requireSandbox returns an enabled sandbox. It skips the test, loudly, when
// bwrap does not work here, except under CI=true where that is a failure:
// these tests prove the confinement and must not pass vacuously there.
func requireSandbox(t *testing.T, limits sandbox.Limits) *sandbox.Sandbox {
	t.Helper()
	s, err := sandbox.New(context.Background(), sandbox.Options{Mode: sandbox.ModeRequired, Limits: limits})
	if err != nil {
		msg := "BWRAP SANDBOX NOT AVAILABLE: skipping (" + err.Error() + "); install bubblewrap"
		if os.Getenv("CI") == "true" {
			t.Fatal(strings.Replace(msg, "skipping", "failing because CI=true", 1))
		}
		t.Skip(msg)
	}
	if !s.Enabled() || s.Warning() != "" {
		t.Fatalf("required sandbox: Enabled=%v Warning=%q", s.Enabled(), s.Warning())
	}
	return s
}

// run executes spec the way the service's exec helper does: argv, env and
// working directory exactly as Command returns them.
func run(t *testing.T, s *sandbox.Sandbox, spec sandbox.Spec) (string, error) {
	t.Helper()
	argv, env, cleanup, err := s.Command(spec)
	defer cleanup()
	if err != nil {
		t.Fatalf("Command: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = env, spec.Dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mkdir(t *testing.T, path string) string {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWritesStayInDir(t *testing.T) {
	s := requireSandbox(t, sandbox.Limits{})
	root := t.TempDir()
	dir := mkdir(t, filepath.Join(root, "checkout"))
	outside := mkdir(t, filepath.Join(root, "outside"))
	ro := mkdir(t, filepath.Join(root, "ro"))
	writeFile(t, filepath.Join(ro, "data"), "readable\n")
	gitDir := mkdir(t, filepath.Join(dir, ".git")) // read-only although inside Dir
	hostTmp, err := os.MkdirTemp("/tmp", "remediator-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(hostTmp) })

	targets := []string{
		filepath.Join(outside, "escape"),
		filepath.Join(hostTmp, "escape"),
		filepath.Join(ro, "escape"),
		filepath.Join(gitDir, "escape"),
		"/escape-" + filepath.Base(hostTmp),
	}
	out, err := run(t, s, sandbox.Spec{
		Dir:      dir,
		ReadOnly: []string{ro, gitDir, filepath.Join(root, "missing")},
		Env:      []string{hostPath, "TARGETS=" + strings.Join(targets, " "), "RO=" + ro},
		Script: `echo in > inside.txt || echo FAILED-INSIDE
for p in $TARGETS; do if echo x > "$p"; then echo "WROTE $p"; fi; done
cat "$RO/data"
grep CapEff /proc/self/status`,
	})
	if err != nil {
		t.Fatalf("script failed: %v\n%s", err, out)
	}
	if strings.Contains(out, "WROTE") || strings.Contains(out, "FAILED-INSIDE") || !strings.Contains(out, "readable") {
		t.Errorf("output:\n%s", out)
	}
	// With any capability left (bwrap keeps them all for root) the command
	// could remount its read-only binds writable.
	if !strings.Contains(out, "CapEff:\t0000000000000000") {
		t.Errorf("the command has capabilities:\n%s", out)
	}
	for _, p := range targets {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was written outside the checkout (%v)", p, err)
			_ = os.Remove(p)
		}
	}
	if got := readFile(t, filepath.Join(dir, "inside.txt")); got != "in\n" {
		t.Errorf("inside.txt = %q", got)
	}
}

func TestWorkerSecretsHidden(t *testing.T) {
	s := requireSandbox(t, sandbox.Limits{})
	t.Setenv("REMEDIATOR_TEST_SECRET", "s3cr3t")
	root := t.TempDir()
	dir := mkdir(t, filepath.Join(root, "checkout"))
	secretFile := filepath.Join(root, "secret.txt")
	writeFile(t, secretFile, "filesecret-4711\n")

	spec := sandbox.Spec{
		Dir: dir,
		Env: []string{hostPath, "SECRET_FILE=" + secretFile},
		Script: `env > env.txt
for f in /proc/[0-9]*/environ /proc/self/environ "/proc/$PPID/environ"; do cat "$f"; echo; done > environ.txt 2>&1
for f in /proc/[0-9]*/cmdline; do cat "$f"; echo; done > cmdline.txt 2>&1
cat "$SECRET_FILE" > file.txt 2>&1
ls -la / > root.txt 2>&1
true`,
	}
	argv, env, cleanup, err := s.Command(spec)
	cleanup()
	if err != nil {
		t.Fatal(err)
	}
	if all := strings.Join(append(argv, env...), "\n"); strings.Contains(all, "s3cr3t") {
		t.Fatal("Command passed the worker's secret on")
	}
	// t.Setenv changes this process's environment but not what
	// /proc/<pid>/environ shows (the environment a process was started
	// with), and that is where a real worker's secrets sit. So the command
	// is started the way the worker would start it, by a parent holding the
	// secret from its start: a shell started with it that runs argv with
	// exactly the returned env through env -i.
	envBin, err := exec.LookPath("env")
	if err != nil {
		t.Skip("no env binary")
	}
	argv, env, cleanup, err = s.Command(spec)
	defer cleanup()
	if err != nil {
		t.Fatal(err)
	}
	worker := exec.Command("/bin/sh", append([]string{"-c", `"$@"; exit $?`, "sh", envBin, "-i"}, append(env, argv...)...)...)
	worker.Env, worker.Dir = os.Environ(), dir
	if out, err := worker.CombinedOutput(); err != nil {
		t.Fatalf("script failed: %v\n%s", err, out)
	}
	// The reads must have worked at all, or the test proves nothing.
	if environ := readFile(t, filepath.Join(dir, "environ.txt")); !strings.Contains(environ, "SECRET_FILE=") {
		t.Fatalf("could not read the sandbox's own environment:\n%s", environ)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		body := readFile(t, filepath.Join(dir, e.Name()))
		if strings.Contains(body, "s3cr3t") || strings.Contains(body, "filesecret-4711") {
			t.Errorf("%s leaks a secret:\n%s", e.Name(), body)
		}
	}
}

func TestNoNetworkAndEmptyHome(t *testing.T) {
	s := requireSandbox(t, sandbox.Limits{})
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash for /dev/tcp")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	// The worker's HOME must not exist inside, unless it holds the temp
	// dirs this test binds (HOME=/tmp, say), which proves nothing.
	hostHome, _ := os.UserHomeDir()
	if strings.HasPrefix(os.TempDir()+"/", strings.TrimSuffix(hostHome, "/")+"/") {
		hostHome = ""
	}

	dir := t.TempDir()
	out, err := run(t, s, sandbox.Spec{
		Dir: dir,
		Env: []string{hostPath, "HOME=/root", "BASH=" + bash, "PORT=" + port, "HOSTHOME=" + hostHome},
		Script: `"$BASH" -c 'echo hi >/dev/tcp/127.0.0.1/'"$PORT" && echo CONNECTED
echo "home=$HOME"
[ -z "$(ls -A "$HOME")" ] && echo HOME-EMPTY
echo x > "$HOME/f" && echo HOME-WRITABLE
echo x > "$TMPDIR/f" && echo TMP-WRITABLE
[ -n "$HOSTHOME" ] && ls -A "$HOSTHOME" >/dev/null 2>&1 && echo HOSTHOME-VISIBLE
true`,
	})
	if err != nil {
		t.Fatalf("script failed: %v\n%s", err, out)
	}
	if strings.Contains(out, "CONNECTED") {
		t.Errorf("connected to the host's loopback:\n%s", out)
	}
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(200 * time.Millisecond))
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Error("the listener accepted a connection from the sandbox")
	}
	for _, want := range []string{"HOME-EMPTY", "HOME-WRITABLE", "TMP-WRITABLE"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "home=/root\n") || strings.Contains(out, "HOSTHOME-VISIBLE") {
		t.Errorf("the worker's HOME is in reach:\n%s", out)
	}
}

func TestLimits(t *testing.T) {
	t.Run("file size", func(t *testing.T) {
		s := requireSandbox(t, sandbox.Limits{FileBytes: 1 << 20})
		dir := t.TempDir()
		out, _ := run(t, s, sandbox.Spec{Dir: dir, Env: []string{hostPath},
			Script: `head -c 2097152 /dev/zero > big; echo "rc=$?"`})
		fi, err := os.Stat(filepath.Join(dir, "big"))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 1<<20 || strings.Contains(out, "rc=0") {
			t.Errorf("wrote %d bytes past a 1 MiB limit:\n%s", fi.Size(), out)
		}
	})

	t.Run("cpu time", func(t *testing.T) {
		s := requireSandbox(t, sandbox.Limits{CPUTime: time.Second})
		start := time.Now()
		out, err := run(t, s, sandbox.Spec{Dir: t.TempDir(), Env: []string{hostPath}, Script: `while :; do :; done`})
		if err == nil {
			t.Fatalf("busy loop exited cleanly:\n%s", out)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("busy loop ran %v under a 1s CPU limit", d)
		}
	})

	t.Run("go toolchain under defaults", func(t *testing.T) {
		s := requireSandbox(t, sandbox.Limits{})
		goBin, err := exec.LookPath("go")
		if err != nil {
			t.Skip("no go on PATH")
		}
		goEnv := func(k string) string {
			out, err := exec.Command(goBin, "env", k).Output()
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(out))
		}
		goroot, modcache := goEnv("GOROOT"), goEnv("GOMODCACHE")
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "go.mod"), "module example.com/m\n\ngo 1.22\n")
		writeFile(t, filepath.Join(dir, "main.go"), "package main\nimport \"fmt\"\nfunc main(){ fmt.Println( 1) }\n")
		spec := sandbox.Spec{
			Dir:      dir,
			ReadOnly: []string{goroot, modcache},
			Env: []string{"PATH=" + filepath.Join(goroot, "bin") + ":/usr/bin:/bin", "GOMODCACHE=" + modcache,
				"GOFLAGS=-mod=mod", "GOPROXY=off", "GOTOOLCHAIN=local"},
			Script: "go version && gofmt -l -w . && go mod tidy",
		}
		if out, err := run(t, s, spec); err != nil || !strings.Contains(out, "go version") {
			t.Fatalf("go under default limits: %v\n%s", err, out)
		}
		if got := readFile(t, filepath.Join(dir, "main.go")); !strings.Contains(got, "fmt.Println(1)") {
			t.Errorf("gofmt did not rewrite main.go:\n%s", got)
		}

		// A dependency served from the read-only module cache, as recipes
		// use it: this one is in the cache wherever this repository builds.
		const mod = "github.com/google/uuid v1.6.0"
		sums := readFile(t, "../../go.sum")
		if _, err := os.Stat(filepath.Join(modcache, "github.com/google/uuid@v1.6.0")); err != nil || !strings.Contains(sums, mod) {
			t.Skip("github.com/google/uuid v1.6.0 not in the module cache")
		}
		var sum strings.Builder
		for _, line := range strings.Split(sums, "\n") {
			if strings.HasPrefix(line, mod) {
				sum.WriteString(line + "\n")
			}
		}
		writeFile(t, filepath.Join(dir, "go.mod"), "module example.com/m\n\ngo 1.22\n\nrequire "+mod+"\n")
		writeFile(t, filepath.Join(dir, "go.sum"), sum.String())
		writeFile(t, filepath.Join(dir, "main.go"), "package main\n\nimport \"github.com/google/uuid\"\n\nfunc main() { println(uuid.NewString()) }\n")
		if out, err := run(t, s, spec); err != nil {
			t.Fatalf("go mod tidy with a read-only module cache: %v\n%s", err, out)
		}
	})
}

// TestKillTearsDown kills only the process the caller started, as a timeout
// without process groups would: nothing the command started may survive.
func TestKillTearsDown(t *testing.T) {
	s := requireSandbox(t, sandbox.Limits{})
	dir := t.TempDir()
	argv, env, cleanup, err := s.Command(sandbox.Spec{Dir: dir, Env: []string{hostPath},
		Script: "sleep 987654 & sleep 987653"})
	defer cleanup()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = env, dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// sleepers lists the pids of the command's processes, seen from the
	// host: the sandbox's PID namespace is a child of ours.
	sleepers := func() []int {
		var pids []int
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			if b, err := os.ReadFile(p); err == nil && bytes.HasPrefix(b, []byte("sleep\x0098765")) {
				if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
					pids = append(pids, pid)
				}
			}
		}
		return pids
	}
	waitFor := func(want int) bool {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if len(sleepers()) == want {
				return true
			}
		}
		return false
	}
	// Whatever happens, leave no sleepers behind for later runs to find.
	t.Cleanup(func() {
		for _, pid := range sleepers() {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
	})
	if !waitFor(2) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("sleepers did not start (%v running)", sleepers())
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if !waitFor(0) {
		t.Errorf("processes %v survived killing bwrap", sleepers())
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]sandbox.Mode{
		"": sandbox.ModeAuto, "auto": sandbox.ModeAuto, "required": sandbox.ModeRequired,
		"off": sandbox.ModeOff, " Required ": sandbox.ModeRequired,
	} {
		if got, err := sandbox.ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"on", "true", "disabled", "bwrap"} {
		_, err := sandbox.ParseMode(in)
		if err == nil || !strings.Contains(err.Error(), `"auto"`) || !strings.Contains(err.Error(), `"required"`) || !strings.Contains(err.Error(), `"off"`) {
			t.Errorf("ParseMode(%q): %v; want an error naming the valid values", in, err)
		}
	}
}

func TestNewWithoutBwrap(t *testing.T) {
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "no-bwrap")
	if _, err := sandbox.New(ctx, sandbox.Options{Mode: sandbox.ModeRequired, Bwrap: missing}); err == nil {
		t.Error("required mode started without bwrap")
	}
	s, err := sandbox.New(ctx, sandbox.Options{Mode: sandbox.ModeAuto, Bwrap: missing})
	if err != nil {
		t.Fatal(err)
	}
	if s.Enabled() || !strings.Contains(s.Warning(), "UNSANDBOXED") {
		t.Errorf("auto without bwrap: Enabled=%v Warning=%q", s.Enabled(), s.Warning())
	}
	if s.Mode() != sandbox.ModeAuto {
		t.Errorf("Mode() = %q", s.Mode())
	}
	// A broken bwrap (here: a binary that is not bwrap at all) is as bad
	// as a missing one.
	if _, err := sandbox.New(ctx, sandbox.Options{Mode: sandbox.ModeRequired, Bwrap: "/bin/true"}); err == nil {
		t.Error("required mode accepted a bwrap that runs nothing")
	}
	if _, err := sandbox.New(ctx, sandbox.Options{Mode: "sometimes"}); err == nil {
		t.Error("unknown mode accepted")
	}
}

// TestOffModeStillConfinesHomeAndLimits needs no bwrap: off mode must still
// apply the limits, the given environment only and a private, empty HOME.
func TestOffModeStillConfinesHomeAndLimits(t *testing.T) {
	t.Setenv("REMEDIATOR_TEST_SECRET", "s3cr3t")
	s, err := sandbox.New(context.Background(), sandbox.Options{Mode: sandbox.ModeOff, Limits: sandbox.Limits{FileBytes: 64 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Enabled() || !strings.Contains(s.Warning(), "off") {
		t.Errorf("off: Enabled=%v Warning=%q", s.Enabled(), s.Warning())
	}
	if got := s.Limits(); got.CPUTime != sandbox.DefaultCPUTime || got.MemoryBytes != sandbox.DefaultMemoryBytes || got.FileBytes != 64<<10 {
		t.Errorf("Limits() = %+v", got)
	}
	dir := t.TempDir()
	spec := sandbox.Spec{Dir: dir, Env: []string{hostPath, "HOME=/root", "TMPDIR=/tmp"},
		Script: `echo "home=$HOME"; echo "tmp=$TMPDIR"
[ -z "$(ls -A "$HOME")" ] && echo HOME-EMPTY
echo x > "$HOME/f" && echo HOME-WRITABLE
echo "vmem=$(ulimit -v) cpu=$(ulimit -t)"
env > env.txt
head -c 131072 /dev/zero > big; echo "rc=$?"`}
	argv, env, cleanup, err := s.Command(spec)
	if err != nil {
		t.Fatal(err)
	}
	if argv[0] != "/bin/sh" || strings.Contains(strings.Join(env, "\n"), "s3cr3t") {
		t.Errorf("argv=%q env=%q", argv, env)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = env, dir
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	home := strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "home=")
	for _, want := range []string{"HOME-EMPTY", "HOME-WRITABLE", "vmem=4194304 cpu=300"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if home == "/root" || strings.Contains(out, "tmp=/tmp\n") || strings.Contains(out, "rc=0") {
		t.Errorf("HOME/TMPDIR not private or file limit not applied:\n%s", out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "big")); err != nil || fi.Size() > 64<<10 {
		t.Errorf("big: %v %v", fi, err)
	}
	if strings.Contains(readFile(t, filepath.Join(dir, "env.txt")), "s3cr3t") {
		t.Error("worker secret in the command's environment")
	}
	cleanup()
	if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("private HOME %s survived cleanup: %v", home, err)
	}
}

// TestLimitsNeverRaised runs the command under a parent whose hard limits are
// already lower than the defaults: the preamble must keep them instead of
// failing (an unprivileged worker cannot raise a hard limit), and negative
// limits must leave the inherited ones alone.
func TestLimitsNeverRaised(t *testing.T) {
	for _, tc := range []struct {
		limits sandbox.Limits
		want   string
	}{
		{sandbox.Limits{}, "f=100 v=2000000 t=200"},
		{sandbox.Limits{CPUTime: -1, MemoryBytes: -1, FileBytes: -1}, "f=100 v=2000000 t=200"},
		{sandbox.Limits{CPUTime: 3 * time.Second, MemoryBytes: 1 << 30, FileBytes: 512 * 10}, "f=10 v=1048576 t=3"},
	} {
		s, err := sandbox.New(context.Background(), sandbox.Options{Mode: sandbox.ModeOff, Limits: tc.limits})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		argv, env, cleanup, err := s.Command(sandbox.Spec{Dir: dir, Env: []string{hostPath},
			Script: `echo "f=$(ulimit -H -f) v=$(ulimit -H -v) t=$(ulimit -H -t)"`})
		if err != nil {
			t.Fatal(err)
		}
		parent := exec.Command("/bin/sh", append([]string{"-c", `ulimit -f 100 && ulimit -v 2000000 && ulimit -t 200 && exec "$@"`, "sh"}, argv...)...)
		parent.Env, parent.Dir = env, dir
		out, err := parent.CombinedOutput()
		cleanup()
		if err != nil || strings.TrimSpace(string(out)) != tc.want {
			t.Errorf("%+v: %v, got %q, want %q", tc.limits, err, out, tc.want)
		}
	}
}

func TestCommandRejectsBadSpecs(t *testing.T) {
	s, err := sandbox.New(context.Background(), sandbox.Options{Mode: sandbox.ModeOff})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	writeFile(t, file, "")
	for name, spec := range map[string]sandbox.Spec{
		"relative dir":        {Dir: "checkout"},
		"unclean dir":         {Dir: dir + "/../" + filepath.Base(dir)},
		"trailing slash":      {Dir: dir + "/"},
		"root dir":            {Dir: "/"},
		"missing dir":         {Dir: filepath.Join(dir, "missing")},
		"file as dir":         {Dir: file},
		"NUL in dir":          {Dir: dir + "\x00x"},
		"relative read-only":  {Dir: dir, ReadOnly: []string{"go"}},
		"root read-only":      {Dir: dir, ReadOnly: []string{"/"}},
		"unclean writable":    {Dir: dir, Writable: []string{dir + "/./x"}},
		"missing writable":    {Dir: dir, Writable: []string{filepath.Join(dir, "missing")}},
		"read-only and rw":    {Dir: dir, ReadOnly: []string{dir}},
		"env without =":       {Dir: dir, Env: []string{"PATH"}},
		"env with empty name": {Dir: dir, Env: []string{"=x"}},
		"NUL in script":       {Dir: dir, Script: "true\x00"},
	} {
		if _, _, cleanup, err := s.Command(spec); err == nil {
			cleanup()
			t.Errorf("%s: accepted", name)
		}
	}
}
