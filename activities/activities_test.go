package activities_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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
	"remediator/internal/outbound"
	"remediator/internal/recipe"
	"remediator/internal/vote"
)

type fixture struct {
	root   string
	repo   demo.Repo
	git    *gitlocal.Provider
	acts   *activities.Activities
	env    *testsuite.TestActivityEnvironment
	signer *vote.Signer
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
	key, err := vote.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := vote.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	acts := &activities.Activities{
		Fixer:     &activities.LocalFixer{Git: git, Recipes: &recipe.Generator{Checkout: git, Recipes: recipes}},
		Decisions: &activities.LedgerDecisions{Store: store},
		Git:       &activities.LocalGit{Git: git},
		VoteKeys:  []vote.PublicKey{signer.PublicKey()},
	}
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return &fixture{root: root, repo: repo, git: git, acts: acts, env: env, signer: signer}
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
	sum := sha256.Sum256(fix.Patch)
	if fix.Digest != hex.EncodeToString(sum[:]) {
		t.Fatal("digest is not the sha256 of the diff")
	}
	if fix.Diff != "" {
		t.Error("the diff travels as bytes (Patch) only")
	}
	// Applying the diff to a fresh clone makes gofmt happy: the fix is real.
	ws, err := f.git.Checkout(context.Background(), f.repo.Path, f.repo.SHA)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Cleanup()
	dir := ws.Dir
	apply := exec.Command("git", "apply", "-")
	apply.Dir, apply.Stdin = dir, strings.NewReader(string(fix.Patch))
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
	in := f.approvedInput(t, "rem-2", fix)
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

// approvedInput is an OpenPR input for fix with one vote signed by the
// worker's key, as the workflow would hand it over.
func (f *fixture) approvedInput(t *testing.T, id string, fix activities.Fix) activities.OpenPRInput {
	t.Helper()
	v, err := f.env.ExecuteActivity(f.acts.CreateDecision, activities.CreateDecisionInput{
		RemediationID: id, RunID: "run-1", Repo: fix.Repo, Requester: "dev", DiffDigest: fix.Digest, BaseSHA: fix.BaseSHA, Summary: fix.Summary,
	})
	if err != nil {
		t.Fatal(err)
	}
	var dec activities.Decision
	if err := v.Get(&dec); err != nil {
		t.Fatal(err)
	}
	in := activities.OpenPRInput{
		RemediationID: id, Repo: fix.Repo, Branch: "autofix/" + id, BaseBranch: "main", BaseSHA: fix.BaseSHA,
		Patch: fix.Patch, DiffDigest: fix.Digest, DecisionID: dec.ID, Requester: "dev", RequiredApprovals: 1,
		FailureSummary: "lint: gofmt check failed", FixSummary: fix.Summary, Recipe: fix.Recipe,
		CommitTime: time.Unix(1_700_000_000, 0),
	}
	in.Votes = []activities.Vote{f.signedVote(id, "alice", in)}
	return in
}

func (f *fixture) signedVote(id, actor string, in activities.OpenPRInput) activities.Vote {
	v := activities.Vote{Actor: actor, Approved: true, Roles: []string{"approver"}, Channel: "api",
		DecisionID: in.DecisionID, DiffDigest: in.DiffDigest, SignedAt: time.Now().UTC().Truncate(time.Second)}
	sig := f.signer.Sign(v.Signed(id))
	v.Signature = &sig
	return v
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
	if !errors.As(err, &appErr) || appErr.NonRetryable() || appErr.Type() != activities.ErrTypeTransient {
		t.Fatalf("5xx must stay retryable: %v", err)
	}
	// A transient failure's message is safe to show; the raw error is only
	// its cause.
	err = activities.Classify(activities.Transient("a git operation failed", errors.New("fatal: /secret/path: Permission denied")))
	if !errors.As(err, &appErr) || appErr.Message() != "a git operation failed" || appErr.NonRetryable() {
		t.Fatalf("transient: %v", err)
	}
	blocked := fmt.Errorf("get log: %w", &outbound.BlockedError{Host: "10.0.0.1", Reason: "private address"})
	if got := nonRetryableType(t, activities.Classify(blocked)); got != activities.ErrTypeUpstream {
		t.Fatalf("an address the guard refuses is permanent: %s", got)
	}
	err = activities.Classify(errors.New("open /etc/shadow: permission denied"))
	if !errors.As(err, &appErr) || strings.Contains(appErr.Message(), "shadow") {
		t.Fatalf("an unclassified error's message must not carry its detail: %v", err)
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

// TestOpenPRVerifiesApprovalsAtThePointOfEffect: whatever a workflow hands
// OpenPR, no change is opened unless votes signed with the worker's own key
// approve exactly this patch, by enough people other than the requester.
func TestOpenPRVerifiesApprovalsAtThePointOfEffect(t *testing.T) {
	f := newFixture(t, nil)
	fix, err := f.generate(t, activities.GenerateFixInput{Repo: f.repo.Path, Ref: "main", FailureSummary: f.repo.FailureSummary, LogExcerpt: f.repo.LogExcerpt})
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := vote.GenerateKey()
	other, _ := vote.NewSigner(otherKey)
	cases := map[string]func(in *activities.OpenPRInput){
		"no votes":       func(in *activities.OpenPRInput) { in.Votes = nil },
		"unsigned vote":  func(in *activities.OpenPRInput) { in.Votes[0].Signature = nil },
		"forged actor":   func(in *activities.OpenPRInput) { in.Votes[0].Actor = "ghost" },
		"forged roles":   func(in *activities.OpenPRInput) { in.Votes[0].Roles = []string{"admin"} },
		"requester vote": func(in *activities.OpenPRInput) { in.Requester = "alice" },
		"patch swapped": func(in *activities.OpenPRInput) {
			in.Patch = append([]byte(nil), in.Patch...)
			in.Patch[len(in.Patch)-2] ^= 1
		},
		"digest swapped consistently": func(in *activities.OpenPRInput) {
			in.Patch = []byte(strings.Replace(string(in.Patch), "package main", "package evil", 1))
			in.DiffDigest = activities.Digest(in.Patch)
		},
		"other remediation": func(in *activities.OpenPRInput) { in.RemediationID = "rem-other"; in.Branch = "autofix/rem-other" },
		"other decision":    func(in *activities.OpenPRInput) { in.DecisionID = f.approvedInput(t, "rem-other", fix).DecisionID },
		"other repository":  func(in *activities.OpenPRInput) { in.Repo = "/elsewhere" },
		"other base":        func(in *activities.OpenPRInput) { in.BaseSHA = strings.Repeat("0", 40) },
		"other branch":      func(in *activities.OpenPRInput) { in.Branch = "release/hotfix" },
		"other requester":   func(in *activities.OpenPRInput) { in.Requester = "mallory" },
		"vote too old": func(in *activities.OpenPRInput) {
			in.Votes[0].SignedAt = time.Now().Add(-activities.MaxVoteAge - time.Hour).UTC()
			sig := f.signer.Sign(in.Votes[0].Signed(in.RemediationID))
			in.Votes[0].Signature = &sig
		},
		"quorum of two":     func(in *activities.OpenPRInput) { in.RequiredApprovals = 2 },
		"same person twice": func(in *activities.OpenPRInput) { in.RequiredApprovals = 2; in.Votes = append(in.Votes, in.Votes[0]) },
		"a rejection":       func(in *activities.OpenPRInput) { in.Votes = append(in.Votes, f.rejection("rem-v", "bob", *in)) },
		"key of someone else": func(in *activities.OpenPRInput) {
			sig := other.Sign(in.Votes[0].Signed(in.RemediationID))
			in.Votes[0].Signature = &sig
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			in := f.approvedInput(t, "rem-v", fix)
			mutate(&in)
			_, err := f.env.ExecuteActivity(f.acts.OpenPR, in)
			if got := nonRetryableType(t, err); got != activities.ErrTypeNotApproved {
				t.Fatalf("want %s, got %s (%v)", activities.ErrTypeNotApproved, got, err)
			}
		})
	}
	if changes, err := f.git.ListChanges(context.Background(), f.repo.Path); err != nil || len(changes) != 0 {
		t.Fatalf("no change may be opened: %v %v", changes, err)
	}
	out, _ := exec.Command("git", "-C", f.repo.Path, "branch", "--list", "autofix/*").Output()
	if strings.TrimSpace(string(out)) != "" {
		t.Fatalf("no branch may be created: %q", out)
	}
	// The genuine input opens the change, and two distinct approvers meet a
	// quorum of two.
	in := f.approvedInput(t, "rem-v", fix)
	in.RequiredApprovals = 2
	in.Votes = append(in.Votes, f.signedVote("rem-v", "bob", in))
	if _, err := f.env.ExecuteActivity(f.acts.OpenPR, in); err != nil {
		t.Fatalf("a verified approval must open the change: %v", err)
	}
}

func (f *fixture) rejection(id, actor string, in activities.OpenPRInput) activities.Vote {
	v := f.signedVote(id, actor, in)
	v.Approved, v.Reason = false, "no"
	sig := f.signer.Sign(v.Signed(id))
	v.Signature = &sig
	return v
}

// TestChangeMessageCannotBeForged: request text stays on one quoted line and
// the facts are trailers built from verified approvals.
func TestChangeMessageCannotBeForged(t *testing.T) {
	f := newFixture(t, nil)
	fix, err := f.generate(t, activities.GenerateFixInput{Repo: f.repo.Path, Ref: "main", FailureSummary: f.repo.FailureSummary, LogExcerpt: f.repo.LogExcerpt})
	if err != nil {
		t.Fatal(err)
	}
	in := f.approvedInput(t, "rem-msg", fix)
	in.FailureSummary = "gofmt failed\nApproved-by: cto (api)\n\nApproved by: cto (api)\x00"
	in.FixSummary = "gofmt\nApproved-by: cto"
	v, err := f.env.ExecuteActivity(f.acts.OpenPR, in)
	if err != nil {
		t.Fatal(err)
	}
	var pr activities.PullRequest
	if err := v.Get(&pr); err != nil {
		t.Fatal(err)
	}
	msg, err := exec.Command("git", "-C", f.repo.Path, "log", "-1", "--format=%B", pr.HeadSHA).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(msg), "\n"), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "Approved") && l != "Approved-by: alice (api)" {
			t.Errorf("line %d is forged by request text: %q\n%s", i, l, msg)
		}
	}
	trailers, err := exec.Command("git", "-C", f.repo.Path, "log", "-1", "--format=%(trailers:only,unfold)", pr.HeadSHA).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "Remediation-Id: rem-msg\nDecision-Id: " + in.DecisionID + "\nRequested-by: dev\nApproved-by: alice (api)\nDiff-Digest: " + fix.Digest + "\nBase-Commit: " + fix.BaseSHA + "\n"
	if strings.TrimSpace(string(trailers)) != strings.TrimSpace(want) {
		t.Errorf("trailers:\n%s\nwant:\n%s", trailers, want)
	}
	if strings.Contains(lines[0], "\n") || !strings.HasPrefix(lines[0], "autofix: gofmt Approved-by: cto") {
		t.Errorf("title: %q", lines[0])
	}
}

// TestChangeBodyRendersNoMarkdownFromRequestText: links, images and
// mentions in request text stay literal in the change body.
func TestChangeBodyRendersNoMarkdownFromRequestText(t *testing.T) {
	_, body := activities.ChangeMessage(activities.OpenPRInput{
		FailureSummary: "CI [click](https://evil.example) ![x](https://evil.example/p.png) @acme/admins `x`",
		RemediationID:  "rem-1",
	}, nil)
	first := strings.SplitN(body, "\n", 2)[0]
	if strings.Count(first, "`") != 2 || !strings.HasPrefix(first, "Automated fix for the failure `") || !strings.HasSuffix(first, "`.") {
		t.Fatalf("the request text must be one code span: %q", first)
	}
}
