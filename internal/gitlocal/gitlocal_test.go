package gitlocal_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"remediator/internal/gitlocal"
)

func gitEnv() []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.TempDir(),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + os.DevNull,
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_AUTHOR_DATE=@1700000000 +0000", "GIT_COMMITTER_DATE=@1700000000 +0000",
	}
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v in %s: %v\n%s", args, dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

type fixture struct {
	root, repo string
	c1, c2     string
	p          *gitlocal.Provider
}

// newFixture creates <root>/repo with two commits on main; c1 is tagged v1.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	root := t.TempDir()
	repo := filepath.Join(root, "repo")
	if err := os.Mkdir(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "init", "-q", "-b", "main")
	write(t, filepath.Join(repo, "hello.txt"), "hello\n")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "first")
	c1 := git(t, repo, "rev-parse", "HEAD")
	git(t, repo, "tag", "v1")
	write(t, filepath.Join(repo, "hello.txt"), "hello world\n")
	write(t, filepath.Join(repo, "docs", "a.txt"), "a\n")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "second")
	c2 := git(t, repo, "rev-parse", "HEAD")
	p, err := gitlocal.New(gitlocal.Options{Roots: []string{root}, ScratchDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{root: root, repo: repo, c1: c1, c2: c2, p: p}
}

const fixDiff = `diff --git a/hello.txt b/hello.txt
--- a/hello.txt
+++ b/hello.txt
@@ -1 +1 @@
-hello world
+hello fixed world
`

func (f *fixture) request(branch string) gitlocal.ChangeRequest {
	return gitlocal.ChangeRequest{
		Repo:          f.repo,
		Branch:        branch,
		BaseBranch:    "main",
		BaseSHA:       f.c2,
		Patch:         []byte(fixDiff),
		Title:         "Fix greeting",
		Body:          "# Why\n\nThe greeting was wrong.",
		RemediationID: strings.TrimPrefix(branch, "autofix/"),
		CommitTime:    time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),
	}
}

func recordFiles(t *testing.T, repo string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repo, ".git", "remediator", "changes", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func wantKind(t *testing.T, err error, kind gitlocal.Kind) {
	t.Helper()
	if got := gitlocal.KindOf(err); got != kind {
		t.Fatalf("want kind %q, got %q (err=%v)", kind, got, err)
	}
	var e *gitlocal.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not a *gitlocal.Error", err)
	}
}

func TestResolve(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cases := []struct{ repo, ref, want string }{
		{f.repo, "", f.c2},
		{f.repo, "HEAD", f.c2},
		{f.repo, "main", f.c2},
		{f.repo, "refs/heads/main", f.c2},
		{f.repo, "v1", f.c1},
		{f.repo, f.c1, f.c1},
		{f.repo, f.c1[:10], f.c1},
		{f.repo + "/", "main", f.c2},
		{"file://" + f.repo, "v1", f.c1},
		{"file://localhost" + f.repo, "main", f.c2},
	}
	for _, c := range cases {
		path, sha, err := f.p.Resolve(ctx, c.repo, c.ref)
		if err != nil {
			t.Fatalf("Resolve(%q, %q): %v", c.repo, c.ref, err)
		}
		if path != f.repo || sha != c.want {
			t.Errorf("Resolve(%q, %q) = %q, %q; want %q, %q", c.repo, c.ref, path, sha, f.repo, c.want)
		}
	}
	for _, ref := range []string{"nope", "v2", strings.Repeat("0", 40), "main:hello.txt", "--all"} {
		_, _, err := f.p.Resolve(ctx, f.repo, ref)
		wantKind(t, err, gitlocal.KindNotFound)
	}
}

func TestInvalidRepo(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	outside := t.TempDir()
	git(t, outside, "init", "-q", "-b", "main")
	notRepo := filepath.Join(f.root, "plain")
	if err := os.Mkdir(notRepo, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(f.root, "link")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	for _, repo := range []string{
		outside,
		"file://" + outside,
		"repo",
		"./repo",
		f.root + "/plain/../repo",
		f.repo + "\x00",
		"file://" + f.repo + "%00",
		"file://otherhost" + f.repo,
		"https://example.com/x.git",
		notRepo,
		filepath.Join(f.repo, "docs"), // inside a repo, but not its top
		link,                          // symlink escaping the roots
		filepath.Join(f.root, "missing"),
		"",
	} {
		_, _, err := f.p.Resolve(ctx, repo, "")
		wantKind(t, err, gitlocal.KindInvalidRepo)
		if _, err := f.p.Checkout(ctx, repo, f.c1); gitlocal.KindOf(err) != gitlocal.KindInvalidRepo {
			t.Errorf("Checkout(%q): %v", repo, err)
		}
	}

	none, err := gitlocal.New(gitlocal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = none.Resolve(ctx, f.repo, "")
	wantKind(t, err, gitlocal.KindInvalidRepo)

	if _, err := gitlocal.New(gitlocal.Options{Roots: []string{"relative"}}); err == nil {
		t.Error("New accepted a relative root")
	}
}

func TestCheckout(t *testing.T) {
	f := newFixture(t)
	ws, err := f.p.Checkout(context.Background(), f.repo, f.c1)
	if err != nil {
		t.Fatal(err)
	}
	dir, cleanup := ws.Dir, ws.Cleanup
	got, err := os.ReadFile(filepath.Join(dir, "hello.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "hello\n" {
		t.Errorf("hello.txt at c1 = %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "docs")); !os.IsNotExist(err) {
		t.Errorf("docs/ should not exist at c1: %v", err)
	}
	if head := git(t, dir, "rev-parse", "HEAD"); head != f.c1 {
		t.Errorf("HEAD = %s, want %s", head, f.c1)
	}
	if remotes := git(t, dir, "remote"); remotes != "" {
		t.Errorf("scratch clone has remotes: %q", remotes)
	}
	// The user's repository is untouched.
	if got, _ := os.ReadFile(filepath.Join(f.repo, "hello.txt")); string(got) != "hello world\n" {
		t.Errorf("source work tree changed: %q", got)
	}
	cleanup()
	cleanup()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cleanup left %s: %v", dir, err)
	}
	_, err = f.p.Checkout(context.Background(), f.repo, "deadbeef")
	wantKind(t, err, gitlocal.KindNotFound)
}

func TestOpenChange(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	req := f.request("autofix/x")
	ch, err := f.p.OpenChange(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !ch.Created {
		t.Error("first OpenChange: Created=false")
	}
	if ch.Repo != f.repo || ch.Branch != "autofix/x" || ch.BaseSHA != f.c2 || ch.BaseBranch != "main" || ch.RemediationID != "x" {
		t.Errorf("unexpected change %+v", ch)
	}
	if !strings.HasPrefix(ch.ID, "local-") || ch.URL != "file://"+f.repo+"#autofix/x" {
		t.Errorf("ID/URL = %q %q", ch.ID, ch.URL)
	}
	if len(ch.Files) != 1 || ch.Files[0] != "hello.txt" {
		t.Errorf("Files = %v", ch.Files)
	}
	if !ch.CreatedAt.Equal(req.CommitTime) {
		t.Errorf("CreatedAt = %v", ch.CreatedAt)
	}
	if tip := git(t, f.repo, "rev-parse", "refs/heads/autofix/x"); tip != ch.HeadSHA {
		t.Errorf("branch tip %s != HeadSHA %s", tip, ch.HeadSHA)
	}
	if parent := git(t, f.repo, "rev-parse", "autofix/x^"); parent != f.c2 {
		t.Errorf("parent %s != base %s", parent, f.c2)
	}
	if content := git(t, f.repo, "show", "autofix/x:hello.txt"); content != "hello fixed world" {
		t.Errorf("fixed file content %q", content)
	}
	if msg := git(t, f.repo, "log", "-1", "--format=%B", "autofix/x"); msg != "Fix greeting\n\n# Why\n\nThe greeting was wrong." {
		t.Errorf("commit message %q", msg)
	}
	if who := git(t, f.repo, "log", "-1", "--format=%an <%ae> %at %cn %ct", "autofix/x"); who != "remediator <remediator@localhost> 1714564800 remediator 1714564800" {
		t.Errorf("author/committer %q", who)
	}
	if got, _ := os.ReadFile(filepath.Join(f.repo, "hello.txt")); string(got) != "hello world\n" {
		t.Errorf("work tree of the repo changed: %q", got)
	}

	again, err := f.p.OpenChange(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if again.Created {
		t.Error("second OpenChange: Created=true")
	}
	ch.Created = false
	if !equalChange(again, ch) {
		t.Errorf("second OpenChange returned\n%+v\nwant\n%+v", again, ch)
	}
	if branches := git(t, f.repo, "for-each-ref", "--format=%(refname)", "refs/heads/autofix/"); branches != "refs/heads/autofix/x" {
		t.Errorf("branches: %q", branches)
	}
	if recs := recordFiles(t, f.repo); len(recs) != 1 {
		t.Errorf("records: %v", recs)
	}

	// The same change with a diff that differs only textually is still the same change.
	alt := req
	alt.Patch = []byte(strings.Replace(fixDiff, "diff --git a/hello.txt b/hello.txt\n", "", 1))
	if got, err := f.p.OpenChange(ctx, alt); err != nil || got.Created || got.HeadSHA != ch.HeadSHA {
		t.Errorf("textually different diff: %+v, %v", got, err)
	}

	// A different fix for the same branch is a conflict, as is a different base.
	other := req
	other.Patch = []byte(strings.Replace(fixDiff, "hello fixed world", "bye", 1))
	_, err = f.p.OpenChange(ctx, other)
	wantKind(t, err, gitlocal.KindConflict)
	rebased := req
	rebased.BaseSHA = f.c1
	rebased.Patch = []byte("--- a/hello.txt\n+++ b/hello.txt\n@@ -1 +1 @@\n-hello\n+hi\n")
	_, err = f.p.OpenChange(ctx, rebased)
	wantKind(t, err, gitlocal.KindConflict)
}

func equalChange(a, b gitlocal.Change) bool {
	return a.ID == b.ID && a.Repo == b.Repo && a.Branch == b.Branch && a.BaseBranch == b.BaseBranch &&
		a.BaseSHA == b.BaseSHA && a.HeadSHA == b.HeadSHA && a.Title == b.Title && a.Body == b.Body &&
		a.URL == b.URL && a.RemediationID == b.RemediationID && strings.Join(a.Files, ",") == strings.Join(b.Files, ",") &&
		a.CreatedAt.Equal(b.CreatedAt) && a.Created == b.Created
}

func TestOpenChangeConcurrent(t *testing.T) {
	f := newFixture(t)
	req := f.request("autofix/concurrent")
	// Two providers share the repository, as two processes would.
	p2, err := gitlocal.New(gitlocal.Options{Roots: []string{f.root}, ScratchDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	results := make([]gitlocal.Change, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := f.p
			if i%2 == 1 {
				p = p2
			}
			results[i], errs[i] = p.OpenChange(context.Background(), req)
		}()
	}
	wg.Wait()
	created := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		if results[i].Created {
			created++
		}
		if results[i].HeadSHA != results[0].HeadSHA || results[i].ID != results[0].ID {
			t.Errorf("call %d returned a different change: %+v vs %+v", i, results[i], results[0])
		}
	}
	if created != 1 {
		t.Errorf("Created=true %d times, want 1", created)
	}
	if recs := recordFiles(t, f.repo); len(recs) != 1 {
		t.Errorf("records: %v", recs)
	}
}

func TestOpenChangeAdoptsAfterCrash(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	req := f.request("autofix/crash")
	first, err := f.p.OpenChange(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// Simulate a crash between push and record.
	recs := recordFiles(t, f.repo)
	if len(recs) != 1 {
		t.Fatalf("records: %v", recs)
	}
	if err := os.Remove(recs[0]); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := f.p.FindChange(ctx, f.repo, req.Branch); err != nil || ok {
		t.Fatalf("FindChange after crash: ok=%v err=%v", ok, err)
	}
	// The retry runs later, with a different clock; the pushed commit is kept.
	retry := req
	retry.CommitTime = req.CommitTime.Add(time.Hour)
	adopted, err := f.p.OpenChange(ctx, retry)
	if err != nil {
		t.Fatal(err)
	}
	if adopted.HeadSHA != first.HeadSHA || adopted.ID != first.ID || !adopted.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("adopted %+v, first %+v", adopted, first)
	}
	if !adopted.Created {
		t.Error("adopting call should report Created=true: it is the one that completed the change")
	}
	if got, ok, err := f.p.FindChange(ctx, f.repo, req.Branch); err != nil || !ok || got.HeadSHA != first.HeadSHA {
		t.Errorf("FindChange after adoption: %+v %v %v", got, ok, err)
	}

	// A pre-existing branch with other content is never adopted.
	git(t, f.repo, "branch", "autofix/taken", f.c1)
	_, err = f.p.OpenChange(ctx, f.request("autofix/taken"))
	wantKind(t, err, gitlocal.KindConflict)
	if recs := recordFiles(t, f.repo); len(recs) != 1 {
		t.Errorf("records: %v", recs)
	}
}

func TestOpenChangeRejects(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	bad := f.request("autofix/patch")
	bad.Patch = []byte(strings.Replace(fixDiff, "-hello world", "-goodbye world", 1))
	_, err := f.p.OpenChange(ctx, bad)
	wantKind(t, err, gitlocal.KindPatch)

	garbage := f.request("autofix/garbage")
	garbage.Patch = []byte("this is not a diff\n")
	_, err = f.p.OpenChange(ctx, garbage)
	wantKind(t, err, gitlocal.KindPatch)

	escape := f.request("autofix/escape")
	escape.Patch = []byte("--- /dev/null\n+++ b/../../evil.txt\n@@ -0,0 +1 @@\n+evil\n")
	_, err = f.p.OpenChange(ctx, escape)
	wantKind(t, err, gitlocal.KindPatch)

	for _, branch := range []string{"", "a..b", "-x", "autofix/x.lock", "a b", "@{-1}", "HEAD", "x\x00y", "autofix/"} {
		_, err := f.p.OpenChange(ctx, f.request(branch))
		wantKind(t, err, gitlocal.KindInvalidRepo)
	}

	missing := f.request("autofix/missing")
	missing.BaseSHA = strings.Repeat("1", 40)
	_, err = f.p.OpenChange(ctx, missing)
	wantKind(t, err, gitlocal.KindNotFound)

	if out := git(t, f.repo, "for-each-ref", "refs/heads/autofix/"); out != "" {
		t.Errorf("rejected requests created branches: %s", out)
	}
	if recs := recordFiles(t, f.repo); len(recs) != 0 {
		t.Errorf("rejected requests created records: %v", recs)
	}
}

func TestListAndFindChanges(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if list, err := f.p.ListChanges(ctx, f.repo); err != nil || len(list) != 0 {
		t.Fatalf("empty list: %v %v", list, err)
	}
	later := f.request("autofix/a")
	later.CommitTime = time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	earlier := f.request("autofix/b")
	earlier.BaseSHA = f.c1
	earlier.Patch = []byte("--- a/hello.txt\n+++ b/hello.txt\n@@ -1 +1 @@\n-hello\n+hi\n")
	sameTime := f.request("autofix/c")
	sameTime.CommitTime = later.CommitTime
	for _, r := range []gitlocal.ChangeRequest{later, earlier, sameTime} {
		if _, err := f.p.OpenChange(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	list, err := f.p.ListChanges(ctx, "file://"+f.repo)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range list {
		got = append(got, c.Branch)
	}
	if strings.Join(got, " ") != "autofix/b autofix/a autofix/c" {
		t.Errorf("order: %v", got)
	}
	ch, ok, err := f.p.FindChange(ctx, f.repo, "autofix/b")
	if err != nil || !ok || ch.BaseSHA != f.c1 || ch.Created {
		t.Errorf("FindChange: %+v %v %v", ch, ok, err)
	}
	if _, ok, err := f.p.FindChange(ctx, f.repo, "autofix/none"); err != nil || ok {
		t.Errorf("FindChange(missing): %v %v", ok, err)
	}
	_, _, err = f.p.FindChange(ctx, f.repo, "bad..name")
	wantKind(t, err, gitlocal.KindInvalidRepo)
}

func TestBareRepository(t *testing.T) {
	f := newFixture(t)
	bare := filepath.Join(f.root, "bare.git")
	git(t, f.root, "clone", "-q", "--bare", f.repo, bare)
	ctx := context.Background()
	path, sha, err := f.p.Resolve(ctx, bare, "main")
	if err != nil || path != bare || sha != f.c2 {
		t.Fatalf("Resolve(bare) = %q %q %v", path, sha, err)
	}
	req := f.request("autofix/bare")
	req.Repo = bare
	ch, err := f.p.OpenChange(ctx, req)
	if err != nil || !ch.Created {
		t.Fatalf("OpenChange(bare): %+v %v", ch, err)
	}
	if content := git(t, bare, "show", "autofix/bare:hello.txt"); content != "hello fixed world" {
		t.Errorf("content %q", content)
	}
}
