package activities

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"remediator/internal/forge"
	"remediator/internal/gitlocal"
	"remediator/internal/recipe"
)

// Forge is what a hosted forge (GitHub, GitLab) offers the activities; the
// adapters over internal/github and internal/gitlab implement it. path is
// the reference's Path ("owner/name", "group/project").
type Forge interface {
	Resolve(ctx context.Context, path, ref string) (sha, defaultBranch string, isBranch bool, err error)
	// Archive is a gzipped tar of the tree at sha.
	Archive(ctx context.Context, path, sha string, max int64) (io.ReadCloser, error)
	// FailedJobs returns the failed jobs of a CI run with the tails of their logs.
	FailedJobs(ctx context.Context, path string, run CIRun, maxLog int) ([]FailedJob, error)
	OpenChange(ctx context.Context, path string, c ForgeChange) (PullRequest, error)
	// Contains tells whether sha is branch's head or an ancestor of it.
	Contains(ctx context.Context, path, branch, sha string) (bool, error)
	// BlobIDs are the git blob ids paths hold at sha (absent paths left out).
	BlobIDs(ctx context.Context, path, sha string, paths []string) (map[string]string, error)
}

// CIRun names the CI run that failed, so the fixer can fetch its logs:
// GitHub's workflow run id and attempt, or GitLab's pipeline id.
type CIRun struct {
	RunID   int64 `json:"run_id,omitempty"`
	Attempt int64 `json:"attempt,omitempty"`
}

// FailedJob is one failed CI job and the tail of its log.
type FailedJob struct {
	Name string
	Step string
	Log  string
}

// ForgeChange is a verified change as a forge's API takes it: the files the
// approved patch changes, applied to BaseSHA.
type ForgeChange struct {
	Branch, BaseBranch, BaseSHA string
	Files                       []gitlocal.FileChange
	Message, Marker             string
	Title, Body                 string
	Labels, Reviewers           []string
	CommitTime                  time.Time
}

// Evidence limits: what a fix generator gets to read of CI logs.
const (
	maxJobLog      = 1 << 20
	maxExcerpt     = 64 << 10
	maxArchiveSize = int64(gitlocal.MaxArchiveBytes)
)

// Forges generates fixes for and opens changes on hosted forges. Code is
// fetched as an archive of the failing commit into a bare mirror under
// MirrorRoot (imported without touching the file system), and the recipes
// run on a checkout of that mirror exactly as for local repositories. Local
// references go to Local and LocalGit.
type Forges struct {
	Clients    map[forge.Kind]Forge
	Hosts      forge.Hosts
	Mirrors    *gitlocal.Provider // its roots hold MirrorRoot
	MirrorRoot string
	Recipes    *recipe.Generator // Checkout: Mirrors
	Local      FixGenerator
	LocalGit   GitProvider
	// Labels and Reviewers are put on every change request.
	Labels, Reviewers []string
	// PublicURL, UIURL and Namespace make the links in change requests.
	PublicURL, UIURL, Namespace string
}

// parse resolves in.Repo to its forge and client; a local reference returns
// a nil client.
func (f *Forges) parse(repo string) (forge.Ref, Forge, error) {
	ref, err := forge.Parse(repo, f.Hosts)
	if err != nil {
		return forge.Ref{}, nil, Permanent(ErrTypeInvalidInput, "not a repository reference of a configured forge", err)
	}
	if ref.Kind == forge.Local {
		return ref, nil, nil
	}
	c := f.Clients[ref.Kind]
	if c == nil {
		return forge.Ref{}, nil, Permanent(ErrTypeNotConfigured, string(ref.Kind)+" is not configured", nil)
	}
	return ref, c, nil
}

// mirrorDir is the bare mirror of a forge repository.
func (f *Forges) mirrorDir(ref forge.Ref) string {
	return filepath.Join(f.MirrorRoot, string(ref.Kind), filepath.FromSlash(ref.Path)+".git")
}

// base makes sure the mirror holds the forge commit sha and returns the
// mirror's commit for it.
func (f *Forges) base(ctx context.Context, ref forge.Ref, c Forge, sha string) (string, error) {
	dir := f.mirrorDir(ref)
	if base, ok := f.Mirrors.MirrorBase(ctx, dir, sha); ok {
		return base, nil
	}
	rc, err := c.Archive(ctx, ref.Path, sha, maxArchiveSize)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	base, err := f.Mirrors.ImportArchive(ctx, dir, rc, true, sha)
	if err != nil {
		return "", gitError(err)
	}
	return base, nil
}

// Generate implements FixGenerator.
func (f *Forges) Generate(ctx context.Context, in GenerateFixInput) (Fix, error) {
	ref, c, err := f.parse(in.Repo)
	if err != nil {
		return Fix{}, err
	}
	if c == nil {
		return f.Local.Generate(ctx, in)
	}
	want := in.SHA
	if want == "" {
		want = in.Ref
	}
	sha, defaultBranch, wantIsBranch, err := c.Resolve(ctx, ref.Path, want)
	if err != nil {
		return Fix{}, err
	}
	baseBranch := defaultBranch
	if in.Ref != "" && !hexSHA.MatchString(in.Ref) {
		isBranch := wantIsBranch
		if want != in.Ref { // a sha was given: ask about the ref itself
			_, _, isBranch, err = c.Resolve(ctx, ref.Path, in.Ref)
			isBranch = err == nil && isBranch
		}
		if isBranch {
			baseBranch = in.Ref
		}
	}
	if err := f.onBranch(ctx, ref, c, baseBranch, sha); err != nil {
		return Fix{}, err
	}
	excerpt := in.LogExcerpt
	if in.CIRun != nil && in.CIRun.RunID != 0 {
		jobs, err := c.FailedJobs(ctx, ref.Path, *in.CIRun, maxJobLog)
		if err != nil {
			return Fix{}, err
		}
		excerpt = jobExcerpt(in.LogExcerpt, jobs)
	}
	base, err := f.base(ctx, ref, c, sha)
	if err != nil {
		return Fix{}, err
	}
	fx, err := f.Recipes.Generate(ctx, recipe.Request{Repo: f.mirrorDir(ref), SHA: base, FailureSummary: in.FailureSummary, LogExcerpt: excerpt})
	if err != nil {
		return Fix{}, recipeError(err)
	}
	return Fix{
		Recipe: fx.Recipe, Summary: fx.Summary, Patch: fx.Patch, Files: fx.Files, Digest: fx.Digest,
		Repo: ref.String(), BaseBranch: baseBranch, BaseSHA: sha, Validated: fx.Validated, Check: fx.Check,
		Source: fx.Source, Validation: fx.Validation, Attempts: fx.Attempts,
	}, nil
}

// onBranch refuses a failing commit that is not on the branch its change
// would be merged into: a fork's commit (reachable only from a pull request
// ref) would otherwise land on a branch of this repository, with commits
// nobody approved.
func (f *Forges) onBranch(ctx context.Context, ref forge.Ref, c Forge, branch, sha string) error {
	if branch == "" {
		return Permanent(ErrTypeInvalidInput, "no branch to merge the change into", nil)
	}
	ok, err := c.Contains(ctx, ref.Path, branch, sha)
	if err != nil {
		return err
	}
	if !ok {
		return Permanent(ErrTypeInvalidInput, "the failing commit is not on the branch "+branch+" the change would be merged into", nil)
	}
	return nil
}

// jobExcerpt puts the failed jobs' log tails after the caller's excerpt,
// bounded, newest evidence last (recipes match anywhere in it).
func jobExcerpt(given string, jobs []FailedJob) string {
	var b strings.Builder
	b.WriteString(given)
	for _, j := range jobs {
		fmt.Fprintf(&b, "\n== %s :: %s ==\n%s", j.Name, j.Step, j.Log)
	}
	s := b.String()
	if len(s) > maxExcerpt {
		s = s[len(s)-maxExcerpt:]
	}
	return s
}

// OpenChange implements GitProvider: the approved patch is applied to the
// mirror's copy of the base commit, and the files it changes are committed
// on the forge.
func (f *Forges) OpenChange(ctx context.Context, s ChangeSpec) (PullRequest, error) {
	ref, c, err := f.parse(s.Repo)
	if err != nil {
		return PullRequest{}, err
	}
	if c == nil {
		return f.LocalGit.OpenChange(ctx, s)
	}
	base, err := f.base(ctx, ref, c, s.BaseSHA)
	if err != nil {
		return PullRequest{}, err
	}
	files, err := f.Mirrors.ChangedFiles(ctx, f.mirrorDir(ref), base, s.Patch)
	if err != nil {
		return PullRequest{}, gitError(err)
	}
	target := s.BaseBranch
	if target == "" {
		if _, target, _, err = c.Resolve(ctx, ref.Path, ""); err != nil {
			return PullRequest{}, err
		}
	}
	if err := f.onBranch(ctx, ref, c, target, s.BaseSHA); err != nil {
		return PullRequest{}, err
	}
	if err := f.samePreImage(ctx, ref, c, s.BaseSHA, files); err != nil {
		return PullRequest{}, err
	}
	return c.OpenChange(ctx, ref.Path, ForgeChange{
		Branch: s.Branch, BaseBranch: s.BaseBranch, BaseSHA: s.BaseSHA, Files: files,
		Message: s.Title + "\n\n" + s.Body, Marker: "Remediation-Id: " + s.RemediationID,
		Title: s.Title, Body: f.links(s.RemediationID) + s.Body, Labels: f.Labels, Reviewers: f.Reviewers, CommitTime: s.CommitTime,
	})
}

// samePreImage checks that every file the change touches is, on the forge
// at the base commit, exactly what the mirror held: an archive is not
// always the commit's tree (export-subst, export-ignore, LFS), and the forge
// must receive the base plus the approved diff, nothing else.
func (f *Forges) samePreImage(ctx context.Context, ref forge.Ref, c Forge, sha string, files []gitlocal.FileChange) error {
	paths := make([]string, 0, len(files))
	for _, fc := range files {
		paths = append(paths, fc.Path)
	}
	ids, err := c.BlobIDs(ctx, ref.Path, sha, paths)
	if err != nil {
		return err
	}
	for _, fc := range files {
		if got := ids[fc.Path]; got != fc.OldBlob {
			return Permanent(ErrTypePatch, "the forge's "+fc.Path+" at the base commit is not the file the fix was made on", nil)
		}
	}
	return nil
}

// links point reviewers of the change request at the remediation in the API
// and in the Temporal Web UI.
func (f *Forges) links(id string) string {
	var b strings.Builder
	if f.PublicURL != "" {
		fmt.Fprintf(&b, "Review: %s/ui/remediations/%s\n", strings.TrimRight(f.PublicURL, "/"), id)
		fmt.Fprintf(&b, "Remediation: %s/api/remediations/%s\n", strings.TrimRight(f.PublicURL, "/"), id)
	}
	if f.UIURL != "" && f.Namespace != "" {
		fmt.Fprintf(&b, "Workflow: %s/namespaces/%s/workflows/%s\n", strings.TrimRight(f.UIURL, "/"), url.PathEscape(f.Namespace), id)
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	return b.String()
}
