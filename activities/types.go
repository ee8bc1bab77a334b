package activities

import (
	"remediator/internal/policy"
	"time"

	"remediator/internal/vote"
)

// GenerateFixInput names the failing commit and the evidence a fix generator
// matches against. Repo is whatever the configured git provider understands
// (a path or file:// URL for the local provider).
type GenerateFixInput struct {
	RemediationID  string `json:"remediation_id"`
	Repo           string `json:"repo"`
	Ref            string `json:"ref,omitempty"`
	SHA            string `json:"sha,omitempty"`
	FailureSummary string `json:"failure_summary"`
	LogExcerpt     string `json:"log_excerpt,omitempty"`
	// CIRun names the failed CI run, whose failed jobs' logs a forge fixer
	// fetches as evidence.
	CIRun *CIRun `json:"ci_run,omitempty"`
}

// Fix is a validated change proposal. The digest binds approvals to exactly
// this diff on exactly this base commit. Patch carries the diff as bytes
// (base64 in history): a JSON string would turn invalid UTF-8 into U+FFFD and
// the applied diff would no longer be the approved one. Diff is only read
// from histories written before Patch existed.
type Fix struct {
	// Policy is the worker's risk policy applied to this fix (level, rule,
	// quorum, roles, protected paths, timing), recorded with the fix so a
	// replay decides exactly as the run did. Nil from older workers.
	Policy     *policy.Result `json:"policy,omitempty"`
	Recipe     string         `json:"recipe"`
	Summary    string         `json:"summary"`
	Diff       string         `json:"diff,omitempty"`
	Patch      []byte         `json:"patch,omitempty"`
	Files      []string       `json:"files"`
	Digest     string         `json:"digest"`
	Repo       string         `json:"repo"`
	BaseBranch string         `json:"base_branch,omitempty"`
	BaseSHA    string         `json:"base_sha"`
	Validated  bool           `json:"validated"`
	Check      string         `json:"check,omitempty"`
	// Source is "recipe" or "model"; Validation is one line saying what
	// validation ran and its result; Attempts counts model calls.
	Source     string `json:"source,omitempty"`
	Validation string `json:"validation,omitempty"`
	Attempts   int    `json:"attempts,omitempty"`
}

// CreateDecisionInput is what the governance record needs to describe the
// proposed action; RemediationID is its idempotency key.
type CreateDecisionInput struct {
	RemediationID string `json:"remediation_id"`
	// RunID keys the decision together with RemediationID: a later run of
	// the same remediation gets a decision (and so needs votes) of its own.
	RunID         string   `json:"run_id,omitempty"`
	Repo          string   `json:"repo"`
	Requester     string   `json:"requester"`
	IncidentID    string   `json:"incident_id,omitempty"`
	CorrelationID string   `json:"correlation_id,omitempty"`
	Summary       string   `json:"summary"`
	Recipe        string   `json:"recipe"`
	Files         []string `json:"files"`
	DiffDigest    string   `json:"diff_digest"`
	BaseSHA       string   `json:"base_sha"`
	// The assessment and context approvers see with the decision.
	RiskLevel  string `json:"risk_level,omitempty"`
	RiskScore  int    `json:"risk_score,omitempty"`
	RiskReason string `json:"risk_reason,omitempty"`
	FixSource  string `json:"fix_source,omitempty"`
	Validation string `json:"validation,omitempty"`
	Ref        string `json:"ref,omitempty"`
	// Links are filled by the activity (API, Web UI).
	Links map[string]string `json:"links,omitempty"`
}

// Decision identifies the governance record created for one remediation.
type Decision struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// Watch says the decision can also be taken in the decision service
	// itself (Dragon): the workflow polls it while awaiting approval.
	Watch bool `json:"watch,omitempty"`
}

// DecisionFacts is what the governance record says was proposed: OpenPR
// compares it with what it is asked to apply, so votes for one decision
// cannot open anything else.
type DecisionFacts struct {
	RemediationID string
	Repo          string
	Requester     string
	DiffDigest    string
	BaseSHA       string
	// Verdict and Approver are what the decision service itself says was
	// decided, and by whom (Dragon); empty for the built-in ledger. OpenPR
	// confirms votes taken in Dragon against them.
	Verdict  string
	Approver string
}

// OpenPRInput carries the approved diff and the votes that approved it;
// the branch is derived from the remediation id so a retried call finds the
// change it already made. OpenPR trusts none of it: it verifies the votes
// with the worker's own keys and recomputes the digest of Patch before
// anything is written, and composes the commit message itself.
type OpenPRInput struct {
	RemediationID     string `json:"remediation_id"`
	Repo              string `json:"repo"`
	Branch            string `json:"branch"`
	BaseBranch        string `json:"base_branch,omitempty"`
	BaseSHA           string `json:"base_sha"`
	Patch             []byte `json:"patch"`
	DiffDigest        string `json:"diff_digest"`
	DecisionID        string `json:"decision_id"`
	Requester         string `json:"requester"`
	RequiredApprovals int    `json:"required_approvals"`
	// ApproverRoles are the roles the policy lets approve this fix (empty:
	// approver or admin); AdminRequired asks for an admin among the
	// approvers (the fix touches protected paths).
	ApproverRoles []string `json:"approver_roles,omitempty"`
	AdminRequired bool     `json:"admin_required,omitempty"`
	RiskLevel     string   `json:"risk_level,omitempty"`
	RiskRule      string   `json:"risk_rule,omitempty"`
	// ApproverMembers may approve whatever their roles (the members of the
	// policy's named groups for this level).
	ApproverMembers []string `json:"approver_members,omitempty"`
	// Authors wrote or asked for this fix: like the requester, they never
	// approve it.
	Authors []string `json:"authors,omitempty"`
	// BaseBound: every vote must name BaseSHA (workflow version 5).
	BaseBound      bool      `json:"base_bound,omitempty"`
	Votes          []Vote    `json:"votes"`
	FailureSummary string    `json:"failure_summary"`
	FixSummary     string    `json:"fix_summary"`
	Recipe         string    `json:"recipe"`
	IncidentID     string    `json:"incident_id,omitempty"`
	CommitTime     time.Time `json:"commit_time"`
}

// PullRequest is the change request opened for an approved fix.
type PullRequest struct {
	ID         string `json:"id"`
	URL        string `json:"url"`
	Branch     string `json:"branch"`
	BaseBranch string `json:"base_branch,omitempty"`
	HeadSHA    string `json:"head_sha"`
	Created    bool   `json:"created"`
}

// Vote is one person's recorded decision on a remediation, with the
// signature the API made over it. Comment and Reason are kept as signed;
// votes recorded before signing existed carry a reject's reason in Comment.
type Vote struct {
	Actor      string   `json:"actor"`
	Approved   bool     `json:"approved"`
	Comment    string   `json:"comment,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	Roles      []string `json:"roles,omitempty"`
	Channel    string   `json:"channel"`
	DecisionID string   `json:"decision_id"`
	DiffDigest string   `json:"diff_digest"`
	// BaseSHA is the base commit the voter saw (votes since workflow
	// version 5 name it, and it is signed).
	BaseSHA   string          `json:"base_sha,omitempty"`
	At        time.Time       `json:"at"`
	SignedAt  time.Time       `json:"signed_at,omitzero"`
	Signature *vote.Signature `json:"signature,omitempty"`
}

// Text is what the voter said: the reason of a rejection, else the comment.
func (v Vote) Text() string {
	if !v.Approved && v.Reason != "" {
		return v.Reason
	}
	return v.Comment
}

// Signed is what the vote's signature covers for remediation id.
func (v Vote) Signed(id string) vote.Vote {
	return vote.Vote{
		RemediationID: id, Approve: v.Approved, Actor: v.Actor, Roles: v.Roles, Channel: v.Channel,
		DecisionID: v.DecisionID, DiffDigest: v.DiffDigest, Comment: v.Comment, Reason: v.Reason, SignedAt: v.SignedAt,
		BaseSHA: v.BaseSHA,
	}
}

// RecordOutcomeInput is the end state written back to the decision ledger.
type RecordOutcomeInput struct {
	RemediationID string       `json:"remediation_id"`
	DecisionID    string       `json:"decision_id,omitempty"`
	Phase         string       `json:"phase"`
	Reason        string       `json:"reason,omitempty"`
	Votes         []Vote       `json:"votes,omitempty"`
	PR            *PullRequest `json:"pr,omitempty"`
}
