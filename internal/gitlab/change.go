package gitlab

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	gl "gitlab.com/gitlab-org/api/client-go"
)

// FileChange is the final state of one path in the commit. Content is bytes,
// not a string, so that non-UTF-8 files survive unchanged.
type FileChange struct {
	Path    string
	Content []byte
	Mode    string // "100644" or "100755"; "" keeps an existing file's mode
	Delete  bool
}

// Signature is the commit author; GitLab records the token's user as
// committer regardless.
type Signature struct{ Name, Email string }

// ChangeRequest is everything OpenChange needs to reach the same end state
// however many times it is called: the branch name and Marker identify our
// work, BaseSHA and Files define it.
type ChangeRequest struct {
	Project    string // "group/subgroup/project"
	Branch     string // "autofix/<remediation id>"
	BaseBranch string // "" = the project's default branch
	BaseSHA    string // the commit the fix was made on
	Files      []FileChange
	Message    string // full commit message; must contain Marker as a line
	Marker     string // e.g. "Remediation-Id: rem-…": proves a commit on Branch is ours
	Author     Signature
	Title      string // the merge request's, without a draft prefix
	Body       string
	Labels     []string
	Reviewers  []string // usernames; ones GitLab refuses are reported, not fatal
}

// MergeRequest is where the change ended up. Created is false when a
// previous attempt (or a concurrent one) had already opened it.
type MergeRequest struct {
	IID                  int
	URL                  string
	HeadSHA              string
	Branch               string
	BaseBranch           string
	Created              bool
	UnrequestedReviewers []string
}

// maxBranchAttempts bounds the create/inspect/recreate loop when another run
// of the same remediation keeps racing us; past it the activity retries later.
const maxBranchAttempts = 3

// OpenChange commits Files on BaseSHA to Branch and opens a draft merge
// request for it. Every step first looks for what a killed earlier attempt
// may have left (branch, commit, merge request) and reuses it, so a re-run
// ends with one branch, one commit and one merge request. A branch whose
// head does not carry Marker belongs to someone else and is never touched:
// that is a 409.
func (c *Client) OpenChange(ctx context.Context, req ChangeRequest) (MergeRequest, error) {
	if err := req.validate(); err != nil {
		return MergeRequest{}, err
	}
	p, resp, err := c.gl.Projects.GetProject(req.Project, nil, gl.WithContext(ctx))
	if err != nil {
		return MergeRequest{}, c.apiErr("get project", resp, err)
	}
	base := req.BaseBranch
	if base == "" {
		base = p.DefaultBranch
	}
	if base == "" {
		return MergeRequest{}, &APIError{Status: http.StatusNotFound, Message: "open change: project has no default branch"}
	}
	if base == req.Branch {
		return MergeRequest{}, invalid("branch must differ from the base branch")
	}
	head, err := c.ensureCommit(ctx, req)
	if err != nil {
		return MergeRequest{}, err
	}
	return c.ensureMergeRequest(ctx, p.ID, req, base, head)
}

func invalid(msg string) error {
	return &APIError{Status: http.StatusBadRequest, Message: "open change: " + msg}
}

// validate refuses requests that could make OpenChange misjudge ownership or
// write something other than intended; retrying them cannot help.
func (r ChangeRequest) validate() error {
	switch {
	case r.Project == "" || r.Branch == "" || r.BaseSHA == "":
		return invalid("project, branch and base SHA are required")
	case strings.TrimSpace(r.Marker) == "" || strings.ContainsAny(r.Marker, "\r\n"):
		return invalid("marker must be one non-empty line")
	case !hasMarker(r.Message, r.Marker):
		return invalid("commit message must contain the marker line")
	case strings.TrimSpace(r.Title) == "":
		return invalid("title is required")
	case len(r.Files) == 0:
		return invalid("no files to commit")
	}
	seen := make(map[string]bool, len(r.Files))
	for _, f := range r.Files {
		if f.Path == "" || strings.HasPrefix(f.Path, "/") || seen[f.Path] {
			return invalid(fmt.Sprintf("bad or duplicate path %q", f.Path))
		}
		seen[f.Path] = true
		if f.Mode != "" && f.Mode != "100644" && f.Mode != "100755" {
			return invalid(fmt.Sprintf("unsupported mode %q for %q", f.Mode, f.Path))
		}
	}
	return nil
}

// hasMarker matches whole lines so that a commit merely quoting our marker
// inside a longer line is not mistaken for ours.
func hasMarker(message, marker string) bool {
	marker = strings.TrimSpace(marker)
	for line := range strings.Lines(message) {
		if strings.TrimSpace(line) == marker {
			return true
		}
	}
	return false
}

// ensureCommit leaves Branch pointing at one commit of ours holding exactly
// req.Files on BaseSHA, and returns that commit's SHA.
func (c *Client) ensureCommit(ctx context.Context, req ChangeRequest) (string, error) {
	for range maxBranchAttempts {
		b, resp, err := c.gl.Branches.GetBranch(req.Project, req.Branch, gl.WithContext(ctx))
		err = c.apiErr("get branch", resp, err)
		if isNotFound(err) {
			sha, err := c.createCommit(ctx, req)
			if isBranchExists(err) {
				continue // a concurrent run got there first: judge what it made
			}
			return sha, err
		}
		if err != nil {
			return "", err
		}
		head, err := c.headCommit(ctx, req.Project, b)
		if err != nil {
			return "", err
		}
		if !hasMarker(head.Message, req.Marker) {
			return "", &APIError{Status: http.StatusConflict, Message: fmt.Sprintf(
				"open change: branch %q exists and its head %s is not ours; left untouched", req.Branch, shortSHA(head.ID))}
		}
		same, err := c.sameChange(ctx, req, head)
		if err != nil || same {
			return head.ID, err
		}
		// Ours but stale (another fix, another base): only because the marker
		// proves it is ours may we throw it away.
		resp, err = c.gl.Branches.DeleteBranch(req.Project, req.Branch, gl.WithContext(ctx))
		if err = c.apiErr("delete stale branch", resp, err); err != nil && !isNotFound(err) {
			return "", err
		}
	}
	return "", fmt.Errorf("gitlab: open change: branch %q kept changing under us; retry later", req.Branch)
}

// headCommit falls back to the commits API when the branch payload omits
// the parents (older GitLab versions).
func (c *Client) headCommit(ctx context.Context, project string, b *gl.Branch) (*gl.Commit, error) {
	if b.Commit == nil || b.Commit.ID == "" {
		return nil, fmt.Errorf("gitlab: branch %q has no head commit in the response", b.Name)
	}
	if b.Commit.ParentIDs != nil && b.Commit.Message != "" {
		return b.Commit, nil
	}
	cm, resp, err := c.gl.Commits.GetCommit(project, b.Commit.ID, nil, gl.WithContext(ctx))
	if err != nil {
		return nil, c.apiErr("get head commit", resp, err)
	}
	return cm, nil
}

// isBranchExists recognises GitLab's answer when the branch appeared since
// we looked ("A branch called … already exists"), as opposed to a 400 about
// a file.
func isBranchExists(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
		return false
	}
	msg := strings.ToLower(ae.Message)
	return strings.Contains(msg, "a branch called") && strings.Contains(msg, "already exists")
}

// sameChange decides whether head already is the commit we would make: one
// parent, BaseSHA; it touches exactly our paths; each file has our content
// (by GitLab's content SHA-256, so nothing is downloaded) and mode.
func (c *Client) sameChange(ctx context.Context, req ChangeRequest, head *gl.Commit) (bool, error) {
	if len(head.ParentIDs) != 1 || !strings.EqualFold(head.ParentIDs[0], req.BaseSHA) {
		return false, nil
	}
	touched, err := c.commitPaths(ctx, req.Project, head.ID)
	if err != nil {
		return false, err
	}
	if len(touched) != len(req.Files) {
		return false, nil
	}
	for _, f := range req.Files {
		if !touched[f.Path] {
			return false, nil
		}
		meta, resp, err := c.gl.RepositoryFiles.GetFileMetaData(req.Project, f.Path,
			&gl.GetFileMetaDataOptions{Ref: gl.Ptr(head.ID)}, gl.WithContext(ctx))
		err = c.apiErr("get file metadata", resp, err)
		switch {
		case f.Delete && isNotFound(err):
			continue
		case f.Delete || isNotFound(err):
			return false, nil
		case err != nil:
			return false, err
		}
		sum := sha256.Sum256(f.Content)
		if !strings.EqualFold(meta.SHA256, hex.EncodeToString(sum[:])) {
			return false, nil
		}
		if f.Mode != "" && resp.Header.Get("X-Gitlab-Execute-Filemode") != "" &&
			meta.ExecuteFilemode != (f.Mode == "100755") {
			return false, nil
		}
	}
	return true, nil
}

// commitPaths is the set of paths a commit changes, both sides of renames
// included, so that a stale commit touching extra files is not reused.
func (c *Client) commitPaths(ctx context.Context, project, sha string) (map[string]bool, error) {
	opt := &gl.GetCommitDiffOptions{ListOptions: gl.ListOptions{PerPage: 100, Page: 1}}
	paths := map[string]bool{}
	for {
		diffs, resp, err := c.gl.Commits.GetCommitDiff(project, sha, opt, gl.WithContext(ctx))
		if err != nil {
			return nil, c.apiErr("get commit diff", resp, err)
		}
		for _, d := range diffs {
			paths[d.NewPath] = true
			paths[d.OldPath] = true
		}
		if resp.NextPage <= opt.Page {
			break
		}
		opt.Page = resp.NextPage
	}
	delete(paths, "")
	return paths, nil
}

// createCommit makes the branch and its one commit in a single call, so no
// attempt can leave a branch without our commit. Whether a path is created
// or updated depends on BaseSHA, which never changes, so the choice is
// stable across retries.
func (c *Client) createCommit(ctx context.Context, req ChangeRequest) (string, error) {
	var actions []*gl.CommitActionOptions
	for _, f := range req.Files {
		if f.Delete {
			actions = append(actions, &gl.CommitActionOptions{Action: gl.Ptr(gl.FileDelete), FilePath: gl.Ptr(f.Path)})
			continue
		}
		meta, resp, err := c.gl.RepositoryFiles.GetFileMetaData(req.Project, f.Path,
			&gl.GetFileMetaDataOptions{Ref: gl.Ptr(req.BaseSHA)}, gl.WithContext(ctx))
		err = c.apiErr("get base file metadata", resp, err)
		if err != nil && !isNotFound(err) {
			return "", err
		}
		exec := f.Mode == "100755"
		a := &gl.CommitActionOptions{
			FilePath: gl.Ptr(f.Path),
			Content:  gl.Ptr(base64.StdEncoding.EncodeToString(f.Content)),
			Encoding: gl.Ptr("base64"),
		}
		if err != nil { // not at BaseSHA: a new file
			a.Action = gl.Ptr(gl.FileCreate)
			if exec {
				a.ExecuteFilemode = gl.Ptr(true)
			}
			actions = append(actions, a)
			continue
		}
		a.Action = gl.Ptr(gl.FileUpdate)
		actions = append(actions, a)
		// GitLab only honours execute_filemode on create and chmod actions.
		if f.Mode != "" && exec != meta.ExecuteFilemode {
			actions = append(actions, &gl.CommitActionOptions{
				Action: gl.Ptr(gl.FileChmod), FilePath: gl.Ptr(f.Path), ExecuteFilemode: gl.Ptr(exec),
			})
		}
	}
	opt := &gl.CreateCommitOptions{
		Branch:        gl.Ptr(req.Branch),
		StartSHA:      gl.Ptr(req.BaseSHA),
		CommitMessage: gl.Ptr(req.Message),
		Actions:       actions,
	}
	if req.Author.Name != "" {
		opt.AuthorName = gl.Ptr(req.Author.Name)
	}
	if req.Author.Email != "" {
		opt.AuthorEmail = gl.Ptr(req.Author.Email)
	}
	cm, resp, err := c.gl.Commits.CreateCommit(req.Project, opt, gl.WithContext(ctx))
	if err != nil {
		return "", c.apiErr("create commit", resp, err)
	}
	return cm.ID, nil
}

// ensureMergeRequest finds the open merge request from Branch (ours from an
// earlier attempt, or one a human opened) and refreshes its text, or opens a
// draft one. Labels and reviewers are only set on creation: afterwards they
// belong to the humans working on it.
func (c *Client) ensureMergeRequest(ctx context.Context, projectID int64, req ChangeRequest, base, head string) (MergeRequest, error) {
	existing, err := c.findOpenMR(ctx, projectID, req)
	if err != nil {
		return MergeRequest{}, err
	}
	if existing != nil {
		mr, err := c.refreshMR(ctx, req, existing)
		if err != nil {
			return MergeRequest{}, err
		}
		return result(req, mr, head, false), nil
	}

	opt := &gl.CreateMergeRequestOptions{
		Title:        gl.Ptr(draftTitle(req.Title)),
		Description:  gl.Ptr(req.Body),
		SourceBranch: gl.Ptr(req.Branch),
		TargetBranch: gl.Ptr(base),
	}
	if len(req.Labels) > 0 {
		opt.Labels = gl.Ptr(gl.LabelOptions(req.Labels))
	}
	ids, err := c.reviewerIDs(ctx, req.Reviewers)
	if err != nil {
		return MergeRequest{}, err
	}
	if len(ids) > 0 {
		opt.ReviewerIDs = &ids
	}
	created, resp, err := c.gl.MergeRequests.CreateMergeRequest(req.Project, opt, gl.WithContext(ctx))
	err = c.apiErr("create merge request", resp, err)
	if hasStatus(err, http.StatusConflict) {
		// "Another open merge request already exists for this source branch":
		// a concurrent attempt won; report its merge request.
		existing, ferr := c.findOpenMR(ctx, projectID, req)
		if ferr != nil {
			return MergeRequest{}, ferr
		}
		if existing == nil {
			return MergeRequest{}, fmt.Errorf("gitlab: open change: merge request from %q reported but not found; retry later", req.Branch)
		}
		return result(req, existing, head, false), nil
	}
	if err != nil {
		return MergeRequest{}, err
	}
	return result(req, &created.BasicMergeRequest, head, true), nil
}

// findOpenMR ignores merge requests from forks: a fork may use the same
// branch name, and its merge request is not ours to edit.
func (c *Client) findOpenMR(ctx context.Context, projectID int64, req ChangeRequest) (*gl.BasicMergeRequest, error) {
	opt := &gl.ListProjectMergeRequestsOptions{
		ListOptions:  gl.ListOptions{PerPage: 100, Page: 1},
		SourceBranch: gl.Ptr(req.Branch),
		State:        gl.Ptr("opened"),
	}
	for {
		mrs, resp, err := c.gl.MergeRequests.ListProjectMergeRequests(req.Project, opt, gl.WithContext(ctx))
		if err != nil {
			return nil, c.apiErr("list merge requests", resp, err)
		}
		for _, mr := range mrs {
			if mr != nil && mr.SourceBranch == req.Branch && mr.SourceProjectID == projectID && mr.State == "opened" {
				return mr, nil
			}
		}
		if resp.NextPage <= opt.Page {
			return nil, nil
		}
		opt.Page = resp.NextPage
	}
}

// refreshMR brings title and description up to date, keeping the draft
// prefix only while the merge request is still a draft: a human who marked
// it ready must not see it flip back.
func (c *Client) refreshMR(ctx context.Context, req ChangeRequest, mr *gl.BasicMergeRequest) (*gl.BasicMergeRequest, error) {
	title := req.Title
	if mr.Draft {
		title = draftTitle(req.Title)
	}
	if mr.Title == title && mr.Description == req.Body {
		return mr, nil
	}
	updated, resp, err := c.gl.MergeRequests.UpdateMergeRequest(req.Project, mr.IID,
		&gl.UpdateMergeRequestOptions{Title: gl.Ptr(title), Description: gl.Ptr(req.Body)}, gl.WithContext(ctx))
	if err != nil {
		return nil, c.apiErr("update merge request", resp, err)
	}
	return &updated.BasicMergeRequest, nil
}

// draftTitle uses the title prefix because the merge request API (and the
// v1.46 client) has no draft attribute on create.
func draftTitle(title string) string {
	t := strings.ToLower(strings.TrimSpace(title))
	if strings.HasPrefix(t, "draft:") || strings.HasPrefix(t, "[draft]") || strings.HasPrefix(t, "(draft)") {
		return title
	}
	return "Draft: " + title
}

// reviewerIDs resolves usernames; an unknown name is skipped (and later
// reported as unrequested) rather than failing the change.
func (c *Client) reviewerIDs(ctx context.Context, names []string) ([]int64, error) {
	var ids []int64
	for _, name := range normalizeNames(names) {
		users, resp, err := c.gl.Users.ListUsers(&gl.ListUsersOptions{Username: gl.Ptr(name)}, gl.WithContext(ctx))
		if err = c.apiErr("look up reviewer", resp, err); err != nil {
			var ae *APIError
			if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusTooManyRequests {
				continue // GitLab refuses to tell us: treat as not requestable
			}
			return nil, err
		}
		for _, u := range users {
			if u != nil && strings.EqualFold(u.Username, name) {
				ids = append(ids, u.ID)
				break
			}
		}
	}
	return ids, nil
}

func normalizeNames(names []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		n = strings.TrimPrefix(strings.TrimSpace(n), "@")
		if n == "" || seen[strings.ToLower(n)] {
			continue
		}
		seen[strings.ToLower(n)] = true
		out = append(out, n)
	}
	return out
}

// result reports as unrequested every asked-for reviewer that is not on the
// merge request, whatever the reason (unknown user, no access, or a rerun
// finding a merge request a human re-assigned), so the answer is the same on
// every attempt.
func result(req ChangeRequest, mr *gl.BasicMergeRequest, head string, created bool) MergeRequest {
	on := map[string]bool{}
	for _, r := range mr.Reviewers {
		if r != nil {
			on[strings.ToLower(r.Username)] = true
		}
	}
	var missing []string
	for _, n := range normalizeNames(req.Reviewers) {
		if !on[strings.ToLower(n)] {
			missing = append(missing, n)
		}
	}
	return MergeRequest{
		IID:                  int(mr.IID),
		URL:                  mr.WebURL,
		HeadSHA:              head,
		Branch:               req.Branch,
		BaseBranch:           mr.TargetBranch,
		Created:              created,
		UnrequestedReviewers: missing,
	}
}

func shortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
