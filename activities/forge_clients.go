package activities

import (
	"context"
	"fmt"
	"io"
	"strings"

	"remediator/internal/github"
	"remediator/internal/gitlab"
)

// commitAuthor signs the commits the service makes on forges.
var commitAuthor = struct{ Name, Email string }{"remediator", "remediator@localhost"}

// GitHubForge adapts internal/github to Forge.
type GitHubForge struct{ Client *github.Client }

func splitOwner(path string) (owner, repo string, err error) {
	owner, repo, ok := strings.Cut(path, "/")
	if !ok || owner == "" || repo == "" || strings.Contains(repo, "/") {
		return "", "", Permanent(ErrTypeInvalidInput, "not a GitHub owner/name", fmt.Errorf("path %q", path))
	}
	return owner, repo, nil
}

// Resolve implements Forge.
func (g *GitHubForge) Resolve(ctx context.Context, path, ref string) (string, string, bool, error) {
	owner, repo, err := splitOwner(path)
	if err != nil {
		return "", "", false, err
	}
	return g.Client.Resolve(ctx, owner, repo, ref)
}

// Archive implements Forge (GitHub's tarball is gzipped).
func (g *GitHubForge) Archive(ctx context.Context, path, sha string, max int64) (io.ReadCloser, error) {
	owner, repo, err := splitOwner(path)
	if err != nil {
		return nil, err
	}
	return g.Client.Tarball(ctx, owner, repo, sha, max)
}

// FailedJobs implements Forge.
func (g *GitHubForge) FailedJobs(ctx context.Context, path string, run CIRun, maxLog int) ([]FailedJob, error) {
	owner, repo, err := splitOwner(path)
	if err != nil {
		return nil, err
	}
	jobs, err := g.Client.FailedJobs(ctx, owner, repo, run.RunID, max(run.Attempt, 1), maxLog)
	if err != nil {
		return nil, err
	}
	out := make([]FailedJob, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, FailedJob{Name: j.Name, Step: j.Step, Log: j.Log})
	}
	return out, nil
}

// OpenChange implements Forge: a draft pull request.
func (g *GitHubForge) OpenChange(ctx context.Context, path string, c ForgeChange) (PullRequest, error) {
	owner, repo, err := splitOwner(path)
	if err != nil {
		return PullRequest{}, err
	}
	files := make([]github.FileChange, 0, len(c.Files))
	for _, f := range c.Files {
		files = append(files, github.FileChange{Path: f.Path, Content: f.Content, Mode: f.Mode, Delete: f.Delete})
	}
	pr, err := g.Client.OpenChange(ctx, github.ChangeRequest{
		Owner: owner, Repo: repo, Branch: c.Branch, BaseBranch: c.BaseBranch, BaseSHA: c.BaseSHA, Files: files,
		Message: c.Message, Marker: c.Marker, CommitTime: c.CommitTime,
		Author: github.Signature{Name: commitAuthor.Name, Email: commitAuthor.Email},
		Title:  c.Title, Body: c.Body, Labels: c.Labels, Reviewers: c.Reviewers,
	})
	if err != nil {
		return PullRequest{}, err
	}
	return PullRequest{ID: fmt.Sprintf("github:%s#%d", path, pr.Number), URL: pr.URL, Branch: pr.Branch, BaseBranch: pr.BaseBranch,
		HeadSHA: pr.HeadSHA, Created: pr.Created}, nil
}

// Contains implements Forge.
func (g *GitHubForge) Contains(ctx context.Context, path, branch, sha string) (bool, error) {
	owner, repo, err := splitOwner(path)
	if err != nil {
		return false, err
	}
	return g.Client.Contains(ctx, owner, repo, branch, sha)
}

// BlobIDs implements Forge.
func (g *GitHubForge) BlobIDs(ctx context.Context, path, sha string, paths []string) (map[string]string, error) {
	owner, repo, err := splitOwner(path)
	if err != nil {
		return nil, err
	}
	return g.Client.BlobIDs(ctx, owner, repo, sha, paths)
}

// GitLabForge adapts internal/gitlab to Forge.
type GitLabForge struct{ Client *gitlab.Client }

// Resolve implements Forge.
func (g *GitLabForge) Resolve(ctx context.Context, path, ref string) (string, string, bool, error) {
	return g.Client.Resolve(ctx, path, ref)
}

// Archive implements Forge (GitLab's archive.tar.gz).
func (g *GitLabForge) Archive(ctx context.Context, path, sha string, max int64) (io.ReadCloser, error) {
	return g.Client.Archive(ctx, path, sha, max)
}

// FailedJobs implements Forge: the pipeline's failed jobs.
func (g *GitLabForge) FailedJobs(ctx context.Context, path string, run CIRun, maxLog int) ([]FailedJob, error) {
	jobs, err := g.Client.FailedJobs(ctx, path, run.RunID, maxLog)
	if err != nil {
		return nil, err
	}
	out := make([]FailedJob, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, FailedJob{Name: j.Name, Step: j.Stage, Log: j.Log})
	}
	return out, nil
}

// OpenChange implements Forge: a draft merge request.
func (g *GitLabForge) OpenChange(ctx context.Context, path string, c ForgeChange) (PullRequest, error) {
	files := make([]gitlab.FileChange, 0, len(c.Files))
	for _, f := range c.Files {
		files = append(files, gitlab.FileChange{Path: f.Path, Content: f.Content, Mode: f.Mode, Delete: f.Delete})
	}
	mr, err := g.Client.OpenChange(ctx, gitlab.ChangeRequest{
		Project: path, Branch: c.Branch, BaseBranch: c.BaseBranch, BaseSHA: c.BaseSHA, Files: files,
		Message: c.Message, Marker: c.Marker, Author: gitlab.Signature{Name: commitAuthor.Name, Email: commitAuthor.Email},
		Title: c.Title, Body: c.Body, Labels: c.Labels, Reviewers: c.Reviewers,
	})
	if err != nil {
		return PullRequest{}, err
	}
	return PullRequest{ID: fmt.Sprintf("gitlab:%s!%d", path, mr.IID), URL: mr.URL, Branch: mr.Branch, BaseBranch: mr.BaseBranch,
		HeadSHA: mr.HeadSHA, Created: mr.Created}, nil
}

// Contains implements Forge.
func (g *GitLabForge) Contains(ctx context.Context, path, branch, sha string) (bool, error) {
	return g.Client.Contains(ctx, path, branch, sha)
}

// BlobIDs implements Forge.
func (g *GitLabForge) BlobIDs(ctx context.Context, path, sha string, paths []string) (map[string]string, error) {
	return g.Client.BlobIDs(ctx, path, sha, paths)
}
