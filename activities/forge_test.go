package activities_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"remediator/activities"
	"remediator/internal/forge"
	"remediator/internal/gitlocal"
	"remediator/internal/recipe"
)

// memForge is an in-memory forge: one repository whose files are served as
// an archive, one failed job, and the changes it was asked to open.
type memForge struct {
	sha        string
	files      map[string]string
	archives   int
	opened     []activities.ForgeChange
	offBranch  bool              // the commit is not on any branch (a fork's)
	forgeFiles map[string]string // what the forge holds, when it differs from the archive
	// head and headFiles: the branch moved to head, which holds headFiles.
	head      string
	headFiles map[string]string
}

func (m *memForge) Contains(context.Context, string, string, string) (bool, error) {
	return !m.offBranch, nil
}

func (m *memForge) BlobIDs(_ context.Context, _, sha string, paths []string) (map[string]string, error) {
	files := m.files
	if m.forgeFiles != nil {
		files = m.forgeFiles
	}
	if m.head != "" && sha == m.head {
		files = m.headFiles
	}
	ids := map[string]string{}
	for _, p := range paths {
		if body, ok := files[p]; ok {
			sum := sha1.Sum([]byte(fmt.Sprintf("blob %d\x00%s", len(body), body)))
			ids[p] = hex.EncodeToString(sum[:])
		}
	}
	return ids, nil
}

func (m *memForge) Resolve(_ context.Context, path, ref string) (string, string, bool, error) {
	if m.head != "" && ref == "main" {
		return m.head, "main", true, nil
	}
	return m.sha, "main", ref == "main", nil
}

func (m *memForge) Archive(_ context.Context, path, sha string, _ int64) (io.ReadCloser, error) {
	m.archives++
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range m.files {
		_ = tw.WriteHeader(&tar.Header{Name: "acme-api-" + sha[:7] + "/" + name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
		_, _ = tw.Write([]byte(body))
	}
	_ = tw.Close()
	_ = zw.Close()
	return io.NopCloser(&buf), nil
}

func (m *memForge) FailedJobs(context.Context, string, activities.CIRun, int) ([]activities.FailedJob, error) {
	return []activities.FailedJob{{Name: "lint", Step: "gofmt", Log: "main.go\n##[error]the files above are not gofmt-formatted"}}, nil
}

func (m *memForge) OpenChange(_ context.Context, path string, c activities.ForgeChange) (activities.PullRequest, error) {
	m.opened = append(m.opened, c)
	return activities.PullRequest{ID: "github:" + path + "#1", URL: "https://github.example/" + path + "/pull/1", Branch: c.Branch, Created: true}, nil
}

// TestForgeFixAndChange: a GitHub remediation gets its evidence from the
// failed job's log, its code from the archive (mirrored once), the same
// recipes, and opens exactly the approved files.
func TestForgeFixAndChange(t *testing.T) {
	root := t.TempDir()
	mirrors, err := gitlocal.New(gitlocal.Options{Roots: []string{filepath.Join(root, "forges")}, ScratchDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	mf := &memForge{sha: strings.Repeat("ab", 20), files: map[string]string{
		"go.mod": "module acme/api\n\ngo 1.21\n", "main.go": "package main\nfunc  main() {}\n",
	}}
	f := &activities.Forges{
		Clients: map[forge.Kind]activities.Forge{forge.GitHub: mf}, Hosts: forge.Hosts{GitHub: "github.com"},
		Mirrors: mirrors, MirrorRoot: filepath.Join(root, "forges"),
		Recipes: &recipe.Generator{Checkout: mirrors, Recipes: recipe.Builtin()},
		Labels:  []string{"autofix"}, PublicURL: "https://remediator.example", UIURL: "https://ui.example", Namespace: "default",
	}
	ctx := context.Background()
	// The summary alone matches no recipe: the job log is the evidence.
	fix, err := f.Generate(ctx, activities.GenerateFixInput{RemediationID: "rem-1", Repo: "acme/api", Ref: "main",
		FailureSummary: "GitHub workflow CI failed on main", CIRun: &activities.CIRun{RunID: 7, Attempt: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if fix.Repo != "acme/api" || fix.BaseSHA != mf.sha || fix.BaseBranch != "main" || fix.Recipe != "gofmt" {
		t.Fatalf("fix: %+v", fix)
	}
	pr, err := f.OpenChange(ctx, activities.ChangeSpec{RemediationID: "rem-1", Repo: "acme/api", Branch: "autofix/rem-1",
		BaseBranch: "main", BaseSHA: mf.sha, Patch: fix.Patch, Title: "autofix: gofmt", Body: "Remediation-Id: rem-1\n", CommitTime: time.Unix(1e9, 0)})
	if err != nil || !pr.Created {
		t.Fatalf("open: %+v %v", pr, err)
	}
	if mf.archives != 1 {
		t.Fatalf("the archive must be fetched once and mirrored: %d", mf.archives)
	}
	if len(mf.opened) != 1 || len(mf.opened[0].Files) != 1 || mf.opened[0].Files[0].Path != "main.go" {
		t.Fatalf("opened: %+v", mf.opened)
	}
	c := mf.opened[0]
	gofmt := exec.Command("gofmt", "-l")
	gofmt.Stdin = bytes.NewReader(c.Files[0].Content)
	if out, err := gofmt.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("the committed file is not the fixed one: %q %s %v", c.Files[0].Content, out, err)
	}
	if c.Marker != "Remediation-Id: rem-1" || !strings.Contains(c.Message, c.Marker) || c.BaseSHA != mf.sha ||
		!strings.Contains(c.Body, "https://remediator.example/api/remediations/rem-1") ||
		!strings.Contains(c.Body, "Review: https://remediator.example/ui/remediations/rem-1") ||
		!strings.Contains(c.Body, "https://ui.example/namespaces/default/workflows/rem-1") || c.Labels[0] != "autofix" {
		t.Fatalf("change: %+v", c)
	}
	// The forge's file differs from the archive's (export-subst, LFS): the
	// approved diff would not be what lands, so nothing is opened.
	mf.forgeFiles = map[string]string{"go.mod": mf.files["go.mod"], "main.go": "package main\n// $Format:%H$\nfunc  main() {}\n"}
	if _, err := f.OpenChange(ctx, activities.ChangeSpec{RemediationID: "rem-1", Repo: "acme/api", Branch: "autofix/rem-1",
		BaseBranch: "main", BaseSHA: mf.sha, Patch: fix.Patch, Title: "autofix: gofmt", Body: "Remediation-Id: rem-1\n"}); err == nil || len(mf.opened) != 1 {
		t.Fatalf("a pre-image mismatch must refuse: %v", err)
	}
	// A commit that is not on the branch (a fork's) gets no fix and no change.
	mf.forgeFiles, mf.offBranch = nil, true
	if _, err := f.Generate(ctx, activities.GenerateFixInput{Repo: "acme/api", Ref: "main", FailureSummary: "lint: gofmt check failed"}); err == nil {
		t.Fatal("a commit off the branch must get no fix")
	}
	if _, err := f.OpenChange(ctx, activities.ChangeSpec{RemediationID: "rem-1", Repo: "acme/api", Branch: "autofix/rem-1",
		BaseBranch: "main", BaseSHA: mf.sha, Patch: fix.Patch, Title: "autofix: gofmt", Body: "Remediation-Id: rem-1\n"}); err == nil || len(mf.opened) != 1 {
		t.Fatalf("a commit off the branch must get no change: %v", err)
	}
	// A forge that is not configured is refused as such.
	if _, err := f.Generate(ctx, activities.GenerateFixInput{Repo: "gitlab:group/app", FailureSummary: "x"}); err == nil {
		t.Fatal("an unconfigured forge must be refused")
	}
}

// On a forge the base check compares, at the branch's new head, the blobs of
// the files the approved diff touches with those it was made on.
func TestForgeCheckBase(t *testing.T) {
	root := t.TempDir()
	mirrors, err := gitlocal.New(gitlocal.Options{Roots: []string{filepath.Join(root, "forges")}, ScratchDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	mf := &memForge{sha: strings.Repeat("ab", 20), files: map[string]string{
		"go.mod": "module acme/api\n\ngo 1.21\n", "main.go": "package main\nfunc  main() {}\n",
	}}
	f := &activities.Forges{
		Clients: map[forge.Kind]activities.Forge{forge.GitHub: mf}, Hosts: forge.Hosts{GitHub: "github.com"},
		Mirrors: mirrors, MirrorRoot: filepath.Join(root, "forges"),
		Recipes: &recipe.Generator{Checkout: mirrors, Recipes: recipe.Builtin()},
	}
	ctx := context.Background()
	fix, err := f.Generate(ctx, activities.GenerateFixInput{Repo: "acme/api", Ref: "main", FailureSummary: "lint: gofmt check failed", LogExcerpt: "main.go"})
	if err != nil {
		t.Fatal(err)
	}
	in := activities.CheckBaseInput{Repo: "acme/api", BaseBranch: "main", BaseSHA: fix.BaseSHA, Patch: fix.Patch}
	if bc, err := f.CheckBase(ctx, in); err != nil || bc.Moved {
		t.Fatalf("an unmoved base: %+v %v", bc, err)
	}
	mf.head = strings.Repeat("cd", 20)
	mf.headFiles = map[string]string{"go.mod": "module acme/api\n\ngo 1.22\n", "main.go": mf.files["main.go"]}
	if bc, err := f.CheckBase(ctx, in); err != nil || !bc.Moved || !bc.Applies || bc.Head != mf.head {
		t.Fatalf("moved elsewhere: %+v %v", bc, err)
	}
	mf.headFiles["main.go"] = "package main\n\nfunc  main() { println() }\n"
	if bc, err := f.CheckBase(ctx, in); err != nil || !bc.Moved || bc.Applies {
		t.Fatalf("moved under the diff: %+v %v", bc, err)
	}
}
