package github

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"

	gh "github.com/google/go-github/v88/github"
)

// Resolve pins a ref to a commit, so everything after works on one
// immutable snapshot. ref "" means the default branch; a full sha is
// returned as is once GitHub confirms it exists; a branch wins over a tag
// of the same name, as in git. isBranch tells whether ref names a branch
// (a change may then target it).
func (c *Client) Resolve(ctx context.Context, owner, repo, ref string) (sha, defaultBranch string, isBranch bool, err error) {
	const op = "resolve"
	if err := checkRepo(op, owner, repo); err != nil {
		return "", "", false, err
	}
	if ref != "" && !validRef(ref) {
		return "", "", false, invalid(op, "%q is not a valid ref", ref)
	}
	defer func() { c.forget(owner, repo, err) }()
	g, err := c.forRepo(ctx, owner, repo)
	if err != nil {
		return "", "", false, err
	}
	r, _, err := g.Repositories.Get(ctx, owner, repo)
	if err != nil {
		return "", "", false, wrap("get repository", err)
	}
	defaultBranch = r.GetDefaultBranch()

	if fullSHA.MatchString(ref) {
		commit, _, err := g.Git.GetCommit(ctx, owner, repo, ref)
		if err != nil {
			return "", "", false, wrap("get commit", err)
		}
		return strings.ToLower(commit.GetSHA()), defaultBranch, false, nil
	}
	branch, explicit := strings.CutPrefix(ref, "refs/heads/")
	if ref == "" {
		branch = defaultBranch
	}
	head, err := branchHead(ctx, g, owner, repo, branch)
	switch {
	case err == nil:
		return head, defaultBranch, true, nil
	case ref == "" || explicit || !statusIs(err, http.StatusNotFound):
		return "", "", false, err
	}
	// Not a branch: a tag or an abbreviated sha, which GitHub resolves (and
	// peels) itself. It answers 422 when nothing matches.
	sha, _, err = g.Repositories.GetCommitSHA1(ctx, owner, repo, ref, "")
	if err != nil {
		err = wrap("resolve ref", err)
		if statusIs(err, http.StatusUnprocessableEntity) {
			return "", "", false, &APIError{Op: "resolve ref", Status: http.StatusNotFound, Message: "no commit matches " + ref, Err: err}
		}
		return "", "", false, err
	}
	sha = strings.TrimSpace(sha)
	if !fullSHA.MatchString(sha) {
		return "", "", false, wrap("resolve ref", io.ErrUnexpectedEOF)
	}
	return strings.ToLower(sha), defaultBranch, false, nil
}

// branchHead reads refs/heads/<branch>; 404 when there is no such branch.
func branchHead(ctx context.Context, g *gh.Client, owner, repo, branch string) (string, error) {
	ref, _, err := g.Git.GetRef(ctx, owner, repo, "heads/"+branch)
	if err != nil {
		return "", wrap("get branch", err)
	}
	// GetRef is an exact match today, but older servers answered a prefix
	// lookup with the first match: make sure it is this branch.
	if ref.GetRef() != "refs/heads/"+branch || ref.GetObject().GetSHA() == "" {
		return "", &APIError{Op: "get branch", Status: http.StatusNotFound, Message: "no branch " + branch}
	}
	return strings.ToLower(ref.GetObject().GetSHA()), nil
}

// Tarball streams the gzipped tar of a commit. GitHub answers with a
// redirect to codeload; that host is fetched with the caller's client as
// given (it checks the host, and no token goes along). More bytes
// than limit is an *APIError with status 413 (ErrTooLarge), when the length is
// announced or when the excess byte arrives.
func (c *Client) Tarball(ctx context.Context, owner, repo, sha string, limit int64) (rc io.ReadCloser, err error) {
	const op = "tarball"
	if err := checkRepo(op, owner, repo); err != nil {
		return nil, err
	}
	if !fullSHA.MatchString(sha) {
		return nil, invalid(op, "%q is not a full commit sha", sha)
	}
	if limit <= 0 {
		return nil, invalid(op, "the size limit must be positive")
	}
	defer func() { c.forget(owner, repo, err) }()
	g, err := c.forRepo(ctx, owner, repo)
	if err != nil {
		return nil, err
	}
	u, _, err := g.Repositories.GetArchiveLink(ctx, owner, repo, gh.Tarball, &gh.RepositoryContentGetOptions{Ref: sha}, 1)
	if err != nil {
		return nil, wrap("locate tarball", err)
	}
	resp, err := c.get(ctx, "download tarball", u.String(), nil)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > limit {
		resp.Body.Close()
		return nil, tooLarge("download tarball", limit)
	}
	return &capped{rc: resp.Body, left: limit, limit: limit}, nil
}

func tooLarge(op string, limit int64) error {
	return &APIError{Op: op, Status: http.StatusRequestEntityTooLarge, Message: "more than the limit of " + strconv.FormatInt(limit, 10) + " bytes", Err: ErrTooLarge}
}

// capped fails the read that goes past the limit rather than truncating: a cut
// archive would look like a different tree.
type capped struct {
	rc          io.ReadCloser
	left, limit int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, tooLarge("download tarball", c.limit)
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.rc.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n - 1, tooLarge("download tarball", c.limit)
	}
	return n, err
}

func (c *capped) Close() error { return c.rc.Close() }
