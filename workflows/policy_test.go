package workflows

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"

	"remediator/activities"
	"remediator/internal/policy"
	"remediator/internal/vote"
)

// withPolicy makes the worker of this test run with the policy in doc: the
// mocked GenerateFix returns fix judged by it, as the activity does, and the
// decision is created.
func (s *RemediationSuite) withPolicy(doc string, fix activities.Fix) {
	p, err := policy.Parse([]byte(doc), "test-policy.yaml")
	s.Require().NoError(err)
	s.env = s.NewTestWorkflowEnvironment()
	s.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: testID})
	s.env.RegisterActivity(&activities.Activities{VoteKeys: []vote.PublicKey{s.signer.PublicKey()}, Policy: &p, Audit: s.auditStore()})
	s.mockFixUnder(&p, fix)
}

func (s *RemediationSuite) mockFixUnder(p *policy.Policy, fix activities.Fix) {
	in := input()
	fix.Policy = activities.EvaluatePolicy(p, activities.GenerateFixInput{Repo: in.Repo, FailureSummary: in.FailureSummary, LogExcerpt: in.LogExcerpt}, fix)
	s.env.OnActivity(acts.GenerateFix, mock.Anything, mock.Anything).Return(fix, nil).Once()
	s.env.OnActivity(acts.CreateDecision, mock.Anything, mock.Anything).Return(activities.Decision{ID: testDecision, Status: "pending"}, nil).Maybe()
}

const quorumPolicy = `levels:
  LOW: {approvals: 2, roles: [approver, admin]}
`

// The policy's quorum: one approval is not enough, the same person in
// another case is refused, a second distinct approver opens the change; the
// change is opened with the quorum and roles OpenPR must verify.
func (s *RemediationSuite) TestPolicyQuorumOfTwo() {
	s.withPolicy(quorumPolicy, testFix)
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.MatchedBy(func(in activities.OpenPRInput) bool {
		return in.RequiredApprovals == 2 && len(in.Votes) == 2 && in.RiskLevel == policy.LevelLow && in.RiskRule == "built-in heuristics"
	})).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	var first, again, second *updateOutcome
	s.at(time.Minute, func() { first = s.update(UpdateApprove, "u1", approval("alice", RoleApprover)) })
	s.at(2*time.Minute, func() {
		s.Equal(PhaseAwaitingApproval, s.status().Phase, "one of two approvals")
		again = s.update(UpdateApprove, "u2", approval("ALICE", RoleApprover))
	})
	s.at(3*time.Minute, func() { second = s.update(UpdateApprove, "u3", approval("bob", RoleApprover)) })
	s.env.ExecuteWorkflow(Remediation, input())
	s.NoError(first.rejected)
	s.Require().Error(again.rejected, "the same approver in another case")
	s.Contains(again.rejected.Error(), "already voted")
	s.NoError(second.rejected)
	st := s.result()
	s.Equal(PhaseCompleted, st.Phase)
	s.Equal(2, st.RequiredApprovals)
	s.Equal("built-in heuristics", st.Risk.Rule)
	s.Equal("test-policy.yaml", st.Risk.Policy)
}

const adminOnlyPolicy = `levels:
  LOW: {approvals: 1, roles: [admin]}
`

// The level's roles: an approver's approval is refused before history; an
// admin's opens the change.
func (s *RemediationSuite) TestPolicyRolesPerLevel() {
	s.withPolicy(adminOnlyPolicy, testFix)
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.MatchedBy(func(in activities.OpenPRInput) bool {
		return len(in.ApproverRoles) == 1 && in.ApproverRoles[0] == "admin"
	})).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	var byApprover, byAdmin *updateOutcome
	s.at(time.Minute, func() { byApprover = s.update(UpdateApprove, "u1", approval("alice", RoleApprover)) })
	s.at(2*time.Minute, func() { byAdmin = s.update(UpdateApprove, "u2", approval("root", RoleAdmin)) })
	s.env.ExecuteWorkflow(Remediation, input())
	s.Require().Error(byApprover.rejected)
	s.Contains(byApprover.rejected.Error(), "only admin")
	s.NoError(byAdmin.rejected)
	st := s.result()
	s.Equal(PhaseCompleted, st.Phase)
	s.Len(st.Votes, 1, "the refused vote never reached history")
}

// Protected paths with mode admin: the quorum alone does not open the
// change; an admin among the approvers does.
func (s *RemediationSuite) TestPolicyProtectedPathNeedsAnAdmin() {
	fix := testFix
	fix.Files = []string{"CODEOWNERS"}
	// CODEOWNERS is HIGH for the heuristics: let approvers approve HIGH
	// here, so that only the protected path asks for the admin.
	s.withPolicy("levels:\n  HIGH: {approvals: 1, roles: [approver, admin]}\nprotected:\n  paths: [CODEOWNERS]\n  mode: admin\n", fix)
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.MatchedBy(func(in activities.OpenPRInput) bool { return in.AdminRequired })).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	s.at(time.Minute, func() { s.update(UpdateApprove, "u1", approval("alice", RoleApprover)) })
	s.at(2*time.Minute, func() {
		st := s.status()
		s.Equal(PhaseAwaitingApproval, st.Phase, "an approver alone does not open a protected change")
		s.True(st.Risk.AdminRequired)
		s.Equal([]string{"CODEOWNERS"}, st.Risk.ProtectedFiles)
		s.update(UpdateApprove, "u2", approval("root", RoleAdmin))
	})
	s.env.ExecuteWorkflow(Remediation, input())
	st := s.result()
	s.Equal(PhaseCompleted, st.Phase)
	s.Len(st.Votes, 2)
}

// Protected paths with mode refuse: the fix is never put to a vote.
func (s *RemediationSuite) TestPolicyProtectedPathRefused() {
	fix := testFix
	fix.Files = []string{".github/workflows/ci.yml"}
	s.withPolicy("protected:\n  paths: [\".github/workflows/**\"]\n  mode: refuse\n", fix)
	s.env.ExecuteWorkflow(Remediation, input())
	st := s.result()
	s.Equal(PhaseFailed, st.Phase)
	s.Contains(st.Reason, "refused by the risk policy")
	s.Contains(st.Reason, ".github/workflows/ci.yml")
	s.env.AssertNotCalled(s.T(), "CreateDecision", mock.Anything, mock.Anything)
	s.env.AssertNotCalled(s.T(), "OpenPR", mock.Anything, mock.Anything)
}

const timingPolicy = `levels:
  LOW: {approvals: 1, roles: [approver, admin], deadline: 6h, remind_every: 1h, escalate_before: 2h, escalate_to: "@oncall"}
`

// The level's timing on durable timers: the deadline is shortened to 6h
// after the fix, the request is repeated every hour and escalated 2h before
// the deadline, each recorded in the status and announced under the Slack
// message; the deadline still ends in Expired, never in approval.
func (s *RemediationSuite) TestPolicyRemindersEscalationAndDeadline() {
	p, err := policy.Parse([]byte(timingPolicy), "timing.yaml")
	s.Require().NoError(err)
	s.env = s.NewTestWorkflowEnvironment()
	s.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: testID})
	s.env.RegisterActivity(&activities.Activities{VoteKeys: []vote.PublicKey{s.signer.PublicKey()}, Notifier: stubNotifier{updates: true}, Policy: &p, Audit: s.auditStore()})
	s.signedStart(input())
	s.mockFixUnder(&p, testFix)
	s.expectOutcome(PhaseExpired)
	var announced []string
	s.env.OnActivity(acts.Notify, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.NotifyInput) (activities.MessageRef, error) {
			if in.Notice.Announce != "" {
				announced = append(announced, in.Notice.Announce)
			}
			return activities.MessageRef{Channel: "C1", TS: "1.1"}, nil
		})
	var gateOpened time.Time
	s.at(time.Second, func() { gateOpened = s.env.Now() })
	s.at(90*time.Minute, func() {
		st := s.status()
		s.Len(st.Reminders, 1, "one reminder after an hour")
		s.Nil(st.Escalation)
	})
	s.env.ExecuteWorkflow(Remediation, input())
	st := s.result()
	s.Equal(PhaseExpired, st.Phase)
	s.WithinDuration(gateOpened.Add(6*time.Hour), st.Deadline, time.Minute, "the level's deadline")
	s.Len(st.Reminders, 5, "hourly until the deadline: %v", st.Reminders)
	s.Require().NotNil(st.Escalation)
	s.Equal("@oncall", st.Escalation.To)
	s.WithinDuration(st.Deadline.Add(-2*time.Hour), st.Escalation.At, time.Minute)
	// The escalation and the fourth reminder fall due together: one
	// announcement says both.
	s.Len(announced, 5, "five announcements: %v", announced)
	s.True(strings.HasPrefix(announced[0], "Reminder 1: "), announced[0])
	s.True(slices.ContainsFunc(announced, func(a string) bool { return strings.HasPrefix(a, "Escalated to @oncall, Reminder 4: ") }), "%v", announced)
	s.True(strings.HasPrefix(announced[4], "Reminder 5: "), announced[4])
	s.Equal(6, st.Notifications.Announced)
}

// A decision stops the reminders: no reminder after the approval.
func (s *RemediationSuite) TestPolicyRemindersStopAtTheVerdict() {
	s.withPolicy("levels:\n  LOW: {approvals: 1, roles: [approver, admin], remind_every: 1h}\n", testFix)
	s.env.OnActivity(acts.OpenPR, mock.Anything, mock.Anything).Return(testPR, nil).Once()
	s.expectOutcome(PhaseCompleted)
	s.at(150*time.Minute, func() { s.update(UpdateApprove, "u1", approval("alice", RoleApprover)) })
	s.env.ExecuteWorkflow(Remediation, input())
	st := s.result()
	s.Equal(PhaseCompleted, st.Phase)
	s.Len(st.Reminders, 2, "at 1h and 2h, none after the approval at 2.5h")
}

// Reminders are bounded: a short interval over a long window stops after
// maxReminders, and the deadline still expires the run.
func (s *RemediationSuite) TestPolicyRemindersAreBounded() {
	s.withPolicy("levels:\n  LOW: {approvals: 1, roles: [approver, admin], remind_every: 5m}\n", testFix)
	s.expectOutcome(PhaseExpired)
	s.env.ExecuteWorkflow(Remediation, input())
	st := s.result()
	s.Equal(PhaseExpired, st.Phase)
	s.Len(st.Reminders, maxReminders)
}

// Storm control: later events with the remediation's fingerprint are
// counted in its status, and change nothing else.
func (s *RemediationSuite) TestAttachedEventsAreCounted() {
	s.happyPathMocks()
	s.expectOutcome(PhaseExpired)
	t0 := s.env.Now()
	s.at(time.Minute, func() {
		s.env.SignalWorkflow(SignalEventAttached, AttachedEvent{Fingerprint: "a1b2", At: t0.Add(time.Minute)})
	})
	s.at(2*time.Minute, func() {
		s.env.SignalWorkflow(SignalEventAttached, AttachedEvent{Fingerprint: "a1b2", At: t0.Add(2 * time.Minute)})
	})
	s.at(3*time.Minute, func() {
		st := s.status()
		s.Equal(2, st.Attached)
		s.Equal(PhaseAwaitingApproval, st.Phase)
		s.WithinDuration(t0.Add(2*time.Minute), st.LastAttachedAt, time.Second)
	})
	in := input()
	in.Deadline = t0.Add(time.Hour)
	s.env.ExecuteWorkflow(Remediation, in)
	s.Equal(PhaseExpired, s.result().Phase)
}
