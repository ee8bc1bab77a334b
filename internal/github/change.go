package github

import (
	"context"
	"encoding/base64"
	"net/http"
	"path"
	"strings"
	"time"

	gh "github.com/google/go-github/v88/github"
)

// FileChange is one file of the change as it should be after the commit.
type FileChange struct {
	Path    string
	Content []byte
	Mode    string // "100644" or "100755"; "" is 100644
	Delete  bool
}

// Signature names the author and committer of the commit; both are set
// explicitly so GitHub neither fills in the App nor signs the commit with a
// timestamp of its own, either of which would change the commit's sha.
type Signature struct{ Name, Email string }

// ChangeRequest is everything OpenChange needs to produce the same branch,
// commit and pull request however often it runs.
type ChangeRequest struct {
	Owner, Repo string
	Branch      string // "autofix/<remediation id>"
	BaseBranch  string // "" = the repository's default branch
	BaseSHA     string // the commit the fix was made on
	Files       []FileChange
	Message     string // the whole commit message; it must contain Marker as a line
	// Marker identifies our commits for this change (e.g. "Remediation-Id:
	// rem-…"): a branch whose head carries it may be moved, any other
	// branch is someone else's.
	Marker      string
	CommitTime  time.Time // author and committer date, so a re-run makes the same commit
	Author      Signature
	Title, Body string // the pull request's
	Labels      []string
	// Reviewers are users asked to review; ones GitHub refuses come back in
	// PullRequest.UnrequestedReviewers instead of failing the change.
	Reviewers []string
}

// PullRequest is the open pull request carrying the change.
type PullRequest struct {
	Number               int
	URL                  string // the HTML page
	HeadSHA              string
	Branch, BaseBranch   string
	Created              bool // false when an earlier (or concurrent) run opened it
	UnrequestedReviewers []string
}

// OpenChange commits the files on top of BaseSHA with the Git Data API,
// points Branch at the commit and opens a draft pull request, converging on
// one branch, one commit and one pull request whatever step an earlier run
// died at: blobs and trees are content-addressed, the commit's dates are
// fixed, the branch is created or moved only when it is ours, and an open
// pull request for the branch is reused. A branch holding someone else's
// commit fails with status 409 (ErrBranchConflict) and is left untouched.
func (c *Client) OpenChange(ctx context.Context, req ChangeRequest) (pr PullRequest, err error) {
	if err := req.validate(); err != nil {
		return PullRequest{}, err
	}
	defer func() { c.forget(req.Owner, req.Repo, err) }()
	g, err := c.forRepo(ctx, req.Owner, req.Repo)
	if err != nil {
		return PullRequest{}, err
	}
	base := req.BaseBranch
	if base == "" {
		r, _, err := g.Repositories.Get(ctx, req.Owner, req.Repo)
		if err != nil {
			return PullRequest{}, wrap("get repository", err)
		}
		if base = r.GetDefaultBranch(); base == "" {
			return PullRequest{}, &APIError{Op: "get repository", Status: http.StatusConflict, Message: "the repository has no default branch"}
		}
		if base == req.Branch {
			return PullRequest{}, invalid("open change", "the branch is the repository's default branch")
		}
	}
	commit, err := createCommit(ctx, g, req)
	if err != nil {
		return PullRequest{}, err
	}
	head, err := placeBranch(ctx, g, req, commit)
	if err != nil {
		return PullRequest{}, err
	}
	p, created, err := openPull(ctx, g, req, base)
	if err != nil {
		return PullRequest{}, err
	}
	refused, err := decorate(ctx, g, req, p)
	if err != nil {
		return PullRequest{}, err
	}
	return PullRequest{
		Number: p.GetNumber(), URL: p.GetHTMLURL(), HeadSHA: head, Branch: req.Branch,
		BaseBranch: p.GetBase().GetRef(), Created: created, UnrequestedReviewers: refused,
	}, nil
}

// validate refuses what GitHub would refuse anyway, and what would make the
// change impossible to recognise on a re-run (no marker, no fixed author).
func (r *ChangeRequest) validate() error {
	const op = "open change"
	r.BaseSHA = strings.ToLower(r.BaseSHA)
	if err := checkRepo(op, r.Owner, r.Repo); err != nil {
		return err
	}
	switch {
	case !validRef(r.Branch):
		return invalid(op, "%q is not a valid branch name", r.Branch)
	case r.BaseBranch != "" && !validRef(r.BaseBranch):
		return invalid(op, "%q is not a valid base branch name", r.BaseBranch)
	case r.Branch == r.BaseBranch:
		return invalid(op, "the branch and the base branch are the same")
	case !fullSHA.MatchString(r.BaseSHA):
		return invalid(op, "%q is not a full commit sha", r.BaseSHA)
	case len(r.Files) == 0:
		return invalid(op, "no files to commit")
	case strings.TrimSpace(r.Marker) == "" || strings.ContainsAny(r.Marker, "\r\n"):
		return invalid(op, "the marker must be one non-empty line")
	case !hasLine(r.Message, r.Marker):
		return invalid(op, "the commit message does not contain the marker line")
	case r.CommitTime.IsZero():
		return invalid(op, "the commit time is required")
	case strings.TrimSpace(r.Author.Name) == "" || strings.TrimSpace(r.Author.Email) == "":
		return invalid(op, "the commit author needs a name and an email")
	case strings.TrimSpace(r.Title) == "":
		return invalid(op, "the pull request needs a title")
	}
	seen := map[string]bool{}
	for _, f := range r.Files {
		p := f.Path
		if p == "" || p != path.Clean(p) || path.IsAbs(p) || p == "." || strings.HasPrefix(p, "../") || p == ".." || seen[p] {
			return invalid(op, "file path %q is not a clean, relative, unique path", p)
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == ".git" {
				return invalid(op, "file path %q is inside .git", p)
			}
		}
		if f.Mode != "" && f.Mode != "100644" && f.Mode != "100755" {
			return invalid(op, "file %q has mode %q; only 100644 and 100755 are supported", p, f.Mode)
		}
		seen[p] = true
	}
	for _, s := range append(append([]string{}, r.Labels...), r.Reviewers...) {
		if strings.TrimSpace(s) == "" {
			return invalid(op, "labels and reviewers must not be empty")
		}
	}
	return nil
}

// hasLine matches the marker as a whole line, so "rem-1" does not claim the
// commits of "rem-10".
func hasLine(message, marker string) bool {
	marker = strings.TrimSpace(marker)
	for _, line := range strings.Split(message, "\n") {
		if strings.TrimSpace(line) == marker {
			return true
		}
	}
	return false
}

// createCommit writes the blobs, the tree on top of the base commit's tree
// and the commit. All three are content-addressed, so repeating them after
// a crash yields the same shas.
func createCommit(ctx context.Context, g *gh.Client, req ChangeRequest) (*gh.Commit, error) {
	o, r := req.Owner, req.Repo
	base, _, err := g.Git.GetCommit(ctx, o, r, req.BaseSHA)
	if err != nil {
		return nil, wrap("get base commit", err)
	}
	entries := make([]*gh.TreeEntry, 0, len(req.Files))
	for _, f := range req.Files {
		mode := f.Mode
		if mode == "" {
			mode = "100644"
		}
		e := &gh.TreeEntry{Path: gh.Ptr(f.Path), Mode: gh.Ptr(mode), Type: gh.Ptr("blob")}
		if !f.Delete {
			blob, _, err := g.Git.CreateBlob(ctx, o, r, gh.Blob{
				Content: gh.Ptr(base64.StdEncoding.EncodeToString(f.Content)), Encoding: gh.Ptr("base64"),
			})
			if err != nil {
				return nil, wrap("create blob", err)
			}
			e.SHA = blob.SHA
		}
		entries = append(entries, e) // no SHA: "sha": null deletes the path
	}
	tree, _, err := g.Git.CreateTree(ctx, o, r, base.GetTree().GetSHA(), entries)
	if err != nil {
		return nil, wrap("create tree", err)
	}
	sig := &gh.CommitAuthor{
		Name: gh.Ptr(req.Author.Name), Email: gh.Ptr(req.Author.Email),
		Date: &gh.Timestamp{Time: req.CommitTime.UTC().Truncate(time.Second)},
	}
	commit, _, err := g.Git.CreateCommit(ctx, o, r, gh.Commit{
		Message: gh.Ptr(req.Message), Tree: &gh.Tree{SHA: tree.SHA},
		Parents: []*gh.Commit{{SHA: gh.Ptr(req.BaseSHA)}}, Author: sig, Committer: sig,
	}, nil)
	if err != nil {
		return nil, wrap("create commit", err)
	}
	return commit, nil
}

// placeBranch makes refs/heads/<Branch> point at the change and returns its
// head. Someone else's branch is never touched; ours is reused when it
// already holds the same change (same tree on the same parent) and moved
// otherwise.
func placeBranch(ctx context.Context, g *gh.Client, req ChangeRequest, commit *gh.Commit) (string, error) {
	o, r := req.Owner, req.Repo
	want := commit.GetSHA()
	head, err := branchHead(ctx, g, o, r, req.Branch)
	if statusIs(err, http.StatusNotFound) {
		_, _, err = g.Git.CreateRef(ctx, o, r, gh.CreateRef{Ref: "refs/heads/" + req.Branch, SHA: want})
		if err == nil {
			return want, nil
		}
		if err = wrap("create branch", err); !saysAlready(err, "Reference already exists") {
			return "", err
		}
		// A concurrent run created it first: judge it like any existing branch.
		head, err = branchHead(ctx, g, o, r, req.Branch)
	}
	if err != nil {
		return "", err
	}
	if head == strings.ToLower(want) {
		return want, nil
	}
	cur, _, err := g.Git.GetCommit(ctx, o, r, head)
	if err != nil {
		return "", wrap("get branch head", err)
	}
	if !hasLine(cur.GetMessage(), req.Marker) {
		return "", &APIError{
			Op: "open change", Status: http.StatusConflict, Err: ErrBranchConflict,
			Message: "branch " + req.Branch + " exists and its head " + head + " is not a commit of this change",
		}
	}
	if cur.GetTree().GetSHA() == commit.GetTree().GetSHA() && len(cur.Parents) == 1 &&
		strings.EqualFold(cur.Parents[0].GetSHA(), req.BaseSHA) {
		return head, nil
	}
	_, _, err = g.Git.UpdateRef(ctx, o, r, "heads/"+req.Branch, gh.UpdateRef{SHA: want, Force: gh.Ptr(true)})
	if err != nil {
		return "", wrap("move branch", err)
	}
	return want, nil
}

// openPull finds the open pull request for the branch or opens a draft one.
// created is false when it already existed, including when a concurrent run
// opened it between our lookup and our create.
func openPull(ctx context.Context, g *gh.Client, req ChangeRequest, base string) (p *gh.PullRequest, created bool, err error) {
	o, r := req.Owner, req.Repo
	if p, err = findPull(ctx, g, req, base); err != nil {
		return nil, false, err
	}
	if p != nil {
		if p.GetTitle() == req.Title && p.GetBody() == req.Body {
			return p, false, nil
		}
		edited, _, err := g.PullRequests.Edit(ctx, o, r, p.GetNumber(), &gh.PullRequest{Title: gh.Ptr(req.Title), Body: gh.Ptr(req.Body)})
		if err != nil {
			return nil, false, wrap("update pull request", err)
		}
		return edited, false, nil
	}
	p, _, err = g.PullRequests.Create(ctx, o, r, &gh.NewPullRequest{
		Title: gh.Ptr(req.Title), Head: gh.Ptr(req.Branch), Base: gh.Ptr(base), Body: gh.Ptr(req.Body), Draft: gh.Ptr(true),
	})
	if err == nil {
		return p, true, nil
	}
	if err = wrap("create pull request", err); !saysAlready(err, "A pull request already exists") {
		return nil, false, err
	}
	found, ferr := findPull(ctx, g, req, base)
	if ferr != nil {
		return nil, false, ferr
	}
	if found == nil {
		return nil, false, err
	}
	return found, false, nil
}

// findPull looks for an open pull request from the branch, preferring one
// into the base branch.
func findPull(ctx context.Context, g *gh.Client, req ChangeRequest, base string) (*gh.PullRequest, error) {
	pulls, _, err := g.PullRequests.List(ctx, req.Owner, req.Repo, &gh.PullRequestListOptions{
		State: "open", Head: req.Owner + ":" + req.Branch, ListOptions: gh.ListOptions{PerPage: 100},
	})
	if err != nil {
		return nil, wrap("find pull request", err)
	}
	var found *gh.PullRequest
	for _, p := range pulls {
		if p.GetHead().GetRef() != req.Branch || p.GetState() != "open" {
			continue
		}
		if p.GetBase().GetRef() == base {
			return p, nil
		}
		if found == nil {
			found = p
		}
	}
	return found, nil
}

// decorate adds the labels and reviewers the pull request lacks. A reviewer
// GitHub refuses (422: not a collaborator, the author) is returned rather
// than failing a change that is otherwise open; the others are still asked.
func decorate(ctx context.Context, g *gh.Client, req ChangeRequest, p *gh.PullRequest) ([]string, error) {
	o, r, n := req.Owner, req.Repo, p.GetNumber()
	have := map[string]bool{}
	for _, l := range p.Labels {
		have[strings.ToLower(l.GetName())] = true
	}
	if labels := missing(req.Labels, have); len(labels) > 0 {
		if _, _, err := g.Issues.AddLabelsToIssue(ctx, o, r, n, labels); err != nil {
			return nil, wrap("add labels", err)
		}
	}
	asked := map[string]bool{}
	for _, u := range p.RequestedReviewers {
		asked[strings.ToLower(u.GetLogin())] = true
	}
	reviewers := missing(req.Reviewers, asked)
	if len(reviewers) == 0 {
		return nil, nil
	}
	_, _, err := g.PullRequests.RequestReviewers(ctx, o, r, n, gh.ReviewersRequest{Reviewers: reviewers})
	if err = wrap("request reviewers", err); err == nil || !statusIs(err, http.StatusUnprocessableEntity) {
		return nil, err
	}
	if len(reviewers) == 1 {
		return reviewers, nil
	}
	// GitHub refuses the whole request for one bad reviewer: ask one by one.
	var refused []string
	for _, u := range reviewers {
		_, _, err := g.PullRequests.RequestReviewers(ctx, o, r, n, gh.ReviewersRequest{Reviewers: []string{u}})
		switch err = wrap("request reviewer", err); {
		case err == nil:
		case statusIs(err, http.StatusUnprocessableEntity):
			refused = append(refused, u)
		default:
			return nil, err
		}
	}
	return refused, nil
}

// missing keeps the wanted names not yet present (case-insensitively, as
// GitHub compares logins and labels), without duplicates.
func missing(want []string, have map[string]bool) []string {
	var out []string
	for _, w := range want {
		k := strings.ToLower(w)
		if !have[k] {
			out = append(out, w)
			have[k] = true
		}
	}
	return out
}
