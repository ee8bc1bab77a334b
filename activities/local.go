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
		Recipe: fx.Recipe, Summary: fx.Summary, Diff: fx.Diff, Files: fx.Files, Digest: fx.Digest,
		Repo: path, BaseBranch: baseBranch, BaseSHA: fx.BaseSHA, Validated: fx.Validated, Check: fx.Check,
	}, nil
}

// LocalGit opens change requests as branches plus records in local repositories.
type LocalGit struct {
	Git *gitlocal.Provider
}

// OpenChange implements GitProvider.
func (g *LocalGit) OpenChange(ctx context.Context, in OpenPRInput) (PullRequest, error) {
	ch, err := g.Git.OpenChange(ctx, gitlocal.ChangeRequest{
		Repo: in.Repo, Branch: in.Branch, BaseBranch: in.BaseBranch, BaseSHA: in.BaseSHA, Diff: in.Diff,
		Title: in.Title, Body: in.Body, RemediationID: in.RemediationID, CommitTime: in.CommitTime,
	})
	if err != nil {
		return PullRequest{}, gitError(err)
	}
	return PullRequest{ID: ch.ID, URL: ch.URL, Branch: ch.Branch, BaseBranch: ch.BaseBranch, HeadSHA: ch.HeadSHA, Created: ch.Created}, nil
}

func gitError(err error) error {
	switch gitlocal.KindOf(err) {
	case gitlocal.KindInvalidRepo:
		return Permanent(ErrTypeInvalidInput, "invalid repository", err)
	case gitlocal.KindNotFound:
		return Permanent(ErrTypeNotFound, "unknown ref or commit", err)
	case gitlocal.KindConflict:
		return Permanent(ErrTypeConflict, "the branch already holds a different change", err)
	case gitlocal.KindPatch:
		return Permanent(ErrTypePatch, "the diff does not apply", err)
	}
	return err
}

func recipeError(err error) error {
	var gerr *gitlocal.Error
	switch recipe.KindOf(err) {
	case recipe.KindNoRecipe:
		return Permanent(ErrTypeNoFix, "no recipe matches this failure", err)
	case recipe.KindNoChange:
		return Permanent(ErrTypeNoFix, "matching recipes produced no change", err)
	case recipe.KindTooLarge, recipe.KindDeniedPath, recipe.KindCheckFailed, recipe.KindTimeout:
		return Permanent(ErrTypeFixRefused, "the fix was refused", err)
	case recipe.KindInvalid:
		return Permanent(ErrTypeInvalidInput, "the fix request or a recipe is invalid", err)
	}
	if errors.As(err, &gerr) {
		return gitError(err)
	}
	return err
}
