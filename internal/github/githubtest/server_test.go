package githubtest_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

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
		files := untar(t, rc, "acme-api-"+sha[:7]+"/")
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

// untar reads a gzipped tar whose entries all live under top, as GitHub's
// and GitLab's archives do, and returns its regular files.
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
