package gitlocal

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ChangeRequest describes the change request to open once a human approved a
// fix. Branch is the idempotency key: the same Branch always maps to the same
// change.
type ChangeRequest struct {
	Repo, Branch, BaseBranch, BaseSHA, Title, Body string
	RemediationID                                  string
	// Patch is the exact diff to apply, as bytes.
	Patch []byte
	// CommitTime becomes the author and committer date, so that retries of the
	// same request produce the same commit. Zero means "now".
	CommitTime time.Time
}

// Change is the local stand-in for a forge's pull request.
type Change struct {
	ID, Repo, Branch, BaseBranch, BaseSHA, HeadSHA, Title, Body, URL, RemediationID string
	Files                                                                           []string
	CreatedAt                                                                       time.Time
	Created                                                                         bool `json:"-"` // true only when this call created it
}

// record is what is persisted; the diff digest lets a retry prove it asks for
// the same change without re-applying the diff.
type record struct {
	Change
	DiffSHA256 string
}

// OpenChange is safe to retry blindly: an existing change for req.Branch is
// returned (Created=false) if it carries the same base and content, a branch
// left behind by a crash between creating the ref and writing the record is
// adopted, and a branch with different content is a KindConflict. Created is
// true for exactly one call per change: the one that wrote the record
// (including adoption).
//
// Nothing runs in the target repository but plumbing with hardened
// configuration: the tree is built in a private index, the commit written
// with commit-tree, and the branch created with update-ref (create-only). No
// push, so none of the repository's receive hooks or
// core.alternateRefsCommand can run.
func (p *Provider) OpenChange(ctx context.Context, req ChangeRequest) (Change, error) {
	const op = "open change"
	r, err := p.openRepo(ctx, op, req.Repo)
	if err != nil {
		return Change{}, err
	}
	if err := p.checkBranch(ctx, op, req.Branch); err != nil {
		return Change{}, err
	}
	if req.BaseBranch != "" {
		if err := p.checkBranch(ctx, op, req.BaseBranch); err != nil {
			return Change{}, err
		}
	}
	switch {
	case strings.TrimSpace(req.Title) == "" || strings.ContainsAny(req.Title, "\x00\r\n"):
		return Change{}, newErr(KindInvalidRepo, op, "title must be a single non-empty line")
	case strings.ContainsRune(req.Body, 0):
		return Change{}, newErr(KindInvalidRepo, op, "body contains NUL")
	case req.BaseSHA == "":
		return Change{}, newErr(KindInvalidRepo, op, "base sha is required")
	case len(bytes.TrimSpace(req.Patch)) == 0:
		return Change{}, newErr(KindPatch, op, "empty diff")
	}
	base, err := p.resolveCommit(ctx, op, r, req.BaseSHA)
	if err != nil {
		return Change{}, err
	}
	digest := sha256Hex(req.Patch)

	if ch, ok, err := p.existing(ctx, op, r, req, base, digest); err != nil || ok {
		return ch, err
	}
	unlock, err := p.lockRepo(ctx, op, r)
	if err != nil {
		return Change{}, err
	}
	defer unlock()
	if ch, ok, err := p.existing(ctx, op, r, req, base, digest); err != nil || ok {
		return ch, err
	}

	tree, err := p.applyIndex(ctx, op, r, base, req.Patch)
	if err != nil {
		return Change{}, err
	}

	var head string
	var createdAt time.Time
	tip, exists, err := p.branchTip(ctx, op, r, req.Branch)
	if err != nil {
		return Change{}, err
	}
	if exists {
		if head, createdAt, err = p.adopt(ctx, op, r, req.Branch, tip, base, tree); err != nil {
			return Change{}, err
		}
	} else {
		when := req.CommitTime
		if when.IsZero() {
			when = time.Now()
		}
		createdAt = time.Unix(when.Unix(), 0).UTC()
		if head, err = p.commit(ctx, op, r, tree, base, req, createdAt); err != nil {
			return Change{}, err
		}
		if cerr := p.createBranch(ctx, op, r, head, req.Branch); cerr != nil {
			// Someone bypassing our lock may have created the branch meanwhile;
			// accept it if it is exactly our change.
			tip, exists, err := p.branchTip(ctx, op, r, req.Branch)
			if err != nil || !exists {
				return Change{}, cerr
			}
			if head, createdAt, err = p.adopt(ctx, op, r, req.Branch, tip, base, tree); err != nil {
				return Change{}, err
			}
		}
	}
	files, err := p.changedFiles(ctx, op, r, base, head)
	if err != nil {
		return Change{}, err
	}
	ch := Change{
		ID:            changeID(r.path, req.Branch),
		Repo:          r.path,
		Branch:        req.Branch,
		BaseBranch:    req.BaseBranch,
		BaseSHA:       base,
		HeadSHA:       head,
		Title:         req.Title,
		Body:          req.Body,
		URL:           changeURL(r.path, req.Branch),
		RemediationID: req.RemediationID,
		Files:         files,
		CreatedAt:     createdAt,
	}
	if err := p.writeRecord(r, record{Change: ch, DiffSHA256: digest}); err != nil {
		return Change{}, wrapErr(KindTransient, op, err)
	}
	ch.Created = true
	return ch, nil
}

// existing returns the recorded change for req.Branch if it is the requested
// one; a record for different content is a conflict.
func (p *Provider) existing(ctx context.Context, op string, r *repoInfo, req ChangeRequest, base, digest string) (Change, bool, error) {
	rec, ok, err := p.readRecord(op, r, req.Branch)
	if err != nil || !ok {
		return Change{}, false, err
	}
	if rec.BaseSHA != base {
		return Change{}, false, newErr(KindConflict, op,
			"change %s for branch %s already exists on base %s, not %s", rec.ID, req.Branch, rec.BaseSHA, base)
	}
	if rec.DiffSHA256 != digest {
		// The diff text differs; it may still produce the same tree (e.g.
		// different context lines), in which case it is the same change.
		tree, err := p.applyIndex(ctx, op, r, base, req.Patch)
		if err != nil {
			if KindOf(err) == KindPatch {
				return Change{}, false, newErr(KindConflict, op,
					"change %s for branch %s already exists with different content", rec.ID, req.Branch)
			}
			return Change{}, false, err
		}
		info, err := p.commitInfo(ctx, op, r, rec.HeadSHA)
		if err != nil || info.tree != tree {
			return Change{}, false, newErr(KindConflict, op,
				"change %s for branch %s already exists with different content", rec.ID, req.Branch)
		}
	}
	ch := rec.Change
	ch.Created = false
	return ch, true, nil
}

// adopt accepts an existing branch only if it is exactly the commit we would
// have made: one parent, the base, and the tree the diff produces.
func (p *Provider) adopt(ctx context.Context, op string, r *repoInfo, branch, tip, base, tree string) (string, time.Time, error) {
	info, err := p.commitInfo(ctx, op, r, tip)
	if err != nil {
		return "", time.Time{}, err
	}
	if len(info.parents) != 1 || info.parents[0] != base || info.tree != tree {
		return "", time.Time{}, newErr(KindConflict, op,
			"branch %s already exists at %s with content other than the requested change", branch, tip)
	}
	return tip, info.committed, nil
}

// applyIndex applies patch on top of base in a private index file (under the
// scratch dir, never in the repository) and returns the resulting tree. The
// blobs and tree it writes land in the repository's object store, which is
// where the commit needs them.
func (p *Provider) applyIndex(ctx context.Context, op string, r *repoInfo, base string, patch []byte) (string, error) {
	tmp, cleanup, err := p.scratchDir(op)
	if err != nil {
		return "", err
	}
	defer cleanup()
	env := []string{"GIT_INDEX_FILE=" + filepath.Join(tmp, "index")}
	if _, err := p.runGitDir(ctx, r, env, nil, "read-tree", base); err != nil {
		return "", wrapErr(KindTransient, op, err)
	}
	if _, err := p.runGitDir(ctx, r, env, patch, "apply", "--cached", "--whitespace=nowarn"); err != nil {
		if ctx.Err() != nil || !isExitError(err) {
			return "", wrapErr(KindTransient, op, err)
		}
		var ge *gitError
		msg := err.Error()
		if errors.As(err, &ge) && ge.stderr != "" {
			msg = ge.stderr
		}
		return "", newErr(KindPatch, op, "diff does not apply to %s: %s", base, msg)
	}
	out, err := p.runGitDir(ctx, r, env, nil, "write-tree")
	if err != nil {
		return "", wrapErr(KindTransient, op, err)
	}
	tree := strings.TrimSpace(string(out))
	baseInfo, err := p.commitInfo(ctx, op, r, base)
	if err != nil {
		return "", err
	}
	if tree == baseInfo.tree {
		return "", newErr(KindPatch, op, "diff applies to %s but changes nothing", base)
	}
	return tree, nil
}

func (p *Provider) commit(ctx context.Context, op string, r *repoInfo, tree, base string, req ChangeRequest, when time.Time) (string, error) {
	msg := req.Title
	if strings.TrimSpace(req.Body) != "" {
		msg += "\n\n" + strings.TrimRight(req.Body, "\n")
	}
	msg += "\n"
	date := fmt.Sprintf("@%d +0000", when.Unix())
	out, err := p.runGitDir(ctx, r, []string{"GIT_AUTHOR_DATE=" + date, "GIT_COMMITTER_DATE=" + date}, []byte(msg),
		"commit-tree", "--no-gpg-sign", "-p", base, tree)
	if err != nil {
		return "", wrapErr(KindTransient, op, err)
	}
	head := strings.TrimSpace(string(out))
	if !isHexSHA(head) {
		return "", newErr(KindTransient, op, "unexpected commit-tree output %q", head)
	}
	return head, nil
}

// createBranch creates the branch only if it does not exist yet (the old
// value is the null id), so it can never overwrite a branch somebody else
// made. The reference-transaction hook does not run (hardening).
func (p *Provider) createBranch(ctx context.Context, op string, r *repoInfo, head, branch string) error {
	_, err := p.gitDir(ctx, r, nil, "update-ref", "-m", "remediator: open change", "refs/heads/"+branch, head, strings.Repeat("0", len(head)))
	return wrapErr(KindTransient, op, err)
}

// IsBranch tells a branch from HEAD, tags and other revisions: only a branch
// can be the base of a change request.
func (p *Provider) IsBranch(ctx context.Context, repo, name string) (bool, error) {
	const op = "is branch"
	r, err := p.openRepo(ctx, op, repo)
	if err != nil {
		return false, err
	}
	_, ok, err := p.branchTip(ctx, op, r, name)
	return ok, err
}

func (p *Provider) branchTip(ctx context.Context, op string, r *repoInfo, branch string) (string, bool, error) {
	out, err := p.gitDir(ctx, r, nil, "rev-parse", "--verify", "--quiet", "--end-of-options", "refs/heads/"+branch+"^{commit}")
	if err != nil {
		var ee interface{ ExitCode() int }
		if ctx.Err() == nil && errors.As(err, &ee) && ee.ExitCode() == 1 {
			return "", false, nil
		}
		return "", false, wrapErr(KindTransient, op, err)
	}
	return strings.TrimSpace(string(out)), true, nil
}

type commitInfo struct {
	tree      string
	parents   []string
	committed time.Time
}

// commitInfo parses the raw commit object so that no repository
// configuration (log formats, signatures) can affect the result.
func (p *Provider) commitInfo(ctx context.Context, op string, r *repoInfo, sha string) (commitInfo, error) {
	out, err := p.gitDir(ctx, r, nil, "cat-file", "commit", sha)
	if err != nil {
		if ctx.Err() == nil && isExitError(err) {
			return commitInfo{}, newErr(KindNotFound, op, "commit %s not found", sha)
		}
		return commitInfo{}, wrapErr(KindTransient, op, err)
	}
	var info commitInfo
	header, _, _ := bytes.Cut(out, []byte("\n\n"))
	for _, line := range strings.Split(string(header), "\n") {
		key, val, _ := strings.Cut(line, " ")
		switch key {
		case "tree":
			info.tree = val
		case "parent":
			info.parents = append(info.parents, val)
		case "committer":
			// "Name <email> 1700000000 +0000"
			fields := strings.Fields(val)
			if len(fields) >= 2 {
				if ts, err := strconv.ParseInt(fields[len(fields)-2], 10, 64); err == nil {
					info.committed = time.Unix(ts, 0).UTC()
				}
			}
		}
	}
	if info.tree == "" {
		return commitInfo{}, newErr(KindTransient, op, "commit %s has no tree", sha)
	}
	return info, nil
}

func (p *Provider) changedFiles(ctx context.Context, op string, r *repoInfo, base, head string) ([]string, error) {
	out, err := p.gitDir(ctx, r, nil, "diff-tree", "-r", "-z", "--name-only", "--no-renames", "--no-commit-id", base, head)
	if err != nil {
		return nil, wrapErr(KindTransient, op, err)
	}
	var files []string
	for _, f := range strings.Split(string(out), "\x00") {
		if f != "" {
			files = append(files, f)
		}
	}
	sort.Strings(files)
	return files, nil
}

// checkBranch delegates to git's own ref-name rules, refusing the
// "@{-N}"-style expansions check-ref-format --branch would perform.
func (p *Provider) checkBranch(ctx context.Context, op, name string) error {
	if name == "" || name == "HEAD" || strings.HasPrefix(name, "-") ||
		strings.ContainsAny(name, "\x00\r\n") || strings.Contains(name, "@{") {
		return newErr(KindInvalidRepo, op, "invalid branch name %q", name)
	}
	out, err := p.run(ctx, string(filepath.Separator), nil, nil, "check-ref-format", "--branch", name)
	if err != nil {
		if ctx.Err() != nil || !isExitError(err) {
			return wrapErr(KindTransient, op, err)
		}
		return newErr(KindInvalidRepo, op, "invalid branch name %q", name)
	}
	if strings.TrimSpace(string(out)) != name {
		return newErr(KindInvalidRepo, op, "invalid branch name %q", name)
	}
	return nil
}

// FindChange lets callers check for an existing change (e.g. after a crash)
// without opening one. A missing change is not an error.
func (p *Provider) FindChange(ctx context.Context, repo, branch string) (Change, bool, error) {
	const op = "find change"
	r, err := p.openRepo(ctx, op, repo)
	if err != nil {
		return Change{}, false, err
	}
	if err := p.checkBranch(ctx, op, branch); err != nil {
		return Change{}, false, err
	}
	rec, ok, err := p.readRecord(op, r, branch)
	if err != nil || !ok {
		return Change{}, false, err
	}
	return rec.Change, true, nil
}

// ListChanges returns every recorded change of the repository in a stable
// order (CreatedAt, then Branch) so listings and tests are deterministic.
func (p *Provider) ListChanges(ctx context.Context, repo string) ([]Change, error) {
	const op = "list changes"
	r, err := p.openRepo(ctx, op, repo)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(r.commonDir)
	if err != nil {
		return nil, wrapErr(KindTransient, op, err)
	}
	defer root.Close()
	dir, err := root.Open(recordsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return []Change{}, nil
	}
	if err != nil {
		return nil, wrapErr(KindTransient, op, err)
	}
	entries, err := dir.ReadDir(-1)
	_ = dir.Close()
	if err != nil {
		return nil, wrapErr(KindTransient, op, err)
	}
	changes := []Change{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		rec, err := loadRecord(op, root, filepath.Join(recordsDir, name))
		if err != nil {
			return nil, err
		}
		changes = append(changes, rec.Change)
	}
	sort.Slice(changes, func(i, j int) bool {
		a, b := changes[i], changes[j]
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.Branch < b.Branch
	})
	return changes, nil
}

// recordsDir is where change records live, relative to the repository's
// common git dir. Every access goes through an os.Root of that dir: a
// repository that makes it (or anything in it) a link leading outside gets
// an error, not a write somewhere else.
var recordsDir = filepath.Join("remediator", "changes")

// branchFileName maps a branch name to a file name injectively ("/" and the
// escape character itself are escaped).
func branchFileName(branch string) string {
	return strings.NewReplacer("%", "%25", "/", "%2F").Replace(branch) + ".json"
}

func (p *Provider) readRecord(op string, r *repoInfo, branch string) (record, bool, error) {
	root, err := os.OpenRoot(r.commonDir)
	if err != nil {
		return record{}, false, wrapErr(KindTransient, op, err)
	}
	defer root.Close()
	rec, err := loadRecord(op, root, filepath.Join(recordsDir, branchFileName(branch)))
	if errors.Is(err, fs.ErrNotExist) {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, err
	}
	return rec, true, nil
}

// maxRecordBytes bounds what is read back from a repository's git dir.
const maxRecordBytes = 1 << 20

func loadRecord(op string, root *os.Root, name string) (record, error) {
	f, err := root.Open(name)
	if err != nil {
		return record{}, wrapErr(KindTransient, op, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRecordBytes+1))
	if err != nil {
		return record{}, wrapErr(KindTransient, op, err)
	}
	if len(data) > maxRecordBytes {
		return record{}, newErr(KindTransient, op, "change record %s is larger than %d bytes", name, maxRecordBytes)
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		return record{}, newErr(KindTransient, op, "corrupt change record %s: %v", name, err)
	}
	return rec, nil
}

// writeRecord is atomic (temp file, fsync, rename) so readers never see a
// half-written record, even across a crash.
func (p *Provider) writeRecord(r *repoInfo, rec record) error {
	root, err := os.OpenRoot(r.commonDir)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.MkdirAll(recordsDir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	tmp := filepath.Join(recordsDir, ".tmp-"+hex.EncodeToString(rnd[:])+".json")
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer root.Remove(tmp)
	if _, err := f.Write(append(data, '\n')); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := root.Rename(tmp, filepath.Join(recordsDir, branchFileName(rec.Branch))); err != nil {
		return err
	}
	if d, err := root.Open(recordsDir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// lockRepo serialises writers of one repository: an in-process lock first
// (cheap, no polling), then a file lock in the git dir for other processes.
func (p *Provider) lockRepo(ctx context.Context, op string, r *repoInfo) (func(), error) {
	lctx, cancel := context.WithTimeout(ctx, lockTimeout)
	defer cancel()
	lockErr := func(err error) error {
		if ctx.Err() != nil {
			return wrapErr(KindTransient, op, ctx.Err())
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return newErr(KindTransient, op, "timed out after %s waiting for the lock of %s", lockTimeout, r.path)
		}
		return wrapErr(KindTransient, op, err)
	}
	unlockMem, err := p.locks.lock(lctx, r.commonDir)
	if err != nil {
		return nil, lockErr(err)
	}
	root, err := os.OpenRoot(r.commonDir)
	if err != nil {
		unlockMem()
		return nil, wrapErr(KindTransient, op, err)
	}
	if err := root.MkdirAll("remediator", 0o755); err != nil {
		_ = root.Close()
		unlockMem()
		return nil, wrapErr(KindTransient, op, err)
	}
	unlockFile, err := lockFile(lctx, root, filepath.Join("remediator", "lock"))
	if err != nil {
		_ = root.Close()
		unlockMem()
		return nil, lockErr(err)
	}
	return func() { unlockFile(); _ = root.Close(); unlockMem() }, nil
}

func sha256Hex[T string | []byte](s T) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func changeID(repoPath, branch string) string {
	return "local-" + sha256Hex(repoPath + "\x00" + branch)[:16]
}

func changeURL(repoPath, branch string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(repoPath), Fragment: branch}).String()
}
