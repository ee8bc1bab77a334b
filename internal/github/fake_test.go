package github

import (
	"strings"
	"testing"

	"remediator/internal/github/githubtest"
)

// The fake GitHub lives in githubtest, so other packages' tests can use it
// too; these helpers seed the repository this package's tests share.

const (
	testOwner = "octo"
	testRepo  = "widgets"
)

// newFake starts the fake with one repository whose default branch is
// "trunk" (never assume "main"), a branch "feature" and a tag "v1.0".
func newFake(t *testing.T, prefix string) *githubtest.Server {
	t.Helper()
	var f *githubtest.Server
	switch prefix {
	case "":
		f = githubtest.New(t)
	case "/api/v3":
		f = githubtest.NewEnterprise(t)
	default:
		t.Fatalf("no fake for prefix %q", prefix)
	}
	r := f.AddRepo(testOwner, testRepo, "trunk")
	r.Collaborators = map[string]bool{"alice": true, "bob": true}
	base := r.AddCommit(map[string]string{"README.md": "# widgets\n", "main.go": "package main\n", "old.txt": "obsolete\n"}, nil, "initial commit")
	feature := r.AddCommit(map[string]string{"README.md": "# widgets, featured\n"}, []string{base}, "add feature")
	r.Refs["refs/heads/trunk"] = base
	r.Refs["refs/heads/feature"] = feature
	r.Refs["refs/tags/v1.0"] = base
	return f
}

// fakeRepo is the shared repository.
func fakeRepo(f *githubtest.Server) *githubtest.Repo { return f.Repo(testOwner, testRepo) }

// baseSHA is the head of its default branch.
func baseSHA(f *githubtest.Server) string { return fakeRepo(f).Refs["refs/heads/trunk"] }

// fakeJob is a job of run 7, attempt 2.
func fakeJob(id int64, name, conclusion string, steps ...[2]string) map[string]any {
	j := githubtest.Job{ID: id, Name: name, Conclusion: conclusion}
	for _, s := range steps {
		j.Steps = append(j.Steps, githubtest.Step{Name: s[0], Conclusion: s[1]})
	}
	return githubtest.JobJSON(testOwner, testRepo, 7, 2, strings.Repeat("a", 40), j)
}
