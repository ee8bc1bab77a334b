package activities

import "time"

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
}

// Fix is a validated change proposal. The digest binds approvals to exactly
// this diff on exactly this base commit.
type Fix struct {
	Recipe     string   `json:"recipe"`
	Summary    string   `json:"summary"`
	Diff       string   `json:"diff"`
	Files      []string `json:"files"`
	Digest     string   `json:"digest"`
	Repo       string   `json:"repo"`
	BaseBranch string   `json:"base_branch,omitempty"`
	BaseSHA    string   `json:"base_sha"`
	Validated  bool     `json:"validated"`
	Check      string   `json:"check,omitempty"`
}

// CreateDecisionInput is what the governance record needs to describe the
// proposed action; RemediationID is its idempotency key.
type CreateDecisionInput struct {
	RemediationID string   `json:"remediation_id"`
	Repo          string   `json:"repo"`
	Requester     string   `json:"requester"`
	IncidentID    string   `json:"incident_id,omitempty"`
	CorrelationID string   `json:"correlation_id,omitempty"`
	Summary       string   `json:"summary"`
	Recipe        string   `json:"recipe"`
	Files         []string `json:"files"`
	DiffDigest    string   `json:"diff_digest"`
	BaseSHA       string   `json:"base_sha"`
}

// Decision identifies the governance record created for one remediation.
type Decision struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// OpenPRInput carries the approved diff; the branch is derived from the
// remediation id so a retried call finds the change it already made.
type OpenPRInput struct {
	RemediationID string    `json:"remediation_id"`
	Repo          string    `json:"repo"`
	Branch        string    `json:"branch"`
	BaseBranch    string    `json:"base_branch,omitempty"`
	BaseSHA       string    `json:"base_sha"`
	Diff          string    `json:"diff"`
	DiffDigest    string    `json:"diff_digest"`
	Title         string    `json:"title"`
	Body          string    `json:"body"`
	CommitTime    time.Time `json:"commit_time"`
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

// Vote is one person's recorded decision on a remediation.
type Vote struct {
	Actor      string    `json:"actor"`
	Approved   bool      `json:"approved"`
	Comment    string    `json:"comment,omitempty"`
	Channel    string    `json:"channel"`
	DecisionID string    `json:"decision_id"`
	DiffDigest string    `json:"diff_digest"`
	At         time.Time `json:"at"`
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
