//go:build !production

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"remediator/activities"
	"remediator/internal/auth"
	"remediator/internal/demo"
	"remediator/internal/devserver"
	"remediator/internal/hostile"
	votekey "remediator/internal/vote"
	"remediator/workflows"
)

// TestHostileRepositoryAndForgedVotesAchieveNothing runs the real stack
// against a repository crafted with symlinks out of the checkout, hooks and
// configuration-defined programs, and a Temporal client forging votes: no
// program of the repository runs, nothing outside the checkout is read into
// a reason or written, no forged vote counts, and only the genuine approval
// opens a change.
func TestHostileRepositoryAndForgedVotesAchieveNothing(t *testing.T) {
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := startStack(t, dir, ports)
	h := hostile.New(t, dir, "hostile", t.TempDir())
	ctx := context.Background()

	// The gofmt recipe meets the link to the secret (a plain file in the
	// checkout): the run fails, and its reason carries nothing of the file.
	gid := s.start("dev", "hostile-gofmt", h.Path, hostile.Failure)
	failed := s.waitPhase(gid, workflows.PhaseFailed)
	if reason, _ := failed["reason"].(string); strings.Contains(reason, h.SecretValue) || strings.Contains(reason, "TOPSECRET") {
		t.Fatalf("the reason carries the secret: %q", reason)
	}

	// A fix that touches no link: generated, approved and opened in the
	// armed repository.
	id := s.start("dev", "hostile-ws", h.Path, hostile.WhitespaceFailure)
	st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
	if files := st["fix"].(map[string]any)["files"].([]any); len(files) != 1 || files[0] != "notes.txt" {
		t.Fatalf("fix files: %v", files)
	}
	decision, digest := st["decision_id"].(string), st["fix"].(map[string]any)["digest"].(string)

	// Forged votes straight through Temporal: an unsigned Update is refused
	// before history, signals are recorded and ignored.
	ghost := workflows.ApprovalRequest{Actor: "ghost", Roles: []string{workflows.RoleAdmin}, DecisionID: decision, DiffDigest: digest, Channel: workflows.ChannelAPI}
	if err := s.forgeUpdate(ctx, id, ghost); err == nil {
		t.Fatal("an unsigned Update from a Temporal client was accepted")
	}
	attacker, err := votekey.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	attackerSigner, _ := votekey.NewSigner(attacker)
	if err := s.forgeUpdate(ctx, id, workflows.SignVote(attackerSigner, id, true, ghost, time.Now())); err == nil {
		t.Fatal("an Update signed with another key was accepted")
	}
	signal := ghost
	signal.Approve = true
	if err := s.dev.Client.SignalWorkflow(ctx, id, "", workflows.SignalApproval, signal); err != nil {
		t.Fatal(err)
	}
	if err := s.dev.Client.SignalWorkflow(ctx, id, "", workflows.SignalApproval, workflows.SignVote(attackerSigner, id, true, ghost, time.Now())); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st = s.call("GET", "/api/remediations/"+id, "dev", nil).body
		if ig, _ := st["ignored_signals"].([]any); len(ig) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ig, _ := st["ignored_signals"].([]any); len(ig) != 2 || st["phase"] != string(workflows.PhaseAwaitingApproval) || len(st["votes"].([]any)) != 0 {
		t.Fatalf("forged signals must be ignored: %v", st)
	}

	// A remediation started directly on Temporal, with votes of its own
	// making, gets nothing opened either.
	forgedID := "rem-f0f0f0f0f0f0f0f0f0f0f0f0"
	run, err := s.dev.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: forgedID, TaskQueue: workflows.TaskQueue},
		workflows.WorkflowName, workflows.RemediationInput{ID: forgedID, Repo: h.Path, FailureSummary: hostile.WhitespaceFailure,
			Requester: "mallory", RequiredApprovals: 1, Deadline: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// Started outside the product, it is nobody's to see through the API.
	if r := s.call("GET", "/api/remediations/"+forgedID, "admin", nil); r.code != 404 {
		t.Fatalf("a remediation started directly on Temporal must not be served: %d %v", r.code, r.body)
	}
	fst := s.queryPhase(forgedID, workflows.PhaseAwaitingApproval)
	forged := workflows.ApprovalRequest{Actor: "mallory2", Roles: []string{workflows.RoleAdmin}, DecisionID: fst.DecisionID,
		DiffDigest: fst.Fix.Digest, Channel: workflows.ChannelAPI}
	if err := s.forgeUpdate(ctx, forgedID, workflows.SignVote(attackerSigner, forgedID, true, forged, time.Now())); err == nil {
		t.Fatal("a self-signed vote on a forged remediation was accepted")
	}
	if err := s.dev.Client.CancelWorkflow(ctx, forgedID, ""); err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, nil); !temporal.IsCanceledError(err) {
		t.Fatalf("the forged remediation should end cancelled: %v", err)
	}
	if out, err := exec.Command("git", "-C", h.Path, "rev-parse", "--verify", "--quiet", "refs/heads/autofix/"+forgedID).CombinedOutput(); err == nil {
		t.Fatalf("the forged remediation opened a branch: %s", out)
	}

	// The genuine approval opens the change.
	if r := s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st)); r.code != 200 {
		t.Fatalf("approve: %d %v", r.code, r.body)
	}
	done := s.waitPhase(id, workflows.PhaseCompleted)
	if done["pr"] == nil {
		t.Fatal("no change was opened")
	}
	if got := git(t, h.Path, "show", "autofix/"+id+":notes.txt"); got != "hello\nworld\n" {
		t.Fatalf("notes.txt on the branch: %q", got)
	}
	trailers := git(t, h.Path, "log", "-1", "--format=%(trailers:only,unfold)", "autofix/"+id)
	if !strings.Contains(trailers, "Approved-by: alice (api)\n") || strings.Contains(trailers, "ghost") {
		t.Fatalf("trailers: %q", trailers)
	}
	if fired := h.Fired(t); len(fired) > 0 {
		t.Fatalf("programs named by the repository ran: %v", fired)
	}
	h.OutsideUnchanged(t)
}

// TestNonUTF8DiffIsAppliedAsApproved: a fix of a Latin-1 file travels as
// bytes; the approved digest is the applied one and the branch holds
// exactly the fixed bytes.
func TestNonUTF8DiffIsAppliedAsApproved(t *testing.T) {
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := startStack(t, dir, ports)
	repo := filepath.Join(dir, "latin1")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "menu.txt"), []byte("caf\xe9 \nna\xefve\t\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "latin-1"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env = repo, hostile.GitEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	id := s.start("dev", "latin1", repo, hostile.WhitespaceFailure)
	st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
	if _, ok := st["fix"].(map[string]any)["patch"].(string); !ok {
		t.Fatalf("the status must carry the exact patch bytes: %v", st["fix"])
	}
	if r := s.call("POST", "/api/remediations/"+id+"/approve", "bob", vote(st)); r.code != 200 {
		t.Fatalf("approve: %d %v", r.code, r.body)
	}
	s.waitPhase(id, workflows.PhaseCompleted)
	if got := git(t, repo, "show", "autofix/"+id+":menu.txt"); got != "caf\xe9\nna\xefve\n" {
		t.Fatalf("menu.txt on the branch: %q", got)
	}
}

// queryPhase waits for phase through the status query, straight on Temporal.
func (s *stack) queryPhase(id string, phase workflows.Phase) workflows.Status {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var st workflows.Status
	for time.Now().Before(deadline) {
		v, err := s.dev.Client.QueryWorkflow(context.Background(), id, "", workflows.QueryStatus)
		if err == nil && v.Get(&st) == nil && st.Phase == phase {
			return st
		}
		time.Sleep(150 * time.Millisecond)
	}
	s.t.Fatalf("%s never reached %s (last %s)", id, phase, st.Phase)
	return st
}

// start begins a remediation of repo through the API.
func (s *stack) start(who, key, repo, failure string) string {
	s.t.Helper()
	res := s.call("POST", "/api/remediations", who, map[string]string{"repo": repo, "failure_summary": failure}, "Idempotency-Key", key)
	if res.code != 202 {
		s.t.Fatalf("start: %d %v", res.code, res.body)
	}
	return res.body["id"].(string)
}

// forgeUpdate sends an approve Update straight to Temporal, as anyone with
// access to the frontend could.
func (s *stack) forgeUpdate(ctx context.Context, id string, req workflows.ApprovalRequest) error {
	err := s.forgeVote(ctx, id, req)
	var appErr *temporal.ApplicationError
	if err != nil && (!errors.As(err, &appErr) || appErr.Type() != workflows.ErrTypeUnsigned) {
		s.t.Fatalf("a forged vote must be refused as unsigned, got %v", err)
	}
	return err
}

// TestScopeFollowsTheCanonicalRepository: on the real stack, a principal
// scoped to teamA/** cannot reach team B's repository through a link in its
// own tree; lists hold only what the caller may see, with no empty pages to
// walk, and a tampered page token is refused at once.
func TestScopeFollowsTheCanonicalRepository(t *testing.T) {
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyA, entryA, err := auth.NewAPIKey("team-a", []string{"developer", "approver"}, []string{"teamA/**"})
	if err != nil {
		t.Fatal(err)
	}
	keyB, entryB, err := auth.NewAPIKey("team-b", []string{"developer", "approver"}, []string{"teamB/**"})
	if err != nil {
		t.Fatal(err)
	}
	s := startStack(t, dir, ports, "REMEDIATOR_API_KEYS", entryA+","+entryB)
	for _, p := range []string{"teamA/app", "teamB/repo2"} {
		if _, err := demo.Ensure(context.Background(), filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "teamB", "repo2"), filepath.Join(dir, "teamA", "linkB")); err != nil {
		t.Fatal(err)
	}
	asKey := func(key, method, path string, body any) response {
		return s.call(method, path, "", body, "Authorization", "", "X-API-Key", key)
	}
	start := func(key, repo, idem string) response {
		return asKey(key, "POST", "/api/remediations", map[string]string{"repo": repo, "failure_summary": "lint: gofmt check failed", "log_excerpt": idem})
	}
	for _, repo := range []string{filepath.Join(dir, "teamA", "linkB"), "file://" + filepath.Join(dir, "teamA", "linkB"), dir + "/teamA/linkB/"} {
		if r := start(keyA, repo, "a"); r.code != 422 || r.body["error"] != "invalid_repository" {
			t.Fatalf("team A via %s: %d %v", repo, r.code, r.body)
		}
	}
	if r := start(keyA, filepath.Join(dir, "teamA", "missing"), "a"); r.code != 422 || r.body["error"] != "invalid_repository" {
		t.Fatalf("unknown repository: %d %v", r.code, r.body)
	}
	a := start(keyA, filepath.Join(dir, "teamA", "app"), "a1")
	b := start(keyB, filepath.Join(dir, "teamA", "linkB"), "b1") // team B's own repository, by any name
	if a.code != 202 || b.code != 202 {
		t.Fatalf("starts: %d %v / %d %v", a.code, a.body, b.code, b.body)
	}
	bid := b.body["id"].(string)
	st := s.waitPhase(bid, workflows.PhaseAwaitingApproval)
	if st["repo"] != filepath.Join(s.cfg.DataDir, "teamB", "repo2") {
		t.Fatalf("the workflow must act on the canonical repository, got %v", st["repo"])
	}
	if r := asKey(keyA, "GET", "/api/remediations/"+bid, nil); r.code != 404 {
		t.Fatalf("team A must not see team B's remediation: %d", r.code)
	}
	// Visibility is asynchronous: wait until an admin sees both.
	s.waitList("", a.body["id"].(string))
	s.waitList("", bid)
	// Team A lists only its own, one per page, and the last page ends.
	var seen []string
	path := "/api/remediations?page_size=1"
	for i := 0; i < 10; i++ {
		r := asKey(keyA, "GET", path, nil)
		if r.code != 200 {
			t.Fatalf("list: %d %v", r.code, r.body)
		}
		items := r.body["items"].([]any)
		for _, it := range items {
			seen = append(seen, it.(map[string]any)["id"].(string))
		}
		next, _ := r.body["next_page_token"].(string)
		if len(items) == 0 && next != "" {
			t.Fatalf("an empty page that is not the last: the scope is not in the query (%v)", r.body)
		}
		if next == "" {
			break
		}
		path = "/api/remediations?page_size=1&page_token=" + next
		if i == 0 {
			tampered := []byte(next)
			tampered[len(tampered)-1] ^= 1
			began := time.Now()
			bad := asKey(keyA, "GET", "/api/remediations?page_size=1&page_token="+string(tampered), nil)
			if bad.code != 400 || bad.body["error"] != "invalid_page_token" || time.Since(began) > 2*time.Second {
				t.Fatalf("a tampered page token: %d %v after %s", bad.code, bad.body, time.Since(began))
			}
			if other := asKey(keyB, "GET", path, nil); other.code != 400 {
				t.Fatalf("team A's page token used by team B: %d %v", other.code, other.body)
			}
		}
	}
	if len(seen) != 1 || seen[0] != a.body["id"] {
		t.Fatalf("team A's listing: %v, want only %v", seen, a.body["id"])
	}
	if r := asKey(keyA, "GET", "/api/remediations?page_token=zzz", nil); r.code != 400 || r.body["error"] != "invalid_page_token" {
		t.Fatalf("a malformed page token: %d %v", r.code, r.body)
	}
}

// TestCapturedVotesAndForgedStartsOpenNothing: a Temporal client that
// copies an approver's signed vote into a new run of the same remediation
// (pointed at another repository), or starts a remediation with a requester
// and repository of its choosing, gets nothing opened and nothing served.
func TestCapturedVotesAndForgedStartsOpenNothing(t *testing.T) {
	ports, err := devserver.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := startStack(t, dir, ports)
	ctx := context.Background()
	other, err := demo.Ensure(ctx, filepath.Join(dir, "teamB", "payments"))
	if err != nil {
		t.Fatal(err)
	}
	id := s.startDemo("dev", "captured")
	st := s.waitPhase(id, workflows.PhaseAwaitingApproval)
	if r := s.call("POST", "/api/remediations/"+id+"/approve", "alice", vote(st)); r.code != 200 {
		t.Fatalf("approve: %d %v", r.code, r.body)
	}
	done := s.waitPhase(id, workflows.PhaseCompleted)
	captured := done["votes"].([]any)[0].(map[string]any)
	raw, _ := json.Marshal(captured)
	var v activities.Vote
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	replay := workflows.ApprovalRequest{Actor: v.Actor, Roles: v.Roles, DecisionID: v.DecisionID, DiffDigest: v.DiffDigest,
		Comment: v.Comment, Reason: v.Reason, Channel: v.Channel, SignedAt: v.SignedAt, Signature: v.Signature}
	// The phase is final before the outcome is written back; the run closes
	// after that. Only a closed run can be followed by a new one.
	s.waitClosed(id)

	// A new run under the same workflow ID, on another repository with the
	// same files (so the same digest), by another requester.
	run, err := s.dev.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE},
		workflows.WorkflowName, workflows.RemediationInput{ID: id, Repo: other.Path, Ref: "main", FailureSummary: s.dev.Demo.FailureSummary,
			LogExcerpt: s.dev.Demo.LogExcerpt, Requester: "mallory", RequiredApprovals: 1, Deadline: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	nst := s.queryPhase(id, workflows.PhaseAwaitingApproval)
	if nst.DecisionID == v.DecisionID {
		t.Fatal("a new run must get a decision of its own")
	}
	if err := s.forgeVote(ctx, id, replay); err == nil {
		t.Fatal("a captured vote was accepted by a new run")
	}
	if err := s.dev.Client.CancelWorkflow(ctx, id, run.GetRunID()); err != nil {
		t.Fatal(err)
	}
	_ = run.Get(ctx, nil)
	if out, err := exec.Command("git", "-C", other.Path, "rev-parse", "--verify", "--quiet", "refs/heads/autofix/"+id).CombinedOutput(); err == nil {
		t.Fatalf("the other repository got a branch: %s", out)
	}

	// A remediation started straight on Temporal with the search attributes
	// the API sets is still not served: its start is not signed.
	forgedID := "rem-f1f1f1f1f1f1f1f1f1f1f1f1"
	_, err = s.dev.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: forgedID, TaskQueue: workflows.TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrRepo).ValueSet(s.dev.Demo.Path),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrRequester).ValueSet("dev")),
		Memo: map[string]any{workflows.MemoRequester: "dev"}},
		workflows.WorkflowName, workflows.RemediationInput{ID: forgedID, Repo: s.dev.Demo.Path, Ref: "main", FailureSummary: s.dev.Demo.FailureSummary,
			LogExcerpt: s.dev.Demo.LogExcerpt, Requester: "dev", RequiredApprovals: 1, Deadline: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	s.queryPhase(forgedID, workflows.PhaseAwaitingApproval)
	fst := s.call("GET", "/api/remediations/"+forgedID, "alice", nil)
	if fst.code != 404 {
		t.Fatalf("a forged start must not be served: %d %v", fst.code, fst.body)
	}
	if r := s.call("POST", "/api/remediations/"+forgedID+"/approve", "alice", map[string]string{"decision_id": "dec_000000000000000000000000", "diff_digest": strings.Repeat("0", 64), "base_sha": strings.Repeat("0", 40)}); r.code != 404 {
		t.Fatalf("a forged start must not be voted on: %d %v", r.code, r.body)
	}
	for _, it := range s.call("GET", "/api/remediations", "admin", nil).body["items"].([]any) {
		if it.(map[string]any)["id"] == forgedID {
			t.Fatal("a forged start must not be listed")
		}
	}
	_ = s.dev.Client.CancelWorkflow(ctx, forgedID, "")
}

// forgeVote is forgeUpdate returning the refusal, whatever its type.
func (s *stack) forgeVote(ctx context.Context, id string, req workflows.ApprovalRequest) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	h, err := s.dev.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: id, UpdateName: workflows.UpdateApprove, WaitForStage: client.WorkflowUpdateStageCompleted, Args: []any{req},
	})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	return err
}
