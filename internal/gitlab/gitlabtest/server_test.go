package gitlabtest_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

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
	files := untar(t, rc, "app-"+sha+"-"+sha+"/")
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

func untar(t *testing.T, rc io.ReadCloser, top string) map[string]string {
	t.Helper()
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		rest, ok := strings.CutPrefix(h.Name, top)
		if !ok {
			t.Fatalf("entry %q outside %q", h.Name, top)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			files[rest] = string(b)
		}
	}
}
