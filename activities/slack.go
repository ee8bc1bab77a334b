package activities

import (
	"context"

	"remediator/internal/slack"
)

// SlackNotifier posts and updates the approval message in Slack.
type SlackNotifier struct {
	Client *slack.Client
}

// CanUpdate implements Notifier.
func (s *SlackNotifier) CanUpdate() bool { return s.Client.CanUpdate() }

// Notify implements Notifier: a bot posts once (finding its own message
// again after a lost answer) and updates that message; an incoming webhook
// posts, and posts again for the outcome.
func (s *SlackNotifier) Notify(ctx context.Context, n Notice, ref MessageRef) (MessageRef, error) {
	msg := slack.ApprovalMessage(SlackApprovalInfo(n))
	out := ref
	if ref.TS != "" && s.Client.CanUpdate() {
		if err := s.Client.Update(ctx, slack.MessageRef{Channel: ref.Channel, TS: ref.TS}, msg); err != nil {
			return MessageRef{}, err
		}
	} else if s.Client.CanUpdate() || n.Announce == "" {
		// A webhook cannot update, and the request was posted before a
		// reminder is due: the reminder goes out as its own message below
		// instead of a second copy of the request.
		r, err := s.Client.Post(ctx, msg)
		if err != nil {
			return MessageRef{}, err
		}
		out = MessageRef{Channel: r.Channel, TS: r.TS}
	}
	if n.Announce != "" {
		if err := s.Client.Announce(ctx, slack.MessageRef{Channel: out.Channel, TS: out.TS}, n.Announce, n.Mention); err != nil {
			return MessageRef{}, err
		}
	}
	return out, nil
}

// SlackApprovalInfo is what the Slack message shows of a notice (the API
// builds the same from a status to answer a click).
func SlackApprovalInfo(n Notice) slack.ApprovalInfo {
	a := slack.ApprovalInfo{
		RemediationID: n.RemediationID, DecisionID: n.DecisionID, Digest: n.Digest, Repo: n.Repo, Ref: n.Ref, BaseSHA: n.BaseSHA,
		Failure: n.Failure, FixSummary: n.FixSummary, Files: n.Files, FixSource: n.FixSource, Validated: n.Validated,
		Validation: n.Validation, RiskLevel: n.RiskLevel, RiskScore: n.RiskScore, RiskReason: n.RiskReason,
		Deadline: n.Deadline, Phase: n.Phase, Outcome: n.Outcome, Required: n.Required,
		Reminders: n.Reminders, EscalatedTo: n.EscalatedTo,
		Links: slack.ApprovalLinks{API: n.Links.API, UI: n.Links.UI, Review: n.Links.Review, Change: n.Links.Change},
	}
	for _, v := range n.Votes {
		a.Votes = append(a.Votes, slack.VoteLine{Actor: v.Actor, Approved: v.Approved, Channel: v.Channel, Text: v.Text(), At: v.At})
	}
	return a
}
