package workflows

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"remediator/activities"
	"remediator/internal/audit"
	"remediator/internal/vote"
)

// testFix2 is the fix regenerated on a newer base.
var testFix2 = activities.Fix{
	Recipe: "gofmt", Summary: "gofmt -w", Patch: []byte("diff --git a/main.go b/main.go\n+x\n"), Files: []string{"main.go"},
	Digest: "d2gest", Repo: "/repos/demo", BaseBranch: "main", BaseSHA: "def456", Validated: true,
}

const testDecision2 = "dec-2"

// approvalOf approves fix under decision.
func approvalOf(actor, decision string, fix activities.Fix, roles ...string) ApprovalRequest {
	return ApprovalRequest{Actor: actor, Roles: roles, DecisionID: decision, DiffDigest: fix.Digest, BaseSHA: fix.BaseSHA, Comment: "lgtm"}
}

// regenerate sends a signed regenerate Update as the API would.
func (s *RemediationSuite) regenerate(id string, req ApprovalRequest) *updateOutcome {
	req.Channel = ChannelAPI
	return s.updateRaw(UpdateRegenerate, id, SignRegenerate(s.signer, testID, req, s.env.Now()))
}

// regenMocks: the first fix and decision, then the regenerated ones (the
// second GenerateFix on the head of the base branch, a decision keyed on
// the generation), and the first decision closed as replaced.
func (s *RemediationSuite) regenMocks(wantSHA string) {
	s.env.OnActivity(acts.GenerateFix, mock.Anything, mock.MatchedBy(func(in activities.GenerateFixInput) bool {
		return in.SHA == "" && in.Ref == "main"
	})).Return(testFix, nil).Once()
	s.env.OnActivity(acts.GenerateFix, mock.Anything, mock.MatchedBy(func(in activities.GenerateFixInput) bool {
		return in.SHA == wantSHA && in.Ref == "main"
	})).Return(testFix2, nil).Once()
	s.env.OnActivity(acts.CreateDecision, mock.Anything, mock.MatchedBy(func(in activities.CreateDecisionInput) bool {
		return in.DiffDigest == testDigest && !strings.Contains(in.RunID, "#")
	})).Return(activities.Decision{ID: testDecision, Status: "pending"}, nil).Once()
	s.env.OnActivity(acts.CreateDecision, mock.Anything, mock.MatchedBy(func(in activities.CreateDecisionInput) bool {
		return in.DiffDigest == "d2gest" && in.BaseSHA == "def456" && strings.HasSuffix(in.RunID, "#2")
	})).Return(activities.Decision{ID: testDecision2, Status: "pending"}, nil).Once()
	s.env.OnActivity(acts.RecordOutcome, mock.Anything, mock.MatchedBy(func(in activities.RecordOutcomeInput) bool {
		return in.DecisionID == testDecision && in.Phase == string(PhaseSuperseded) && strings.Contains(in.Reason, "regenerated")
	})).Return(nil).Once()
}

// Every vote names the base it was cast for: none, or another, is refused.
func (s *RemediationSuite) TestVoteMustNameTheBase() {
	s.happyPathMocks()
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.MatchedBy(func(in activities.OpenPRInput) bool {
		return in.BaseBound && len(in.Votes) == 1 && in.Votes[0].BaseSHA == "abc123"
	})).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	var none, other, good *updateOutcome
	s.at(time.Minute, func() {
		req := approval("alice", RoleApprover)
		req.BaseSHA = ""
		none = s.update(UpdateApprove, "u1", req)
	})
	s.at(2*time.Minute, func() {
		req := approval("alice", RoleApprover)
		req.BaseSHA = "0000000"
		other = s.update(UpdateApprove, "u2", req)
	})
	s.at(3*time.Minute, func() {
		s.Equal("main.go", s.status().LogExcerpt, "the status serves the failure evidence")
		good = s.update(UpdateApprove, "u3", approval("alice", RoleApprover))
	})
	s.env.ExecuteWorkflow(Remediation, input())
	s.Empty(good.status.LogExcerpt, "Update results (kept in history) leave the excerpt to the status query")
	s.Equal(ErrTypeInvalidVote, errType(none.rejected))
	s.Equal(ErrTypeStaleVote, errType(other.rejected))
	s.NoError(good.rejected)
	s.Equal(PhaseCompleted, s.result().Phase)
}

// A developer's regenerate voids the pending votes and asks again for a
// new fix with a decision of its own; a vote for the old fix is refused,
// the one who asked may not approve, and the change is the new fix's.
func (s *RemediationSuite) TestRegenerateVoidsVotesAndAsksAgain() {
	s.regenMocks("")
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.MatchedBy(func(in activities.OpenPRInput) bool {
		return in.DecisionID == testDecision2 && in.DiffDigest == "d2gest" && in.BaseSHA == "def456" && len(in.Votes) == 2 &&
			len(in.Authors) == 2 && in.BaseBound
	})).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	var first, regen, unsigned, stale, author, a1, a2 *updateOutcome
	s.at(time.Minute, func() { first = s.update(UpdateApprove, "u1", approval("alice", RoleApprover)) })
	s.at(2*time.Minute, func() {
		bad := approval("erin", RoleDeveloper)
		bad.Channel = ChannelAPI
		unsigned = s.updateRaw(UpdateRegenerate, "r0", bad)
		req := approval("erin", RoleDeveloper, RoleApprover)
		req.Reason = "the model's fix is wrong"
		regen = s.regenerate("r1", req)
	})
	s.at(time.Hour, func() {
		st := s.status()
		s.Equal(PhaseAwaitingApproval, st.Phase)
		s.Equal(testDecision2, st.DecisionID)
		s.Equal("d2gest", st.Fix.Digest)
		s.Empty(st.Votes, "pending votes are void")
		s.Len(st.VoidedVotes, 1)
		s.Require().Len(st.Regenerations, 1)
		s.Equal("erin", st.Regenerations[0].By)
		s.Equal(2, st.Generation)
		stale = s.update(UpdateApprove, "u2", approval("bob", RoleApprover))
		author = s.update(UpdateApprove, "u3", approvalOf("erin", testDecision2, testFix2, RoleApprover))
	})
	s.at(2*time.Hour, func() {
		a1 = s.update(UpdateApprove, "u4", approvalOf("alice", testDecision2, testFix2, RoleApprover))
		a2 = s.update(UpdateApprove, "u5", approvalOf("bob", testDecision2, testFix2, RoleApprover))
	})
	in := input()
	in.RequiredApprovals = 2
	s.env.ExecuteWorkflow(Remediation, in)
	s.NoError(first.rejected)
	s.Equal(ErrTypeUnsigned, errType(unsigned.rejected), "an unsigned regenerate is refused")
	s.NoError(regen.rejected)
	s.Equal(ErrTypeStaleVote, errType(stale.rejected), "a vote for the old fix")
	s.Equal(ErrTypeSelfApproval, errType(author.rejected), "who asked for the fix may not approve it")
	s.NoError(a1.rejected)
	s.NoError(a2.rejected)
	st := s.result()
	s.Equal(PhaseCompleted, st.Phase)
	s.Equal([]string{"dana", "erin"}, st.Authors)
}

// Approved, but the base branch moved and the diff no longer applies: OpenPR
// refuses (BaseMoved, with the new head), the fix is regenerated on the new
// head, votes are void, and only the new fix, approved again, is opened.
func (s *RemediationSuite) TestBaseMovedRegenerates() {
	s.regenMocks("def456")
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.MatchedBy(func(in activities.OpenPRInput) bool { return in.BaseSHA == "abc123" && in.BaseBound })).
		Return(activities.PullRequest{}, temporal.NewNonRetryableApplicationError("the base moved", activities.ErrTypeBaseMoved, nil,
			activities.BaseCheck{Head: "def456", Moved: true})).Once()
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.MatchedBy(func(in activities.OpenPRInput) bool {
		return in.BaseSHA == "def456" && in.DecisionID == testDecision2 && len(in.Votes) == 1 && in.Votes[0].BaseSHA == "def456"
	})).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	var first, again *updateOutcome
	s.at(time.Minute, func() { first = s.update(UpdateApprove, "u1", approval("alice", RoleApprover)) })
	s.at(time.Hour, func() {
		st := s.status()
		s.Equal(PhaseAwaitingApproval, st.Phase, "asked again")
		s.Len(st.VoidedVotes, 1)
		s.Require().Len(st.Regenerations, 1)
		s.Contains(st.Regenerations[0].Reason, "no longer applies")
		again = s.update(UpdateApprove, "u2", approvalOf("alice", testDecision2, testFix2, RoleApprover))
	})
	s.env.ExecuteWorkflow(Remediation, input())
	s.NoError(first.rejected)
	s.NoError(again.rejected)
	st := s.result()
	s.Equal(PhaseCompleted, st.Phase)
	s.Equal("def456", st.Fix.BaseSHA, "the change is the regenerated fix's")
}

// A newer failure supersedes: the run ends Superseded, pending votes void,
// the decision says so; an unsigned supersession is recorded and ignored.
func (s *RemediationSuite) TestSupersededEndsTheRemediation() {
	s.happyPathMocks()
	s.env.OnActivity(acts.RecordOutcome, mock.Anything, mock.MatchedBy(func(in activities.RecordOutcomeInput) bool {
		return in.Phase == string(PhaseSuperseded) && strings.Contains(in.Reason, "superseded by rem-newer")
	})).Return(nil).Once()
	s.at(time.Minute, func() { s.update(UpdateApprove, "u1", approval("alice", RoleApprover)) })
	s.at(2*time.Minute, func() {
		s.env.SignalWorkflow(SignalSuperseded, Supersession{By: "rem-forged", Reason: "trust me"})
	})
	s.at(3*time.Minute, func() {
		s.Equal(PhaseAwaitingApproval, s.status().Phase, "an unsigned supersession changes nothing")
		s.env.SignalWorkflow(SignalSuperseded, SignSupersession(s.signer, testID, Supersession{By: "rem-newer", SHA: "fedcba9", Reason: "a newer failure"}, s.env.Now()))
	})
	in := input()
	in.RequiredApprovals = 2
	s.env.ExecuteWorkflow(Remediation, in)
	st := s.result()
	s.Equal(PhaseSuperseded, st.Phase)
	s.Equal("rem-newer", st.SupersededBy)
	s.Contains(st.Reason, "fedcba9")
	s.Require().NotEmpty(st.IgnoredSignals)
	s.Contains(st.IgnoredSignals[0].Reason, "not signed")
	s.Empty(st.Votes, "pending votes are void")
	s.Len(st.VoidedVotes, 1)
}

// A long wait continues as new with the full state; the next run goes
// straight back to the gate, keeps the vote cast before, and completes
// with the second approval.
func (s *RemediationSuite) TestContinueAsNewWhileAwaitingThenApprove() {
	s.env = s.NewTestWorkflowEnvironment()
	s.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: testID})
	s.env.RegisterActivity(&activities.Activities{VoteKeys: []vote.PublicKey{s.signer.PublicKey()}, Audit: s.auditStore()})
	in := input()
	in.RequiredApprovals = 2
	s.happyPathMocks()
	s.at(time.Minute, func() { s.update(UpdateApprove, "u1", approval("alice", RoleApprover)) })
	s.at(2*time.Minute, func() {
		s.env.SignalWorkflow(SignalEventAttached, AttachedEvent{Fingerprint: "fp", At: s.env.Now()})
	})
	s.at(5*time.Minute, func() {
		// The server suggests continuing as new (a long history); the
		// next event wakes the gate, which hands over.
		s.Equal(PhaseAwaitingApproval, s.status().Phase)
		s.env.SetContinueAsNewSuggested(true)
		s.env.SignalWorkflow(SignalEventAttached, AttachedEvent{Fingerprint: "fp", At: s.env.Now()})
	})
	s.env.ExecuteWorkflow(Remediation, in)
	s.Require().True(s.env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	s.Require().True(errors.As(s.env.GetWorkflowError(), &can), "continued as new: %v", s.env.GetWorkflowError())
	var next RemediationInput
	s.Require().NoError(converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	s.Require().NotNil(next.Carry)
	s.Equal(PhaseAwaitingApproval, next.Carry.Status.Phase)
	s.Len(next.Carry.Status.Votes, 1, "the vote cast before is carried")
	s.Positive(next.Carry.Status.Attached)
	s.Equal(testDecision, next.Carry.Status.DecisionID)
	s.Equal(2, next.Carry.Status.Runs)

	// The next run: no fix is generated and no decision created again.
	s.env = s.NewTestWorkflowEnvironment()
	s.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: testID})
	s.env.RegisterActivity(&activities.Activities{VoteKeys: []vote.PublicKey{s.signer.PublicKey()}, Audit: s.auditStore()})
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.MatchedBy(func(in activities.OpenPRInput) bool {
		return len(in.Votes) == 2 && string(in.Patch) == string(testFix.Patch) && in.DecisionID == testDecision
	})).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	var dup, second *updateOutcome
	s.at(time.Minute, func() {
		dup = s.update(UpdateApprove, "u2", approval("alice", RoleApprover))
		second = s.update(UpdateApprove, "u3", approval("bob", RoleApprover))
	})
	s.env.ExecuteWorkflow(Remediation, next)
	s.Equal(ErrTypeDuplicate, errType(dup.rejected), "alice voted in the previous run")
	s.NoError(second.rejected)
	st := s.result()
	s.Equal(PhaseCompleted, st.Phase)
	s.Equal(2, st.Runs)
}

// Every step is an audit event, in the workflow (query audit) and in the
// store, whose chain verifies.
func (s *RemediationSuite) TestAuditQueryAndStore() {
	s.happyPathMocks()
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.Anything).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	var refused *updateOutcome
	s.at(time.Minute, func() {
		refused = s.update(UpdateApprove, "u0", approval("dana", RoleApprover))
		s.signal(ApprovalRequest{Actor: "mallory", Roles: []string{RoleApprover}, DecisionID: "dec-x", DiffDigest: testDigest, BaseSHA: "abc123", Approve: true})
	})
	s.at(2*time.Minute, func() { s.update(UpdateApprove, "u1", approval("alice", RoleApprover)) })
	s.env.ExecuteWorkflow(Remediation, input())
	s.Error(refused.rejected)
	s.Equal(PhaseCompleted, s.result().Phase)
	v, err := s.env.QueryWorkflow(QueryAudit)
	s.Require().NoError(err)
	var events []AuditEvent
	s.Require().NoError(v.Get(&events))
	kinds := map[string]AuditEvent{}
	for i, e := range events {
		s.Equal(i+1, e.Seq)
		s.Equal(testID+"/"+strconv.Itoa(e.Seq), e.ID)
		s.Equal("corr-1", e.CorrelationID)
		kinds[e.Kind] = e
	}
	for _, k := range []string{"started", "phase", "fix_proposed", "decision_created", "vote_approved", "refused", "change_opened"} {
		s.Contains(kinds, k)
	}
	s.Equal("alice", kinds["vote_approved"].Actor)
	s.Equal(ChannelAPI, kinds["vote_approved"].Channel)
	s.Equal("abc123", kinds["vote_approved"].Base)
	s.Equal(testDigest, kinds["vote_approved"].Digest)
	s.Equal(ChannelSignal, kinds["refused"].Channel)
	store, err := audit.OpenFileReadOnly(s.auditFile)
	s.Require().NoError(err)
	defer store.Close()
	recs, err := store.List(context.Background(), testID)
	s.Require().NoError(err)
	s.Len(recs, len(events), "every event reached the store")
	rep, err := store.Verify(context.Background())
	s.Require().NoError(err)
	s.True(rep.OK, "%+v", rep)
}

// A named group lets its members approve a level whose roles they lack.
func (s *RemediationSuite) TestNamedGroupMayApprove() {
	doc := "protected: {paths: []}\ngroups:\n  leads: [carol]\nlevels:\n  LOW: {approvals: 1, roles: [admin], groups: [leads]}\n"
	s.withPolicy(doc, testFix)
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.MatchedBy(func(in activities.OpenPRInput) bool {
		return len(in.Votes) == 1 && in.Votes[0].Actor == "carol" && len(in.ApproverMembers) == 1 && in.ApproverMembers[0] == "carol"
	})).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	var outsider, member *updateOutcome
	s.at(time.Minute, func() {
		outsider = s.update(UpdateApprove, "u1", approval("bob", RoleApprover))
		member = s.update(UpdateApprove, "u2", approval("carol", RoleApprover))
	})
	s.env.ExecuteWorkflow(Remediation, input())
	s.Equal(ErrTypeForbidden, errType(outsider.rejected))
	s.Contains(outsider.rejected.Error(), "members of leads")
	s.NoError(member.rejected)
	s.Equal(PhaseCompleted, s.result().Phase)
}

// An admitted remediation frees its slot in the repository's coordinator
// when it ends; one started with caps off signals nothing.
func (s *RemediationSuite) TestAdmittedRemediationReleasesItsSlot() {
	s.happyPathMocks()
	s.expectOutcome(PhaseRejected)
	released := 0
	s.env.OnSignalExternalWorkflow(mock.Anything, CoordinatorID("/repos/demo"), "", SignalRelease, mock.Anything).Return(
		func(_, _, _, _ string, arg any) error {
			if r, ok := arg.(ReleaseRequest); ok && r.RemediationID == testID {
				released++
			}
			return nil
		}).Once()
	s.at(time.Minute, func() { s.update(UpdateReject, "u1", rejection("alice", "no")) })
	in := input()
	in.Admitted = true
	s.env.ExecuteWorkflow(Remediation, in)
	s.Equal(PhaseRejected, s.result().Phase)
	s.Equal(1, released)
}
