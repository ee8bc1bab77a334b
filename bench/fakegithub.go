//go:build !production

package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"remediator/internal/github/githubtest"
)

// The webhook scenario's fake: GitHub deliveries name an owner/name
// repository, which the service resolves against the configured GitHub API
// (a local repository cannot be named in a delivery: forge.Parse reads
// "owner/name" as GitHub). The benchmark therefore runs the fake GitHub of
// the e2e tests (internal/github/githubtest) on 127.0.0.1 and points the
// service at it with GITHUB_API_URL and GITHUB_TOKEN, as an operator would
// point it at github.com. It exists only in the benchmark.
const (
	fakeGitHubToken  = "ghp_benchFAKEtoken0123456789"
	benchWebhookKey  = "bench-github-webhook-secret-0123456789"
	fakeGitHubOwner  = "bench"
	fakeGitHubBranch = "main"
	fakeGitHubJobID  = 9001
	// fakeJobLog is the failed job's log: nothing in it (nor in the
	// summary the webhook composes, "GitHub workflow CI failed on main")
	// matches a recipe, so every remediation the scenario starts fails
	// non-retryably in GenerateFix, as the starts scenario's do.
	fakeJobLog = "2024-05-01T10:00:00.0000000Z benchmark: synthetic failure that no recipe matches\n" +
		"2024-05-01T10:00:01.0000000Z ##[error]Process completed with exit code 1.\n"
)

// benchTB lets githubtest (written for tests) run in this program: it
// implements the few testing.TB methods the fake calls (Helper, Cleanup,
// Errorf); any other would panic on the nil embedded interface.
type benchTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	errs     []string
	nErrs    int
}

func (t *benchTB) Helper()      {}
func (t *benchTB) Name() string { return "bench" }
func (t *benchTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

// Errorf records a request the fake says GitHub would refuse.
func (t *benchTB) Errorf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nErrs++
	if len(t.errs) < 5 {
		t.errs = append(t.errs, truncate(fmt.Sprintf(format, args...), 300))
	}
}
func (t *benchTB) Logf(string, ...any) {}

func (t *benchTB) close() {
	t.mu.Lock()
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func (t *benchTB) problems() (int, []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nErrs, append([]string(nil), t.errs...)
}

// fakeGitHub is the fake with one repository holding one commit, and a
// failed job every workflow run of the repository reports.
type fakeGitHub struct {
	tb   *benchTB
	gh   *githubtest.Server
	repo string // owner/name, lower case (as the service spells it)
	sha  string
}

func startFakeGitHub(runID string) *fakeGitHub {
	tb := &benchTB{}
	gh := githubtest.New(tb)
	gh.Token = fakeGitHubToken
	name := "webhook-" + strings.ToLower(runID)
	sha := gh.SeedRepository(fakeGitHubOwner, name, fakeGitHubBranch, map[string]string{
		"README.md": "benchmark repository\n",
		"main.go":   "package main\n\nfunc main() {}\n",
	})
	gh.Mu.Lock()
	r := gh.Repo(fakeGitHubOwner, name)
	// Every run id answers with this job list (Runs holds none).
	r.Jobs = []map[string]any{githubtest.JobJSON(fakeGitHubOwner, name, 1, 1, sha, githubtest.Job{
		ID: fakeGitHubJobID, Name: "check", Conclusion: "failure",
		Steps: []githubtest.Step{{Name: "Set up job", Conclusion: "success"}, {Name: "Check", Conclusion: "failure"}},
	})}
	gh.Logs[fakeGitHubJobID] = fakeJobLog
	gh.Mu.Unlock()
	return &fakeGitHub{tb: tb, gh: gh, repo: fakeGitHubOwner + "/" + name, sha: sha}
}

// env is what the service is configured with to reach the fake.
func (f *fakeGitHub) env() map[string]string {
	return map[string]string{
		"GITHUB_API_URL": f.gh.APIURL(), "GITHUB_TOKEN": fakeGitHubToken, "GITHUB_WEBHOOK_SECRET": benchWebhookKey,
	}
}

// calls counts the fake's API requests by "METHOD pattern".
func (f *fakeGitHub) calls() map[string]int {
	f.gh.Mu.Lock()
	defer f.gh.Mu.Unlock()
	out := map[string]int{}
	for _, c := range f.gh.Calls {
		out[c]++
	}
	return out
}

func (f *fakeGitHub) stop() { f.tb.close() }
