//go:build operator

package operatortest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"remediator/internal/app"
)

// temporalCLIVersion is the Temporal CLI the runbook is written for.
const (
	temporalCLIVersion = "1.5.1"
	temporalCLIModule  = "github.com/temporalio/cli/cmd/temporal@v" + temporalCLIVersion
	namespace          = "default"
)

// stack is one `remediator dev` child process and what an operator needs to
// talk to it.
type stack struct {
	root          string // the module root
	tmp           string
	dataDir       string
	remediator    string // the built binary
	temporal      string // the Temporal CLI
	apiURL        string
	temporalAddr  string
	uiURL         string
	tokens        map[string]string // DEV, ALICE, BOB, ADMIN (as in dev.env)
	demoRepo      string
	env           []string // the parent's environment without any service configuration
	http          *http.Client
	logPath       string
	cmd           *exec.Cmd
	exited        chan struct{}
	commandsRun   int
	commandsStart time.Time
}

// moduleRoot is two levels up from this package's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Clean(filepath.Join(wd, "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod in %s: run the test from the repository (go test ./internal/operatortest/)", root)
	}
	return root
}

// cleanEnv is the parent's environment without anything that configures the
// service or either client, so the test talks only to its own stack.
func cleanEnv() []string {
	prefixes := []string{"REMEDIATOR_", "TEMPORAL_", "KLYNX_", "SLACK_", "GITHUB_", "GITLAB_", "REDIS_URL="}
	var env []string
next:
	for _, kv := range os.Environ() {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		env = append(env, kv)
	}
	return env
}

// ensureTemporalCLI returns bin/temporal of the repository, building it with
// `go install` when it is missing or another version. A plain `go install`
// reports "0.0.0-DEV" as its version (the release sets it at link time), so
// the module version recorded in the binary counts as well; this build sets
// the version too.
func ensureTemporalCLI(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(root, "bin", "temporal")
	if v, ok := temporalCLIIs(bin); ok {
		t.Logf("Temporal CLI: reusing %s (%s)", bin, v)
		logCLIModule(t, bin)
		return bin
	}
	t.Logf("Temporal CLI: building %s into %s with go install (a separate module; a cold build takes several minutes)", temporalCLIModule, filepath.Dir(bin))
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install",
		"-ldflags", "-X github.com/temporalio/cli/temporalcli.Version="+temporalCLIVersion, temporalCLIModule)
	cmd.Dir = t.TempDir() // outside the remediator module: the CLI resolves its own dependencies
	cmd.Env = append(cleanEnv(), "GOBIN="+filepath.Dir(bin), "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("building the Temporal CLI failed: %v\n%s", err, out)
	}
	v, ok := temporalCLIIs(bin)
	if !ok {
		t.Fatalf("%s is not the Temporal CLI v%s after go install: %s", bin, temporalCLIVersion, v)
	}
	t.Logf("Temporal CLI: built in %s: %s", time.Since(start).Round(time.Second), v)
	logCLIModule(t, bin)
	return bin
}

// logCLIModule logs the module version Go recorded in the CLI binary, which
// holds even when --version says 0.0.0-DEV (a plain go install).
func logCLIModule(t *testing.T, bin string) {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m %s: %v", bin, err)
	}
	m := regexp.MustCompile(`(?m)^\s+mod\s+github\.com/temporalio/cli\s+(\S+)`).FindSubmatch(out)
	if m == nil || string(m[1]) != "v"+temporalCLIVersion {
		t.Fatalf("go version -m %s does not name github.com/temporalio/cli v%s:\n%s", bin, temporalCLIVersion, out)
	}
	t.Logf("$ go version -m %s | grep 'mod.*temporalio/cli'\n  | mod github.com/temporalio/cli %s", bin, m[1])
}

// temporalCLIIs tells whether bin is the Temporal CLI at temporalCLIVersion,
// by its --version or by the module version Go recorded in it.
func temporalCLIIs(bin string) (string, bool) {
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return err.Error(), false
	}
	v := strings.TrimSpace(string(out))
	if strings.Contains(v, "version "+temporalCLIVersion+" ") {
		return v, true
	}
	info, err := exec.Command("go", "version", "-m", bin).Output()
	if err == nil && regexp.MustCompile(`(?m)^\s+mod\s+github\.com/temporalio/cli\s+v`+regexp.QuoteMeta(temporalCLIVersion)+`\s`).Match(info) {
		return v + ", module github.com/temporalio/cli v" + temporalCLIVersion, true
	}
	return v, false
}

// buildRemediator builds the binary under test into dir.
func buildRemediator(t *testing.T, root, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "remediator")
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = root
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -o %s . failed: %v\n%s", bin, err, out)
	}
	t.Logf("remediator: built %s in %s", bin, time.Since(start).Round(100*time.Millisecond))
	return bin
}

// removeAll removes a tree even where something left it read-only.
func removeAll(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// startStack builds both binaries and starts `remediator dev` in its own
// process group, on its own data dir and ports, and waits until it is ready.
func startStack(t *testing.T) *stack {
	t.Helper()
	root := moduleRoot(t)
	tmp, err := os.MkdirTemp("", "remediator-operatortest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := removeAll(tmp); err != nil {
			t.Logf("removing %s: %v", tmp, err)
		}
	})
	s := &stack{
		root: root, tmp: tmp, dataDir: filepath.Join(tmp, "data"), env: cleanEnv(),
		http:    &http.Client{Timeout: 30 * time.Second},
		logPath: filepath.Join(tmp, "remediator-dev.log"), exited: make(chan struct{}),
	}
	s.temporal = ensureTemporalCLI(t, root)
	s.remediator = buildRemediator(t, root, tmp)

	frontend, ui, api, err := app.FreeDevPorts()
	if err != nil {
		t.Fatal(err)
	}
	env := append(append([]string{}, s.env...),
		"REMEDIATOR_DATA_DIR="+s.dataDir,
		"REMEDIATOR_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(api),
		"REMEDIATOR_DEV_FRONTEND_PORT="+strconv.Itoa(frontend),
		"REMEDIATOR_DEV_UI_PORT="+strconv.Itoa(ui),
	)
	logf, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	banner := &syncWriter{buf: &bytes.Buffer{}}
	cmd := exec.Command(s.remediator, "dev")
	cmd.Env = env
	cmd.Stdout = io.MultiWriter(logf, banner)
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t.Logf("$ REMEDIATOR_DATA_DIR=%s REMEDIATOR_HTTP_ADDR=127.0.0.1:%d REMEDIATOR_DEV_FRONTEND_PORT=%d REMEDIATOR_DEV_UI_PORT=%d remediator dev",
		s.dataDir, api, frontend, ui)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd = cmd
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(s.exited)
	}()
	t.Cleanup(func() { s.stop(t) })

	// Ready: dev.env is written once the server, worker and API are up;
	// then /readyz answers 200.
	envFile := filepath.Join(s.dataDir, "dev.env")
	deadline := time.Now().Add(4 * time.Minute)
	for {
		select {
		case <-s.exited:
			t.Fatalf("remediator dev exited before it was ready:\n%s", s.logTail(80))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("remediator dev not ready after 4 minutes:\n%s", s.logTail(80))
		}
		if _, err := os.Stat(envFile); err == nil {
			if s.apiURL == "" {
				s.readDevEnv(t, envFile)
			}
			if resp, err := s.http.Get(s.apiURL + "/readyz"); err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.uiURL = fmt.Sprintf("http://127.0.0.1:%d", ui)
	if want := fmt.Sprintf("127.0.0.1:%d", frontend); s.temporalAddr != want {
		t.Fatalf("dev.env names Temporal at %q, want %q", s.temporalAddr, want)
	}
	t.Logf("remediator dev ready in %s; its banner:\n%s", time.Since(start).Round(100*time.Millisecond), banner.String())
	s.commandsStart = time.Now()
	return s
}

// syncWriter collects the child's stdout (the banner) for the log.
type syncWriter struct {
	mu  sync.Mutex
	buf *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// readDevEnv reads the `export NAME=value` lines remediator dev writes.
func (s *stack) readDevEnv(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
		if k, v, ok := strings.Cut(line, "="); ok {
			vars[k] = v
		}
	}
	s.apiURL, s.demoRepo, s.temporalAddr = vars["REMEDIATOR_URL"], vars["DEMO_REPO"], vars["TEMPORAL_ADDRESS"]
	s.tokens = map[string]string{}
	for _, who := range []string{"DEV", "ALICE", "BOB", "ADMIN"} {
		s.tokens[who] = vars[who+"_TOKEN"]
		if s.tokens[who] == "" {
			t.Fatalf("dev.env has no %s_TOKEN:\n%s", who, b)
		}
	}
	if s.apiURL == "" || s.demoRepo == "" || s.temporalAddr == "" {
		t.Fatalf("dev.env is incomplete:\n%s", b)
	}
}

// stop ends the child's whole process group: SIGTERM (graceful), then
// SIGKILL after 30 s.
func (s *stack) stop(t *testing.T) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Logf("remediator dev did not stop within 30s of SIGTERM; killing its process group")
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-s.exited
	if t.Failed() {
		t.Logf("remediator dev log (last lines):\n%s", s.logTail(150))
	} else if w := s.logProblems(60); w != "" {
		t.Logf("remediator dev log, warnings and errors:\n%s", w)
	}
	t.Logf("operator commands: %d, run in %s", s.commandsRun, time.Since(s.commandsStart).Round(100*time.Millisecond))
}

// logProblems returns the child's WARN and ERROR lines (at most n).
func (s *stack) logProblems(n int) string {
	b, _ := os.ReadFile(s.logPath)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = append(out[:n], fmt.Sprintf("… and %d more", len(out)-n))
	}
	return strings.Join(out, "\n")
}

func (s *stack) logTail(n int) string {
	b, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// result is one command's outcome.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) out() string { return r.stdout + r.stderr }

var plainArg = regexp.MustCompile(`^[A-Za-z0-9_./:=@,+%-]+$`)

// shellQuote shows an argument the way an operator would type it.
func shellQuote(a string) string {
	switch {
	case plainArg.MatchString(a):
		return a
	case !strings.ContainsAny(a, "\"$`\\!"):
		return `"` + a + `"`
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}

// exec runs one operator command; prefix is what the log shows before it
// (environment assignments), name the program's name in the log. The
// command line, its output and exit code go to the test log.
func (s *stack) exec(t *testing.T, prefix, name, bin string, env []string, args ...string) result {
	t.Helper()
	shown := make([]string, 0, len(args)+2)
	if prefix != "" {
		shown = append(shown, prefix)
	}
	shown = append(shown, name)
	for _, a := range args {
		shown = append(shown, shellQuote(a))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Dir = s.tmp
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("$ %s: %v", strings.Join(shown, " "), err)
	}
	s.commandsRun++
	var b strings.Builder
	fmt.Fprintf(&b, "$ %s\n", strings.Join(shown, " "))
	if r.stdout != "" {
		b.WriteString(indent(r.stdout))
	}
	if r.stderr != "" {
		b.WriteString("  [stderr]\n" + indent(r.stderr))
	}
	fmt.Fprintf(&b, "  [exit %d, %s]", r.code, time.Since(start).Round(time.Millisecond))
	t.Log(b.String())
	return r
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("  | " + l + "\n")
	}
	return b.String()
}

// rem runs the remediator client as who ("ALICE", …), with that dev token.
func (s *stack) rem(t *testing.T, who string, args ...string) result {
	t.Helper()
	env := append(append([]string{}, s.env...), "REMEDIATOR_URL="+s.apiURL, "REMEDIATOR_TOKEN="+s.tokens[who])
	return s.exec(t, "REMEDIATOR_TOKEN=$"+who+"_TOKEN", "remediator", s.remediator, env, args...)
}

// tctl runs the Temporal CLI against the dev server, decoding payloads
// through the dev API's codec endpoint with the admin's token.
func (s *stack) tctl(t *testing.T, args ...string) result {
	t.Helper()
	args = append(args, "--address", s.temporalAddr, "--namespace", namespace,
		"--codec-endpoint", s.apiURL+"/codec", "--codec-auth", "Bearer "+s.tokens["ADMIN"])
	return s.exec(t, "", "temporal", s.temporal, s.env, args...)
}

// must fails the test unless the command exited 0.
func must(t *testing.T, r result) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("command failed (exit %d):\n%s", r.code, r.out())
	}
	return r
}

// api calls the REST API quietly (used to start remediations and to wait
// for phases; the operator commands are what the log shows).
func (s *stack) api(t *testing.T, method, path, who string, body any, hdr map[string]string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.apiURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.tokens[who])
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// apiStatus is the part of a status the test reads.
type apiStatus struct {
	ID         string `json:"id"`
	Phase      string `json:"phase"`
	Reason     string `json:"reason"`
	DecisionID string `json:"decision_id"`
	Requester  string `json:"requester"`
	Fix        *struct {
		Digest string   `json:"digest"`
		Files  []string `json:"files"`
		Diff   string   `json:"diff"`
		Patch  []byte   `json:"patch"`
	} `json:"fix"`
	Votes []struct {
		Actor    string `json:"actor"`
		Approved bool   `json:"approved"`
		Reason   string `json:"reason"`
	} `json:"votes"`
	PR *struct {
		URL    string `json:"url"`
		Branch string `json:"branch"`
	} `json:"pr"`
	Links struct {
		UI string `json:"ui"`
	} `json:"links"`
}

// startRemediation starts one against the demo repository, as who, the way
// the walk-through does (POST /api/remediations with an Idempotency-Key).
func (s *stack) startRemediation(t *testing.T, who, key, ref string) string {
	t.Helper()
	body := map[string]string{
		"repo": s.demoRepo, "ref": ref, "failure_summary": "lint: gofmt check failed",
		"log_excerpt": "main.go\nutil.go\nError: the files above are not gofmt-formatted",
	}
	code, b := s.api(t, http.MethodPost, "/api/remediations", who, body, map[string]string{"Idempotency-Key": key})
	if code != http.StatusAccepted {
		t.Fatalf("POST /api/remediations as %s: %d %s", who, code, b)
	}
	var r struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.ID == "" {
		t.Fatalf("POST /api/remediations: %s", b)
	}
	t.Logf("started %s as %s (POST /api/remediations, Idempotency-Key %s, ref %s)", r.ID, strings.ToLower(who), key, ref)
	return r.ID
}

// waitPhase polls the status until the remediation is in phase want; a
// different terminal phase fails at once.
func (s *stack) waitPhase(t *testing.T, id, want string, timeout time.Duration) apiStatus {
	t.Helper()
	terminal := map[string]bool{"Completed": true, "Rejected": true, "Expired": true, "Failed": true, "Cancelled": true}
	deadline := time.Now().Add(timeout)
	var st apiStatus
	for {
		code, b := s.api(t, http.MethodGet, "/api/remediations/"+id, "ALICE", nil, nil)
		if code == http.StatusOK {
			st = apiStatus{}
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatalf("status of %s: %v", id, err)
			}
			if st.Phase == want {
				return st
			}
			if terminal[st.Phase] {
				t.Fatalf("%s ended %s (reason %q), want %s", id, st.Phase, st.Reason, want)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still %q after %s, want %s", id, st.Phase, timeout, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitListed waits until visibility (the API's list reads it, like the
// Temporal CLI and the Web UI) shows id in phase.
func (s *stack) waitListed(t *testing.T, id, phase string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, b := s.api(t, http.MethodGet, "/api/remediations?page_size=100&phase="+phase, "ALICE", nil, nil)
		if code == http.StatusOK && strings.Contains(string(b), `"`+id+`"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("visibility does not list %s as %s: %d %s", id, phase, code, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// curlAPI reads path of the REST API as who, logged as the curl an
// operator would type, and decodes the 200 answer into v.
func (s *stack) curlAPI(t *testing.T, who, path string, v any) {
	t.Helper()
	code, b := s.api(t, http.MethodGet, path, who, nil, nil)
	s.commandsRun++
	t.Logf("$ curl -s \"$REMEDIATOR_URL%s\" -H \"Authorization: Bearer $%s_TOKEN\"\n  [HTTP %d]\n%s", path, who, code, indent(string(b)))
	if code != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d", path, code)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// git runs git in the demo repository (the operator fixing a failure's cause).
func (s *stack) git(t *testing.T, args ...string) result {
	t.Helper()
	return s.exec(t, "", "git", "git", s.env, append([]string{"-C", s.demoRepo}, args...)...)
}

// httpGet fetches a Web UI URL, logging it like a command.
func (s *stack) httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := s.http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	s.commandsRun++
	shown := string(b)
	if len(shown) > 1500 {
		shown = shown[:1500] + fmt.Sprintf("… (%d bytes)", len(b))
	}
	t.Logf("$ curl -s %s\n  [HTTP %d, %s]\n%s", shellQuote(url), resp.StatusCode, resp.Header.Get("Content-Type"), indent(shown))
	return resp.StatusCode, b
}
