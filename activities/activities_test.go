package activities_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"remediator/activities"
	"remediator/internal/demo"
	"remediator/internal/gitlocal"
	"remediator/internal/ledger"
	"remediator/internal/recipe"
)

type fixture struct {
	root string
	repo demo.Repo
	git  *gitlocal.Provider
	acts *activities.Activities
	env  *testsuite.TestActivityEnvironment
}

func newFixture(t *testing.T, recipes []recipe.Recipe) *fixture {
	t.Helper()
	root := t.TempDir()
	repo, err := demo.Ensure(context.Background(), filepath.Join(root, "demo"))
	if err != nil {
		t.Fatal(err)
	}
	git, err := gitlocal.New(gitlocal.Options{Roots: []string{root}, ScratchDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	store, err := ledger.Open(filepath.Join(root, "decisions"))
	if err != nil {
		t.Fatal(err)
	}
	if recipes == nil {
		recipes = recipe.Builtin()
	}
	acts := &activities.Activities{
		Fixer:     &activities.LocalFixer{Git: git, Recipes: &recipe.Generator{Checkout: git, Recipes: recipes}},
		Decisions: &activities.LedgerDecisions{Store: store},
		Git:       &activities.LocalGit{Git: git},
	}
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return &fixture{root: root, repo: repo, git: git, acts: acts, env: env}
}

func (f *fixture) generate(t *testing.T, in activities.GenerateFixInput) (activities.Fix, error) {
	t.Helper()
	v, err := f.env.ExecuteActivity(f.acts.GenerateFix, in)
	if err != nil {
		return activities.Fix{}, err
	}
	var fix activities.Fix
	if err := v.Get(&fix); err != nil {
		t.Fatal(err)
	}
	return fix, nil
}

func nonRetryableType(t *testing.T, err error) string {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		t.Fatalf("want an application error, got %T %v", err, err)
	}
	if !appErr.NonRetryable() {
		t.Fatalf("want non-retryable, got %v", err)
	}
	return appErr.Type()
}

func TestGenerateFixProducesTheGofmtDiff(t *testing.T) {
	f := newFixture(t, nil)
	fix, err := f.generate(t, activities.GenerateFixInput{
		RemediationID: "rem-1", Repo: f.repo.Path, Ref: f.repo.Branch,
		FailureSummary: f.repo.FailureSummary, LogExcerpt: f.repo.LogExcerpt,
	})
	if err != nil {
		t.Fatal(err)
	}
	if fix.Recipe != "gofmt" || !fix.Validated || fix.BaseSHA != f.repo.SHA || fix.BaseBranch != "main" {
		t.Fatalf("unexpected fix: %+v", fix)
	}
	if strings.Join(fix.Files, ",") != "main.go,util.go" {
		t.Fatalf("files: %v", fix.Files)
	}
	sum := sha256.Sum256([]byte(fix.Diff))
	if fix.Digest != hex.EncodeToString(sum[:]) {
		t.Fatal("digest is not the sha256 of the diff")
	}
	// Applying the diff to a fresh clone makes gofmt happy: the fix is real.
	dir, cleanup, err := f.git.Checkout(context.Background(), f.repo.Path, f.repo.SHA)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	apply := exec.Command("git", "apply", "-")
	apply.Dir, apply.Stdin = dir, strings.NewReader(fix.Diff)
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("git apply: %v %s", err, out)
	}
	out, err := exec.Command("gofmt", "-l", dir).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("gofmt still complains: %s %v", out, err)
	}
}

func TestGenerateFixRefusesDeniedPath(t *testing.T) {
	f := newFixture(t, []recipe.Recipe{{
		Name: "touch-ci", Match: "gofmt", Command: "echo '# changed' >> .github/workflows/ci.yml", Timeout: time.Minute,
	}})
	_, err := f.generate(t, activities.GenerateFixInput{Repo: f.repo.Path, FailureSummary: "gofmt failed"})
	if got := nonRetryableType(t, err); got != activities.ErrTypeFixRefused {
		t.Fatalf("want %s, got %s (%v)", activities.ErrTypeFixRefused, got, err)
	}
}

func TestGenerateFixWithoutMatchingRecipeIsNoFix(t *testing.T) {
	f := newFixture(t, nil)
	_, err := f.generate(t, activities.GenerateFixInput{Repo: f.repo.Path, FailureSummary: "the moon is full"})
	if got := nonRetryableType(t, err); got != activities.ErrTypeNoFix {
		t.Fatalf("want NoFix, got %s", got)
	}
}

func TestGenerateFixRefusesRepoOutsideRoots(t *testing.T) {
	f := newFixture(t, nil)
	other, err := demo.Ensure(context.Background(), filepath.Join(t.TempDir(), "elsewhere"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.generate(t, activities.GenerateFixInput{Repo: other.Path, FailureSummary: other.FailureSummary, LogExcerpt: other.LogExcerpt})
	if got := nonRetryableType(t, err); got != activities.ErrTypeInvalidInput {
		t.Fatalf("want InvalidInput, got %s", got)
	}
}

func TestOpenPRTwiceYieldsOneChange(t *testing.T) {
	f := newFixture(t, nil)
	fix, err := f.generate(t, activities.GenerateFixInput{Repo: f.repo.Path, Ref: "main", FailureSummary: f.repo.FailureSummary, LogExcerpt: f.repo.LogExcerpt})
	if err != nil {
		t.Fatal(err)
	}
	in := activities.OpenPRInput{
		RemediationID: "rem-2", Repo: fix.Repo, Branch: "autofix/rem-2", BaseBranch: "main", BaseSHA: fix.BaseSHA,
		Diff: fix.Diff, DiffDigest: fix.Digest, Title: "autofix: gofmt", Body: "body", CommitTime: time.Unix(1_700_000_000, 0),
	}
	var prs [2]activities.PullRequest
	for i := range prs {
		v, err := f.env.ExecuteActivity(f.acts.OpenPR, in)
		if err != nil {
			t.Fatalf("OpenPR #%d: %v", i+1, err)
		}
		if err := v.Get(&prs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if !prs[0].Created || prs[1].Created || prs[0].ID != prs[1].ID || prs[0].HeadSHA != prs[1].HeadSHA {
		t.Fatalf("want one change created once, got %+v and %+v", prs[0], prs[1])
	}
	changes, err := f.git.ListChanges(context.Background(), f.repo.Path)
	if err != nil || len(changes) != 1 {
		t.Fatalf("want exactly one change, got %d (%v)", len(changes), err)
	}
	out, err := exec.Command("git", "-C", f.repo.Path, "branch", "--list", "autofix/*").Output()
	if err != nil || strings.Count(string(out), "autofix/") != 1 {
		t.Fatalf("branches: %q %v", out, err)
	}
}

func TestDecisionLifecycleInLedger(t *testing.T) {
	f := newFixture(t, nil)
	in := activities.CreateDecisionInput{RemediationID: "rem-3", Repo: "r", Requester: "dev", DiffDigest: "abc", Summary: "s"}
	var d1, d2 activities.Decision
	for _, d := range []*activities.Decision{&d1, &d2} {
		v, err := f.env.ExecuteActivity(f.acts.CreateDecision, in)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Get(d); err != nil {
			t.Fatal(err)
		}
	}
	if d1.ID == "" || d1.ID != d2.ID {
		t.Fatalf("create must be idempotent: %v %v", d1, d2)
	}
	_, err := f.env.ExecuteActivity(f.acts.RecordOutcome, activities.RecordOutcomeInput{
		RemediationID: "rem-3", DecisionID: d1.ID, Phase: "Rejected", Reason: "no",
		Votes: []activities.Vote{{Actor: "alice", Approved: false, Comment: "no"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	store := f.acts.Decisions.(*activities.LedgerDecisions).Store
	rec, err := store.Get(context.Background(), d1.ID)
	if err != nil || rec.Status != ledger.StatusRejected || len(rec.Votes) != 1 || rec.Votes[0].Actor != "alice" {
		t.Fatalf("record: %+v %v", rec, err)
	}
	_, err = f.env.ExecuteActivity(f.acts.RecordOutcome, activities.RecordOutcomeInput{DecisionID: ledger.IDFor("never-created"), Phase: "Failed"})
	if got := nonRetryableType(t, err); got != activities.ErrTypeNotFound {
		t.Fatalf("unknown decision: %s", got)
	}
}

type httpErr struct {
	status int
	after  time.Duration
}

func (e httpErr) Error() string                  { return "http error" }
func (e httpErr) HTTPStatus() int                { return e.status }
func (e httpErr) RetryAfterDelay() time.Duration { return e.after }

func TestClassify(t *testing.T) {
	if activities.Classify(nil) != nil {
		t.Fatal("nil stays nil")
	}
	var appErr *temporal.ApplicationError
	err := activities.Classify(httpErr{status: 429, after: 7 * time.Second})
	if !errors.As(err, &appErr) || appErr.NonRetryable() || appErr.NextRetryDelay() != 7*time.Second {
		t.Fatalf("429 must be retried after Retry-After: %v", err)
	}
	for status, want := range map[int]string{404: activities.ErrTypeNotFound, 409: activities.ErrTypeConflict, 401: activities.ErrTypeUpstream} {
		if got := nonRetryableType(t, activities.Classify(httpErr{status: status})); got != want {
			t.Errorf("%d: want %s got %s", status, want, got)
		}
	}
	err = activities.Classify(httpErr{status: 502})
	if errors.As(err, &appErr) {
		t.Fatalf("5xx must stay a plain (retryable) error: %v", err)
	}
	if got := nonRetryableType(t, activities.Classify(activities.Permanent(activities.ErrTypePatch, "x", nil))); got != activities.ErrTypePatch {
		t.Fatal(got)
	}
}

func TestMissingClientsFailNonRetryably(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	acts := &activities.Activities{}
	env.RegisterActivity(acts)
	_, err := env.ExecuteActivity(acts.GenerateFix, activities.GenerateFixInput{Repo: "/x", FailureSummary: "y"})
	if got := nonRetryableType(t, err); got != activities.ErrTypeNotConfigured {
		t.Fatal(got)
	}
}

func TestHeadRefIsNoBaseBranch(t *testing.T) {
	f := newFixture(t, nil)
	for ref, want := range map[string]string{"main": "main", "HEAD": ""} {
		fix, err := f.generate(t, activities.GenerateFixInput{Repo: f.repo.Path, Ref: ref, FailureSummary: f.repo.FailureSummary, LogExcerpt: f.repo.LogExcerpt})
		if err != nil {
			t.Fatal(err)
		}
		if fix.BaseBranch != want {
			t.Errorf("ref %s: base branch %q, want %q", ref, fix.BaseBranch, want)
		}
	}
}
