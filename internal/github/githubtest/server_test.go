package githubtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"remediator/internal/forge/forgetest"
	"remediator/internal/github"
	"remediator/internal/github/githubtest"
	"remediator/internal/outbound"
)

// guarded is the client the service builds: only the configured base's
// host:port is trusted, nothing else may be dialled.
func guarded(t *testing.T, base string) *http.Client {
	t.Helper()
	h, err := outbound.TrustedHost(base)
	if err != nil {
		t.Fatal(err)
	}
	return outbound.NewClient(outbound.Options{Policy: outbound.Policy{Trusted: []string{h}}, UserAgent: "remediator"})
}

// The service's own client, behind the SSRF guard, reads everything it
// needs from the fake: downloads included, they stay on the API's host.
func TestServiceClientReadsSeededRepository(t *testing.T) {
	for _, enterprise := range []bool{false, true} {
		f := githubtest.New(t)
		if enterprise {
			f = githubtest.NewEnterprise(t)
		}
		f.Token = "ghp_githubtest"
		sha := f.SeedRepository("acme", "api", "trunk", map[string]string{"main.go": "package main\n", "pkg/util.go": "package pkg\n"})
		if len(sha) != 40 {
			t.Fatalf("sha %q", sha)
		}
		f.SeedRun("acme", "api", 77, 2, sha,
			githubtest.Job{ID: 1, Name: "build", Conclusion: "success", Log: "ok\n"},
			githubtest.Job{ID: 2, Name: "lint", Conclusion: "failure", Steps: []githubtest.Step{{Name: "gofmt", Conclusion: "failure"}},
				Log: "main.go\n##[error]gofmt check failed\n"})
		c, err := github.New(github.Config{APIURL: f.APIURL(), Token: f.Token, HTTPClient: guarded(t, f.APIURL())})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		got, def, isBranch, err := c.Resolve(ctx, "acme", "api", "")
		if err != nil || got != sha || def != "trunk" || !isBranch {
			t.Fatalf("Resolve = %s %s %v %v", got, def, isBranch, err)
		}
		rc, err := c.Tarball(ctx, "acme", "api", sha, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		files := forgetest.Untar(t, rc, "acme-api-"+sha[:7]+"/")
		if files["main.go"] != "package main\n" || files["pkg/util.go"] != "package pkg\n" || len(files) != 2 {
			t.Errorf("tarball files: %v", files)
		}
		jobs, err := c.FailedJobs(ctx, "acme", "api", 77, 2, 1000)
		if err != nil || len(jobs) != 1 || jobs[0].Name != "lint" || jobs[0].Step != "gofmt" || !strings.Contains(jobs[0].Log, "gofmt check failed") {
			t.Fatalf("FailedJobs = %+v, %v", jobs, err)
		}
		if _, err := c.FailedJobs(ctx, "acme", "api", 78, 1, 1000); err == nil {
			t.Error("an unknown run must be 404")
		}
		if f.Count("GET /repos/{owner}/{repo}/actions/jobs/{job}/logs") != 1 || len(f.Downloads()) != 2 {
			t.Errorf("log requests %d, downloads %v", f.Count("GET /repos/{owner}/{repo}/actions/jobs/{job}/logs"), f.Downloads())
		}
		for _, a := range f.DownloadAuth {
			if a != "" {
				t.Errorf("a download carried credentials: %q", a)
			}
		}
		if content, ok := f.FileAt("acme", "api", "trunk", "main.go"); !ok || content != "package main\n" {
			t.Errorf("FileAt = %q %v", content, ok)
		}
	}
}

// getJSON sends one API request the way the service's client does.
func getJSON(t *testing.T, f *githubtest.Server, path string, v any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.APIURL()+strings.TrimPrefix(path, "/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "remediator")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("Authorization", "Bearer "+f.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode
}

// The compare and Git Trees endpoints answer from the commit graph and the
// trees, in GitHub's shapes, and the service's client reads them.
func TestAncestryAndBlobs(t *testing.T) {
	f := githubtest.New(t)
	f.Token = "ghp_githubtest"
	base := f.SeedRepository("acme", "api", "main", map[string]string{"main.go": "package main\n", "pkg/util/util.go": "package util\n"})
	head := f.SeedRepository("acme", "api", "main", map[string]string{"README.md": "# api\n"})
	r := f.Repo("acme", "api")
	pull := r.AddCommit(map[string]string{"main.go": "package main // pr\n"}, []string{base}, "a pull request")
	r.Refs["refs/pull/7/head"] = pull

	var cmp struct {
		Status          string
		AheadBy         int                  `json:"ahead_by"`
		BehindBy        int                  `json:"behind_by"`
		MergeBaseCommit struct{ SHA string } `json:"merge_base_commit"`
		Commits         []struct{ SHA string }
		Files           []struct{ Filename, Status string }
	}
	for _, tc := range []struct {
		basehead, status string
		ahead, behind    int
		mergeBase        string
	}{
		{"main..." + head, "identical", 0, 0, head},
		{"main..." + base, "behind", 0, 1, base},
		{base + "...main", "ahead", 1, 0, base},
		{"main..." + pull, "diverged", 1, 1, base},
		{"main...refs/pull/7/head", "diverged", 1, 1, base},
	} {
		cmp.Commits, cmp.Files = nil, nil
		if code := getJSON(t, f, "/repos/acme/api/compare/"+tc.basehead, &cmp); code != http.StatusOK {
			t.Fatalf("%s: %d", tc.basehead, code)
		}
		if cmp.Status != tc.status || cmp.AheadBy != tc.ahead || cmp.BehindBy != tc.behind || cmp.MergeBaseCommit.SHA != tc.mergeBase || len(cmp.Commits) != tc.ahead {
			t.Errorf("%s: %+v", tc.basehead, cmp)
		}
	}
	if len(cmp.Files) != 1 || cmp.Files[0].Filename != "main.go" || cmp.Files[0].Status != "modified" {
		t.Errorf("files of the pull request: %+v", cmp.Files)
	}
	var msg struct{ Message string }
	if code := getJSON(t, f, "/repos/acme/api/compare/nope..."+base, &msg); code != http.StatusNotFound {
		t.Errorf("unknown branch: %d %v", code, msg)
	}

	var tree struct {
		SHA       string
		Truncated bool
		Tree      []struct{ Path, Mode, Type, SHA string }
	}
	getJSON(t, f, "/repos/acme/api/git/trees/"+head, &tree)
	if len(tree.Tree) != 3 || tree.Tree[2].Path != "pkg" || tree.Tree[2].Type != "tree" || tree.Tree[2].Mode != "040000" ||
		tree.Tree[1].SHA != forgetest.BlobID("package main\n") || tree.Tree[1].Mode != "100644" || tree.Truncated {
		t.Fatalf("root tree: %+v", tree)
	}
	pkg := tree.Tree[2].SHA
	getJSON(t, f, "/repos/acme/api/git/trees/"+pkg, &tree)
	if tree.SHA != pkg || len(tree.Tree) != 1 || tree.Tree[0].Path != "util" || tree.Tree[0].Type != "tree" {
		t.Fatalf("pkg tree: %+v", tree)
	}
	getJSON(t, f, "/repos/acme/api/git/trees/"+head+"?recursive=1", &tree)
	if len(tree.Tree) != 5 || tree.Tree[4].Path != "pkg/util/util.go" || tree.Tree[4].SHA != forgetest.BlobID("package util\n") {
		t.Errorf("recursive tree: %+v", tree)
	}

	c, err := github.New(github.Config{APIURL: f.APIURL(), Token: f.Token, HTTPClient: guarded(t, f.APIURL())})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for sha, want := range map[string]bool{head: true, base: true, pull: false, strings.Repeat("9", 40): false} {
		if got, err := c.Contains(ctx, "acme", "api", "main", sha); err != nil || got != want {
			t.Errorf("Contains(main, %s) = %v, %v; want %v", sha, got, err, want)
		}
	}
	if got, err := c.Contains(ctx, "acme", "api", "nope", base); err != nil || got {
		t.Errorf("unknown branch: %v, %v", got, err)
	}
	ids, err := c.BlobIDs(ctx, "acme", "api", head, []string{"main.go", "pkg/util/util.go", "README.md", "gone.txt", "pkg/gone.go"})
	if err != nil || len(ids) != 3 || ids["main.go"] != forgetest.BlobID("package main\n") ||
		ids["pkg/util/util.go"] != forgetest.BlobID("package util\n") || ids["README.md"] != forgetest.BlobID("# api\n") {
		t.Errorf("BlobIDs = %v, %v", ids, err)
	}
	if ids, err := c.BlobIDs(ctx, "acme", "api", base, []string{"README.md"}); err != nil || len(ids) != 0 {
		t.Errorf("README.md before it existed: %v, %v", ids, err)
	}
	_, err = c.BlobIDs(ctx, "acme", "api", head, []string{"pkg/util"})
	var apiErr *github.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatus() != http.StatusConflict || !errors.Is(err, github.ErrNotRegularFile) {
		t.Errorf("a directory: %v", err)
	}
}
