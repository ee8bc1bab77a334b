package gitlocal

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"remediator/internal/procgroup"
)

// Limits of an imported archive: a repository larger than this is not one
// the service generates fixes for.
const (
	MaxArchiveFiles = 200_000
	MaxArchiveBytes = 1 << 30
)

// maxArchiveOverhead is what headers, directories and padding may add to
// the file contents of an archive.
const maxArchiveOverhead = 64 << 20

// capReader fails once more than left bytes were read.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, &archiveError{fmt.Sprintf("more than %d bytes once decompressed", MaxArchiveBytes+maxArchiveOverhead)}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// baseRef is where a mirror keeps the commit it made from a forge commit.
func baseRef(forgeSHA string) string { return "refs/remediator/base/" + forgeSHA }

// ImportArchive turns a forge's archive of commit forgeSHA (a tar, gzipped
// when gz) into a commit of the bare mirror repository at dir (created under
// the roots when missing) and returns that commit. Nothing of the archive is
// written to the file system: entries become blobs through git fast-import,
// symbolic links stay links (mode 120000, checked out as plain files), and
// entries that are not files or links, or whose names are absolute, contain
// "..", a ".git" element or control characters, are refused. The result is
// cached per forgeSHA, so re-running costs one rev-parse.
func (p *Provider) ImportArchive(ctx context.Context, dir string, archive io.Reader, gz bool, forgeSHA string) (string, error) {
	const op = "import archive"
	if !isHexSHA(forgeSHA) {
		return "", newErr(KindInvalidRepo, op, "invalid commit id %q", forgeSHA)
	}
	r, err := p.mirror(ctx, op, dir)
	if err != nil {
		return "", err
	}
	if sha, err := p.resolveCommit(ctx, op, r, baseRef(forgeSHA)); err == nil {
		return sha, nil
	}
	if gz {
		zr, err := gzip.NewReader(archive)
		if err != nil {
			return "", newErr(KindInvalidRepo, op, "archive: %v", err)
		}
		defer zr.Close()
		archive = zr
	}
	// Whatever the compression ratio, no more than this is read.
	archive = &capReader{r: archive, left: MaxArchiveBytes + maxArchiveOverhead}
	if err := p.fastImport(ctx, op, r, tar.NewReader(archive), forgeSHA); err != nil {
		return "", err
	}
	return p.resolveCommit(ctx, op, r, baseRef(forgeSHA))
}

// MirrorBase returns the mirror's commit for forgeSHA, if it was imported.
func (p *Provider) MirrorBase(ctx context.Context, dir, forgeSHA string) (string, bool) {
	if !isHexSHA(forgeSHA) {
		return "", false
	}
	r, err := p.openRepo(ctx, "mirror base", dir)
	if err != nil {
		return "", false
	}
	sha, err := p.resolveCommit(ctx, "mirror base", r, baseRef(forgeSHA))
	return sha, err == nil
}

// mirror opens (creating it if needed) the bare repository at dir.
func (p *Provider) mirror(ctx context.Context, op, dir string) (*repoInfo, error) {
	clean, err := cleanAbs(dir)
	if err != nil || !p.inRoots(clean) {
		return nil, newErr(KindInvalidRepo, op, "mirror %s is not under the roots", dir)
	}
	if _, err := os.Stat(filepath.Join(clean, "HEAD")); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(clean), 0o755); err != nil {
			return nil, wrapErr(KindTransient, op, err)
		}
		if _, err := p.run(ctx, filepath.Dir(clean), nil, nil, "init", "--quiet", "--bare", "--template=", "--", clean); err != nil {
			return nil, wrapErr(KindTransient, op, err)
		}
	}
	return p.openRepo(ctx, op, clean)
}

// fastImport streams the archive's files into one commit on baseRef.
func (p *Provider) fastImport(ctx context.Context, op string, r *repoInfo, tr *tar.Reader, forgeSHA string) error {
	cctx, cancel := context.WithTimeout(ctx, defaultCmdTimeout)
	defer cancel()
	args := append(Hardening(), "--git-dir="+r.gitDir, "fast-import", "--quiet", "--done")
	cmd := exec.CommandContext(cctx, p.git, args...)
	cmd.Dir = r.gitDir
	cmd.Env = p.env(nil)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.WaitDelay = 2 * time.Second
	procgroup.Set(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return wrapErr(KindTransient, op, err)
	}
	if err := cmd.Start(); err != nil {
		return wrapErr(KindTransient, op, err)
	}
	w := bufio.NewWriterSize(stdin, 1<<16)
	streamErr := writeImport(cctx, w, tr, forgeSHA, p.authorName, p.authorEmail)
	if streamErr == nil {
		streamErr = w.Flush()
	}
	_ = stdin.Close()
	waitErr := cmd.Wait()
	switch {
	case streamErr != nil:
		var ae *archiveError
		if errors.As(streamErr, &ae) {
			return newErr(KindInvalidRepo, op, "%v", ae)
		}
		return wrapErr(KindTransient, op, streamErr)
	case ctx.Err() != nil:
		return wrapErr(KindTransient, op, ctx.Err())
	case waitErr != nil:
		return wrapErr(KindTransient, op, fmt.Errorf("git fast-import: %w: %s", waitErr, strings.TrimSpace(stderr.String())))
	}
	return nil
}

// archiveError is an archive the service refuses (not a transient failure).
type archiveError struct{ msg string }

func (e *archiveError) Error() string { return "archive: " + e.msg }

func writeImport(ctx context.Context, w *bufio.Writer, tr *tar.Reader, forgeSHA, name, email string) error {
	msg := "remediator: archive of " + forgeSHA + "\n"
	fmt.Fprintf(w, "commit %s\ncommitter %s <%s> 946684800 +0000\ndata %d\n%s", baseRef(forgeSHA), name, email, len(msg), msg)
	files, entries, total := 0, 0, int64(0)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var ae *archiveError
			if errors.As(err, &ae) {
				return ae
			}
			return &archiveError{err.Error()}
		}
		if entries++; entries > 2*MaxArchiveFiles {
			return &archiveError{fmt.Sprintf("more than %d entries", 2*MaxArchiveFiles)}
		}
		var mode string
		switch hdr.Typeflag {
		case tar.TypeReg:
			mode = "100644"
			if hdr.Mode&0o111 != 0 {
				mode = "100755"
			}
		case tar.TypeSymlink:
			mode = "120000"
		case tar.TypeDir, tar.TypeXGlobalHeader, tar.TypeXHeader:
			continue
		default:
			return &archiveError{fmt.Sprintf("entry %q of type %q", hdr.Name, hdr.Typeflag)}
		}
		name, ok := archivePath(hdr.Name)
		if !ok {
			return &archiveError{fmt.Sprintf("entry name %q", hdr.Name)}
		}
		if name == "" {
			continue // the top directory itself
		}
		files++
		if files > MaxArchiveFiles {
			return &archiveError{fmt.Sprintf("more than %d files", MaxArchiveFiles)}
		}
		if mode == "120000" {
			if total += int64(len(hdr.Linkname)); total > MaxArchiveBytes {
				return &archiveError{fmt.Sprintf("more than %d bytes", MaxArchiveBytes)}
			}
			fmt.Fprintf(w, "M %s inline %s\ndata %d\n%s\n", mode, quotePath(name), len(hdr.Linkname), hdr.Linkname)
			continue
		}
		total += hdr.Size
		if hdr.Size < 0 || total > MaxArchiveBytes {
			return &archiveError{fmt.Sprintf("more than %d bytes", MaxArchiveBytes)}
		}
		fmt.Fprintf(w, "M %s inline %s\ndata %d\n", mode, quotePath(name), hdr.Size)
		if _, err := io.CopyN(w, tr, hdr.Size); err != nil {
			return &archiveError{err.Error()}
		}
		w.WriteString("\n")
	}
	w.WriteString("done\n")
	return nil
}

// archivePath drops the archive's top directory ("owner-repo-sha/") and
// refuses names that are not plain relative paths inside the tree.
func archivePath(name string) (string, bool) {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", false
	}
	_, rest, found := strings.Cut(strings.TrimSuffix(name, "/"), "/")
	if !found {
		return "", true
	}
	if rest == "" || path.Clean(rest) != rest || strings.HasPrefix(rest, "../") || rest == ".." {
		return "", false
	}
	for _, el := range strings.Split(rest, "/") {
		if el == ".." || el == "." || strings.EqualFold(el, ".git") {
			return "", false
		}
	}
	return rest, true
}

// FileChange is one file of an applied patch, as a forge's API takes it.
type FileChange struct {
	Path    string
	Content []byte
	Mode    string // "100644" or "100755"
	Delete  bool
	// OldBlob is the git blob id the path held at the base in the mirror
	// ("" when the patch creates it): the forge must hold the same, or the
	// mirror's tree is not the commit's (an archive is not always the tree).
	OldBlob string
}

// MaxChangedBytes bounds the content a change sends to a forge.
const MaxChangedBytes = 64 << 20

// ChangedFiles applies patch to commit base of repo (in a private index) and
// returns the files it changes with their new content: what a forge's API
// needs to commit exactly the approved diff. A patch that creates or
// changes a link or submodule is refused.
func (p *Provider) ChangedFiles(ctx context.Context, repo, base string, patch []byte) ([]FileChange, error) {
	const op = "changed files"
	r, err := p.openRepo(ctx, op, repo)
	if err != nil {
		return nil, err
	}
	full, err := p.resolveCommit(ctx, op, r, base)
	if err != nil {
		return nil, err
	}
	tree, err := p.applyIndex(ctx, op, r, full, patch)
	if err != nil {
		return nil, err
	}
	out, err := p.gitDir(ctx, r, nil, "diff-tree", "-r", "-z", "--no-renames", "--no-abbrev", full, tree)
	if err != nil {
		return nil, wrapErr(KindTransient, op, err)
	}
	fields := strings.Split(string(out), "\x00")
	var changes []FileChange
	var total int
	for i := 0; i+1 < len(fields); i += 2 {
		meta := strings.Fields(strings.TrimPrefix(fields[i], ":"))
		name := fields[i+1]
		if len(meta) < 5 {
			continue
		}
		oldMode, newMode, oldSHA, newSHA, status := meta[0], meta[1], meta[2], meta[3], meta[4]
		oldBlob := oldSHA
		if strings.Trim(oldSHA, "0") == "" {
			oldBlob = ""
		}
		if isLinkOrGitlink(oldMode) || isLinkOrGitlink(newMode) {
			return nil, newErr(KindPatch, op, "the patch changes the link or submodule %s", name)
		}
		if status == "D" {
			changes = append(changes, FileChange{Path: name, Delete: true, OldBlob: oldBlob})
			continue
		}
		content, err := p.gitDir(ctx, r, nil, "cat-file", "blob", newSHA)
		if err != nil {
			return nil, wrapErr(KindTransient, op, err)
		}
		if total += len(content); total > MaxChangedBytes {
			return nil, newErr(KindPatch, op, "the changed files exceed %d bytes", MaxChangedBytes)
		}
		changes = append(changes, FileChange{Path: name, Content: content, Mode: newMode, OldBlob: oldBlob})
	}
	if len(changes) == 0 {
		return nil, newErr(KindPatch, op, "the patch changes nothing")
	}
	return changes, nil
}

func isLinkOrGitlink(mode string) bool { return mode == "120000" || mode == "160000" }

// quotePath is git's C-style quoting for fast-import: control characters
// were refused already, so only the quote and the backslash need escapes.
func quotePath(name string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name) + `"`
}
