// Package activities holds every side effect of a remediation. Each method
// wraps one external client behind a small interface and classifies its
// errors once (errors.go), so workflows only ever see retryable errors or
// non-retryable application errors with a stable type.
package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"

	"remediator/internal/correlation"
	"remediator/internal/policy"
	"remediator/internal/vote"
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
	// Facts reads back what a decision was created for.
	Facts(ctx context.Context, id string) (DecisionFacts, error)
}

// GitProvider opens change requests. OpenChange must look for an existing
// change on the branch before creating one: activities run at least once.
type GitProvider interface {
	OpenChange(ctx context.Context, c ChangeSpec) (PullRequest, error)
}

// ChangeSpec is a change request whose approval OpenPR has verified: the
// exact patch, and a message composed from verified facts.
type ChangeSpec struct {
	RemediationID string
	Repo          string
	Branch        string
	BaseBranch    string
	BaseSHA       string
	Patch         []byte
	Title         string
	Body          string
	CommitTime    time.Time
}

// Activities is registered once with the worker; its fields are the injected
// clients. A nil field makes the matching activity fail non-retryably rather
// than panic, so a misconfigured worker is visible in the workflow history.
type Activities struct {
	Fixer     FixGenerator
	Decisions DecisionClient
	Git       GitProvider
	// VoteKeys verify vote signatures: the workflow's validators get them
	// through VerificationKeys, OpenPR checks every vote with them again.
	VoteKeys []vote.PublicKey
	// Incidents keeps the incident record (nil: no incident API).
	Incidents IncidentClient
	// Notifier posts the approval request (Slack; nil: none).
	Notifier Notifier
	// Audit is the append-only audit store (audit.Store) AppendAudit writes to.
	Audit AuditStore
	// WatchInterval is how often a decision the service can take itself
	// (Dragon) is polled while awaiting approval.
	WatchInterval time.Duration
	// PublicURL, UIURL and Namespace build the links shown with a
	// remediation (API, Temporal Web UI).
	PublicURL, UIURL, Namespace string
	// HeartbeatInterval is how often the long activities (GenerateFix,
	// OpenPR) tell Temporal they are alive; 0 means DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// Policy is the risk policy; nil means the built-in one.
	Policy *policy.Policy
	// Workflows reads remediations' executions (the worker's Temporal
	// client) for the repository coordinator's reconcile; nil fails it.
	Workflows WorkflowDescriber
	// HistoryLimit: see Capabilities.
	HistoryLimit int
}

// DefaultHeartbeatInterval keeps well inside the workflow's heartbeat
// timeout (20s): a crashed worker's activity is retried elsewhere within
// 20s, and a cancel reaches a running recipe within a few seconds.
const DefaultHeartbeatInterval = 5 * time.Second

// heartbeat records a heartbeat every interval until the returned stop is
// called. Through heartbeats the activity learns of a cancel (its context
// ends, which stops the recipe's commands) and Temporal of a dead worker.
func (a *Activities) heartbeat(ctx context.Context) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	interval := a.HeartbeatInterval
	if interval <= 0 {
		interval = DefaultHeartbeatInterval
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done) }
}

// GenerateFix produces the diff that approvers will see. No diff is a
// non-retryable failure: nothing is sent for approval. The digest is
// computed here, over the exact bytes, whatever the generator said.
func (a *Activities) GenerateFix(ctx context.Context, in GenerateFixInput) (Fix, error) {
	if a.Fixer == nil {
		return Fix{}, notConfigured("fix generator")
	}
	if strings.TrimSpace(in.Repo) == "" || strings.TrimSpace(in.FailureSummary) == "" {
		return Fix{}, invalidInput("repo and failure summary are required")
	}
	logger(ctx).Info("generating fix", "repo", in.Repo, "ref", in.Ref, "sha", in.SHA)
	defer a.heartbeat(ctx)()
	fix, err := a.Fixer.Generate(ctx, in)
	if err != nil {
		return Fix{}, classifyLogged(ctx, "generating the fix", err)
	}
	if len(fix.Patch) == 0 {
		return Fix{}, newNonRetryable(ErrTypeNoFix, "the fix generator produced no diff", nil)
	}
	fix.Diff = ""
	fix.Digest = Digest(fix.Patch)
	fix.Policy = EvaluatePolicy(a.Policy, in, fix)
	return fix, nil
}

// EvaluatePolicy applies the risk policy (nil: the built-in one) to a
// generated fix.
func EvaluatePolicy(p *policy.Policy, in GenerateFixInput, fix Fix) *policy.Result {
	pol := p
	if pol == nil {
		def := policy.Default()
		pol = &def
	}
	res := pol.Evaluate(policy.EvalInput{Repo: in.Repo, Input: policy.Input{
		FailureSummary: in.FailureSummary, LogExcerpt: in.LogExcerpt, Files: fix.Files, Source: fix.Source, DiffBytes: len(fix.Patch),
	}})
	return &res
}

// Digest is the hex SHA-256 that binds votes to a patch.
func Digest(patch []byte) string {
	sum := sha256.Sum256(patch)
	return hex.EncodeToString(sum[:])
}

// VerificationKeys hands the workflow the worker's vote verification keys.
// It runs as a local activity, so its result is recorded in history and a
// replay verifies with the keys the live run used.
func (a *Activities) VerificationKeys(ctx context.Context) ([]vote.PublicKey, error) {
	if len(a.VoteKeys) == 0 {
		return nil, notConfigured("vote verification keys")
	}
	return a.VoteKeys, nil
}

// CreateDecision records the proposed action in the governance ledger.
func (a *Activities) CreateDecision(ctx context.Context, in CreateDecisionInput) (Decision, error) {
	if a.Decisions == nil {
		return Decision{}, notConfigured("decision client")
	}
	if l := a.linksFor(in.RemediationID); l.API != "" || l.UI != "" {
		in.Links = map[string]string{}
		if l.API != "" {
			in.Links["api"] = l.API
			in.Links["review"] = l.Review
		}
		if l.UI != "" {
			in.Links["ui"] = l.UI
		}
	}
	d, err := a.Decisions.CreateDecision(ctx, in)
	if err != nil {
		return Decision{}, classifyLogged(ctx, "creating the decision", err)
	}
	if d.ID == "" {
		return Decision{}, newNonRetryable(ErrTypeUpstream, "decision service returned no id", nil)
	}
	return d, nil
}

// OpenPR opens the change request for an approved fix, exactly once. It is
// the point of effect, so it trusts nothing it is handed: the votes must
// verify with the worker's own keys and approve exactly this patch (whose
// digest it recomputes) by enough people other than the requester; anything
// else fails non-retryably before the repository is touched.
func (a *Activities) OpenPR(ctx context.Context, in OpenPRInput) (PullRequest, error) {
	if a.Git == nil {
		return PullRequest{}, notConfigured("git provider")
	}
	if len(in.Patch) == 0 || in.Branch == "" {
		return PullRequest{}, invalidInput("patch and branch are required")
	}
	if a.Decisions == nil {
		return PullRequest{}, notConfigured("decision client")
	}
	facts, err := a.Decisions.Facts(ctx, in.DecisionID)
	if err != nil {
		return PullRequest{}, classifyLogged(ctx, "reading the decision", err)
	}
	approvers, err := VerifyApprovals(a.VoteKeys, facts, in, time.Now())
	if err != nil {
		logger(ctx).Error("refusing to open a change without verified approval", "remediation_id", in.RemediationID, "error", err)
		return PullRequest{}, newNonRetryable(ErrTypeNotApproved, err.Error(), nil)
	}
	defer a.heartbeat(ctx)()
	if in.BaseBound {
		// Never a change for a diff and base nobody approved: a base that
		// moved under the diff sends the fix back to be made again.
		if err := a.checkBase(ctx, in); err != nil {
			return PullRequest{}, err
		}
	}
	title, body := ChangeMessage(in, approvers)
	pr, err := a.Git.OpenChange(ctx, ChangeSpec{
		RemediationID: in.RemediationID, Repo: in.Repo, Branch: in.Branch, BaseBranch: in.BaseBranch,
		BaseSHA: in.BaseSHA, Patch: in.Patch, Title: title, Body: body, CommitTime: in.CommitTime,
	})
	if err != nil {
		return PullRequest{}, classifyLogged(ctx, "opening the change", err)
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
	return classifyLogged(ctx, "recording the outcome", a.Decisions.RecordOutcome(ctx, in))
}

// logger is the activity logger with the correlation id of the request that
// started the remediation (propagated through Temporal headers).
func logger(ctx context.Context) log.Logger {
	return log.With(activity.GetLogger(ctx), "correlation_id", correlation.From(ctx))
}

// classifyLogged logs the raw error (command output, paths, upstream
// bodies) for operators and returns the classified error, whose message is
// safe to show API callers.
func classifyLogged(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	logger(ctx).Warn(what+" failed", "error", err)
	return Classify(err)
}

func notConfigured(what string) error {
	return newNonRetryable(ErrTypeNotConfigured, what+" is not configured", errors.New("not configured"))
}

func invalidInput(msg string) error {
	return newNonRetryable(ErrTypeInvalidInput, msg, nil)
}
