package gitlocal_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"remediator/internal/gitlocal"
)

// countingGit is a git that logs each call to a file, then runs git.
func countingGit(t *testing.T) (bin, log string) {
	t.Helper()
	dir := t.TempDir()
	real, err := execLookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	log = filepath.Join(dir, "calls")
	bin = filepath.Join(dir, "git")
	write(t, bin, "#!/bin/sh\necho x >> "+log+"\nexec "+real+" \"$@\"\n")
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, log
}

func calls(t *testing.T, log string) int {
	b, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// TestCanonicalIsRememberedUntilTheRepositoryChanges: the API canonicalises
// every start; a repository canonicalised a moment ago is answered without
// running git, but links are resolved and the roots checked every time, and
// a changed git dir is asked about again.
func TestCanonicalIsRememberedUntilTheRepositoryChanges(t *testing.T) {
	root := t.TempDir()
	repo := filepath.Join(root, "repo")
	git(t, root, "init", "-q", "repo")
	other := filepath.Join(root, "other")
	git(t, root, "init", "-q", "other")
	bin, log := countingGit(t)
	p, err := gitlocal.New(gitlocal.Options{Roots: []string{root}, ScratchDir: t.TempDir(), GitBinary: bin})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first := 0
	for i := range 3 {
		got, err := p.Canonical(ctx, repo)
		if err != nil || got != repo {
			t.Fatalf("canonical #%d: %q %v", i, got, err)
		}
		if i == 0 {
			first = calls(t, log)
		}
	}
	if first == 0 {
		t.Fatal("the first canonicalisation must ask git")
	}
	if again := calls(t, log); again != first {
		t.Fatalf("later ones within the TTL ran git again: %d calls, then %d", first, again)
	}
	// A link is resolved every time: it leads to the other repository.
	link := filepath.Join(root, "link")
	if err := os.Symlink(repo, link); err != nil {
		t.Fatal(err)
	}
	if got, err := p.Canonical(ctx, link); err != nil || got != repo {
		t.Fatalf("through the link: %q %v", got, err)
	}
	os.Remove(link)
	if err := os.Symlink(other, link); err != nil {
		t.Fatal(err)
	}
	if got, err := p.Canonical(ctx, link); err != nil || got != other {
		t.Fatalf("the swapped link must lead to the other repository: %q %v", got, err)
	}
	// The git dir replaced by a gitfile pointing into the other repository:
	// asked again, and refused.
	if err := os.RemoveAll(filepath.Join(repo, ".git")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(repo, ".git"), "gitdir: "+filepath.Join(other, ".git")+"\n")
	before := calls(t, log)
	if _, err := p.Canonical(ctx, repo); err == nil {
		t.Fatal("a repository whose git dir is another's must be refused, cached or not")
	}
	if calls(t, log) == before {
		t.Fatal("a changed git dir must be asked about again")
	}
}

var execLookPath = exec.LookPath
