package forgetest

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// GitHash is git's object id of an object of kind ("blob", "tree",
// "commit") with body.
func GitHash(kind string, body []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "%s %d\x00", kind, len(body))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// BlobID is what git hash-object prints for content.
func BlobID(content string) string { return GitHash("blob", []byte(content)) }

// Untar reads a gzipped tar whose entries all live under top, as GitHub's
// and GitLab's archives do, and returns its regular files; it closes rc.
func Untar(t testing.TB, rc io.ReadCloser, top string) map[string]string {
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
