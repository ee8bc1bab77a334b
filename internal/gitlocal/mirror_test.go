package gitlocal_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"remediator/internal/gitlocal"
)

type entry struct {
	name, body string
	typ        byte
	mode       int64
}

func archive(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode}
		switch e.typ {
		case tar.TypeReg:
			hdr.Size = int64(len(e.body))
		case tar.TypeSymlink, tar.TypeLink:
			hdr.Linkname = e.body
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const forgeSHA = "0123456789abcdef0123456789abcdef01234567"

// failingReader proves a cached import reads nothing.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("read") }

func TestImportArchiveThenChangedFiles(t *testing.T) {
	root := t.TempDir()
	p, err := gitlocal.New(gitlocal.Options{Roots: []string{root}, ScratchDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mirror := filepath.Join(root, "github", "acme", "api.git")
	data := archive(t,
		entry{name: "acme-api-0123456/", typ: tar.TypeDir},
		entry{name: "acme-api-0123456/main.go", body: "package main\nfunc  main() {}\n", typ: tar.TypeReg},
		entry{name: "acme-api-0123456/tools/run.sh", body: "#!/bin/sh\necho hi\n", typ: tar.TypeReg, mode: 0o755},
		entry{name: "acme-api-0123456/evil.go", body: "/etc/passwd", typ: tar.TypeSymlink},
		entry{name: "acme-api-0123456/quote\"d \\ näme.txt", body: "x\n", typ: tar.TypeReg},
	)
	sha, err := p.ImportArchive(ctx, mirror, bytes.NewReader(data), true, forgeSHA)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := p.ImportArchive(ctx, mirror, failingReader{}, true, forgeSHA); err != nil || again != sha {
		t.Fatalf("a second import of the same commit must be served from the mirror: %s %v", again, err)
	}
	if got, ok := p.MirrorBase(ctx, mirror, forgeSHA); !ok || got != sha {
		t.Fatalf("MirrorBase: %s %v", got, ok)
	}
	ws, err := p.Checkout(ctx, mirror, sha)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Cleanup()
	for name, want := range map[string]string{"main.go": "package main\nfunc  main() {}\n", "evil.go": "/etc/passwd", "quote\"d \\ näme.txt": "x\n"} {
		b, err := os.ReadFile(filepath.Join(ws.Dir, name))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q %v", name, b, err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(ws.Dir, "evil.go")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the link must be a plain file in the checkout: %v %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(ws.Dir, "tools", "run.sh")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("the executable bit must survive: %v %v", fi, err)
	}

	patch := "diff --git a/main.go b/main.go\n--- a/main.go\n+++ b/main.go\n@@ -1,2 +1,2 @@\n package main\n-func  main() {}\n+func main() {}\n" +
		"diff --git a/tools/run.sh b/tools/run.sh\ndeleted file mode 100755\n--- a/tools/run.sh\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-#!/bin/sh\n-echo hi\n"
	changes, err := p.ChangedFiles(ctx, mirror, sha, []byte(patch))
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 || changes[0].Path != "main.go" || string(changes[0].Content) != "package main\nfunc main() {}\n" ||
		changes[0].Mode != "100644" || changes[1].Path != "tools/run.sh" || !changes[1].Delete {
		t.Fatalf("changes: %+v", changes)
	}
	link := "diff --git a/evil.go b/evil.go\nindex 0..0 120000\n--- a/evil.go\n+++ b/evil.go\n@@ -1 +1 @@\n-/etc/passwd\n\\ No newline at end of file\n+/etc/shadow\n\\ No newline at end of file\n"
	if _, err := p.ChangedFiles(ctx, mirror, sha, []byte(link)); err == nil {
		t.Fatal("a patch changing a link must be refused")
	}
}

func TestImportArchiveRefusesHostileEntries(t *testing.T) {
	root := t.TempDir()
	p, err := gitlocal.New(gitlocal.Options{Roots: []string{root}, ScratchDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for name, e := range map[string]entry{
		"dotdot":   {name: "top/../../etc/x", body: "x", typ: tar.TypeReg},
		"absolute": {name: "/etc/x", body: "x", typ: tar.TypeReg},
		"git dir":  {name: "top/.git/config", body: "[core]\n", typ: tar.TypeReg},
		"nested":   {name: "top/sub/.GIT/hooks/x", body: "x", typ: tar.TypeReg},
		"hardlink": {name: "top/h", body: "top/a", typ: tar.TypeLink},
		"device":   {name: "top/dev", typ: tar.TypeChar},
		"newline":  {name: "top/a\nb", body: "x", typ: tar.TypeReg},
	} {
		t.Run(name, func(t *testing.T) {
			mirror := filepath.Join(root, name+".git")
			_, err := p.ImportArchive(context.Background(), mirror, bytes.NewReader(archive(t, e)), true, forgeSHA)
			if gitlocal.KindOf(err) != gitlocal.KindInvalidRepo || !strings.Contains(err.Error(), "archive") {
				t.Fatalf("want an archive refusal, got %v", err)
			}
			if _, ok := p.MirrorBase(context.Background(), mirror, forgeSHA); ok {
				t.Fatal("a refused archive must leave no commit")
			}
		})
	}
	if _, err := p.ImportArchive(context.Background(), filepath.Join(t.TempDir(), "outside.git"), bytes.NewReader(nil), true, forgeSHA); gitlocal.KindOf(err) != gitlocal.KindInvalidRepo {
		t.Fatalf("a mirror outside the roots: %v", err)
	}
}

// TestImportArchiveStopsWithItsContext: a long archive is not read past
// the deadline, and leaves no commit.
func TestImportArchiveStopsWithItsContext(t *testing.T) {
	root := t.TempDir()
	p, err := gitlocal.New(gitlocal.Options{Roots: []string{root}, ScratchDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var entries []entry
	for i := range 2000 {
		entries = append(entries, entry{name: "top/d" + strings.Repeat("x", i%50) + "/", typ: tar.TypeDir})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	mirror := filepath.Join(root, "slow.git")
	if _, err := p.ImportArchive(ctx, mirror, bytes.NewReader(archive(t, entries...)), true, forgeSHA); err == nil {
		t.Fatal("a cancelled import must fail")
	}
	if _, ok := p.MirrorBase(context.Background(), mirror, forgeSHA); ok {
		t.Fatal("a cancelled import must leave no commit")
	}
}
