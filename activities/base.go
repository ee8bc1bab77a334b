package activities

import (
	"context"

	"go.temporal.io/sdk/temporal"

	"remediator/internal/gitlocal"
)

// CheckBaseInput names an approved fix: the patch made on BaseSHA, to be
// merged into BaseBranch.
type CheckBaseInput struct {
	Repo       string `json:"repo"`
	BaseBranch string `json:"base_branch"`
	BaseSHA    string `json:"base_sha"`
	Patch      []byte `json:"patch"`
}

// BaseCheck says whether the base branch moved since the fix was made and,
// if so, whether the patch applies to its head exactly as approved (every
// file it touches is unchanged since BaseSHA).
type BaseCheck struct {
	Head    string `json:"head"`
	Moved   bool   `json:"moved"`
	Applies bool   `json:"applies"`
}

// BaseChecker is a git provider that can tell whether a base moved.
type BaseChecker interface {
	CheckBase(ctx context.Context, in CheckBaseInput) (BaseCheck, error)
}

// checkBase (in OpenPR, version 5) refuses, with ErrTypeBaseMoved and the
// new head as details, an approved fix whose base branch moved so that the
// diff no longer applies unchanged. A base that moved under a diff that
// still applies as approved is fine: the change is opened on the approved
// base.
func (a *Activities) checkBase(ctx context.Context, in OpenPRInput) error {
	bc, ok := a.Git.(BaseChecker)
	if !ok || in.BaseBranch == "" {
		return nil
	}
	res, err := bc.CheckBase(ctx, CheckBaseInput{Repo: in.Repo, BaseBranch: in.BaseBranch, BaseSHA: in.BaseSHA, Patch: in.Patch})
	if err != nil {
		return classifyLogged(ctx, "checking the base branch", err)
	}
	if res.Moved && !res.Applies {
		logger(ctx).Info("the base moved under the approved diff", "remediation_id", in.RemediationID, "head", res.Head)
		return temporal.NewNonRetryableApplicationError("the base branch "+in.BaseBranch+" moved to "+res.Head+
			" and the approved diff no longer applies to it unchanged", ErrTypeBaseMoved, nil, res)
	}
	return nil
}

// CheckBase implements BaseChecker for local repositories: the patch must
// apply to the branch's head and touch only files the head holds exactly
// as the base did.
func (g *LocalGit) CheckBase(ctx context.Context, in CheckBaseInput) (BaseCheck, error) {
	_, head, err := g.Git.Resolve(ctx, in.Repo, "refs/heads/"+in.BaseBranch)
	if err != nil {
		return BaseCheck{}, gitError(err)
	}
	if head == in.BaseSHA {
		return BaseCheck{Head: head}, nil
	}
	before, err := g.Git.ChangedFiles(ctx, in.Repo, in.BaseSHA, in.Patch)
	if err != nil {
		return BaseCheck{}, gitError(err)
	}
	after, err := g.Git.ChangedFiles(ctx, in.Repo, head, in.Patch)
	if gitlocal.KindOf(err) == gitlocal.KindPatch {
		return BaseCheck{Head: head, Moved: true}, nil
	}
	if err != nil {
		return BaseCheck{}, gitError(err)
	}
	return BaseCheck{Head: head, Moved: true, Applies: sameChanges(before, after)}, nil
}

// sameChanges: the patch changes the same files from the same content.
func sameChanges(a, b []gitlocal.FileChange) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Path != b[i].Path || a[i].OldBlob != b[i].OldBlob || a[i].Delete != b[i].Delete {
			return false
		}
	}
	return true
}

// CheckBase implements BaseChecker for forges: the files the patch touches
// must hold, at the branch's head, the blobs they held at the base.
func (f *Forges) CheckBase(ctx context.Context, in CheckBaseInput) (BaseCheck, error) {
	ref, c, err := f.parse(in.Repo)
	if err != nil {
		return BaseCheck{}, err
	}
	if c == nil {
		if lg, ok := f.LocalGit.(BaseChecker); ok {
			return lg.CheckBase(ctx, in)
		}
		return BaseCheck{Head: in.BaseSHA}, nil
	}
	head, _, _, err := c.Resolve(ctx, ref.Path, in.BaseBranch)
	if err != nil {
		return BaseCheck{}, err
	}
	if head == in.BaseSHA {
		return BaseCheck{Head: head}, nil
	}
	base, err := f.base(ctx, ref, c, in.BaseSHA)
	if err != nil {
		return BaseCheck{}, err
	}
	files, err := f.Mirrors.ChangedFiles(ctx, f.mirrorDir(ref), base, in.Patch)
	if err != nil {
		return BaseCheck{}, gitError(err)
	}
	paths := make([]string, 0, len(files))
	for _, fc := range files {
		paths = append(paths, fc.Path)
	}
	ids, err := c.BlobIDs(ctx, ref.Path, head, paths)
	if err != nil {
		return BaseCheck{}, err
	}
	for _, fc := range files {
		if ids[fc.Path] != fc.OldBlob {
			return BaseCheck{Head: head, Moved: true}, nil
		}
	}
	return BaseCheck{Head: head, Moved: true, Applies: true}, nil
}
