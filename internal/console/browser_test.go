//go:build browser

// The approver console in a real headless Chromium against a real
// `remediator dev` stack (embedded Temporal, worker, API): `make test-browser`.
// Screenshots go to $REMEDIATOR_BROWSER_ARTIFACTS (default: the test's
// temporary directory, logged).
package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"remediator/internal/app"
	"remediator/internal/config"
	"remediator/internal/devserver"
)

type devStack struct {
	t   *testing.T
	dev *app.Dev
	srv *httptest.Server
}

func startDev(t *testing.T) *devStack {
	t.Helper()
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"REMEDIATOR_DATA_DIR": t.TempDir()}
	cfg, err := config.Load(config.ModeDev, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("BROWSER_VERBOSE") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := app.StartDev(ctx, cfg, ports, logger)
	if err != nil {
		t.Fatal(err)
	}
	s := &devStack{t: t, dev: d, srv: httptest.NewServer(d.Handler)}
	t.Cleanup(func() { s.srv.Close(); d.Stop() })
	return s
}

// api calls the REST API as a dev user.
func (s *devStack) api(method, path, who string, body any, hdr ...string) map[string]any {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+s.dev.Token(who))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode >= 300 {
		s.t.Fatalf("%s %s as %s: %d %v", method, path, who, resp.StatusCode, out)
	}
	return out
}

// start starts a remediation of the demo repository's gofmt failure as who
// and waits until it awaits approval.
func (s *devStack) start(who, key string) string {
	s.t.Helper()
	res := s.api("POST", "/api/remediations", who, map[string]string{
		"repo": s.dev.Demo.Path, "ref": "main", "failure_summary": "lint: gofmt check failed (" + key + ")",
		"log_excerpt": "main.go\nutil.go\nError: the files above are not gofmt-formatted",
	}, "Idempotency-Key", key)
	id, _ := res["id"].(string)
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if st := s.api("GET", "/api/remediations/"+id, who, nil); st["phase"] == "AwaitingApproval" {
			return id
		}
		time.Sleep(300 * time.Millisecond)
	}
	s.t.Fatalf("%s never reached AwaitingApproval", id)
	return ""
}

func chromiumPath(t *testing.T) string {
	for _, name := range []string{os.Getenv("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium found (install the Debian package chromium)")
	}
	t.Skip("no chromium found (install the Debian package chromium)")
	return ""
}

func artifactsDir(t *testing.T) string {
	dir := os.Getenv("REMEDIATOR_BROWSER_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

func TestBrowserReviewAndApprove(t *testing.T) {
	exe := chromiumPath(t)
	artifacts := artifactsDir(t)
	s := startDev(t)
	base := s.srv.URL

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.WindowSize(1280, 1000),
	)
	defer cancelAlloc()
	browserCtx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	// The first call starts the browser, on a context without a timeout
	// (a timeout there would stop the browser); the steps get one.
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	ctx, cancelT := context.WithTimeout(browserCtx, 4*time.Minute)
	defer cancelT()

	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			url, _ := chromedp.Run(ctx, chromedp.Location())
			body, _ := chromedp.Run(ctx, chromedp.Text(css("body")))
			t.Fatalf("%s: %v\nat %s:\n%s", what, err, url, body)
		}
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(artifacts, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	signIn := func(user string) {
		t.Helper()
		run("sign in as "+user,
			chromedp.Navigate(base+"/ui/login"),
			chromedp.WaitVisible(css(`input[name=user][value=`+user+`]`)),
			chromedp.Click(css(`input[name=user][value=`+user+`]`)),
			chromedp.Click(css(`form[action="/ui/login"] button[type=submit]`)),
			chromedp.WaitVisible(css(`form[action="/ui/logout"]`)),
		)
	}
	signOut := func() {
		t.Helper()
		run("sign out", chromedp.Click(css(`form[action="/ui/logout"] button`)), chromedp.WaitVisible(css(`input[name=user]`)))
	}

	// Unauthenticated: the console sends the browser to the sign-in page.
	run("open the console", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(css(`h1`)))
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	if !strings.HasPrefix(loc, base+"/ui/login") {
		t.Fatalf("unauthenticated /ui/ landed on %s", loc)
	}

	// The developer signs in and starts a remediation (through the API).
	signIn("dev")
	id := s.start("dev", "browser-1")
	run("the developer's list", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(css(`a[href="/ui/remediations/`+id+`"]`)))
	signOut()

	// An approver sees it pending, opens it, reads the diff and approves.
	signIn("alice")
	run("pending list", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(css(`a[href="/ui/remediations/`+id+`"]`)))
	shot("pending")
	run("open the remediation", chromedp.Click(css(`a[href="/ui/remediations/`+id+`"]`)), chromedp.WaitVisible(css(`table.diff`)))
	if d := text(`section[aria-labelledby=diff]`); !strings.Contains(d, "fmt.Println(greeting(name))") || !strings.Contains(d, "util.go") {
		t.Fatalf("the diff does not show the fix:\n%s", d)
	}
	shot("remediation")
	run("side by side", chromedp.Click(css(`a[href$="?view=split"]`)), chromedp.WaitVisible(css(`table.diff.split`)))
	shot("remediation-split")
	run("approve",
		chromedp.SendKeys(css(`#comment`), "read the diff; looks right"),
		chromedp.Click(css(`form.approve button`)),
		chromedp.WaitVisible(css(`p.notice.ok`)),
	)
	if n := text(`p.notice.ok`); !strings.Contains(n, "Your approval was recorded") {
		t.Fatalf("after approving: %q", n)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		run("reload", chromedp.Navigate(base+"/ui/remediations/"+id))
		phase := text(`h1 .phase`)
		if phase == "Completed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("phase %q, never Completed", phase)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if body := text(`main`); !strings.Contains(body, "The change") || !strings.Contains(body, "autofix/"+id) {
		t.Fatalf("no change shown once Completed:\n%s", body)
	}
	shot("completed")
	signOut()

	// The requester (here an admin, who may approve others' fixes) is
	// refused on the page.
	id2 := s.start("admin", "browser-2")
	signIn("admin")
	run("open the admin's own remediation", chromedp.Navigate(base+"/ui/remediations/"+id2), chromedp.WaitVisible(css(`form.approve`)))
	run("approve one's own", chromedp.Click(css(`form.approve button`)), chromedp.WaitVisible(css(`p.notice.error`)))
	if n := text(`p.notice.error`); !strings.Contains(n, "You may not approve this remediation") {
		t.Fatalf("self-approval: %q", n)
	}
	shot("self-approval-refused")
	if st := s.api("GET", "/api/remediations/"+id2, "admin", nil); st["phase"] != "AwaitingApproval" {
		t.Fatalf("after the refused self-approval: %v", st["phase"])
	}
}
