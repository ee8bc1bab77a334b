// Package forgetest holds what the fake forges of the tests share: the
// archive of a commit as GitHub and GitLab serve it. Only tests import it.
package forgetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"path"
	"sort"
	"time"
)

// Entry is one file of a commit: its git mode ("100644", "100755",
// "120000" for a link, whose Content is the target) and content.
type Entry struct {
	Mode    string
	Content []byte
}

// TarGz is a commit's archive as the forges serve it: a pax global header
// naming the commit (comment), then every file under top (e.g.
// "owner-repo-abc1234/"), with their directories, in path order.
func TarGz(top, comment string, files map[string]Entry) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	mtime := time.Unix(1704067200, 0)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header",
		PAXRecords: map[string]string{"comment": comment}, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	dirs := map[string]bool{}
	writeDir := func(d string) error {
		if dirs[d] {
			return nil
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: top + d, Mode: 0o755, ModTime: mtime})
	}
	if err := writeDir(""); err != nil {
		return nil, err
	}
	for _, p := range paths {
		var parents []string
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			parents = append([]string{d + "/"}, parents...)
		}
		for _, d := range parents {
			if err := writeDir(d); err != nil {
				return nil, err
			}
		}
		e := files[p]
		h := &tar.Header{Name: top + p, ModTime: mtime}
		body := e.Content
		switch e.Mode {
		case "120000":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, string(body), 0o777
			body = nil
		case "100755":
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o755, int64(len(body))
		default:
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
