package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"remediator/internal/ledger"
)

// LedgerDecisions records decisions in the built-in ledger, in Dragon's shape.
type LedgerDecisions struct {
	Store ledger.Ledger
}

// CreateDecision implements DecisionClient; the remediation id is the key.
func (l *LedgerDecisions) CreateDecision(ctx context.Context, in CreateDecisionInput) (Decision, error) {
	key := in.RemediationID
	if in.RunID != "" {
		key += "\x00" + in.RunID
	}
	d, err := l.Store.Create(ctx, key, ledger.Decision{
		AlertID:        firstNonEmpty(in.IncidentID, in.RemediationID),
		Proposer:       "remediator",
		ProposedAction: "apply_autofix",
		Rationale: fmt.Sprintf("%s on %s (recipe %s, files: %s; risk %s)", in.Summary, in.Repo, in.Recipe,
			strings.Join(in.Files, ", "), in.RiskLevel),
		RemediationID: in.RemediationID,
		Repo:          in.Repo,
		Requester:     in.Requester,
		IncidentID:    in.IncidentID,
		CorrelationID: in.CorrelationID,
		Files:         in.Files,
		DiffDigest:    in.DiffDigest,
		BaseSHA:       in.BaseSHA,
		RiskLevel:     in.RiskLevel,
		RiskScore:     in.RiskScore,
		RiskReason:    in.RiskReason,
		FixSource:     in.FixSource,
		Validation:    in.Validation,
		Links:         in.Links,
	})
	if errors.Is(err, ledger.ErrConflict) {
		return Decision{}, Permanent(ErrTypeConflict, "a decision for this remediation exists about another change", err)
	}
	if err != nil {
		return Decision{}, err
	}
	return Decision{ID: d.ID, Status: d.Status}, nil
}

// Facts implements DecisionClient.
func (l *LedgerDecisions) Facts(ctx context.Context, id string) (DecisionFacts, error) {
	d, err := l.Store.Get(ctx, id)
	if errors.Is(err, ledger.ErrNotFound) {
		return DecisionFacts{}, Permanent(ErrTypeNotFound, "decision "+id+" is not in the ledger", err)
	}
	if err != nil {
		return DecisionFacts{}, err
	}
	return DecisionFacts{RemediationID: d.RemediationID, Repo: d.Repo, Requester: d.Requester, DiffDigest: d.DiffDigest, BaseSHA: d.BaseSHA}, nil
}

// RecordOutcome implements DecisionClient.
func (l *LedgerDecisions) RecordOutcome(ctx context.Context, in RecordOutcomeInput) error {
	votes := make([]ledger.Vote, 0, len(in.Votes))
	for _, v := range in.Votes {
		votes = append(votes, ledger.Vote{Actor: v.Actor, Approved: v.Approved, Comment: v.Text(), Channel: v.Channel, At: v.At})
	}
	o := ledger.Outcome{Phase: in.Phase, Reason: in.Reason, Votes: votes}
	if in.PR != nil {
		o.PRURL = in.PR.URL
	}
	_, err := l.Store.Record(ctx, in.DecisionID, o)
	if errors.Is(err, ledger.ErrNotFound) {
		return Permanent(ErrTypeNotFound, "decision "+in.DecisionID+" is not in the ledger", err)
	}
	return err
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
