package github

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"remediator/internal/forge/forgetest"
	"remediator/internal/github/githubtest"
)

const testToken = "ghp_TESTSECRET0123456789"

// httpClient stands in for the guarded client the service builds.
func httpClient() *http.Client { return &http.Client{Timeout: 10 * time.Second} }

func tokenClient(t *testing.T, f *githubtest.Server) *Client {
	t.Helper()
	f.Token = testToken
	c, err := New(Config{APIURL: f.APIURL(), Token: testToken, HTTPClient: httpClient()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func apiErr(t *testing.T, err error) *APIError {
	t.Helper()
	var e *APIError
	if !errors.As(err, &e) {
		t.Fatalf("want *APIError, got %T: %v", err, err)
	}
	return e
}

func testKey(t *testing.T) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

func TestNewValidatesConfig(t *testing.T) {
	_, keyPEM := testKey(t)
	for name, cfg := range map[string]Config{
		"no client":        {Token: "x"},
		"no credentials":   {HTTPClient: httpClient()},
		"both":             {Token: "x", AppID: 1, PrivateKeyPEM: keyPEM, HTTPClient: httpClient()},
		"app without key":  {AppID: 1, HTTPClient: httpClient()},
		"key without app":  {PrivateKeyPEM: keyPEM, HTTPClient: httpClient()},
		"bad key":          {AppID: 1, PrivateKeyPEM: []byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"), HTTPClient: httpClient()},
		"not PEM":          {AppID: 1, PrivateKeyPEM: []byte("hello"), HTTPClient: httpClient()},
		"relative API URL": {APIURL: "/api/v3/", Token: "x", HTTPClient: httpClient()},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		} else if strings.Contains(err.Error(), "AAAA") {
			t.Errorf("%s: the error quotes the key: %v", name, err)
		}
	}
	if _, err := New(Config{Token: "x", HTTPClient: httpClient()}); err != nil {
		t.Errorf("token config: %v", err)
	}
	if _, err := New(Config{AppID: 1, PrivateKeyPEM: keyPEM, HTTPClient: httpClient()}); err != nil {
		t.Errorf("App config: %v", err)
	}
}

func TestAPIURLs(t *testing.T) {
	for raw, want := range map[string][3]string{
		"":                                {"https://api.github.com/", "https://uploads.github.com/", "false"},
		"https://ghe.example.com/api/v3/": {"https://ghe.example.com/api/v3/", "https://ghe.example.com/api/uploads/", "true"},
		"https://ghe.example.com/api/v3":  {"https://ghe.example.com/api/v3/", "https://ghe.example.com/api/uploads/", "true"},
		"http://127.0.0.1:8080":           {"http://127.0.0.1:8080/", "http://127.0.0.1:8080/", "false"},
	} {
		base, upload, ent, err := apiURLs(raw)
		if err != nil || base != want[0] || upload != want[1] || strconv.FormatBool(ent) != want[2] {
			t.Errorf("apiURLs(%q) = %q, %q, %v, %v; want %v", raw, base, upload, ent, err, want)
		}
	}
}

func TestResolve(t *testing.T) {
	f := newFake(t, "")
	c := tokenClient(t, f)
	ctx := context.Background()
	base, feature := baseSHA(f), fakeRepo(f).Refs["refs/heads/feature"]
	for _, tc := range []struct {
		ref, sha string
		isBranch bool
	}{
		{"", base, true},
		{"feature", feature, true},
		{"refs/heads/feature", feature, true},
		{base, base, false},
		{strings.ToUpper(base), base, false},
		{"v1.0", base, false},
		{feature[:10], feature, false},
	} {
		sha, def, isBranch, err := c.Resolve(ctx, testOwner, testRepo, tc.ref)
		if err != nil || sha != tc.sha || def != "trunk" || isBranch != tc.isBranch {
			t.Errorf("Resolve(%q) = %q, %q, %v, %v; want %q, trunk, %v", tc.ref, sha, def, isBranch, err, tc.sha, tc.isBranch)
		}
	}
	for _, ref := range []string{"nope", "refs/heads/nope", strings.Repeat("0", 40)} {
		_, _, _, err := c.Resolve(ctx, testOwner, testRepo, ref)
		if e := apiErr(t, err); e.HTTPStatus() != http.StatusNotFound {
			t.Errorf("Resolve(%q): status %d (%v), want 404", ref, e.HTTPStatus(), err)
		}
	}
	_, _, _, err := c.Resolve(ctx, testOwner, "missing", "")
	if e := apiErr(t, err); e.HTTPStatus() != http.StatusNotFound {
		t.Errorf("missing repository: %v", err)
	}
	for _, ref := range []string{"../../etc", "a b", "x..y", "refs/heads/"} {
		_, _, _, err := c.Resolve(ctx, testOwner, testRepo, ref)
		if !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("Resolve(%q) = %v, want ErrInvalidRequest", ref, err)
		}
	}
	if _, _, _, err := c.Resolve(ctx, "..", testRepo, ""); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("owner \"..\": %v", err)
	}
}

// The Enterprise Server API lives under /api/v3/ on the instance's host;
// every call (and the App's token endpoint, see TestAppAuth) must keep it.
func TestEnterpriseBaseURL(t *testing.T) {
	f := newFake(t, "/api/v3")
	c := tokenClient(t, f)
	sha, def, isBranch, err := c.Resolve(context.Background(), testOwner, testRepo, "")
	if err != nil || sha != baseSHA(f) || def != "trunk" || !isBranch {
		t.Fatalf("Resolve = %q, %q, %v, %v", sha, def, isBranch, err)
	}
	if n := f.Count("GET /repos/{owner}/{repo}/git/ref/{ref...}"); n != 1 {
		t.Errorf("ref lookups under /api/v3: %d", n)
	}
	pr, err := c.OpenChange(context.Background(), changeRequest(f))
	if err != nil || !pr.Created {
		t.Fatalf("OpenChange under /api/v3: %+v, %v", pr, err)
	}
}

func TestTarball(t *testing.T) {
	f := newFake(t, "")
	c := tokenClient(t, f)
	ctx := context.Background()
	archive := []byte(strings.Repeat("tarball bytes ", 1000))
	f.Tarballs[baseSHA(f)] = archive

	rc, err := c.Tarball(ctx, testOwner, testRepo, baseSHA(f), int64(len(archive)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != string(archive) {
		t.Fatalf("tarball: %d bytes, %v", len(got), err)
	}
	if len(f.DownloadAuth) != 1 || f.DownloadAuth[0] != "" {
		t.Errorf("codeload saw Authorization %q", f.DownloadAuth)
	}

	// Announced too large: refused before reading.
	_, err = c.Tarball(ctx, testOwner, testRepo, baseSHA(f), 100)
	if e := apiErr(t, err); !errors.Is(err, ErrTooLarge) || e.HTTPStatus() != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized tarball: %v", err)
	}
	// Not announced: the read past the limit fails.
	f.DownloadChunked = true
	rc, err = c.Tarball(ctx, testOwner, testRepo, baseSHA(f), 100)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	if !errors.Is(err, ErrTooLarge) || n > 100 {
		t.Errorf("chunked oversized tarball: read %d, %v", n, err)
	}

	_, err = c.Tarball(ctx, testOwner, testRepo, strings.Repeat("1", 40), 100)
	if e := apiErr(t, err); e.HTTPStatus() != http.StatusNotFound {
		t.Errorf("missing commit: %v", err)
	}
	if _, err := c.Tarball(ctx, testOwner, testRepo, "trunk", 100); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("a tarball of a branch name must be refused (it moves): %v", err)
	}
}

const jobLog102 = `2024-05-01T10:00:00.0000000Z ##[group]Run actions/checkout@v4
2024-05-01T10:00:01.0000000Z Syncing repository: octo/widgets
2024-05-01T10:00:02.0000000Z ##[endgroup]
2024-05-01T10:00:03.0000000Z go test ./...
2024-05-01T10:00:04.0000000Z --- FAIL: TestWidget (0.00s)
2024-05-01T10:00:04.1000000Z     widget_test.go:12: want 2, got 3
2024-05-01T10:00:04.2000000Z FAIL	example.com/widgets	0.004s
2024-05-01T10:00:05.0000000Z ##[error]Process completed with exit code 1.
2024-05-01T10:00:05.1000000Z Post job cleanup.
2024-05-01T10:00:05.2000000Z [command]/usr/bin/git version
2024-05-01T10:00:05.3000000Z git version 2.45.0
2024-05-01T10:00:05.4000000Z CLEANUP-MARKER this is past the excerpt
2024-05-01T10:00:05.5000000Z ##[error]A second error that is not the first.
2024-05-01T10:00:06.0000000Z Cleaning up orphan processes
`

func TestFailedJobs(t *testing.T) {
	f := newFake(t, "")
	c := tokenClient(t, f)
	r := fakeRepo(f)
	r.Jobs = []map[string]any{
		fakeJob(101, "lint", "success", [2]string{"Set up job", "success"}, [2]string{"Lint", "success"}),
		fakeJob(102, "test", "failure", [2]string{"Set up job", "success"}, [2]string{"Run tests", "failure"}, [2]string{"Post", "success"}),
		fakeJob(103, "docs", "skipped"),
		fakeJob(104, "build (windows)", "cancelled", [2]string{"Build", "cancelled"}),
		fakeJob(105, "e2e", "failure", [2]string{"Set up job", "success"}, [2]string{"Start services", "failure"}, [2]string{"Run e2e", "skipped"}),
	}
	var tail strings.Builder
	for i := range 200 {
		fmt.Fprintf(&tail, "2024-05-01T10:00:%02d.0000000Z e2e line %d\n", i%60, i)
	}
	f.Logs[102] = jobLog102
	f.Logs[105] = tail.String()

	jobs, err := c.FailedJobs(context.Background(), testOwner, testRepo, 7, 2, 500)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.Count("GET /repos/{owner}/{repo}/actions/runs/{run}/attempts/{attempt}/jobs"); n != 3 {
		t.Errorf("%d pages fetched, want 3", n)
	}
	if len(jobs) != 2 || jobs[0].ID != 102 || jobs[1].ID != 105 {
		t.Fatalf("failed jobs: %+v", jobs)
	}
	if j := jobs[0]; j.Name != "test" || j.Step != "Run tests" || j.Conclusion != "failure" {
		t.Errorf("job 102: %+v", j)
	}
	if jobs[1].Step != "Start services" {
		t.Errorf("job 105 step: %q", jobs[1].Step)
	}
	log := jobs[0].Log
	if len(log) > 500 || !strings.Contains(log, "##[error]Process completed with exit code 1.") ||
		strings.Contains(log, "CLEANUP-MARKER") || strings.Contains(log, "A second error") || !strings.Contains(log, "want 2, got 3") {
		t.Errorf("job 102 excerpt (%d bytes):\n%s", len(log), log)
	}
	if !strings.HasPrefix(log, "2024-05-01T") || !strings.HasSuffix(log, "git version 2.45.0\n") {
		t.Errorf("job 102 excerpt is not cut on lines:\n%s", log)
	}
	log = jobs[1].Log
	if len(log) > 500 || !strings.HasSuffix(log, "e2e line 199\n") || !strings.HasPrefix(log, "2024-05-01T") {
		t.Errorf("job 105 tail (%d bytes):\n%s", len(log), log)
	}
	for i, a := range f.DownloadAuth {
		if a != "" {
			t.Errorf("log download %d carried Authorization %q", i, a)
		}
	}
	if len(f.DownloadAuth) != 2 {
		t.Errorf("%d log downloads, want 2", len(f.DownloadAuth))
	}

	// An expired log leaves the evidence of the others; no logs asked, none fetched.
	f.MissingLog[102] = true
	jobs, err = c.FailedJobs(context.Background(), testOwner, testRepo, 7, 2, 500)
	if err != nil || jobs[0].Log != "" || jobs[1].Log == "" {
		t.Errorf("expired log: %+v, %v", jobs, err)
	}
	f.DownloadAuth = nil
	if jobs, err = c.FailedJobs(context.Background(), testOwner, testRepo, 7, 0, 0); err != nil || len(jobs) != 2 || len(f.DownloadAuth) != 0 {
		t.Errorf("latest attempt without logs: %+v, %v, %d downloads", jobs, err, len(f.DownloadAuth))
	}
}

// A long log without an error line: after the scan limit the tail is asked
// for with a Range request; a host that ignores ranges is read to the end.
func TestJobLogRangeTail(t *testing.T) {
	f := newFake(t, "")
	c := tokenClient(t, f)
	var b strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&b, "line %05d of a long build\n", i)
	}
	f.Logs[9] = b.String()
	g, err := c.forRepo(context.Background(), testOwner, testRepo)
	if err != nil {
		t.Fatal(err)
	}
	for _, noRanges := range []bool{false, true} {
		f.DownloadNoRanges, f.DownloadRanges = noRanges, nil
		log, err := c.jobLog(context.Background(), g, testOwner, testRepo, 9, 100, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(log, "line 04999 of a long build\n") || len(log) > 100 || !strings.HasPrefix(log, "line ") {
			t.Errorf("noRanges=%v: tail %q", noRanges, log)
		}
		if !noRanges && (len(f.DownloadRanges) != 2 || f.DownloadRanges[1] != "bytes=-100") {
			t.Errorf("range requests: %q", f.DownloadRanges)
		}
	}
}

func TestLogTail(t *testing.T) {
	long := strings.Repeat("x", 100)
	for _, tc := range []struct {
		name, log string
		max       int
		want      string
	}{
		{"short, no error", "a\nb\n", 100, "a\nb\n"},
		{"tail on a line", "aaaa\nbbbb\ncccc\n", 12, "bbbb\ncccc\n"},
		{"ends after the first error", "a\nb\n##[error]boom\nc\nd\ne\nf\n##[error]second\n", 100, "a\nb\n##[error]boom\nc\nd\ne\n"},
		{"error context bounded", "a\nb\nc\nd\n##[error]boom\n" + long + "\n", 20, "b\nc\nd\n##[error]boom\n"},
		{"marker across chunks", strings.Repeat("y", 12) + "##[error]split\nafter\n", 200, strings.Repeat("y", 12) + "##[error]split\nafter\n"},
		{"one long line", long, 10, strings.Repeat("x", 10)},
		{"no trailing newline", "a\nb", 100, "a\nb"},
	} {
		lt := &logTail{max: tc.max}
		// A 16-byte buffer splits lines into chunks, as long lines are in
		// real logs.
		done, err := lt.feed(bufio.NewReaderSize(strings.NewReader(tc.log), 16), -1)
		if err != nil || !done || lt.String() != tc.want {
			t.Errorf("%s: %q, %v, %v; want %q", tc.name, lt.String(), done, err, tc.want)
		}
	}
}

func changeRequest(f *githubtest.Server) ChangeRequest {
	return ChangeRequest{
		Owner: testOwner, Repo: testRepo, Branch: "autofix/rem-1", BaseSHA: baseSHA(f),
		Files: []FileChange{
			{Path: "main.go", Content: []byte("package main\n\nfunc main() {}\n")},
			{Path: "scripts/fix.sh", Content: []byte("#!/bin/sh\nexit 0\n"), Mode: "100755"},
			{Path: "old.txt", Delete: true},
		},
		Message:    "Fix the build\n\nThe test expected 2.\n\nRemediation-Id: rem-1\n",
		Marker:     "Remediation-Id: rem-1",
		CommitTime: time.Date(2024, 5, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600)),
		Author:     Signature{Name: "remediator", Email: "remediator@example.com"},
		Title:      "Fix the build", Body: "Automated fix for rem-1.",
		Labels: []string{"autofix"}, Reviewers: []string{"alice", "bob"},
	}
}

// checkConverged asserts the state every run must end in: one branch at
// want, one commit of the change, one open draft pull request into trunk
// with its labels and reviewers.
func checkConverged(t *testing.T, f *githubtest.Server, want string) {
	t.Helper()
	r := fakeRepo(f)
	if got := r.Refs["refs/heads/autofix/rem-1"]; got != want {
		t.Errorf("branch at %s, want %s", got, want)
	}
	ours := 0
	for _, c := range r.Commits {
		if hasLine(c.Message, "Remediation-Id: rem-1") {
			ours++
		}
	}
	if ours != 1 {
		t.Errorf("%d commits of the change, want 1", ours)
	}
	pulls := r.OpenPulls("autofix/rem-1")
	if len(pulls) != 1 {
		t.Fatalf("%d open pull requests, want 1", len(pulls))
	}
	p := pulls[0]
	if !p.Draft || p.Base != "trunk" || p.Title != "Fix the build" || !reflect.DeepEqual(p.Labels, []string{"autofix"}) ||
		!reflect.DeepEqual(p.Reviewers, []string{"alice", "bob"}) {
		t.Errorf("pull request: %+v", p)
	}
}

func TestOpenChangeFresh(t *testing.T) {
	f := newFake(t, "")
	c := tokenClient(t, f)
	req := changeRequest(f)
	pr, err := c.OpenChange(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	r := fakeRepo(f)
	if !pr.Created || pr.Number != 1 || pr.BaseBranch != "trunk" || pr.Branch != req.Branch ||
		pr.URL != "https://github.example/octo/widgets/pull/1" || len(pr.UnrequestedReviewers) != 0 {
		t.Errorf("result: %+v", pr)
	}
	checkConverged(t, f, pr.HeadSHA)
	commit := r.Commits[pr.HeadSHA]
	if !reflect.DeepEqual(commit.Parents, []string{req.BaseSHA}) || commit.Message != req.Message ||
		commit.Author.Date != "2024-05-01T10:00:00Z" || commit.Committer != commit.Author || commit.Author.Name != "remediator" {
		t.Errorf("commit: %+v", commit)
	}
	if body, mode, ok := r.File(pr.HeadSHA, "main.go"); !ok || body != "package main\n\nfunc main() {}\n" || mode != "100644" {
		t.Errorf("main.go: %q %s %v", body, mode, ok)
	}
	if _, mode, ok := r.File(pr.HeadSHA, "scripts/fix.sh"); !ok || mode != "100755" {
		t.Errorf("scripts/fix.sh: %s %v", mode, ok)
	}
	if _, _, ok := r.File(pr.HeadSHA, "old.txt"); ok {
		t.Error("old.txt was not deleted")
	}
	if _, _, ok := r.File(pr.HeadSHA, "README.md"); !ok {
		t.Error("README.md was lost: the tree must build on base_tree")
	}

	// A plain re-run changes nothing and creates nothing.
	again, err := c.OpenChange(context.Background(), req)
	if err != nil || again.Created || again.Number != pr.Number || again.HeadSHA != pr.HeadSHA {
		t.Errorf("re-run: %+v, %v", again, err)
	}
	for _, call := range []string{"POST /repos/{owner}/{repo}/git/refs", "POST /repos/{owner}/{repo}/pulls",
		"POST /repos/{owner}/{repo}/issues/{number}/labels", "POST /repos/{owner}/{repo}/pulls/{number}/requested_reviewers"} {
		if n := f.Count(call); n != 1 {
			t.Errorf("%s: %d calls, want 1", call, n)
		}
	}
	if n := f.Count("PATCH /repos/{owner}/{repo}/git/refs/{ref...}"); n != 0 {
		t.Errorf("the branch was moved %d times", n)
	}
	checkConverged(t, f, pr.HeadSHA)

	// A changed title is carried over to the existing pull request.
	req.Title = "Fix the build (v2)"
	if again, err = c.OpenChange(context.Background(), req); err != nil || again.Created || r.Pulls[0].Title != req.Title {
		t.Errorf("title update: %+v, %v, %q", again, err, r.Pulls[0].Title)
	}
}

// The process may die after any step has taken effect on GitHub: the fake
// applies the step and answers 500, leaving exactly the state such a crash
// leaves (blobs, a tree, a commit, the ref, the pull request, its labels).
// The re-run must converge on the same branch, commit and pull request as
// a run that never crashed.
func TestOpenChangeRerunAfterCrash(t *testing.T) {
	clean := newFake(t, "")
	want, err := tokenClient(t, clean).OpenChange(context.Background(), changeRequest(clean))
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{
		"POST /repos/{owner}/{repo}/git/blobs",
		"POST /repos/{owner}/{repo}/git/trees",
		"POST /repos/{owner}/{repo}/git/commits",
		"POST /repos/{owner}/{repo}/git/refs",
		"POST /repos/{owner}/{repo}/pulls",
		"POST /repos/{owner}/{repo}/issues/{number}/labels",
		"POST /repos/{owner}/{repo}/pulls/{number}/requested_reviewers",
	} {
		t.Run(step, func(t *testing.T) {
			f := newFake(t, "")
			c := tokenClient(t, f)
			f.Crash[step] = true
			_, err := c.OpenChange(context.Background(), changeRequest(f))
			if e := apiErr(t, err); e.HTTPStatus() != http.StatusInternalServerError {
				t.Fatalf("crashed run: %v", err)
			}
			pr, err := c.OpenChange(context.Background(), changeRequest(f))
			if err != nil {
				t.Fatal(err)
			}
			if pr.HeadSHA != want.HeadSHA || pr.Number != 1 {
				t.Errorf("re-run: %+v, want head %s", pr, want.HeadSHA)
			}
			wantCreated := step != "POST /repos/{owner}/{repo}/issues/{number}/labels" &&
				step != "POST /repos/{owner}/{repo}/pulls/{number}/requested_reviewers" && step != "POST /repos/{owner}/{repo}/pulls"
			if pr.Created != wantCreated {
				t.Errorf("Created = %v, want %v", pr.Created, wantCreated)
			}
			if n := f.Count("PATCH /repos/{owner}/{repo}/git/refs/{ref...}"); n != 0 {
				t.Errorf("the branch was moved %d times", n)
			}
			checkConverged(t, f, want.HeadSHA)
		})
	}
}

func TestOpenChangeLeavesSomeoneElsesBranch(t *testing.T) {
	f := newFake(t, "")
	c := tokenClient(t, f)
	r := fakeRepo(f)
	theirs := r.AddCommit(map[string]string{"main.go": "package main // mine\n"}, []string{baseSHA(f)}, "WIP: my own work\n\nRemediation-Id: rem-10\n")
	r.Refs["refs/heads/autofix/rem-1"] = theirs

	_, err := c.OpenChange(context.Background(), changeRequest(f))
	e := apiErr(t, err)
	if e.HTTPStatus() != http.StatusConflict || !errors.Is(err, ErrBranchConflict) {
		t.Errorf("want 409 ErrBranchConflict, got %v", err)
	}
	if r.Refs["refs/heads/autofix/rem-1"] != theirs {
		t.Error("someone else's branch was moved")
	}
	if n := f.Count("PATCH /repos/{owner}/{repo}/git/refs/{ref...}") + f.Count("POST /repos/{owner}/{repo}/pulls"); n != 0 {
		t.Errorf("%d writes to a foreign branch or pull request", n)
	}
}

func TestOpenChangeMovesOurOlderCommit(t *testing.T) {
	f := newFake(t, "")
	c := tokenClient(t, f)
	r := fakeRepo(f)
	older := r.AddCommit(map[string]string{"main.go": "package main // first attempt\n"}, []string{baseSHA(f)}, "Fix the build\n\nRemediation-Id: rem-1\n")
	r.Refs["refs/heads/autofix/rem-1"] = older

	pr, err := c.OpenChange(context.Background(), changeRequest(f))
	if err != nil {
		t.Fatal(err)
	}
	if pr.HeadSHA == older || r.Refs["refs/heads/autofix/rem-1"] != pr.HeadSHA {
		t.Errorf("branch not moved: head %s, result %+v", r.Refs["refs/heads/autofix/rem-1"], pr)
	}
	if n := f.Count("PATCH /repos/{owner}/{repo}/git/refs/{ref...}"); n != 1 {
		t.Errorf("%d ref updates, want 1 (forced)", n)
	}
	if body, _, _ := r.File(pr.HeadSHA, "main.go"); body != "package main\n\nfunc main() {}\n" {
		t.Errorf("main.go on the branch: %q", body)
	}
}

// Our change already on the branch with other dates (a retry with a new
// CommitTime): the same tree on the same parent is reused, not rewritten.
func TestOpenChangeReusesIdenticalChange(t *testing.T) {
	f := newFake(t, "")
	c := tokenClient(t, f)
	first, err := c.OpenChange(context.Background(), changeRequest(f))
	if err != nil {
		t.Fatal(err)
	}
	req := changeRequest(f)
	req.CommitTime = req.CommitTime.Add(time.Hour)
	pr, err := c.OpenChange(context.Background(), req)
	if err != nil || pr.HeadSHA != first.HeadSHA || f.Count("PATCH /repos/{owner}/{repo}/git/refs/{ref...}") != 0 {
		t.Errorf("identical change: %+v, %v", pr, err)
	}
}

func TestOpenChangeRaces(t *testing.T) {
	t.Run("reference already exists", func(t *testing.T) {
		clean := newFake(t, "")
		want, err := tokenClient(t, clean).OpenChange(context.Background(), changeRequest(clean))
		if err != nil {
			t.Fatal(err)
		}
		f := newFake(t, "")
		c := tokenClient(t, f)
		// A concurrent run creates the branch between our lookup and our create.
		f.Before["POST /repos/{owner}/{repo}/git/refs"] = func() { fakeRepo(f).Refs["refs/heads/autofix/rem-1"] = want.HeadSHA }
		pr, err := c.OpenChange(context.Background(), changeRequest(f))
		if err != nil || pr.HeadSHA != want.HeadSHA || !pr.Created {
			t.Fatalf("%+v, %v", pr, err)
		}
		checkConverged(t, f, want.HeadSHA)
	})
	t.Run("a pull request already exists", func(t *testing.T) {
		f := newFake(t, "")
		c := tokenClient(t, f)
		f.Before["POST /repos/{owner}/{repo}/pulls"] = func() {
			r := fakeRepo(f)
			r.Pulls = append(r.Pulls, &githubtest.Pull{Number: 1, Title: "Fix the build", Body: "Automated fix for rem-1.", Head: "autofix/rem-1", Base: "trunk", State: "open", Draft: true})
		}
		pr, err := c.OpenChange(context.Background(), changeRequest(f))
		if err != nil || pr.Created || pr.Number != 1 {
			t.Fatalf("%+v, %v", pr, err)
		}
		checkConverged(t, f, pr.HeadSHA)
	})
}

func TestOpenChangeRefusedReviewer(t *testing.T) {
	f := newFake(t, "")
	c := tokenClient(t, f)
	req := changeRequest(f)
	req.Reviewers = []string{"alice", "mallory", "bob"}
	pr, err := c.OpenChange(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pr.UnrequestedReviewers, []string{"mallory"}) {
		t.Errorf("unrequested: %q", pr.UnrequestedReviewers)
	}
	if got := fakeRepo(f).Pulls[0].Reviewers; !reflect.DeepEqual(got, []string{"alice", "bob"}) {
		t.Errorf("requested: %q", got)
	}
}

func TestOpenChangeValidates(t *testing.T) {
	f := newFake(t, "")
	c := tokenClient(t, f)
	for name, mutate := range map[string]func(*ChangeRequest){
		"no marker in message": func(r *ChangeRequest) { r.Message = "Fix\n\nRemediation-Id: rem-10\n" },
		"marker not a line":    func(r *ChangeRequest) { r.Message = "Fix (Remediation-Id: rem-1)" },
		"short base sha":       func(r *ChangeRequest) { r.BaseSHA = r.BaseSHA[:7] },
		"bad branch":           func(r *ChangeRequest) { r.Branch = "autofix/../x" },
		"escaping path":        func(r *ChangeRequest) { r.Files[0].Path = "../x" },
		"git dir":              func(r *ChangeRequest) { r.Files[0].Path = ".git/config" },
		"duplicate path":       func(r *ChangeRequest) { r.Files[1].Path = r.Files[0].Path },
		"symlink mode":         func(r *ChangeRequest) { r.Files[0].Mode = "120000" },
		"no time":              func(r *ChangeRequest) { r.CommitTime = time.Time{} },
		"no author":            func(r *ChangeRequest) { r.Author = Signature{} },
		"no files":             func(r *ChangeRequest) { r.Files = nil },
		"onto itself":          func(r *ChangeRequest) { r.BaseBranch = r.Branch },
	} {
		req := changeRequest(f)
		mutate(&req)
		_, err := c.OpenChange(context.Background(), req)
		if e := apiErr(t, err); !errors.Is(err, ErrInvalidRequest) || e.HTTPStatus() != http.StatusBadRequest {
			t.Errorf("%s: %v", name, err)
		}
	}
	if len(f.Calls) != 0 {
		t.Errorf("invalid requests reached GitHub: %q", f.Calls)
	}
}

// App auth: a JWT signed with the App key finds the installation of the
// repository, whose token is minted once and reused.
func TestAppAuth(t *testing.T) {
	for _, prefix := range []string{"", "/api/v3"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			f := newFake(t, prefix)
			key, keyPEM := testKey(t)
			f.AppID, f.AppKey, f.InstallationID, f.InstToken = 4242, &key.PublicKey, 77, "ghs_INSTALLATIONTOKEN"
			c, err := New(Config{APIURL: f.APIURL(), AppID: 4242, PrivateKeyPEM: keyPEM, HTTPClient: httpClient()})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if _, err := c.OpenChange(context.Background(), changeRequest(f)); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, _, err := c.Resolve(context.Background(), testOwner, testRepo, "feature"); err != nil {
				t.Fatal(err)
			}
			if f.TokenPOSTs != 1 || f.InstallGETs != 1 {
				t.Errorf("%d access_tokens POSTs and %d installation lookups, want 1 and 1", f.TokenPOSTs, f.InstallGETs)
			}
			checkConverged(t, f, fakeRepo(f).Refs["refs/heads/autofix/rem-1"])
		})
	}
}

// A refused installation token is a permanent auth failure, and the
// installation is looked up again next time (the App may be reinstalled).
func TestAppTokenRefused(t *testing.T) {
	f := newFake(t, "")
	key, keyPEM := testKey(t)
	f.AppID, f.AppKey, f.InstallationID, f.InstToken = 4242, &key.PublicKey, 77, "ghs_INSTALLATIONTOKEN"
	f.TokenStatus = http.StatusUnauthorized
	c, err := New(Config{APIURL: f.APIURL(), AppID: 4242, PrivateKeyPEM: keyPEM, HTTPClient: httpClient()})
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = c.Resolve(context.Background(), testOwner, testRepo, "")
	if e := apiErr(t, err); e.HTTPStatus() != http.StatusUnauthorized {
		t.Fatalf("refused token: %v", err)
	}
	f.TokenStatus = 0
	if _, _, _, err := c.Resolve(context.Background(), testOwner, testRepo, ""); err != nil {
		t.Fatal(err)
	}
	if f.InstallGETs != 2 || f.TokenPOSTs != 2 {
		t.Errorf("%d lookups, %d token POSTs; want 2 and 2", f.InstallGETs, f.TokenPOSTs)
	}
}

// The mapping the shared classifier relies on: a rate limit is 429 with the
// delay GitHub asked for, whatever status carried it.
func TestErrorMapping(t *testing.T) {
	reset := time.Now().Add(2 * time.Minute).Unix()
	for _, tc := range []struct {
		name        string
		status      int
		header      map[string]string
		body        string
		wantStatus  int
		minWait     time.Duration
		maxWait     time.Duration
		rateLimited bool
	}{
		{name: "401", status: 401, body: `{"message":"Bad credentials"}`, wantStatus: 401},
		{name: "403 plain", status: 403, body: `{"message":"Resource not accessible by integration"}`, wantStatus: 403},
		{name: "403 primary rate limit", status: 403,
			header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "5000", "X-RateLimit-Reset": strconv.FormatInt(reset, 10)},
			body:   `{"message":"API rate limit exceeded for installation ID 77."}`, wantStatus: 429, minWait: 100 * time.Second, maxWait: 121 * time.Second, rateLimited: true},
		{name: "429 primary rate limit", status: 429,
			header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": strconv.FormatInt(reset, 10)},
			body:   `{"message":"API rate limit exceeded"}`, wantStatus: 429, minWait: 100 * time.Second, maxWait: 121 * time.Second, rateLimited: true},
		{name: "429 Retry-After", status: 429, header: map[string]string{"Retry-After": "30"},
			body: `{"message":"You have exceeded a secondary rate limit."}`, wantStatus: 429, minWait: 30 * time.Second, maxWait: 30 * time.Second, rateLimited: true},
		{name: "403 secondary", status: 403, header: map[string]string{"Retry-After": "45"},
			body:       `{"message":"You have exceeded a secondary rate limit.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}`,
			wantStatus: 429, minWait: 45 * time.Second, maxWait: 45 * time.Second, rateLimited: true},
		{name: "403 secondary without delay", status: 403,
			body:       `{"message":"You have exceeded a secondary rate limit.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}`,
			wantStatus: 429, minWait: time.Minute, maxWait: time.Minute, rateLimited: true},
		{name: "reset far away is capped", status: 403,
			header:     map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": strconv.FormatInt(time.Now().Add(5*time.Hour).Unix(), 10)},
			body:       `{"message":"API rate limit exceeded"}`,
			wantStatus: 429, minWait: time.Hour, maxWait: time.Hour, rateLimited: true},
		{name: "404", status: 404, body: `{"message":"Not Found"}`, wantStatus: 404},
		{name: "409", status: 409, body: `{"message":"Git Repository is empty."}`, wantStatus: 409},
		{name: "422", status: 422, body: `{"message":"Validation Failed","errors":[{"resource":"Repository","code":"invalid","field":"name"}]}`, wantStatus: 422},
		{name: "500", status: 500, body: `{"message":"Server Error"}`, wantStatus: 500},
		{name: "502", status: 502, body: `<html>Bad Gateway</html>`, wantStatus: 502},
		{name: "503 Retry-After", status: 503, header: map[string]string{"Retry-After": "20"}, body: `unavailable`, wantStatus: 503, minWait: 20 * time.Second, maxWait: 20 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			c, err := New(Config{APIURL: srv.URL, Token: testToken, HTTPClient: httpClient()})
			if err != nil {
				t.Fatal(err)
			}
			_, _, _, err = c.Resolve(context.Background(), testOwner, testRepo, "")
			e := apiErr(t, err)
			if e.HTTPStatus() != tc.wantStatus || e.Status != tc.status || e.RateLimited != tc.rateLimited {
				t.Errorf("HTTPStatus %d, Status %d, RateLimited %v; want %d, %d, %v (%v)", e.HTTPStatus(), e.Status, e.RateLimited, tc.wantStatus, tc.status, tc.rateLimited, err)
			}
			if d := e.RetryAfterDelay(); d < tc.minWait || d > tc.maxWait {
				t.Errorf("RetryAfterDelay %s, want [%s, %s]", d, tc.minWait, tc.maxWait)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("the error carries the token: %v", err)
			}
		})
	}
}

func TestNetworkErrorsAreNotAPIErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := New(Config{APIURL: url, Token: testToken, HTTPClient: httpClient()})
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = c.Resolve(context.Background(), testOwner, testRepo, "")
	var e *APIError
	if err == nil || errors.As(err, &e) || strings.Contains(err.Error(), testToken) {
		t.Errorf("network failure: %v", err)
	}
}

// A redirect away from the API host must not carry the token along.
func TestAPIRedirectStaysOnHost(t *testing.T) {
	var leaked []string
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = append(leaked, r.Header.Get("Authorization"))
	}))
	defer evil.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c, err := New(Config{APIURL: srv.URL, Token: testToken, HTTPClient: httpClient()})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := c.Resolve(context.Background(), testOwner, testRepo, ""); err == nil {
		t.Error("followed a cross-host redirect")
	}
	if len(leaked) != 0 {
		t.Errorf("the other host saw %q", leaked)
	}
}

const compareCall = "GET /repos/{owner}/{repo}/compare/{basehead...}"

func TestContains(t *testing.T) {
	f := newFake(t, "")
	c := tokenClient(t, f)
	ctx := context.Background()
	r := fakeRepo(f)
	base, feature := baseSHA(f), r.Refs["refs/heads/feature"]
	next := r.AddCommit(map[string]string{"main.go": "package main // next\n"}, []string{base}, "next on trunk")
	r.Refs["refs/heads/trunk"] = next
	r.Refs["refs/heads/release/1.x"] = base
	// A pull request's head from a fork: reachable from refs/pull/7/head only.
	forked := r.AddCommit(map[string]string{"main.go": "package main // fork\n"}, []string{base}, "from a fork")
	r.Refs["refs/pull/7/head"] = forked
	unrelated := r.AddCommit(map[string]string{"x": "x\n"}, nil, "an orphan root")
	r.Refs["refs/heads/orphan"] = unrelated

	for _, tc := range []struct {
		name, branch, sha string
		want              bool
	}{
		{"head", "trunk", next, true},
		{"ancestor", "trunk", base, true},
		{"full ref name", "refs/heads/trunk", base, true},
		{"upper-case sha", "trunk", strings.ToUpper(base), true},
		{"branch with a slash", "release/1.x", base, true},
		{"descendant", "release/1.x", next, false},
		{"diverged", "trunk", feature, false},
		{"pull request head only", "trunk", forked, false},
		{"no common ancestor", "trunk", unrelated, false},
		{"unknown branch", "nope", base, false},
		{"unknown sha", "trunk", strings.Repeat("0", 40), false},
	} {
		got, err := c.Contains(ctx, testOwner, testRepo, tc.branch, tc.sha)
		if err != nil || got != tc.want {
			t.Errorf("%s: Contains(%q, %s) = %v, %v; want %v", tc.name, tc.branch, tc.sha, got, err, tc.want)
		}
	}
	if n := f.Count(compareCall); n != 11 {
		t.Errorf("%d compare requests, want one per call", n)
	}
	if got, err := c.Contains(ctx, testOwner, "missing", "trunk", base); err != nil || got {
		t.Errorf("missing repository: %v, %v", got, err)
	}
	for _, tc := range [][2]string{{"trunk", base[:7]}, {"trunk", "trunk"}, {"a..b", base}, {"", base}, {"x y", base}} {
		if _, err := c.Contains(ctx, testOwner, testRepo, tc[0], tc[1]); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("Contains(%q, %q) = %v, want ErrInvalidRequest", tc[0], tc[1], err)
		}
	}
	if n := f.Count(compareCall); n != 12 {
		t.Errorf("invalid requests reached GitHub: %d compare requests", n)
	}
}

// Failures other than 404 are errors, mapped like every other call.
func TestContainsErrors(t *testing.T) {
	for _, tc := range []struct {
		status      int
		header      map[string]string
		wantStatus  int
		rateLimited bool
	}{
		{status: 401, wantStatus: 401},
		{status: 403, header: map[string]string{"Retry-After": "30"}, wantStatus: 429, rateLimited: true},
		{status: 500, wantStatus: 500},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for k, v := range tc.header {
				w.Header().Set(k, v)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tc.status)
			_, _ = io.WriteString(w, `{"message":"no"}`)
		}))
		c, err := New(Config{APIURL: srv.URL, Token: testToken, HTTPClient: httpClient()})
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Contains(context.Background(), testOwner, testRepo, "trunk", strings.Repeat("a", 40))
		srv.Close()
		if got {
			t.Errorf("%d: contained", tc.status)
		}
		if e := apiErr(t, err); e.HTTPStatus() != tc.wantStatus || e.RateLimited != tc.rateLimited {
			t.Errorf("%d: %v", tc.status, err)
		}
	}
	// A comparison status GitHub does not document is not an answer.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"sideways"}`)
	}))
	defer srv.Close()
	c, err := New(Config{APIURL: srv.URL, Token: testToken, HTTPClient: httpClient()})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Contains(context.Background(), testOwner, testRepo, "trunk", strings.Repeat("a", 40)); err == nil || got {
		t.Errorf("unknown status: %v, %v", got, err)
	}
}

const treeCall = "GET /repos/{owner}/{repo}/git/trees/{sha}"

// blobFixture commits, on top of trunk, nested files, a symbolic link and
// a submodule, and returns the commit.
func blobFixture(f *githubtest.Server) string {
	r := fakeRepo(f)
	sha := r.AddCommit(map[string]string{
		"pkg/util/util.go": "package util\n",
		"pkg/doc.md":       "# pkg\n",
		"empty":            "",
	}, []string{baseSHA(f)}, "nested files")
	entries := map[string]githubtest.Entry{}
	for p, e := range r.Trees[r.Commits[sha].Tree] {
		entries[p] = e
	}
	entries["link"] = githubtest.Entry{Mode: "120000", SHA: r.PutBlob([]byte("README.md"))}
	entries["deps/lib"] = githubtest.Entry{Mode: "160000", SHA: baseSHA(f)}
	entries["bin/run"] = githubtest.Entry{Mode: "100755", SHA: r.PutBlob([]byte("#!/bin/sh\n"))}
	sig := githubtest.Sig{Name: "Dev", Email: "dev@example.com", Date: "2024-01-02T00:00:00Z"}
	return r.PutCommit(githubtest.Commit{Tree: r.PutTree(entries), Parents: []string{sha}, Message: "links", Author: sig, Committer: sig})
}

func TestBlobIDs(t *testing.T) {
	f := newFake(t, "")
	c := tokenClient(t, f)
	ctx := context.Background()
	sha := blobFixture(f)

	paths := []string{"README.md", "pkg/util/util.go", "pkg/doc.md", "bin/run", "empty", "README.md",
		"missing.txt", "pkg/missing.go", "pkg/util/util.go/x", "nodir/x", "deps/lib/x"}
	ids, err := c.BlobIDs(ctx, testOwner, testRepo, strings.ToUpper(sha), paths)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"README.md":        forgetest.BlobID("# widgets\n"),
		"pkg/util/util.go": forgetest.BlobID("package util\n"),
		"pkg/doc.md":       forgetest.BlobID("# pkg\n"),
		"bin/run":          forgetest.BlobID("#!/bin/sh\n"),
		"empty":            forgetest.BlobID(""),
	}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("BlobIDs = %v, want %v", ids, want)
	}
	// The commit once, then each directory on the way once: the root, bin,
	// deps, pkg and pkg/util (nodir does not exist).
	if n, m := f.Count("GET /repos/{owner}/{repo}/git/commits/{sha}"), f.Count(treeCall); n != 1 || m != 5 {
		t.Errorf("%d commit and %d tree requests, want 1 and 5", n, m)
	}
	// At an older commit a path may hold other content, or nothing.
	ids, err = c.BlobIDs(ctx, testOwner, testRepo, baseSHA(f), []string{"README.md", "pkg/doc.md", "old.txt"})
	if err != nil || len(ids) != 2 || ids["README.md"] != forgetest.BlobID("# widgets\n") || ids["old.txt"] != forgetest.BlobID("obsolete\n") {
		t.Errorf("at the base: %v, %v", ids, err)
	}

	for p, kind := range map[string]string{"pkg": "directory", "pkg/util": "directory", "link": "symbolic link", "deps/lib": "submodule"} {
		_, err := c.BlobIDs(ctx, testOwner, testRepo, sha, []string{"README.md", p})
		e := apiErr(t, err)
		if e.HTTPStatus() != http.StatusConflict || !errors.Is(err, ErrNotRegularFile) || !strings.Contains(err.Error(), kind) {
			t.Errorf("%s: %v", p, err)
		}
	}

	_, err = c.BlobIDs(ctx, testOwner, testRepo, strings.Repeat("1", 40), []string{"README.md"})
	if e := apiErr(t, err); e.HTTPStatus() != http.StatusNotFound {
		t.Errorf("unknown commit: %v", err)
	}
	// A tree's sha is not a commit.
	_, err = c.BlobIDs(ctx, testOwner, testRepo, fakeRepo(f).Commits[sha].Tree, []string{"README.md"})
	if e := apiErr(t, err); e.HTTPStatus() != http.StatusNotFound {
		t.Errorf("a tree sha: %v", err)
	}

	calls := len(f.Calls)
	if ids, err := c.BlobIDs(ctx, testOwner, testRepo, sha, nil); err != nil || ids == nil || len(ids) != 0 {
		t.Errorf("no paths: %v, %v", ids, err)
	}
	many := make([]string, maxBlobPaths+1)
	for i := range many {
		many[i] = fmt.Sprintf("f%d", i)
	}
	for name, ps := range map[string][]string{
		"too many": many, "empty": {""}, "absolute": {"/etc/passwd"}, "dot-dot": {"../x"}, "inner dot-dot": {"a/../b"},
		"dot": {"."}, "double slash": {"a//b"}, "trailing slash": {"pkg/"}, "NUL": {"a\x00b"},
	} {
		if _, err := c.BlobIDs(ctx, testOwner, testRepo, sha, ps); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := c.BlobIDs(ctx, testOwner, testRepo, "trunk", []string{"README.md"}); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("a branch name for the commit: %v", err)
	}
	if len(f.Calls) != calls {
		t.Errorf("refused calls reached GitHub: %q", f.Calls[calls:])
	}
	// The bound itself is allowed, and one root listing answers for all.
	before := f.Count(treeCall)
	if ids, err := c.BlobIDs(ctx, testOwner, testRepo, sha, many[:maxBlobPaths]); err != nil || len(ids) != 0 || f.Count(treeCall) != before+1 {
		t.Errorf("%d absent paths: %d ids, %v, %d tree requests", maxBlobPaths, len(ids), err, f.Count(treeCall)-before)
	}
}

// A directory GitHub lists only in part: entries in the part shown are
// found; one that may be in the part left out is a 413, not "absent".
func TestBlobIDsTruncatedTree(t *testing.T) {
	f := newFake(t, "")
	c := tokenClient(t, f)
	sha := blobFixture(f)
	f.TruncatedTrees = true // the root's last entry, "pkg", is left out
	ids, err := c.BlobIDs(context.Background(), testOwner, testRepo, sha, []string{"README.md"})
	if err != nil || ids["README.md"] != forgetest.BlobID("# widgets\n") {
		t.Errorf("listed entry: %v, %v", ids, err)
	}
	_, err = c.BlobIDs(context.Background(), testOwner, testRepo, sha, []string{"pkg/doc.md"})
	if e := apiErr(t, err); e.HTTPStatus() != http.StatusRequestEntityTooLarge || !errors.Is(err, ErrTooLarge) {
		t.Errorf("entry left out: %v", err)
	}
}

func TestBlobIDsStopsWithContext(t *testing.T) {
	f := newFake(t, "")
	c := tokenClient(t, f)
	sha := blobFixture(f)
	ctx, cancel := context.WithCancel(context.Background())
	// Cancelled while the commit is read: no tree is asked for.
	f.Before["GET /repos/{owner}/{repo}/git/commits/{sha}"] = cancel
	_, err := c.BlobIDs(ctx, testOwner, testRepo, sha, []string{"README.md", "pkg/doc.md"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("want context.Canceled, got %v", err)
	}
	if n := f.Count(treeCall); n != 0 {
		t.Errorf("%d tree requests after the cancellation", n)
	}
}

// In App mode a 404 minting the installation token is no answer about the
// commit: it stays an error, and the installation is looked up again.
func TestContainsAppTokenNotFound(t *testing.T) {
	f := newFake(t, "")
	key, keyPEM := testKey(t)
	f.AppID, f.AppKey, f.InstallationID, f.InstToken = 4242, &key.PublicKey, 77, "ghs_INSTALLATIONTOKEN"
	f.TokenStatus = http.StatusNotFound
	c, err := New(Config{APIURL: f.APIURL(), AppID: 4242, PrivateKeyPEM: keyPEM, HTTPClient: httpClient()})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Contains(context.Background(), testOwner, testRepo, "trunk", baseSHA(f))
	if e := apiErr(t, err); got || e.HTTPStatus() != http.StatusNotFound {
		t.Fatalf("refused token: %v, %v", got, err)
	}
	f.TokenStatus = 0
	if got, err := c.Contains(context.Background(), testOwner, testRepo, "trunk", baseSHA(f)); err != nil || !got {
		t.Fatalf("after the refusal: %v, %v", got, err)
	}
	if f.InstallGETs != 2 {
		t.Errorf("%d installation lookups, want 2", f.InstallGETs)
	}
}
