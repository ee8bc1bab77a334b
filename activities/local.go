package activities

import (
	"context"
	"errors"
	"regexp"

	"remediator/internal/gitlocal"
	"remediator/internal/recipe"
)

// LocalFixer generates fixes with recipes on local git repositories: the
// provider resolves the failing commit, the recipe generator runs in a
// scratch checkout of it.
type LocalFixer struct {
	Git     *gitlocal.Provider
	Recipes *recipe.Generator
}

var hexSHA = regexp.MustCompile(`^[0-9a-f]{7,40}$`)

// Generate implements FixGenerator.
func (f *LocalFixer) Generate(ctx context.Context, in GenerateFixInput) (Fix, error) {
	ref := in.SHA
	if ref == "" {
		ref = in.Ref
	}
	path, sha, err := f.Git.Resolve(ctx, in.Repo, ref)
	if err != nil {
		return Fix{}, gitError(err)
	}
	fx, err := f.Recipes.Generate(ctx, recipe.Request{
		Repo: path, SHA: sha, FailureSummary: in.FailureSummary, LogExcerpt: in.LogExcerpt,
	})
	if err != nil {
		return Fix{}, recipeError(err)
	}
	baseBranch := ""
	if in.Ref != "" && !hexSHA.MatchString(in.Ref) {
		isBranch, err := f.Git.IsBranch(ctx, path, in.Ref)
		if err != nil {
			return Fix{}, gitError(err)
		}
		if isBranch {
			baseBranch = in.Ref
		}
	}
	return Fix{
		Recipe: fx.Recipe, Summary: fx.Summary, Patch: fx.Patch, Files: fx.Files, Digest: fx.Digest,
		Repo: path, BaseBranch: baseBranch, BaseSHA: fx.BaseSHA, Validated: fx.Validated, Check: fx.Check,
		Source: fx.Source, Validation: fx.Validation, Attempts: fx.Attempts,
	}, nil
}

// LocalGit opens change requests as branches plus records in local repositories.
type LocalGit struct {
	Git *gitlocal.Provider
}

// OpenChange implements GitProvider.
func (g *LocalGit) OpenChange(ctx context.Context, c ChangeSpec) (PullRequest, error) {
	ch, err := g.Git.OpenChange(ctx, gitlocal.ChangeRequest{
		Repo: c.Repo, Branch: c.Branch, BaseBranch: c.BaseBranch, BaseSHA: c.BaseSHA, Patch: c.Patch,
		Title: c.Title, Body: c.Body, RemediationID: c.RemediationID, CommitTime: c.CommitTime,
	})
	if err != nil {
		return PullRequest{}, gitError(err)
	}
	return PullRequest{ID: ch.ID, URL: ch.URL, Branch: ch.Branch, BaseBranch: ch.BaseBranch, HeadSHA: ch.HeadSHA, Created: ch.Created}, nil
}

// gitError classifies the local provider's errors. Messages name the kind of
// failure only: paths, git's stderr and whether a file exists stay in the
// cause, for the log.
func gitError(err error) error {
	switch gitlocal.KindOf(err) {
	case gitlocal.KindInvalidRepo:
		return Permanent(ErrTypeInvalidInput, "the repository or a name in the request is not acceptable", err)
	case gitlocal.KindNotFound:
		return Permanent(ErrTypeNotFound, "unknown ref or commit", err)
	case gitlocal.KindConflict:
		return Permanent(ErrTypeConflict, "the branch already holds a different change", err)
	case gitlocal.KindPatch:
		return Permanent(ErrTypePatch, "the diff does not apply to its base commit", err)
	}
	return Transient("a git operation failed", err)
}

// recipeError classifies the recipe generator's errors; the message carries
// the recipe and what went wrong, never the command's output (which may echo
// file contents) — that is logged from the cause. A model provider's error
// (*llm.APIError inside a transient recipe error) stays in the chain, so
// Classify decides by its HTTP status and Retry-After.
func recipeError(err error) error {
	var gerr *gitlocal.Error
	var rerr *recipe.Error
	safe := "the recipe failed"
	if errors.As(err, &rerr) {
		safe = rerr.Summary()
	}
	switch recipe.KindOf(err) {
	case recipe.KindNoRecipe, recipe.KindNoChange:
		return Permanent(ErrTypeNoFix, safe, err)
	case recipe.KindTooLarge, recipe.KindDeniedPath, recipe.KindCheckFailed, recipe.KindTimeout, recipe.KindModelFailed:
		return Permanent(ErrTypeFixRefused, safe, err)
	case recipe.KindInvalid:
		return Permanent(ErrTypeInvalidInput, safe, err)
	}
	if errors.As(err, &gerr) {
		return gitError(err)
	}
	return Transient(safe, err)
}
