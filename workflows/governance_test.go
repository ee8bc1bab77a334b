package workflows

import (
	"context"
	"strings"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"remediator/activities"
	"remediator/internal/vote"
)

// Stand-ins that only make Setup report the integrations; the activities
// that use them are mocked in each test.
type (
	stubIncidents struct{}
	stubNotifier  struct{ updates bool }
	stubDragon    struct{ activities.DecisionClient }
)

func (stubIncidents) CreateIncident(context.Context, activities.IncidentRecord) (string, error) {
	return "", nil
}
func (stubIncidents) UpdateIncident(context.Context, string, activities.IncidentRecord) error {
	return nil
}
func (stubNotifier) Notify(context.Context, activities.Notice, activities.MessageRef) (activities.MessageRef, error) {
	return activities.MessageRef{}, nil
}
func (n stubNotifier) CanUpdate() bool { return n.updates }
func (stubDragon) Verdict(context.Context, string) (activities.DecisionVerdict, error) {
	return activities.DecisionVerdict{}, nil
}

// governed registers activities whose Setup reports the given integrations.
func (s *RemediationSuite) governed(incidents, slackUpdates, dragon bool) {
	s.env = s.NewTestWorkflowEnvironment()
	s.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: testID})
	a := &activities.Activities{VoteKeys: []vote.PublicKey{s.signer.PublicKey()}, Notifier: stubNotifier{updates: slackUpdates}, WatchInterval: time.Minute}
	if incidents {
		a.Incidents = stubIncidents{}
	}
	if dragon {
		a.Decisions = stubDragon{}
	}
	a.Audit = s.auditStore()
	s.env.RegisterActivity(a)
	s.signedStart(input())
}

// signedStart gives the run the start signature the API would have made.
func (s *RemediationSuite) signedStart(in RemediationInput) {
	s.Require().NoError(s.env.SetMemoOnStart(map[string]any{MemoStartSignature: s.signer.SignStart(testID, in.Repo, in.Requester)}))
}

// TestUnsignedStartReachesNobody: a run started straight on Temporal (no
// start signature of the API) creates no incident, posts nothing and is not
// watched in Dragon, whatever the worker has.
func (s *RemediationSuite) TestUnsignedStartReachesNobody() {
	s.governed(true, true, true)
	s.Require().NoError(s.env.SetMemoOnStart(map[string]any{MemoStartSignature: newSigner(s.T()).SignStart(testID, "/repos/demo", "dana")}))
	s.happyPathMocks()
	s.expectOutcome(PhaseExpired)
	in := input()
	in.ApprovalTimeout = time.Hour
	s.env.ExecuteWorkflow(Remediation, in)
	st := s.result()
	s.Equal(PhaseExpired, st.Phase)
	s.Empty(st.IncidentID)
	s.Nil(st.Notifications)
	s.Contains(strings.Join(st.Warnings, "\n"), "not started through the API")
	s.env.AssertNotCalled(s.T(), "SyncIncident", mock.Anything, mock.Anything)
	s.env.AssertNotCalled(s.T(), "Notify", mock.Anything, mock.Anything)
	s.env.AssertNotCalled(s.T(), "WatchDecision", mock.Anything, mock.Anything)
}

// TestGivenIncidentIsNotWritten: an incident id that came with the request
// belongs to whoever gave it; the remediation neither creates nor updates one.
func (s *RemediationSuite) TestGivenIncidentIsNotWritten() {
	s.governed(true, false, false)
	s.happyPathMocks()
	s.env.OnActivity(acts.Notify, mock.Anything, mock.Anything).Return(activities.MessageRef{}, nil)
	s.expectOutcome(PhaseExpired)
	in := input()
	in.IncidentID = "INC-OTHER"
	in.ApprovalTimeout = time.Hour
	s.signedStart(in)
	s.env.ExecuteWorkflow(Remediation, in)
	s.Equal(PhaseExpired, s.result().Phase)
	s.env.AssertNotCalled(s.T(), "SyncIncident", mock.Anything, mock.Anything)
}

// TestIncidentLearnsAnEarlyEnd: a remediation whose fix fails still writes
// its outcome into the incident it created.
func (s *RemediationSuite) TestIncidentLearnsAnEarlyEnd() {
	s.governed(true, false, false)
	s.env.OnActivity(acts.GenerateFix, mock.Anything, mock.Anything).Return(activities.Fix{},
		activities.Classify(activities.Permanent(activities.ErrTypeNoFix, "no recipe matches the failure", nil))).Once()
	var syncs []activities.SyncIncidentInput
	s.env.OnActivity(acts.SyncIncident, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SyncIncidentInput) (string, error) {
			syncs = append(syncs, in)
			return "INC-9", nil
		})
	s.env.ExecuteWorkflow(Remediation, input())
	s.Equal(PhaseFailed, s.result().Phase)
	s.env.AssertNotCalled(s.T(), "RecordOutcome", mock.Anything, mock.Anything)
	s.Require().Len(syncs, 2, "created, then told the outcome")
	s.Equal("INC-9", syncs[1].IncidentID)
	s.Equal(string(PhaseFailed), syncs[1].Record.Phase)
	s.Contains(syncs[1].Record.Reason, "no recipe matches")
}

// TestIncidentSlackAndOutcome: a remediation started without an incident
// creates one (severity from the failure's risk), announces itself in Slack
// once, updates the message with each vote, and writes the outcome to the
// decision, the incident and the message.
func (s *RemediationSuite) TestIncidentSlackAndOutcome() {
	s.governed(true, true, false)
	s.happyPathMocks()
	var created, updates []activities.SyncIncidentInput
	s.env.OnActivity(acts.SyncIncident, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SyncIncidentInput) (string, error) {
			if in.IncidentID == "" {
				created = append(created, in)
				return "INC-7", nil
			}
			updates = append(updates, in)
			return in.IncidentID, nil
		})
	var notices []activities.NotifyInput
	s.env.OnActivity(acts.Notify, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.NotifyInput) (activities.MessageRef, error) {
			notices = append(notices, in)
			return activities.MessageRef{Channel: "C1", TS: "111.222"}, nil
		})
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.MatchedBy(func(in activities.OpenPRInput) bool {
		return in.IncidentID == "INC-7"
	})).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	s.at(time.Hour, func() {
		st := s.status()
		s.Equal("INC-7", st.IncidentID)
		s.Require().NotNil(st.Notifications)
		s.Equal("111.222", st.Notifications.SlackTS)
		s.Require().NotNil(st.Risk)
		s.Equal("LOW", st.Risk.Level, "a gofmt recipe on a lint failure")
		s.update(UpdateApprove, "u1", approval("alice", RoleApprover))
	})
	s.env.ExecuteWorkflow(Remediation, input())
	st := s.result()
	s.Equal(PhaseCompleted, st.Phase)
	s.Require().Len(created, 1)
	s.Equal("SEV-4", created[0].Record.Severity)
	s.Equal("lint: gofmt", created[0].Record.FailureSummary)
	s.Require().GreaterOrEqual(len(updates), 2, "after the decision and at the end")
	s.Equal(testDecision, updates[0].Record.DecisionID)
	last := updates[len(updates)-1]
	s.Equal(string(PhaseCompleted), last.Record.Phase)
	s.Equal(testPR.URL, last.Record.PRURL)
	s.Require().Len(notices, 3, "the request, the vote, the outcome")
	s.Empty(notices[0].Ref.TS, "the first notice posts")
	s.Equal(string(PhaseAwaitingApproval), notices[0].Notice.Phase)
	s.Equal(testDigest, notices[0].Notice.Digest)
	s.Equal("111.222", notices[1].Ref.TS, "later ones update the same message")
	s.Len(notices[1].Notice.Votes, 1)
	s.Equal(string(PhaseCompleted), notices[2].Notice.Phase)
	s.Equal(testPR.URL, notices[2].Notice.Links.Change)
	s.Empty(st.Warnings)
}

// TestIntegrationFailuresNeverChangeTheOutcome: an incident API and Slack
// that keep failing leave warnings, not a failed remediation.
func (s *RemediationSuite) TestIntegrationFailuresNeverChangeTheOutcome() {
	s.governed(true, true, false)
	s.happyPathMocks()
	s.env.OnActivity(acts.SyncIncident, mock.Anything, mock.Anything).Return("", activities.Classify(activities.Permanent(activities.ErrTypeUpstream, "incident API refused", nil)))
	s.env.OnActivity(acts.Notify, mock.Anything, mock.Anything).Return(activities.MessageRef{}, activities.Classify(activities.Permanent(activities.ErrTypeNotFound, "channel_not_found", nil)))
	s.expectOutcome(PhaseRejected)
	s.at(time.Hour, func() {
		s.update(UpdateReject, "u1", rejection("alice", "wrong fix"))
	})
	s.env.ExecuteWorkflow(Remediation, input())
	st := s.result()
	s.Equal(PhaseRejected, st.Phase)
	s.Empty(st.IncidentID, "no incident id is invented")
	joined := strings.Join(st.Warnings, "\n")
	s.Contains(joined, "creating the incident failed")
	s.Contains(joined, "posting to Slack failed")
}

// TestWebhookSlackPostsRequestAndOutcomeOnly: an incoming webhook cannot
// update a message, so votes post nothing and the outcome is a new post.
func (s *RemediationSuite) TestWebhookSlackPostsRequestAndOutcomeOnly() {
	s.governed(false, false, false)
	s.happyPathMocks()
	var notices []activities.NotifyInput
	s.env.OnActivity(acts.Notify, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.NotifyInput) (activities.MessageRef, error) {
			notices = append(notices, in)
			return activities.MessageRef{}, nil
		})
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.Anything).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	s.at(time.Hour, func() { s.update(UpdateApprove, "u1", approval("alice", RoleApprover)) })
	s.env.ExecuteWorkflow(Remediation, input())
	s.Equal(PhaseCompleted, s.result().Phase)
	s.Require().Len(notices, 2)
	s.Equal(string(PhaseAwaitingApproval), notices[0].Notice.Phase)
	s.Equal(string(PhaseCompleted), notices[1].Notice.Phase)
}

// dragonMocks: the decision service can be watched; verdicts come from f.
func (s *RemediationSuite) dragonMocks(f func(in activities.WatchDecisionInput) (activities.DecisionVerdict, error)) {
	s.env.OnActivity(acts.GenerateFix, mock.Anything, mock.Anything).Return(testFix, nil).Once()
	s.env.OnActivity(acts.CreateDecision, mock.Anything, mock.Anything).Return(activities.Decision{ID: testDecision, Status: "pending", Watch: true}, nil).Once()
	s.env.OnActivity(acts.Notify, mock.Anything, mock.Anything).Return(activities.MessageRef{}, nil)
	s.env.OnActivity(acts.WatchDecision, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.WatchDecisionInput) (activities.DecisionVerdict, error) {
			return f(in)
		})
}

// TestApprovedInDragon: a decision approved in Dragon by someone other than
// the requester approves, recorded as that person on channel dragon.
func (s *RemediationSuite) TestApprovedInDragon() {
	s.governed(false, true, true)
	s.dragonMocks(func(in activities.WatchDecisionInput) (activities.DecisionVerdict, error) {
		s.Equal(testDecision, in.DecisionID)
		s.Equal(time.Minute, in.Interval)
		return activities.DecisionVerdict{Verdict: activities.VerdictApproved, Status: "allowed", Actor: "carol", Roles: []string{RoleApprover}, Reason: "ok by me"}, nil
	})
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.MatchedBy(func(in activities.OpenPRInput) bool {
		return len(in.Votes) == 1 && in.Votes[0].Channel == ChannelDragon && in.Votes[0].Actor == "carol" && in.Votes[0].Signature == nil
	})).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	s.env.ExecuteWorkflow(Remediation, input())
	st := s.result()
	s.Equal(PhaseCompleted, st.Phase)
	s.Require().Len(st.Votes, 1)
	s.Equal("carol", st.Votes[0].Actor)
	s.Equal("ok by me", st.Votes[0].Comment)
}

// TestDragonSelfApprovalDoesNotCount: the requester approving in Dragon is
// refused (recorded), the watch goes on and a rejection there vetoes with
// Dragon's reason.
func (s *RemediationSuite) TestDragonSelfApprovalDoesNotCount() {
	calls := 0
	s.governed(false, true, true)
	s.dragonMocks(func(in activities.WatchDecisionInput) (activities.DecisionVerdict, error) {
		calls++
		if calls == 1 {
			return activities.DecisionVerdict{Verdict: activities.VerdictApproved, Status: "approved", Actor: "dana", Roles: []string{RoleAdmin}}, nil
		}
		s.NotEmpty(in.Seen, "the next watch skips what was seen")
		return activities.DecisionVerdict{Verdict: activities.VerdictRejected, Status: "denied", Actor: activities.DragonVeto, Roles: []string{RoleApprover}, Reason: "touches prod"}, nil
	})
	s.expectOutcome(PhaseRejected)
	s.env.ExecuteWorkflow(Remediation, input())
	st := s.result()
	s.Equal(PhaseRejected, st.Phase)
	s.Contains(st.Reason, "touches prod")
	s.Require().Len(st.IgnoredSignals, 1)
	s.Equal("dana", st.IgnoredSignals[0].Actor)
	s.Contains(st.IgnoredSignals[0].Reason, "requester")
	s.Require().Len(st.Votes, 1)
	s.Equal(ChannelDragon, st.Votes[0].Channel)
}

// TestDragonApprovalNamingNobodyDoesNotCount: an approval without an
// approver cannot be checked against the four-eyes rule.
func (s *RemediationSuite) TestDragonApprovalNamingNobodyDoesNotCount() {
	s.governed(false, true, true)
	calls := 0
	s.dragonMocks(func(in activities.WatchDecisionInput) (activities.DecisionVerdict, error) {
		calls++
		if calls == 1 {
			return activities.DecisionVerdict{Verdict: activities.VerdictApproved, Status: "approved", Note: "the Dragon user who approved is not linked"}, nil
		}
		return activities.DecisionVerdict{}, activities.Classify(activities.Permanent(activities.ErrTypeUpstream, "401 from Dragon", nil))
	})
	s.expectOutcome(PhaseExpired)
	in := input()
	in.ApprovalTimeout = time.Hour
	s.env.ExecuteWorkflow(Remediation, in)
	st := s.result()
	s.Equal(PhaseExpired, st.Phase)
	s.Empty(st.Votes)
	s.Require().Len(st.IgnoredSignals, 1)
	s.Contains(st.IgnoredSignals[0].Reason, "not linked")
	s.Contains(strings.Join(st.Warnings, "\n"), "watching the decision in Dragon stopped")
}

// TestAwaitProposal: the await_proposal Update answers once the fix and its
// decision exist, without the diff.
func (s *RemediationSuite) TestAwaitProposal() {
	s.happyPathMocks()
	s.expectOutcome(PhaseExpired)
	var got Status
	var gotErr error
	completed := false
	s.at(0, func() {
		s.env.UpdateWorkflow(UpdateAwaitProposal, "p1", &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) { gotErr = err },
			OnComplete: func(v any, err error) {
				completed = true
				gotErr = err
				if st, ok := v.(Status); ok {
					got = st
				}
			},
		})
	})
	in := input()
	in.ApprovalTimeout = time.Hour
	s.env.ExecuteWorkflow(Remediation, in)
	s.True(completed)
	s.NoError(gotErr)
	s.Equal(PhaseAwaitingApproval, got.Phase)
	s.Equal(testDecision, got.DecisionID)
	s.Require().NotNil(got.Fix)
	s.Empty(got.Fix.Patch)
	s.Require().NotNil(got.Risk)
}

// TestAwaitProposalIsRefusedOnceReady: later await_proposal Updates are
// refused before history, so repeated /api/generate calls cannot pile up.
func (s *RemediationSuite) TestAwaitProposalIsRefusedOnceReady() {
	s.happyPathMocks()
	s.expectOutcome(PhaseExpired)
	var rejected error
	accepted := false
	s.at(time.Minute, func() {
		s.env.UpdateWorkflow(UpdateAwaitProposal, "p2", &testsuite.TestUpdateCallback{
			OnAccept:   func() { accepted = true },
			OnReject:   func(err error) { rejected = err },
			OnComplete: func(any, error) {},
		})
	})
	in := input()
	in.ApprovalTimeout = time.Hour
	s.env.ExecuteWorkflow(Remediation, in)
	s.False(accepted)
	s.Equal(ErrTypeProposalReady, errType(rejected))
}
