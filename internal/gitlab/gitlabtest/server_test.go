package gitlabtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"remediator/internal/forge/forgetest"
	"remediator/internal/gitlab"
	"remediator/internal/gitlab/gitlabtest"
	"remediator/internal/outbound"
)

// The service's own client, behind the SSRF guard trusting only the
// fake's host:port, reads the seeded project, its archive and the failed
// jobs' traces, and opens a merge request.
func TestServiceClientReadsSeededProject(t *testing.T) {
	f := gitlabtest.New(t)
	sha := f.SeedRepository("team/app", "develop", map[string]string{"main.go": "package main\n", "cmd/x/x.go": "package x\n"})
	f.SeedPipeline(9, []gitlabtest.Job{
		{ID: 1, Name: "build", Stage: "build", Status: "success"},
		{ID: 2, Name: "lint", Stage: "test", Status: "failed"},
	}, map[int64]string{2: "$ gofmt -l .\nmain.go\nERROR: gofmt check failed\n"})
	h, err := outbound.TrustedHost(f.URL())
	if err != nil {
		t.Fatal(err)
	}
	hc := outbound.NewClient(outbound.Options{Policy: outbound.Policy{Trusted: []string{h}}, UserAgent: "remediator"})
	c, err := gitlab.New(gitlab.Config{URL: f.URL(), Token: f.Token, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, def, isBranch, err := c.Resolve(ctx, "team/app", "")
	if err != nil || got != sha || def != "develop" || !isBranch {
		t.Fatalf("Resolve = %s %s %v %v", got, def, isBranch, err)
	}
	rc, err := c.Archive(ctx, "team/app", sha, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	files := forgetest.Untar(t, rc, "app-"+sha+"-"+sha+"/")
	if files["main.go"] != "package main\n" || files["cmd/x/x.go"] != "package x\n" || len(files) != 2 {
		t.Errorf("archive files: %v", files)
	}
	jobs, err := c.FailedJobs(ctx, "team/app", 9, 1000)
	if err != nil || len(jobs) != 1 || jobs[0].Name != "lint" || !strings.Contains(jobs[0].Log, "gofmt check failed") {
		t.Fatalf("FailedJobs = %+v, %v", jobs, err)
	}
	if !f.SawRequest("GET /api/v4/projects/team%2Fapp/jobs/2/trace") {
		t.Errorf("no trace request: %v", f.Requests)
	}
	mr, err := c.OpenChange(ctx, gitlab.ChangeRequest{
		Project: "team/app", Branch: "autofix/rem-1", BaseSHA: sha,
		Files:   []gitlab.FileChange{{Path: "main.go", Content: []byte("package main\n\nfunc main() {}\n")}},
		Message: "fix\n\nRemediation-Id: rem-1\n", Marker: "Remediation-Id: rem-1", Title: "Fix", Labels: []string{"autofix"},
	})
	if err != nil || !mr.Created || mr.BaseBranch != "develop" {
		t.Fatalf("OpenChange = %+v, %v", mr, err)
	}
	mrs := f.MergeRequests()
	if len(mrs) != 1 || mrs[0].Title != "Draft: Fix" || mrs[0].SourceBranch != "autofix/rem-1" || strings.Join(mrs[0].Labels, ",") != "autofix" {
		t.Fatalf("merge requests: %+v", mrs)
	}
	if content, ok := f.FileAt("autofix/rem-1", "main.go"); !ok || content != "package main\n\nfunc main() {}\n" {
		t.Errorf("main.go on the branch: %q %v", content, ok)
	}
	if content, _ := f.FileAt(sha, "cmd/x/x.go"); content != "package x\n" {
		t.Errorf("base file: %q", content)
	}
}

// getJSON sends one API request with the fake's token.
func getJSON(t *testing.T, f *gitlabtest.Server, path string, v any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.URL()+"/api/v4/"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Private-Token", f.Token)
	resp, err := f.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode
}

// merge_base, the repository tree and the files API answer from the
// commit graph and the files, in GitLab's shapes, and the service's client
// reads them.
func TestAncestryAndBlobs(t *testing.T) {
	f := gitlabtest.New(t)
	base := f.SeedRepository("team/app", "main", map[string]string{"main.go": "package main\n", "pkg/util/util.go": "package util\n"})
	head := f.SeedRepository("team/app", "main", map[string]string{"README.md": "# app\n"})
	mr := f.SeedCommit(base, "a merge request from a fork", map[string]*gitlabtest.File{"main.go": {Content: []byte("package main // mr\n")}})
	f.Refs["refs/merge-requests/7/head"] = mr
	orphan := f.SeedCommit("", "orphan", map[string]*gitlabtest.File{"x": {Content: []byte("x\n")}})
	project := url.PathEscape("team/app")

	var commit struct{ ID string }
	var msg struct{ Message string }
	for _, tc := range []struct {
		query, want string
	}{
		{"refs[]=main&refs[]=" + head, head},
		{"refs[]=main&refs[]=" + base, base},
		{"refs[]=main&refs[]=" + mr, base},
		{"refs[]=main&refs[]=refs/merge-requests/7/head", base},
		{"refs[]=main," + base, base}, // GitLab splits on commas
	} {
		commit.ID = ""
		if code := getJSON(t, f, "projects/"+project+"/repository/merge_base?"+tc.query, &commit); code != 200 || commit.ID != tc.want {
			t.Errorf("merge_base?%s = %d %s, want %s", tc.query, code, commit.ID, tc.want)
		}
	}
	if code := getJSON(t, f, "projects/"+project+"/repository/merge_base?refs[]=main&refs[]=nope", &msg); code != 400 || msg.Message != "Could not find ref: nope" {
		t.Errorf("unknown ref: %d %q", code, msg.Message)
	}
	if code := getJSON(t, f, "projects/"+project+"/repository/merge_base?refs[]=main", &msg); code != 400 {
		t.Errorf("one ref: %d %q", code, msg.Message)
	}
	if code := getJSON(t, f, "projects/"+project+"/repository/merge_base?refs[]=main&refs[]="+orphan, &msg); code != 404 || msg.Message != "404 Merge Base Not Found" {
		t.Errorf("no merge base: %d %q", code, msg.Message)
	}

	var tree []struct{ ID, Name, Type, Path, Mode string }
	getJSON(t, f, "projects/"+project+"/repository/tree?ref="+head, &tree)
	if len(tree) != 3 || tree[0].Path != "pkg" || tree[0].Type != "tree" || tree[0].Mode != "040000" ||
		tree[1].Name != "README.md" || tree[1].ID != forgetest.BlobID("# app\n") || tree[1].Mode != "100644" {
		t.Errorf("root tree: %+v", tree)
	}
	getJSON(t, f, "projects/"+project+"/repository/tree?ref="+head+"&path=pkg/util", &tree)
	if len(tree) != 1 || tree[0].Path != "pkg/util/util.go" || tree[0].ID != forgetest.BlobID("package util\n") {
		t.Errorf("pkg/util: %+v", tree)
	}
	if code := getJSON(t, f, "projects/"+project+"/repository/tree?ref="+head+"&path=nope", &msg); code != 404 {
		t.Errorf("absent directory: %d", code)
	}
	var file struct {
		BlobID string `json:"blob_id"`
		Size   int
	}
	getJSON(t, f, "projects/"+project+"/repository/files/"+url.PathEscape("pkg/util/util.go")+"?ref="+head, &file)
	if file.BlobID != forgetest.BlobID("package util\n") || file.Size != len("package util\n") {
		t.Errorf("file: %+v", file)
	}

	h, err := outbound.TrustedHost(f.URL())
	if err != nil {
		t.Fatal(err)
	}
	hc := outbound.NewClient(outbound.Options{Policy: outbound.Policy{Trusted: []string{h}}, UserAgent: "remediator"})
	c, err := gitlab.New(gitlab.Config{URL: f.URL(), Token: f.Token, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for sha, want := range map[string]bool{head: true, base: true, mr: false, orphan: false, strings.Repeat("9", 40): false} {
		if got, err := c.Contains(ctx, "team/app", "main", sha); err != nil || got != want {
			t.Errorf("Contains(main, %s) = %v, %v; want %v", sha, got, err, want)
		}
	}
	if got, err := c.Contains(ctx, "team/app", "nope", base); err != nil || got {
		t.Errorf("unknown branch: %v, %v", got, err)
	}
	ids, err := c.BlobIDs(ctx, "team/app", head, []string{"main.go", "pkg/util/util.go", "README.md", "gone.txt", "pkg/gone.go"})
	if err != nil || len(ids) != 3 || ids["main.go"] != forgetest.BlobID("package main\n") ||
		ids["pkg/util/util.go"] != forgetest.BlobID("package util\n") || ids["README.md"] != forgetest.BlobID("# app\n") {
		t.Errorf("BlobIDs = %v, %v", ids, err)
	}
	if ids, err := c.BlobIDs(ctx, "team/app", base, []string{"README.md"}); err != nil || len(ids) != 0 {
		t.Errorf("README.md before it existed: %v, %v", ids, err)
	}
	_, err = c.BlobIDs(ctx, "team/app", head, []string{"pkg/util"})
	var apiErr *gitlab.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatus() != http.StatusConflict {
		t.Errorf("a directory: %v", err)
	}
}
