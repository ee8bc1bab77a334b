// Package activities holds every side effect of a remediation. Each method
// wraps one external client behind a small interface and classifies its
// errors once (errors.go), so workflows only ever see retryable errors or
// non-retryable application errors with a stable type.
package activities

import (
	"context"
	"errors"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"

	"remediator/internal/correlation"
)

// FixGenerator turns failure evidence at a commit into a validated diff.
type FixGenerator interface {
	Generate(ctx context.Context, in GenerateFixInput) (Fix, error)
}

// DecisionClient is the governance ledger (Dragon, or the built-in ledger).
// Both calls must be idempotent on the remediation id.
type DecisionClient interface {
	CreateDecision(ctx context.Context, in CreateDecisionInput) (Decision, error)
	RecordOutcome(ctx context.Context, in RecordOutcomeInput) error
}

// GitProvider opens change requests. OpenChange must look for an existing
// change on the branch before creating one: activities run at least once.
type GitProvider interface {
	OpenChange(ctx context.Context, in OpenPRInput) (PullRequest, error)
}

// Activities is registered once with the worker; its fields are the injected
// clients. A nil field makes the matching activity fail non-retryably rather
// than panic, so a misconfigured worker is visible in the workflow history.
type Activities struct {
	Fixer     FixGenerator
	Decisions DecisionClient
	Git       GitProvider
}

// GenerateFix produces the diff that approvers will see. No diff is a
// non-retryable failure: nothing is sent for approval.
func (a *Activities) GenerateFix(ctx context.Context, in GenerateFixInput) (Fix, error) {
	if a.Fixer == nil {
		return Fix{}, notConfigured("fix generator")
	}
	if strings.TrimSpace(in.Repo) == "" || strings.TrimSpace(in.FailureSummary) == "" {
		return Fix{}, invalidInput("repo and failure summary are required")
	}
	logger(ctx).Info("generating fix", "repo", in.Repo, "ref", in.Ref, "sha", in.SHA)
	fix, err := a.Fixer.Generate(ctx, in)
	if err != nil {
		return Fix{}, Classify(err)
	}
	if fix.Diff == "" {
		return Fix{}, newNonRetryable(ErrTypeNoFix, "the fix generator produced no diff", nil)
	}
	return fix, nil
}

// CreateDecision records the proposed action in the governance ledger.
func (a *Activities) CreateDecision(ctx context.Context, in CreateDecisionInput) (Decision, error) {
	if a.Decisions == nil {
		return Decision{}, notConfigured("decision client")
	}
	d, err := a.Decisions.CreateDecision(ctx, in)
	if err != nil {
		return Decision{}, Classify(err)
	}
	if d.ID == "" {
		return Decision{}, newNonRetryable(ErrTypeUpstream, "decision service returned no id", nil)
	}
	return d, nil
}

// OpenPR opens the change request for an approved fix, exactly once.
func (a *Activities) OpenPR(ctx context.Context, in OpenPRInput) (PullRequest, error) {
	if a.Git == nil {
		return PullRequest{}, notConfigured("git provider")
	}
	if in.Diff == "" || in.Branch == "" {
		return PullRequest{}, invalidInput("diff and branch are required")
	}
	pr, err := a.Git.OpenChange(ctx, in)
	if err != nil {
		return PullRequest{}, Classify(err)
	}
	logger(ctx).Info("change request ready", "url", pr.URL, "created", pr.Created)
	return pr, nil
}

// RecordOutcome writes the end state back to the ledger. With no decision
// (the run failed before one was created) there is nothing to update.
func (a *Activities) RecordOutcome(ctx context.Context, in RecordOutcomeInput) error {
	if in.DecisionID == "" {
		return nil
	}
	if a.Decisions == nil {
		return notConfigured("decision client")
	}
	return Classify(a.Decisions.RecordOutcome(ctx, in))
}

// logger is the activity logger with the correlation id of the request that
// started the remediation (propagated through Temporal headers).
func logger(ctx context.Context) log.Logger {
	return log.With(activity.GetLogger(ctx), "correlation_id", correlation.From(ctx))
}

func notConfigured(what string) error {
	return newNonRetryable(ErrTypeNotConfigured, what+" is not configured", errors.New("not configured"))
}

func invalidInput(msg string) error {
	return newNonRetryable(ErrTypeInvalidInput, msg, nil)
}
