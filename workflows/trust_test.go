package workflows

import (
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"

	"remediator/activities"
	"remediator/internal/vote"
)

// TestForgedVotesAreRefused: whoever can reach the Temporal frontend can
// send Updates and signals, but only votes the API side signed with a key of
// the worker's configuration, for this remediation, recently, count.
func (s *RemediationSuite) TestForgedVotesAreRefused() {
	s.happyPathMocks()
	s.expectOutcome(PhaseExpired)
	other := newSigner(s.T())
	var outs []*updateOutcome
	names := []string{}
	send := func(name string, req ApprovalRequest) {
		names = append(names, name)
		outs = append(outs, s.updateRaw(UpdateApprove, "forged-"+name, req))
	}
	s.at(time.Minute, func() {
		now := s.env.Now()
		ghost := ApprovalRequest{Actor: "ghost", Roles: []string{RoleAdmin}, DecisionID: testDecision, DiffDigest: testDigest, Channel: ChannelAPI}
		send("unsigned", ghost)
		send("other key", SignVote(other, testID, true, ghost, now))
		send("other remediation", SignVote(s.signer, "rem-other", true, ghost, now))
		altered := SignVote(s.signer, testID, true, approval("alice", RoleDeveloper), now)
		altered.Roles = []string{RoleAdmin}
		send("roles added after signing", altered)
		renamed := SignVote(s.signer, testID, true, approval("alice", RoleApprover), now)
		renamed.Actor = "mallory"
		send("actor changed after signing", renamed)
		send("signed long ago", SignVote(s.signer, testID, true, approval("alice", RoleApprover), now.Add(-time.Hour)))
		send("reject signed, sent as approve", SignVote(s.signer, testID, false, rejection("alice", "no"), now))
		// A forged signal cannot be refused, only ignored.
		forged := ghost
		forged.Approve = true
		s.env.SignalWorkflow(SignalApproval, forged)
		s.env.SignalWorkflow(SignalApproval, SignVote(other, testID, true, ghost, now))
	})
	s.at(2*time.Minute, func() {
		st := s.status()
		s.Equal(PhaseAwaitingApproval, st.Phase)
		s.Empty(st.Votes, "no forged vote was recorded")
		s.Require().Len(st.IgnoredSignals, 2)
		for _, ig := range st.IgnoredSignals {
			s.Equal("ghost", ig.Actor)
		}
	})
	in := input()
	in.ApprovalTimeout = time.Hour
	s.env.ExecuteWorkflow(Remediation, in)
	for i, out := range outs {
		s.False(out.accepted, names[i])
		s.Equal(ErrTypeUnsigned, errType(out.rejected), names[i])
	}
	st := s.result()
	s.Equal(PhaseExpired, st.Phase)
	s.env.AssertNotCalled(s.T(), "OpenPR", mock.Anything, mock.Anything)
}

// TestDeadlineIsAbsolute: the deadline fixed at acceptance holds whatever
// the fix generation took, and whatever ApprovalTimeout says.
func (s *RemediationSuite) TestDeadlineIsAbsolute() {
	s.env.OnActivity(acts.GenerateFix, mock.Anything, mock.Anything).After(30*time.Minute).Return(testFix, nil).Once()
	s.env.OnActivity(acts.CreateDecision, mock.Anything, mock.Anything).Return(activities.Decision{ID: testDecision}, nil).Once()
	s.expectOutcome(PhaseExpired)
	in := input()
	in.ApprovalTimeout = 24 * time.Hour
	in.Deadline = s.env.Now().Add(2 * time.Hour).UTC()
	s.at(2*time.Hour-time.Minute, func() { s.Equal(PhaseAwaitingApproval, s.status().Phase) })
	var endedAt time.Time
	s.at(2*time.Hour+time.Minute, func() { endedAt = s.env.Now() })
	s.env.ExecuteWorkflow(Remediation, in)
	st := s.result()
	s.Equal(PhaseExpired, st.Phase)
	s.True(st.Deadline.Equal(in.Deadline), "deadline %s, want %s", st.Deadline, in.Deadline)
	s.True(st.UpdatedAt.Equal(in.Deadline), "expired at %s, want exactly the deadline %s", st.UpdatedAt, in.Deadline)
	s.True(endedAt.IsZero(), "the run ended at the deadline, not later")
}

// TestExpiryBeforeTheGateOpens: a deadline that passes while the fix is
// generated ends the run Expired without asking anyone.
func (s *RemediationSuite) TestExpiryBeforeTheGateOpens() {
	s.env.OnActivity(acts.GenerateFix, mock.Anything, mock.Anything).After(3*time.Hour).Return(testFix, nil).Once()
	in := input()
	in.Deadline = s.env.Now().Add(2 * time.Hour)
	s.env.ExecuteWorkflow(Remediation, in)
	st := s.result()
	s.Equal(PhaseExpired, st.Phase)
	s.Contains(st.Reason, "passed before the fix was ready")
	s.Empty(st.DecisionID)
	s.env.AssertNotCalled(s.T(), "CreateDecision", mock.Anything, mock.Anything)
	s.env.AssertNotCalled(s.T(), "RecordOutcome", mock.Anything, mock.Anything)
}

// TestNoVerificationKeysFails: a worker without vote keys cannot open the
// gate; the run fails visibly at its start (Setup) instead of generating a
// fix and waiting for votes it cannot check.
func (s *RemediationSuite) TestNoVerificationKeysFails() {
	s.env = s.NewTestWorkflowEnvironment()
	s.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: testID})
	s.env.RegisterActivity(&activities.Activities{Audit: s.auditStore()})
	s.env.ExecuteWorkflow(Remediation, input())
	st := s.result()
	s.Equal(PhaseFailed, st.Phase)
	s.Contains(st.Reason, "vote verification keys")
	s.Contains(st.Reason, activities.ErrTypeNotConfigured)
	s.Nil(st.Fix, "no fix is generated for a gate that could never open")
}

// TestPatchBytesTravelUnchanged: a diff that is not UTF-8 reaches the status
// and OpenPR byte for byte.
func (s *RemediationSuite) TestPatchBytesTravelUnchanged() {
	latin1 := []byte("diff --git a/x.txt b/x.txt\n--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-caf\xe9 \n+caf\xe9\n")
	fix := testFix
	fix.Patch = latin1
	s.env.OnActivity(acts.GenerateFix, mock.Anything, mock.Anything).Return(fix, nil).Once()
	s.env.OnActivity(acts.CreateDecision, mock.Anything, mock.Anything).Return(activities.Decision{ID: testDecision}, nil).Once()
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.MatchedBy(func(in activities.OpenPRInput) bool {
		return string(in.Patch) == string(latin1)
	})).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	s.at(time.Minute, func() {
		s.Equal(latin1, s.status().Fix.Patch)
		s.update(UpdateApprove, "u1", approval("alice", RoleApprover))
	})
	s.env.ExecuteWorkflow(Remediation, input())
	s.Equal(PhaseCompleted, s.result().Phase)
}

// TestRecordedVotesVerify: what the workflow records (and hands OpenPR) is
// exactly what was signed, so the point of effect can verify it again.
func (s *RemediationSuite) TestRecordedVotesVerify() {
	s.happyPathMocks()
	var got activities.OpenPRInput
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.MatchedBy(func(in activities.OpenPRInput) bool {
		got = in
		return true
	})).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	s.at(time.Minute, func() {
		req := approval("alice", RoleApprover)
		req.Comment = "checked the diff"
		s.update(UpdateApprove, "u1", req)
	})
	s.env.ExecuteWorkflow(Remediation, input())
	s.Equal(PhaseCompleted, s.result().Phase)
	s.Require().Len(got.Votes, 1)
	v := got.Votes[0]
	s.NoError(vote.Verify([]vote.PublicKey{s.signer.PublicKey()}, v.Signed(testID), *v.Signature))
	s.Equal("checked the diff", v.Comment)
}

// TestRemediationIDIsTheWorkflowID: an input naming another remediation
// cannot make this run accept that remediation's (signed) votes.
func (s *RemediationSuite) TestRemediationIDIsTheWorkflowID() {
	s.happyPathMocks()
	s.expectOutcome(PhaseExpired)
	var out *updateOutcome
	s.at(time.Minute, func() {
		out = s.updateRaw(UpdateApprove, "borrowed", SignVote(s.signer, "rem-other", true, approval("alice", RoleApprover), s.env.Now()))
	})
	in := input()
	in.ID = "rem-other"
	in.ApprovalTimeout = time.Hour
	s.env.ExecuteWorkflow(Remediation, in)
	s.Equal(ErrTypeUnsigned, errType(out.rejected))
	st := s.result()
	s.Equal(testID, st.ID)
	s.Equal(PhaseExpired, st.Phase)
}

// TestAlertResolutionIsRecorded: a resolved alert is recorded on the
// remediation it started and changes nothing else (a person still decides).
func (s *RemediationSuite) TestAlertResolutionIsRecorded() {
	s.happyPathMocks()
	s.expectOutcome(PhaseExpired)
	at := time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)
	s.at(time.Minute, func() {
		s.env.SignalWorkflow(SignalAlertResolved, AlertResolution{Fingerprint: "a1b2c3d4e5f60718", At: at})
	})
	s.at(2*time.Minute, func() {
		st := s.status()
		s.True(st.AlertResolvedAt.Equal(at), "resolved at %s", st.AlertResolvedAt)
		s.Equal(PhaseAwaitingApproval, st.Phase)
	})
	in := input()
	in.ApprovalTimeout = time.Hour
	s.env.ExecuteWorkflow(Remediation, in)
	s.Equal(PhaseExpired, s.result().Phase)
}
