package workflows

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"github.com/stretchr/testify/suite"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"remediator/activities"
	"remediator/internal/audit"
	"remediator/internal/vote"
)

const (
	testID       = "rem-test"
	testDecision = "dec-1"
	testDigest   = "d1gest"
)

var testFix = activities.Fix{
	Recipe: "gofmt", Summary: "gofmt -w", Patch: []byte("diff --git a/main.go b/main.go\n"), Files: []string{"main.go"},
	Digest: testDigest, Repo: "/repos/demo", BaseBranch: "main", BaseSHA: "abc123", Validated: true,
}

var testPR = activities.PullRequest{ID: "local-1", URL: "file:///repos/demo#autofix/rem-test", Branch: "autofix/rem-test", Created: true}

type RemediationSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env    *testsuite.TestWorkflowEnvironment
	signer *vote.Signer
	// auditFile is the audit store the activities append to.
	auditFile string
}

func TestRemediation(t *testing.T) { suite.Run(t, new(RemediationSuite)) }

func newSigner(t require.TestingT) *vote.Signer {
	key, err := vote.GenerateKey()
	require.NoError(t, err)
	s, err := vote.NewSigner(key)
	require.NoError(t, err)
	return s
}

// SetupTest registers the real activities struct with the worker's vote key,
// so the VerificationKeys local activity returns it; the other activities
// are mocked per test.
func (s *RemediationSuite) SetupTest() {
	s.env = s.NewTestWorkflowEnvironment()
	s.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: testID})
	s.signer = newSigner(s.T())
	s.env.RegisterActivity(&activities.Activities{VoteKeys: []vote.PublicKey{s.signer.PublicKey()}, Audit: s.auditStore()})
}

// auditStore is a fresh audit file for one test (auditFile names it).
func (s *RemediationSuite) auditStore() activities.AuditStore {
	s.auditFile = filepath.Join(s.T().TempDir(), "audit.jsonl")
	store, err := audit.OpenFile(s.auditFile)
	s.Require().NoError(err)
	s.T().Cleanup(store.Close)
	return store
}

// sign signs req as the API would, at the current workflow time.
func (s *RemediationSuite) sign(req ApprovalRequest, approve bool) ApprovalRequest {
	if req.Channel == "" {
		req.Channel = ChannelAPI
	}
	return SignVote(s.signer, testID, approve, req, s.env.Now())
}

// signal sends a signed approval signal.
func (s *RemediationSuite) signal(req ApprovalRequest) {
	req.Channel = ChannelSignal
	s.env.SignalWorkflow(SignalApproval, s.sign(req, req.Approve))
}

func (s *RemediationSuite) AfterTest(_, _ string) { s.env.AssertExpectations(s.T()) }

func input() RemediationInput {
	return RemediationInput{
		ID: testID, Repo: "/repos/demo", Ref: "main", FailureSummary: "lint: gofmt", LogExcerpt: "main.go",
		Requester: "dana", CorrelationID: "corr-1",
	}
}

func approval(actor string, roles ...string) ApprovalRequest {
	return ApprovalRequest{Actor: actor, Roles: roles, DecisionID: testDecision, DiffDigest: testDigest, BaseSHA: testFix.BaseSHA, Comment: "lgtm"}
}

func rejection(actor, reason string) ApprovalRequest {
	r := approval(actor, RoleApprover)
	r.Reason = reason
	return r
}

// happyPathMocks mocks fix + decision; the outcome is asserted by each test.
func (s *RemediationSuite) happyPathMocks() {
	s.env.OnActivity(acts.GenerateFix, mock.Anything, mock.Anything).Return(testFix, nil).Once()
	s.env.OnActivity(acts.CreateDecision, mock.Anything, mock.MatchedBy(func(in activities.CreateDecisionInput) bool {
		return in.RemediationID == testID && in.DiffDigest == testDigest && in.Requester == "dana"
	})).Return(activities.Decision{ID: testDecision, Status: "pending"}, nil).Once()
}

func (s *RemediationSuite) expectOutcome(phase Phase) {
	s.env.OnActivity(acts.RecordOutcome, mock.Anything, mock.MatchedBy(func(in activities.RecordOutcomeInput) bool {
		return in.Phase == string(phase) && in.RemediationID == testID
	})).Return(nil).Once()
}

// updateOutcome is filled in when the test environment processes the Update,
// which happens after the callback that sent it returns.
type updateOutcome struct {
	rejected error
	accepted bool
	status   Status
}

// update sends an Update signed as the API would; inspect the outcome from a
// later callback or after the workflow ended.
func (s *RemediationSuite) update(name, id string, req ApprovalRequest) *updateOutcome {
	return s.updateRaw(name, id, s.sign(req, name == UpdateApprove))
}

// updateRaw sends req exactly as given, as anyone with Temporal access could.
func (s *RemediationSuite) updateRaw(name, id string, req ApprovalRequest) *updateOutcome {
	out := &updateOutcome{}
	s.env.UpdateWorkflow(name, id, &testsuite.TestUpdateCallback{
		OnAccept: func() { out.accepted = true },
		OnReject: func(err error) { out.rejected = err },
		OnComplete: func(v any, err error) {
			if st, ok := v.(Status); ok {
				out.status = st
			}
		},
	}, req)
	return out
}

// at runs f after d of workflow time.
func (s *RemediationSuite) at(d time.Duration, f func()) { s.env.RegisterDelayedCallback(f, d) }

func (s *RemediationSuite) status() Status {
	v, err := s.env.QueryWorkflow(QueryStatus)
	s.Require().NoError(err)
	var st Status
	s.Require().NoError(v.Get(&st))
	return st
}

func (s *RemediationSuite) result() Status {
	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	var st Status
	s.Require().NoError(s.env.GetWorkflowResult(&st))
	return st
}

func errType(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	return ""
}

func (s *RemediationSuite) TestApproveOpensPR() {
	s.happyPathMocks()
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.MatchedBy(func(in activities.OpenPRInput) bool {
		return in.Branch == "autofix/"+testID && in.BaseSHA == "abc123" && in.DiffDigest == testDigest &&
			string(in.Patch) == string(testFix.Patch) && in.DecisionID == testDecision && in.Requester == "dana" &&
			len(in.Votes) == 1 && in.Votes[0].Signature != nil && in.FailureSummary == "lint: gofmt"
	})).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	var out *updateOutcome
	s.at(time.Hour, func() {
		st := s.status()
		s.Equal(PhaseAwaitingApproval, st.Phase)
		s.Equal(testDecision, st.DecisionID)
		s.Equal(testDigest, st.Fix.Digest)
		out = s.update(UpdateApprove, "u1", approval("alice", RoleApprover))
	})
	s.env.ExecuteWorkflow(Remediation, input())
	s.Require().NotNil(out)
	s.NoError(out.rejected)
	s.True(out.accepted)
	s.Len(out.status.Votes, 1, "the Update answers with the new state")
	s.Equal(PhaseOpeningPR, out.status.Phase, "the Update reports the phase its vote caused")
	s.Equal(testDigest, out.status.Fix.Digest)
	s.Empty(out.status.Fix.Patch, "Update results (kept in history) leave the diff to the status query")
	st := s.result()
	s.Equal(PhaseCompleted, st.Phase)
	s.Require().NotNil(st.PR)
	s.Equal(testPR.URL, st.PR.URL)
	s.Require().Len(st.Votes, 1)
	s.Equal("alice", st.Votes[0].Actor)
	s.True(st.Votes[0].Approved)
	s.Equal(ChannelAPI, st.Votes[0].Channel)
}

func (s *RemediationSuite) TestSlackVoteKeepsItsChannel() {
	s.happyPathMocks()
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.Anything).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	req := approval("alice", RoleApprover)
	req.Channel = ChannelSlack
	s.at(time.Minute, func() { s.update(UpdateApprove, "slack-1", req) })
	s.env.ExecuteWorkflow(Remediation, input())
	st := s.result()
	s.Require().Len(st.Votes, 1)
	s.Equal(ChannelSlack, st.Votes[0].Channel)
}

func (s *RemediationSuite) TestRejectEndsWithoutPR() {
	s.happyPathMocks()
	s.expectOutcome(PhaseRejected)
	var out *updateOutcome
	s.at(time.Minute, func() { out = s.update(UpdateReject, "u1", rejection("alice", "touches generated code")) })
	s.env.ExecuteWorkflow(Remediation, input())
	s.NoError(out.rejected)
	s.Equal(PhaseRejected, out.status.Phase)
	st := s.result()
	s.Equal(PhaseRejected, st.Phase)
	s.Contains(st.Reason, "touches generated code")
	s.Nil(st.PR)
	s.env.AssertNotCalled(s.T(), "OpenPR", mock.Anything, mock.Anything)
}

func (s *RemediationSuite) TestExpiresAtDeadlineNeverApproves() {
	s.happyPathMocks()
	s.expectOutcome(PhaseExpired)
	in := input()
	in.ApprovalTimeout = 2 * time.Hour
	s.env.ExecuteWorkflow(Remediation, in)
	st := s.result()
	s.Equal(PhaseExpired, st.Phase)
	s.Empty(st.Votes)
	s.Nil(st.PR)
	s.Equal(2*time.Hour, st.Deadline.Sub(st.CreatedAt))
	s.env.AssertNotCalled(s.T(), "OpenPR", mock.Anything, mock.Anything)
}

func (s *RemediationSuite) TestDefaultDeadlineIs24h() {
	s.happyPathMocks()
	s.expectOutcome(PhaseExpired)
	s.at(23*time.Hour+59*time.Minute, func() {
		s.Equal(PhaseAwaitingApproval, s.status().Phase, "still waiting just before 24h")
	})
	s.env.ExecuteWorkflow(Remediation, input())
	st := s.result()
	s.Equal(PhaseExpired, st.Phase)
	s.Equal(DefaultApprovalTimeout, st.Deadline.Sub(st.CreatedAt))
}

func (s *RemediationSuite) TestValidatorRejections() {
	s.happyPathMocks()
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.Anything).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	in := input()
	in.RequiredApprovals = 2

	wrongDecision := approval("alice", RoleApprover)
	wrongDecision.DecisionID = "dec-other"
	wrongDigest := approval("alice", RoleApprover)
	wrongDigest.DiffDigest = "other"
	missing := approval("alice", RoleApprover)
	missing.DiffDigest = ""
	cases := []struct {
		name, update string
		req          ApprovalRequest
		wantType     string
	}{
		{"developer role", UpdateApprove, approval("dev2", RoleDeveloper), ErrTypeForbidden},
		{"no identity", UpdateApprove, approval("", RoleApprover), ErrTypeForbidden},
		{"requester approves own", UpdateApprove, approval("dana", RoleApprover, RoleAdmin), ErrTypeSelfApproval},
		{"wrong decision id", UpdateApprove, wrongDecision, ErrTypeStaleVote},
		{"wrong digest", UpdateApprove, wrongDigest, ErrTypeStaleVote},
		{"missing digest", UpdateApprove, missing, ErrTypeInvalidVote},
		{"reject without reason", UpdateReject, rejection("carol", "  "), ErrTypeInvalidVote},
	}
	outs := make([]*updateOutcome, len(cases))
	var ok1, dup, ok2, late *updateOutcome
	s.at(time.Minute, func() {
		for i, tc := range cases {
			outs[i] = s.update(tc.update, "bad-"+string(rune('a'+i)), tc.req)
		}
	})
	s.at(2*time.Minute, func() {
		s.Empty(s.status().Votes, "rejected updates leave no vote")
		ok1 = s.update(UpdateApprove, "ok-1", approval("alice", RoleApprover))
	})
	s.at(3*time.Minute, func() { dup = s.update(UpdateApprove, "dup-1", approval("alice", RoleApprover)) })
	s.at(4*time.Minute, func() {
		s.Len(s.status().Votes, 1)
		ok2 = s.update(UpdateApprove, "ok-2", approval("bob", RoleAdmin))
		late = s.update(UpdateApprove, "late", approval("erin", RoleApprover))
	})
	s.env.ExecuteWorkflow(Remediation, in)
	for i, tc := range cases {
		s.False(outs[i].accepted, tc.name)
		s.Equal(tc.wantType, errType(outs[i].rejected), tc.name)
	}
	s.NoError(ok1.rejected)
	s.Equal(ErrTypeDuplicate, errType(dup.rejected), "second vote by the same person")
	s.NoError(ok2.rejected)
	s.Equal(ErrTypeGateClosed, errType(late.rejected), "vote after the gate closed")
	st := s.result()
	s.Equal(PhaseCompleted, st.Phase)
	s.Len(st.Votes, 2, "quorum of two reached by two different people")
}

func (s *RemediationSuite) TestVoteAfterRejectIsRefused() {
	s.happyPathMocks()
	s.expectOutcome(PhaseRejected)
	var rej, late *updateOutcome
	s.at(time.Minute, func() {
		rej = s.update(UpdateReject, "r1", rejection("alice", "no"))
		late = s.update(UpdateApprove, "a1", approval("bob", RoleApprover))
	})
	s.env.ExecuteWorkflow(Remediation, input())
	s.NoError(rej.rejected)
	s.Equal(ErrTypeGateClosed, errType(late.rejected))
	s.Equal(PhaseRejected, s.result().Phase)
}

func (s *RemediationSuite) TestVoteBeforeGateOpensIsRefused() {
	s.env.OnActivity(acts.GenerateFix, mock.Anything, mock.Anything).After(time.Hour).Return(testFix, nil).Once()
	s.env.OnActivity(acts.CreateDecision, mock.Anything, mock.Anything).Return(activities.Decision{ID: testDecision}, nil).Once()
	s.expectOutcome(PhaseExpired)
	var early *updateOutcome
	s.at(time.Minute, func() {
		s.Equal(PhaseGeneratingFix, s.status().Phase)
		early = s.update(UpdateApprove, "early", approval("alice", RoleApprover))
	})
	s.env.ExecuteWorkflow(Remediation, input())
	s.Equal(ErrTypeGateClosed, errType(early.rejected))
	s.Equal(PhaseExpired, s.result().Phase)
}

func (s *RemediationSuite) TestSignalApprovesAndInvalidSignalIsIgnored() {
	s.happyPathMocks()
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.Anything).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	s.at(time.Minute, func() {
		self := approval("dana", RoleApprover)
		self.Approve = true
		s.signal(self)
	})
	s.at(2*time.Minute, func() {
		st := s.status()
		s.Equal(PhaseAwaitingApproval, st.Phase, "the invalid signal changed nothing")
		s.Require().Len(st.IgnoredSignals, 1)
		s.Contains(st.IgnoredSignals[0].Reason, "requester")
		ok := approval("oscar", RoleApprover)
		ok.Approve = true
		s.signal(ok)
	})
	s.env.ExecuteWorkflow(Remediation, input())
	st := s.result()
	s.Equal(PhaseCompleted, st.Phase)
	s.Require().Len(st.Votes, 1)
	s.Equal(ChannelSignal, st.Votes[0].Channel)
	s.Equal("oscar", st.Votes[0].Actor)
}

func (s *RemediationSuite) TestGenerateFixNonRetryableFails() {
	s.env.OnActivity(acts.GenerateFix, mock.Anything, mock.Anything).Return(activities.Fix{},
		temporal.NewNonRetryableApplicationError("no recipe matched", activities.ErrTypeNoFix, nil)).Once()
	s.env.ExecuteWorkflow(Remediation, input())
	st := s.result()
	s.env.AssertNotCalled(s.T(), "RecordOutcome", mock.Anything, mock.Anything)
	s.Equal(PhaseFailed, st.Phase)
	s.Contains(st.Reason, "no recipe matched")
	s.Contains(st.Reason, activities.ErrTypeNoFix)
	s.Empty(st.DecisionID, "nothing was sent for approval")
	s.env.AssertNotCalled(s.T(), "CreateDecision", mock.Anything, mock.Anything)
}

func (s *RemediationSuite) TestOpenPRTransientFailureIsRetried() {
	s.happyPathMocks()
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.Anything).Return(activities.PullRequest{}, errors.New("connection reset")).Once()
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.Anything).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	var out *updateOutcome
	s.at(time.Minute, func() { out = s.update(UpdateApprove, "u1", approval("alice", RoleApprover)) })
	s.env.ExecuteWorkflow(Remediation, input())
	s.NoError(out.rejected)
	st := s.result()
	s.Equal(PhaseCompleted, st.Phase)
	s.Equal(testPR.URL, st.PR.URL)
}

func (s *RemediationSuite) TestOpenPRPermanentFailureFails() {
	s.happyPathMocks()
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.Anything).Return(activities.PullRequest{},
		temporal.NewNonRetryableApplicationError("patch does not apply", activities.ErrTypePatch, nil)).Once()
	s.expectOutcome(PhaseFailed)
	s.at(time.Minute, func() { s.update(UpdateApprove, "u1", approval("alice", RoleApprover)) })
	s.env.ExecuteWorkflow(Remediation, input())
	st := s.result()
	s.Equal(PhaseFailed, st.Phase)
	s.Contains(st.Reason, "opening the change request failed")
}

func (s *RemediationSuite) TestCreateDecisionFailureFails() {
	s.env.OnActivity(acts.GenerateFix, mock.Anything, mock.Anything).Return(testFix, nil).Once()
	s.env.OnActivity(acts.CreateDecision, mock.Anything, mock.Anything).Return(activities.Decision{},
		temporal.NewNonRetryableApplicationError("401 from ledger", activities.ErrTypeUpstream, nil)).Once()
	s.env.ExecuteWorkflow(Remediation, input())
	st := s.result()
	s.Equal(PhaseFailed, st.Phase)
	s.Contains(st.Reason, "creating the decision failed")
	// No decision exists, so there is no outcome to write (version 3).
	s.env.AssertNotCalled(s.T(), "RecordOutcome", mock.Anything, mock.Anything)
	for _, w := range st.Warnings {
		s.NotContains(w, "outcome")
	}
}

// A cancel that arrives while CreateDecision runs waits for the decision and
// records the cancellation on it: no decision is left pending forever.
func (s *RemediationSuite) TestCancelWhileCreatingTheDecisionRecordsItCancelled() {
	s.env.OnActivity(acts.GenerateFix, mock.Anything, mock.Anything).Return(testFix, nil).Once()
	s.env.OnActivity(acts.CreateDecision, mock.Anything, mock.Anything).After(time.Minute).
		Return(activities.Decision{ID: testDecision, Status: "pending"}, nil).Once()
	s.env.OnActivity(acts.RecordOutcome, mock.Anything, mock.MatchedBy(func(in activities.RecordOutcomeInput) bool {
		return in.Phase == string(PhaseCancelled) && in.DecisionID == testDecision
	})).Return(nil).Once()
	s.at(10*time.Second, func() { s.env.CancelWorkflow() })
	s.env.ExecuteWorkflow(Remediation, input())
	s.Require().True(s.env.IsWorkflowCompleted())
	var canceled *temporal.CanceledError
	s.Require().ErrorAs(s.env.GetWorkflowError(), &canceled)
	st := s.status()
	s.Equal(PhaseCancelled, st.Phase)
	s.Equal(testDecision, st.DecisionID)
	s.env.AssertExpectations(s.T())
}

// The business metrics go through the SDK's metrics handler: started, the
// outcome, time to first approval and time to change.
func (s *RemediationSuite) TestBusinessMetrics() {
	m := newCapturingMetrics()
	s.SetMetricsHandler(m)
	s.env = s.NewTestWorkflowEnvironment()
	s.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: testID})
	s.env.RegisterActivity(&activities.Activities{VoteKeys: []vote.PublicKey{s.signer.PublicKey()}, Audit: s.auditStore()})
	defer s.SetMetricsHandler(nil)
	s.happyPathMocks()
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.Anything).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	s.at(time.Minute, func() { s.update(UpdateApprove, "u1", approval("alice", RoleApprover)) })
	s.env.ExecuteWorkflow(Remediation, input())
	s.Equal(PhaseCompleted, s.result().Phase)
	s.Equal(int64(1), m.counter(metricStarted, ""))
	s.Equal(int64(1), m.counter(metricEnded, "outcome=Completed"))
	s.Equal(int64(0), m.counter(metricChangeFailures, ""))
	s.Require().Len(m.timers(metricTimeFirstApproval), 1)
	s.GreaterOrEqual(m.timers(metricTimeFirstApproval)[0], time.Minute)
	s.Require().Len(m.timers(metricTimeToChange), 1)
}

func (s *RemediationSuite) TestCancelWhileAwaitingApproval() {
	s.happyPathMocks()
	s.expectOutcome(PhaseCancelled)
	s.at(time.Hour, func() { s.env.CancelWorkflow() })
	s.env.ExecuteWorkflow(Remediation, input())
	s.Require().True(s.env.IsWorkflowCompleted())
	err := s.env.GetWorkflowError()
	s.Require().Error(err)
	var canceled *temporal.CanceledError
	s.True(errors.As(err, &canceled), "a cancelled run ends as Cancelled, got %v", err)
	s.Equal(PhaseCancelled, s.status().Phase)
	s.env.AssertNotCalled(s.T(), "OpenPR", mock.Anything, mock.Anything)
}

func (s *RemediationSuite) TestCancelWhileOpeningPRStillRecordsTheChange() {
	s.happyPathMocks()
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.Anything).After(10*time.Minute).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	s.at(time.Minute, func() { s.update(UpdateApprove, "u1", approval("alice", RoleApprover)) })
	s.at(2*time.Minute, func() {
		s.Equal(PhaseOpeningPR, s.status().Phase)
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Remediation, input())
	st := s.result()
	s.Equal(PhaseCompleted, st.Phase, "the change was opened, so the record must say so")
	s.Require().NotNil(st.PR)
	s.Contains(st.Reason, "cancel requested after approval")
}

func TestPhaseTerminal(t *testing.T) {
	terminal := 0
	for _, p := range Phases {
		if p.Terminal() {
			terminal++
		}
	}
	require.Equal(t, 6, terminal)
	require.False(t, PhaseAwaitingApproval.Terminal())
	require.Equal(t, "autofix/rem-x", BranchFor("rem-x"))
}

// A cancel does not wait for a create that hangs (a ledger or Dragon
// outage): after cancelCreateGrace the create is abandoned and the run ends
// Cancelled, with no decision to record.
func (s *RemediationSuite) TestCancelDoesNotWaitForeverForTheDecision() {
	s.env.OnActivity(acts.GenerateFix, mock.Anything, mock.Anything).Return(testFix, nil).Once()
	s.env.OnActivity(acts.CreateDecision, mock.Anything, mock.Anything).After(6*time.Hour).
		Return(activities.Decision{ID: testDecision, Status: "pending"}, nil).Maybe()
	var cancelledAt time.Time
	s.at(10*time.Second, func() { cancelledAt = s.env.Now(); s.env.CancelWorkflow() })
	s.env.ExecuteWorkflow(Remediation, input())
	s.Require().True(s.env.IsWorkflowCompleted())
	var canceled *temporal.CanceledError
	s.Require().ErrorAs(s.env.GetWorkflowError(), &canceled)
	st := s.status()
	s.Equal(PhaseCancelled, st.Phase)
	s.Empty(st.DecisionID)
	s.env.AssertNotCalled(s.T(), "RecordOutcome", mock.Anything, mock.Anything)
	waited := st.UpdatedAt.Sub(cancelledAt)
	s.GreaterOrEqual(waited, cancelCreateGrace)
	s.Less(waited, cancelCreateGrace+time.Minute)
}
