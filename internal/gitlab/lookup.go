package gitlab

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"strings"

	gl "gitlab.com/gitlab-org/api/client-go"
)

// maxBlobPaths bounds one BlobIDs call: every path costs a request (two
// when absent), made one after the other.
const maxBlobPaths = 1000

// emptyBlob is git's id of the empty blob, in SHA-1 and SHA-256
// repositories.
var emptyBlob = map[string]bool{
	"e69de29bb2d1d6434b8b29ae775ad8c2e48c5391":                         true,
	"473a0f4c3be8a93681a267e3b1e9a7dcda1185436fe141f7749120a303721813": true,
}

// Contains reports whether commit sha is on branch: the branch's head or
// one of its ancestors, which is when their merge base is sha itself. A
// commit reachable only from other refs (a merge request's
// refs/merge-requests/<iid>/head, a fork) is not. GitLab answers 400 for
// an unknown branch or commit and 404 for histories without a common
// ancestor (and for a project the token cannot see): all of them are
// false, nil. Other failures are *APIError as everywhere else.
//
// GitLab resolves branch as a revision, so a tag of the same name may
// shadow it, as in git; and it splits its refs on commas, so a branch
// name holding one is refused (400) rather than misread.
func (c *Client) Contains(ctx context.Context, project, branch, sha string) (bool, error) {
	const op = "contains"
	switch {
	case project == "":
		return false, &APIError{Status: http.StatusBadRequest, Message: op + ": project is required"}
	case branch == "" || strings.ContainsAny(branch, ", \t\r\n") || strings.HasPrefix(branch, "-"):
		return false, &APIError{Status: http.StatusBadRequest, Message: fmt.Sprintf("%s: %q is not a branch name GitLab can be asked about", op, branch)}
	case !commitIDPattern.MatchString(sha):
		return false, &APIError{Status: http.StatusBadRequest, Message: fmt.Sprintf("%s: %q is not a full commit id", op, sha)}
	}
	sha = strings.ToLower(sha)
	mb, resp, err := c.gl.Repositories.MergeBase(project, &gl.MergeBaseOptions{Ref: &[]string{branch, sha}}, gl.WithContext(ctx))
	if err = c.apiErr("merge base", resp, err); err != nil {
		if isNotFound(err) || hasStatus(err, http.StatusBadRequest) {
			return false, nil
		}
		return false, err
	}
	return mb != nil && strings.EqualFold(mb.ID, sha), nil
}

// BlobIDs maps each of paths to the git blob id it holds at commit sha
// (the hash of "blob <len>\x00<content>", as git hash-object computes
// it), from the files API's X-Gitlab-Blob-Id (a HEAD: no content is
// downloaded). A path absent at that commit is left out of the map. A
// directory or a submodule is an *APIError with status 409, like GitHub's
// client; a symbolic link cannot be told from a file through this API and
// yields the id of the link's own blob. At most maxBlobPaths clean,
// relative paths; an unknown commit is a 404.
func (c *Client) BlobIDs(ctx context.Context, project, sha string, paths []string) (map[string]string, error) {
	const op = "blob ids"
	switch {
	case project == "":
		return nil, &APIError{Status: http.StatusBadRequest, Message: op + ": project is required"}
	case !commitIDPattern.MatchString(sha):
		return nil, &APIError{Status: http.StatusBadRequest, Message: fmt.Sprintf("%s: %q is not a full commit id", op, sha)}
	case len(paths) > maxBlobPaths:
		return nil, &APIError{Status: http.StatusBadRequest, Message: fmt.Sprintf("%s: %d paths; at most %d per call", op, len(paths), maxBlobPaths)}
	}
	for _, p := range paths {
		if !cleanPath(p) {
			return nil, &APIError{Status: http.StatusBadRequest, Message: fmt.Sprintf("%s: %q is not a clean, relative path", op, p)}
		}
	}
	ids := make(map[string]string, len(paths))
	if len(paths) == 0 {
		return ids, nil
	}
	sha = strings.ToLower(sha)
	// A HEAD's 404 has no body: an unknown commit would read as every path
	// absent. Make sure the commit exists first.
	if _, resp, err := c.gl.Commits.GetCommit(project, sha, nil, gl.WithContext(ctx)); err != nil {
		return nil, c.apiErr("get commit", resp, err)
	}
	seen := make(map[string]bool, len(paths))
	for _, p := range paths {
		if seen[p] {
			continue
		}
		seen[p] = true
		if err := ctx.Err(); err != nil {
			return nil, c.apiErr(op, nil, err)
		}
		id, found, err := c.blobID(ctx, project, sha, p)
		if err != nil {
			return nil, err
		}
		if found {
			ids[p] = id
		}
	}
	return ids, nil
}

func (c *Client) blobID(ctx context.Context, project, sha, p string) (string, bool, error) {
	const op = "blob ids"
	meta, resp, err := c.gl.RepositoryFiles.GetFileMetaData(project, p, &gl.GetFileMetaDataOptions{Ref: gl.Ptr(sha)}, gl.WithContext(ctx))
	err = c.apiErr("get file metadata", resp, err)
	if isNotFound(err) {
		// GitLab answers 404 for a directory too: ask its tree API.
		dir, err := c.isDir(ctx, project, sha, p)
		if err != nil || !dir {
			return "", false, err
		}
		return "", false, &APIError{Status: http.StatusConflict, Message: fmt.Sprintf("%s: %q is a directory, not a regular file", op, p)}
	}
	if err != nil {
		return "", false, err
	}
	id := strings.ToLower(meta.BlobID)
	if !commitIDPattern.MatchString(id) {
		return "", false, fmt.Errorf("gitlab: %s: GitLab answered without the blob id of %q", op, p)
	}
	// A submodule comes back as an empty "file" whose id is its commit's.
	if resp.Header.Get("X-Gitlab-Size") == "0" && !emptyBlob[id] {
		return "", false, &APIError{Status: http.StatusConflict, Message: fmt.Sprintf("%s: %q is a submodule, not a regular file", op, p)}
	}
	return id, true, nil
}

// isDir asks for one entry of the tree at p: only a directory has any.
// GitLab answers an absent path with 404 (older versions with an empty
// list).
func (c *Client) isDir(ctx context.Context, project, sha, p string) (bool, error) {
	nodes, resp, err := c.gl.Repositories.ListTree(project, &gl.ListTreeOptions{
		Path: gl.Ptr(p), Ref: gl.Ptr(sha), ListOptions: gl.ListOptions{PerPage: 1},
	}, gl.WithContext(ctx))
	err = c.apiErr("list tree", resp, err)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return len(nodes) > 0, nil
}

// cleanPath accepts what can name a file in a git tree: relative, no empty,
// "." or ".." segments, no NUL.
func cleanPath(p string) bool {
	return p != "" && p != "." && path.Clean(p) == p && !path.IsAbs(p) && p != ".." &&
		!strings.HasPrefix(p, "../") && !strings.ContainsRune(p, 0)
}
