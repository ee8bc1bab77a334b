package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v88/github"
)

const (
	// maxBlobPaths bounds one BlobIDs call: every path may cost requests,
	// and they are made one after the other.
	maxBlobPaths = 1000
	// maxTreeReads bounds the directories one BlobIDs call may list (deep
	// paths in many directories), so a call cannot turn into thousands of
	// requests.
	maxTreeReads = 2 * maxBlobPaths
)

// Contains reports whether commit sha is on branch: the branch's head or
// one of its ancestors. It asks GitHub to compare branch...sha: "identical"
// and "behind" mean the branch contains the commit, "ahead" and "diverged"
// that it does not (a commit of a fork or of a pull request's head only,
// say). GitHub answers 404 for an unknown branch or commit and for
// histories without a common ancestor: all of them are false, nil, as is a
// repository a token cannot see (in App mode, a repository no installation
// covers stays a 404 error, as in every other call). Other failures are
// mapped like every other call (*APIError, or a wrapped network error).
//
// As in git, a tag of the same name as the branch may shadow it: GitHub
// resolves the name, not refs/heads/<branch>.
func (c *Client) Contains(ctx context.Context, owner, repo, branch, sha string) (ok bool, err error) {
	const op = "contains"
	if err := checkRepo(op, owner, repo); err != nil {
		return false, err
	}
	branch = strings.TrimPrefix(branch, "refs/heads/")
	if !validRef(branch) {
		return false, invalid(op, "%q is not a valid branch name", branch)
	}
	if !fullSHA.MatchString(sha) {
		return false, invalid(op, "%q is not a full commit sha", sha)
	}
	defer func() { c.forget(owner, repo, err) }()
	g, err := c.forRepo(ctx, owner, repo)
	if err != nil {
		return false, err
	}
	// One commit a page: only the status is read, and a diverged
	// comparison may list hundreds.
	cmp, _, err := g.Repositories.CompareCommits(ctx, owner, repo, branch, strings.ToLower(sha), &gh.ListOptions{PerPage: 1})
	if err != nil {
		if err = wrap("compare commits", err); answeredNotFound(err) {
			return false, nil
		}
		return false, err
	}
	switch s := cmp.GetStatus(); s {
	case "identical", "behind":
		return true, nil
	case "ahead", "diverged":
		return false, nil
	default:
		return false, wrap("compare commits", fmt.Errorf("unexpected comparison status %q", s))
	}
}

// answeredNotFound is a 404 that GitHub gave for the resource itself, not
// one refusing an installation token (which must stay an error, and makes
// forget look the installation up again).
func answeredNotFound(err error) bool {
	var refresh *ghinstallation.HTTPError
	return statusIs(err, http.StatusNotFound) && !errors.As(err, &refresh)
}

// BlobIDs maps each of paths to the git blob id it holds at commit sha
// (the sha1 of "blob <len>\x00<content>", as git hash-object computes it).
// A path absent at that commit is left out of the map. A path holding a
// directory, a symbolic link or a submodule is an *APIError with status
// 409 (ErrNotRegularFile). At most maxBlobPaths paths, each clean and
// relative; an unknown commit is a 404.
//
// The ids come from the Git Trees API, walking only the directories on the
// way to the paths (each listed once, one request after the other): tree
// entries are exact where the contents API is not (it follows symbolic
// links to their targets). A directory too large for GitHub to list whole
// is an *APIError with status 413 (ErrTooLarge) when a path's entry may be
// in the part left out.
func (c *Client) BlobIDs(ctx context.Context, owner, repo, sha string, paths []string) (ids map[string]string, err error) {
	const op = "blob ids"
	if err := checkRepo(op, owner, repo); err != nil {
		return nil, err
	}
	if !fullSHA.MatchString(sha) {
		return nil, invalid(op, "%q is not a full commit sha", sha)
	}
	if len(paths) > maxBlobPaths {
		return nil, invalid(op, "%d paths; at most %d per call", len(paths), maxBlobPaths)
	}
	for _, p := range paths {
		if !cleanPath(p) {
			return nil, invalid(op, "%q is not a clean, relative path", p)
		}
	}
	ids = make(map[string]string, len(paths))
	if len(paths) == 0 {
		return ids, nil
	}
	defer func() { c.forget(owner, repo, err) }()
	g, err := c.forRepo(ctx, owner, repo)
	if err != nil {
		return nil, err
	}
	// The commit, not a tree-ish: a tree or blob sha must not pass for one.
	commit, _, err := g.Git.GetCommit(ctx, owner, repo, strings.ToLower(sha))
	if err != nil {
		return nil, wrap("get commit", err)
	}
	root := commit.GetTree().GetSHA()
	if !fullSHA.MatchString(root) {
		return nil, wrap("get commit", errors.New("GitHub answered without the commit's tree"))
	}
	w := &treeWalk{ctx: ctx, g: g, owner: owner, repo: repo, root: root, dirs: map[string]*dirListing{}}
	for _, p := range paths {
		if _, done := ids[p]; done {
			continue
		}
		id, found, err := w.blob(p)
		if err != nil {
			return nil, err
		}
		if found {
			ids[p] = id
		}
	}
	return ids, nil
}

// cleanPath accepts what can name a file in a git tree: relative, no empty,
// "." or ".." segments, no NUL.
func cleanPath(p string) bool {
	return p != "" && p != "." && path.Clean(p) == p && !path.IsAbs(p) && p != ".." &&
		!strings.HasPrefix(p, "../") && !strings.ContainsRune(p, 0)
}

// treeWalk lists the directories of one commit on demand, each once.
type treeWalk struct {
	ctx         context.Context
	g           *gh.Client
	owner, repo string
	root        string                 // the commit's tree
	dirs        map[string]*dirListing // "" is the root, "a/b" a subdirectory
	reads       int
}

type dirListing struct {
	entries   map[string]*gh.TreeEntry // by name
	truncated bool
}

// blob finds the regular file at p: its blob id, or found false when
// nothing is there (a missing segment, or one that is not a directory).
func (w *treeWalk) blob(p string) (id string, found bool, err error) {
	const op = "blob ids"
	segs := strings.Split(p, "/")
	dir, tree := "", w.root
	for i, name := range segs {
		l, err := w.list(dir, tree)
		if err != nil {
			return "", false, err
		}
		e := l.entries[name]
		if e == nil {
			if l.truncated {
				return "", false, &APIError{
					Op: op, Status: http.StatusRequestEntityTooLarge, Err: ErrTooLarge,
					Message: fmt.Sprintf("directory %q is too large for GitHub to list whole; cannot tell whether %q exists", dir, p),
				}
			}
			return "", false, nil
		}
		if i < len(segs)-1 {
			if e.GetType() != "tree" {
				return "", false, nil // a file (or link, or submodule) on the way: no such path
			}
			dir, tree = path.Join(dir, name), e.GetSHA()
			continue
		}
		switch mode, kind := e.GetMode(), e.GetType(); {
		case kind == "blob" && (mode == "100644" || mode == "100755"):
			id = strings.ToLower(e.GetSHA())
			if !fullSHA.MatchString(id) {
				return "", false, wrap("get tree", fmt.Errorf("GitHub answered without the blob id of %q", p))
			}
			return id, true, nil
		default:
			return "", false, &APIError{
				Op: op, Status: http.StatusConflict, Err: ErrNotRegularFile,
				Message: fmt.Sprintf("%q is %s, not a regular file", p, describeEntry(kind, mode)),
			}
		}
	}
	return "", false, nil // unreachable: segs is never empty
}

func describeEntry(kind, mode string) string {
	switch {
	case kind == "tree":
		return "a directory"
	case kind == "commit":
		return "a submodule"
	case mode == "120000":
		return "a symbolic link"
	}
	return fmt.Sprintf("a %s with mode %s", kind, mode)
}

// list reads one directory's tree (not recursively).
func (w *treeWalk) list(dir, sha string) (*dirListing, error) {
	if l := w.dirs[dir]; l != nil {
		return l, nil
	}
	if err := w.ctx.Err(); err != nil {
		return nil, wrap("get tree", err)
	}
	if w.reads == maxTreeReads {
		return nil, invalid("blob ids", "the paths span more than %d directories", maxTreeReads)
	}
	w.reads++
	t, _, err := w.g.Git.GetTree(w.ctx, w.owner, w.repo, sha, false)
	if err != nil {
		return nil, wrap("get tree", err)
	}
	l := &dirListing{entries: make(map[string]*gh.TreeEntry, len(t.Entries)), truncated: t.GetTruncated()}
	for _, e := range t.Entries {
		if e != nil {
			l.entries[e.GetPath()] = e
		}
	}
	w.dirs[dir] = l
	return l, nil
}
