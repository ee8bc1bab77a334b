package recipe

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"remediator/internal/gitlocal"
	"remediator/internal/procgroup"
	"remediator/internal/sandbox"
)

// errTimedOut distinguishes a command's own timeout from cancellation of the
// caller's context.
var errTimedOut = errors.New("timed out")

type execSpec struct {
	dir            string
	env            []string
	args           []string
	timeout        time.Duration
	stdin          io.Reader // nil: /dev/null
	stdout, stderr io.Writer
}

// execute runs a command with its own timeout. It returns errTimedOut when
// that timeout fired, the parent's ctx.Err() when the caller gave up, an
// *exec.ExitError for a non-zero exit, or a start error.
//
// Output goes through pipes we own rather than exec's copying goroutines, so
// the command is over as soon as its main process exits: background jobs it
// left behind are then killed with the process group instead of keeping Wait
// (and the checkout) busy.
func execute(ctx context.Context, s execSpec) error {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, s.args[0], s.args[1:]...)
	cmd.Dir = s.dir
	cmd.Env = s.env
	cmd.WaitDelay = time.Second

	var readers, writers []*os.File
	var copies sync.WaitGroup
	closeAll := func(files []*os.File) {
		for _, f := range files {
			_ = f.Close()
		}
	}
	attach := func(w io.Writer) (*os.File, error) {
		r, pw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		readers = append(readers, r)
		writers = append(writers, pw)
		copies.Add(1)
		go func() {
			defer copies.Done()
			_, _ = io.Copy(w, r)
		}()
		return pw, nil
	}
	stdout, err := attach(s.stdout)
	if err != nil {
		return err
	}
	stderr := stdout
	if s.stderr != s.stdout {
		if stderr, err = attach(s.stderr); err != nil {
			closeAll(writers)
			copies.Wait()
			closeAll(readers)
			return err
		}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.stdin, stdout, stderr
	procgroup.Set(cmd)
	err = cmd.Start()
	closeAll(writers) // the children hold their own copies
	if err == nil {
		err = cmd.Wait()
		procgroup.Kill(cmd)
	}
	drained := make(chan struct{})
	go func() {
		copies.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(time.Second):
		// Something escaped the process group and still holds a pipe.
		closeAll(readers)
		<-drained
	}
	closeAll(readers)

	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if cctx.Err() != nil {
		return errTimedOut
	}
	return err
}

// tailBuffer keeps only the last max bytes written, because the end of a
// failing command's output is what explains the failure.
type tailBuffer struct {
	max     int
	buf     []byte
	dropped bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		t.dropped = t.dropped || len(t.buf) > 0 || len(p) > t.max
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.dropped = true
		copy(t.buf, t.buf[over:])
		t.buf = t.buf[:t.max]
	}
	return n, nil
}

func (t *tailBuffer) String() string {
	s := strings.TrimSpace(string(t.buf))
	if t.dropped && s != "" {
		s = "…" + s
	}
	return s
}

// headBuffer keeps the first max bytes and notes whether more arrived; it
// keeps accepting writes so the producer is never blocked or killed.
type headBuffer struct {
	max      int
	buf      []byte
	overflow bool
}

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := h.max - len(h.buf); room < len(p) {
		h.overflow = true
		if room > 0 {
			h.buf = append(h.buf, p[:room]...)
		}
		return len(p), nil
	}
	h.buf = append(h.buf, p...)
	return len(p), nil
}

// setup fixes what every recipe command gets: the sandbox (unsandboxed, with
// its limits, when none is configured), an environment with nothing of the
// worker's own (no secrets, no HOME: the sandbox gives each command an empty
// one), and read-only access to the Go toolchain and module cache so Go
// recipes work offline. Each command has a private GOCACHE under its HOME:
// a shared build cache could be poisoned by one repository for the next.
func (g *Generator) setup(ctx context.Context) {
	g.sandbox = g.Sandbox
	if g.sandbox == nil {
		if g.sandbox, g.setupErr = sandbox.New(ctx, sandbox.Options{Mode: sandbox.ModeOff}); g.setupErr != nil {
			return
		}
	}
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	const date = "@946684800 +0000" // fixed so recipes that commit are reproducible
	g.env = []string{
		"PATH=" + path,
		"LC_ALL=C",
		"GOFLAGS=-mod=mod",
		"GOPROXY=off",
		"GOTOOLCHAIN=local",
		"GIT_AUTHOR_NAME=remediator", "GIT_AUTHOR_EMAIL=remediator@localhost", "GIT_AUTHOR_DATE=" + date,
		"GIT_COMMITTER_NAME=remediator", "GIT_COMMITTER_EMAIL=remediator@localhost", "GIT_COMMITTER_DATE=" + date,
	}
	g.env = append(g.env, gitlocal.SafeGitEnv...)
	for _, k := range []string{"GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GOINSECURE"} {
		if v := os.Getenv(k); v != "" {
			g.env = append(g.env, k+"="+v)
		}
	}
	for k, v := range goPaths(ctx) {
		g.env = append(g.env, k+"="+v)
		g.readOnly = append(g.readOnly, v)
	}
}

// goPaths asks the worker's Go toolchain, if there is one, where its GOROOT
// and module cache are.
func goPaths(ctx context.Context) map[string]string {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "env", "GOROOT", "GOMODCACHE").Output()
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	paths := map[string]string{}
	for i, k := range []string{"GOROOT", "GOMODCACHE"} {
		if i < len(lines) && filepath.IsAbs(lines[i]) {
			paths[k] = filepath.Clean(lines[i])
		}
	}
	return paths
}
