package activities_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"remediator/activities"
)

// commit writes content to file in repo and commits it on the checked-out
// branch; it returns the new head.
func commit(t *testing.T, repo, file, content string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(repo, file), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"add", file}, {"-c", "user.name=P", "-c", "user.email=p@example.com", "commit", "-qm", "move"}} {
		if out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	out, err := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// OpenPR (workflow version 5, votes bound to the base) checks the base
// branch first: moved under a diff that still applies unchanged, the change
// is opened on the approved base; moved so that a file the diff touches
// changed, it refuses with BaseMoved naming the new head, before anything
// is written.
func TestOpenPRChecksTheBase(t *testing.T) {
	f := newFixture(t, nil)
	fix, err := f.generate(t, activities.GenerateFixInput{Repo: f.repo.Path, Ref: "main", FailureSummary: f.repo.FailureSummary, LogExcerpt: f.repo.LogExcerpt})
	if err != nil {
		t.Fatal(err)
	}
	in := f.approvedInput(t, "rem-base1", fix)
	in.BaseBound = true
	for i := range in.Votes {
		in.Votes[i].BaseSHA = fix.BaseSHA
		sig := f.signer.Sign(in.Votes[i].Signed(in.RemediationID))
		in.Votes[i].Signature = &sig
	}

	// An unrelated file moved: the diff applies as approved.
	commit(t, f.repo.Path, "NOTES.md", "notes\n")
	v, err := f.env.ExecuteActivity(f.acts.OpenPR, in)
	if err != nil {
		t.Fatalf("a base that moved elsewhere: %v", err)
	}
	var pr activities.PullRequest
	if err := v.Get(&pr); err != nil || !pr.Created {
		t.Fatalf("pr %+v %v", pr, err)
	}
	if parent, _ := exec.Command("git", "-C", f.repo.Path, "rev-parse", pr.Branch+"^").Output(); strings.TrimSpace(string(parent)) != fix.BaseSHA {
		t.Fatalf("the change is not on the approved base %s: %s", fix.BaseSHA, parent)
	}

	// A file the diff touches moved: refused, nothing written.
	in2 := f.approvedInput(t, "rem-base2", fix)
	in2.BaseBound = true
	for i := range in2.Votes {
		in2.Votes[i].BaseSHA = fix.BaseSHA
		sig := f.signer.Sign(in2.Votes[i].Signed(in2.RemediationID))
		in2.Votes[i].Signature = &sig
	}
	util, err := os.ReadFile(filepath.Join(f.repo.Path, "util.go"))
	if err != nil {
		t.Fatal(err)
	}
	head := commit(t, f.repo.Path, "util.go", "// greets\n"+string(util))
	_, err = f.env.ExecuteActivity(f.acts.OpenPR, in2)
	if got := nonRetryableType(t, err); got != activities.ErrTypeBaseMoved {
		t.Fatalf("want BaseMoved, got %s: %v", got, err)
	}
	if !strings.Contains(err.Error(), head) {
		t.Fatalf("the refusal names the new head %s: %v", head, err)
	}
	if out, _ := exec.Command("git", "-C", f.repo.Path, "branch", "--list", "autofix/rem-base2").Output(); len(out) != 0 {
		t.Fatalf("a branch was created for a base nobody approved: %s", out)
	}

	// A vote that does not name the base is refused at the point of effect.
	in3 := f.approvedInput(t, "rem-base3", fix)
	in3.BaseBound = true
	if _, err := f.env.ExecuteActivity(f.acts.OpenPR, in3); nonRetryableType(t, err) != activities.ErrTypeNotApproved {
		t.Fatalf("a vote without its base: %v", err)
	}
}
