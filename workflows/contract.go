// Package workflows holds the Remediation workflow: deterministic code only.
// This file is the whole contract shared with the API, the CLI runbook and
// the replay tests; renaming anything here is a breaking change.
package workflows

import (
	"time"

	"remediator/activities"
	"remediator/internal/vote"
)

// TaskQueue is where the worker polls for remediation workflows and activities.
const TaskQueue = "remediator"

// Names of the workflow type and its handlers.
const (
	WorkflowName   = "Remediation"
	UpdateApprove  = "approve"
	UpdateReject   = "reject"
	SignalApproval = "approval"
	// SignalAlertResolved records that the alert a remediation was started
	// for resolved; it changes nothing else (a person still decides).
	SignalAlertResolved = "alert_resolved"
	// SignalEventAttached records that a later event with the same
	// fingerprint (an alert firing again) attached to this remediation
	// instead of starting another; it is counted in the status.
	SignalEventAttached = "event_attached"
	QueryStatus         = "status"
	// UpdateAwaitProposal waits until the fix and its decision exist (or the
	// run ended) and answers with the status; POST /api/generate sends it
	// with the start (update-with-start). It changes nothing.
	UpdateAwaitProposal = "await_proposal"
)

// Custom search attributes (all Keyword) registered on the namespace, so
// operators can filter in the Web UI and with `temporal workflow list --query`.
const (
	SearchAttrPhase         = "RemediationPhase"
	SearchAttrRepo          = "RemediationRepo"
	SearchAttrRequester     = "RemediationRequester"
	SearchAttrIncident      = "RemediationIncident"
	SearchAttrCorrelationID = "CorrelationID"
)

// SearchAttributeNames lists the custom search attributes in registration order.
var SearchAttributeNames = []string{
	SearchAttrPhase, SearchAttrRepo, SearchAttrRequester, SearchAttrIncident, SearchAttrCorrelationID,
}

// Memo keys written at start.
const (
	MemoCorrelationID = "correlation_id"
	MemoRequestHash   = "request_hash"
	MemoRequester     = "requester"
	// MemoStartSignature is the API's signature of the start (remediation
	// id, repository, requester): the workflow reaches Dragon's watch, the
	// incident and Slack only for starts it verifies.
	MemoStartSignature = "start_signature"
)

// IDPrefix starts every remediation workflow ID; the remediation id IS the
// workflow ID.
const IDPrefix = "rem-"

// BranchFor is the deterministic branch a remediation's change lives on.
func BranchFor(remediationID string) string { return activities.BranchPrefix + remediationID }

// Phase is where a remediation stands. Terminal phases never change again.
type Phase string

// Phases in order; the last five are terminal.
const (
	PhaseReceived         Phase = "Received"
	PhaseGeneratingFix    Phase = "GeneratingFix"
	PhaseAwaitingApproval Phase = "AwaitingApproval"
	PhaseOpeningPR        Phase = "OpeningPR"
	PhaseCompleted        Phase = "Completed"
	PhaseRejected         Phase = "Rejected"
	PhaseExpired          Phase = "Expired"
	PhaseFailed           Phase = "Failed"
	PhaseCancelled        Phase = "Cancelled"
)

// Phases lists every phase, for validation of filters.
var Phases = []Phase{
	PhaseReceived, PhaseGeneratingFix, PhaseAwaitingApproval, PhaseOpeningPR,
	PhaseCompleted, PhaseRejected, PhaseExpired, PhaseFailed, PhaseCancelled,
}

// Terminal reports whether no further transition can happen.
func (p Phase) Terminal() bool {
	switch p {
	case PhaseCompleted, PhaseRejected, PhaseExpired, PhaseFailed, PhaseCancelled:
		return true
	}
	return false
}

// Roles understood by the approval gate.
const (
	RoleDeveloper = "developer"
	RoleApprover  = "approver"
	RoleAdmin     = "admin"
)

// Channels through which a vote can arrive.
const (
	ChannelAPI    = "api"
	ChannelSlack  = "slack"
	ChannelSignal = "signal"
	// ChannelDragon: the decision was taken in Dragon. It arrives signed by
	// the API (Dragon's callback) or from the workflow's own poll of Dragon,
	// which OpenPR confirms with Dragon again before anything is written.
	ChannelDragon = "dragon"
)

// Channels lists the channels a signed vote may name.
var Channels = []string{ChannelAPI, ChannelSlack, ChannelSignal, ChannelDragon}

// DefaultApprovalTimeout applies when the input sets none.
const DefaultApprovalTimeout = 24 * time.Hour

// RemediationInput starts one remediation.
type RemediationInput struct {
	ID                string        `json:"id"`
	Repo              string        `json:"repo"`
	Ref               string        `json:"ref,omitempty"`
	SHA               string        `json:"sha,omitempty"`
	FailureSummary    string        `json:"failure_summary"`
	LogExcerpt        string        `json:"log_excerpt,omitempty"`
	IncidentID        string        `json:"incident_id,omitempty"`
	Requester         string        `json:"requester"`
	CorrelationID     string        `json:"correlation_id,omitempty"`
	ApprovalTimeout   time.Duration `json:"approval_timeout,omitempty"`
	RequiredApprovals int           `json:"required_approvals,omitempty"`
	// CIRun names the failed CI run on the forge (its logs become evidence).
	CIRun *activities.CIRun `json:"ci_run,omitempty"`
	// Deadline is the absolute end of the approval window, fixed once when
	// the remediation is accepted: the time spent generating the fix or
	// retrying the decision neither extends nor shrinks it. Zero (inputs of
	// older API versions) falls back to ApprovalTimeout from the first
	// workflow task.
	Deadline time.Time `json:"deadline,omitzero"`
}

// ApprovalRequest is the payload of the approve and reject Updates and of the
// approval signal. Actor and Roles come from the authenticated principal,
// never from a request body, and the API signs every field (SignVote): the
// validators refuse, and OpenPR ignores, a vote whose signature does not
// verify with the worker's keys.
type ApprovalRequest struct {
	Actor      string   `json:"actor"`
	Roles      []string `json:"roles"`
	DecisionID string   `json:"decision_id"`
	DiffDigest string   `json:"diff_digest"`
	Comment    string   `json:"comment,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	Channel    string   `json:"channel,omitempty"`
	// Approve is read only from the signal; the Update name carries it otherwise.
	Approve   bool            `json:"approve,omitempty"`
	SignedAt  time.Time       `json:"signed_at,omitzero"`
	Signature *vote.Signature `json:"signature,omitempty"`
}

// Record is the vote as the workflow keeps it (and as its signature
// covers it, through activities.Vote.Signed).
func (r ApprovalRequest) Record(approve bool, at time.Time) activities.Vote {
	return activities.Vote{
		Actor: r.Actor, Approved: approve, Comment: r.Comment, Reason: r.Reason, Roles: r.Roles, Channel: r.Channel,
		DecisionID: r.DecisionID, DiffDigest: r.DiffDigest, At: at, SignedAt: r.SignedAt, Signature: r.Signature,
	}
}

// SignVote is how the API side (and only it) makes a request count: it
// stamps the time and signs every field for remediation id.
func SignVote(s *vote.Signer, id string, approve bool, r ApprovalRequest, now time.Time) ApprovalRequest {
	r.Approve = approve
	r.SignedAt = now.UTC()
	sig := s.Sign(r.Record(approve, time.Time{}).Signed(id))
	r.Signature = &sig
	return r
}

// Error types returned by the approval validators; the orchestrator maps them
// to HTTP statuses.
const (
	ErrTypeForbidden    = "ApprovalForbidden"    // missing role, or the requester voting
	ErrTypeInvalidVote  = "ApprovalInvalid"      // missing decision id/digest, reject without reason
	ErrTypeStaleVote    = "ApprovalStale"        // decision id or digest do not match
	ErrTypeDuplicate    = "ApprovalDuplicate"    // this person already voted
	ErrTypeGateClosed   = "ApprovalGateClosed"   // not awaiting approval (yet or any more)
	ErrTypeSelfApproval = "ApprovalSelfApproval" // the requester approving their own remediation
	ErrTypeUnsigned     = "ApprovalUnsigned"     // no signature, one the worker's keys do not verify, or signed too long ago
	// ErrTypeProposalReady refuses await_proposal once there is nothing to
	// wait for (the status query answers).
	ErrTypeProposalReady = "ProposalReady"
)

// VoteMaxSkew is how far a vote's signing time may be from the workflow's
// clock: a signed vote is delivered within seconds, so an old one is a replay.
const VoteMaxSkew = 15 * time.Minute

// FixSummary is what approvers review. Patch is the exact bytes that will
// be applied (base64 in JSON), whose SHA-256 is Digest; Diff is the same
// text for display, filled by the API when the bytes are valid UTF-8 (and by
// workflows started before Patch existed).
type FixSummary struct {
	Recipe     string   `json:"recipe"`
	Summary    string   `json:"summary"`
	Files      []string `json:"files"`
	Digest     string   `json:"digest"`
	BaseSHA    string   `json:"base_sha"`
	BaseBranch string   `json:"base_branch,omitempty"`
	Validated  bool     `json:"validated"`
	// Source is "recipe" or "model"; Validation says what validation ran
	// and its result, in one line, for the approver.
	Source     string `json:"source,omitempty"`
	Validation string `json:"validation,omitempty"`
	Attempts   int    `json:"attempts,omitempty"`
	Diff       string `json:"diff,omitempty"`
	Patch      []byte `json:"patch,omitempty"`
}

// Risk is the assessment of internal/policy, shown with the decision.
type Risk struct {
	Level  string `json:"level"`
	Score  int    `json:"score"`
	Gate   string `json:"gate"`
	Reason string `json:"reason"`
	// Rule is what set the level: a rule of the policy, its default, or the
	// built-in heuristics (version 4); Policy names the policy.
	Rule   string `json:"rule,omitempty"`
	Policy string `json:"policy,omitempty"`
	// ApproverRoles may approve at this level; AdminRequired when the fix
	// touches ProtectedFiles (an admin must be among the approvers).
	ApproverRoles  []string `json:"approver_roles,omitempty"`
	AdminRequired  bool     `json:"admin_required,omitempty"`
	ProtectedFiles []string `json:"protected_files,omitempty"`
	// The level's reminders and escalation (zero: none).
	RemindEvery    time.Duration `json:"remind_every,omitempty"`
	EscalateBefore time.Duration `json:"escalate_before,omitempty"`
	EscalateTo     string        `json:"escalate_to,omitempty"`
}

// Escalation records that a waiting remediation was escalated.
type Escalation struct {
	To string    `json:"to"`
	At time.Time `json:"at"`
}

// Notifications records where the remediation was announced: the Slack
// message kept current (empty with an incoming webhook, which gives no id).
type Notifications struct {
	SlackChannel string `json:"slack_channel,omitempty"`
	SlackTS      string `json:"slack_ts,omitempty"`
	SlackPosted  bool   `json:"slack_posted,omitempty"`
	// Announced is how many reminders and escalations were sent.
	Announced int `json:"announced,omitempty"`
}

// AttachedEvent is the payload of SignalEventAttached.
type AttachedEvent struct {
	Fingerprint string    `json:"fingerprint"`
	At          time.Time `json:"at"`
}

// AlertResolution is the payload of SignalAlertResolved.
type AlertResolution struct {
	Fingerprint string    `json:"fingerprint"`
	At          time.Time `json:"at"`
}

// IgnoredSignal records an approval signal that failed validation.
type IgnoredSignal struct {
	Actor  string    `json:"actor"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Status is the answer of the status query and the workflow result.
type Status struct {
	ID                string                  `json:"id"`
	Phase             Phase                   `json:"phase"`
	Reason            string                  `json:"reason,omitempty"`
	Repo              string                  `json:"repo"`
	Ref               string                  `json:"ref,omitempty"`
	SHA               string                  `json:"sha,omitempty"`
	FailureSummary    string                  `json:"failure_summary,omitempty"`
	IncidentID        string                  `json:"incident_id,omitempty"`
	Requester         string                  `json:"requester"`
	CorrelationID     string                  `json:"correlation_id,omitempty"`
	Fix               *FixSummary             `json:"fix,omitempty"`
	DecisionID        string                  `json:"decision_id,omitempty"`
	RequiredApprovals int                     `json:"required_approvals"`
	Votes             []activities.Vote       `json:"votes"`
	IgnoredSignals    []IgnoredSignal         `json:"ignored_signals,omitempty"`
	PR                *activities.PullRequest `json:"pr,omitempty"`
	CreatedAt         time.Time               `json:"created_at"`
	UpdatedAt         time.Time               `json:"updated_at"`
	Deadline          time.Time               `json:"deadline,omitzero"`
	// AlertResolvedAt is when the alert that started the remediation
	// resolved, if it did.
	AlertResolvedAt time.Time `json:"alert_resolved_at,omitzero"`
	// Attached counts later events with the same fingerprint that attached
	// to this remediation (storm control: one remediation per fingerprint).
	Attached       int       `json:"attached,omitempty"`
	LastAttachedAt time.Time `json:"last_attached_at,omitzero"`
	// Reminders are when the approval request was repeated; Escalation
	// when and to whom it was escalated (the risk policy's level).
	Reminders  []time.Time `json:"reminders,omitempty"`
	Escalation *Escalation `json:"escalation,omitempty"`
	// Risk is the policy's assessment once the fix exists.
	Risk          *Risk          `json:"risk,omitempty"`
	Notifications *Notifications `json:"notifications,omitempty"`
	// Warnings name integrations (incident, Slack, Dragon write-back) that
	// failed; they never change the remediation's outcome.
	Warnings []string `json:"warnings,omitempty"`
}
