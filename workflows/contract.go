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
	// UpdateRegenerate (version 5) asks for a new fix on the current head
	// of the base branch: pending votes are void, approvers are asked
	// again. Developer role; signed by the API like a vote.
	UpdateRegenerate = "regenerate"
	// SignalSuperseded (version 5): a newer failure of the same CI workflow
	// on the same branch started another remediation; this one ends
	// Superseded unless its change is already being opened. Signed by
	// the API; an unsigned one is recorded and ignored.
	SignalSuperseded = "superseded"
	// QueryAudit answers the remediation's audit events (version 5).
	QueryAudit = "audit"
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
	// PhaseSuperseded (version 5): a newer failure of the same CI workflow
	// on the same branch replaced this remediation.
	PhaseSuperseded Phase = "Superseded"
)

// Phases lists every phase, for validation of filters.
var Phases = []Phase{
	PhaseReceived, PhaseGeneratingFix, PhaseAwaitingApproval, PhaseOpeningPR,
	PhaseCompleted, PhaseRejected, PhaseExpired, PhaseFailed, PhaseCancelled, PhaseSuperseded,
}

// Terminal reports whether no further transition can happen.
func (p Phase) Terminal() bool {
	switch p {
	case PhaseCompleted, PhaseRejected, PhaseExpired, PhaseFailed, PhaseCancelled, PhaseSuperseded:
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
	// ChannelCLI: cast with the remediator client (through the API).
	ChannelCLI = "cli"
	// ChannelWeb: cast in the approver console (/ui/).
	ChannelWeb = "web"
)

// Channels lists the channels a signed vote may name.
var Channels = []string{ChannelAPI, ChannelSlack, ChannelSignal, ChannelDragon, ChannelCLI, ChannelWeb}

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
	// Admitted: the repository's coordinator admitted this remediation
	// (per-repository caps); the run releases its slot when it ends.
	Admitted bool `json:"admitted,omitempty"`
	// Carry, set only by the workflow itself when it continues as new,
	// resumes the wait with the state of the previous run.
	Carry *Carry `json:"carry,omitempty"`
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
	// BaseSHA is the base commit the voter saw (required since version 5).
	BaseSHA string `json:"base_sha,omitempty"`
	Comment string `json:"comment,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Channel string `json:"channel,omitempty"`
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
		DecisionID: r.DecisionID, DiffDigest: r.DiffDigest, BaseSHA: r.BaseSHA, At: at, SignedAt: r.SignedAt, Signature: r.Signature,
	}
}

// Signed actions other than votes, kept apart from votes (and from each
// other) in what the signature covers.
const (
	ActionRegenerate = "regenerate"
	ActionSupersede  = "supersede"
)

// signedAction is what the signature of a regenerate request covers.
func (r ApprovalRequest) signedAction(id, action string) vote.Vote {
	v := r.Record(false, time.Time{}).Signed(id)
	v.Action = action
	return v
}

// SignRegenerate signs a regenerate request (the API side only).
func SignRegenerate(s *vote.Signer, id string, r ApprovalRequest, now time.Time) ApprovalRequest {
	r.Approve = false
	r.SignedAt = now.UTC()
	sig := s.Sign(r.signedAction(id, ActionRegenerate))
	r.Signature = &sig
	return r
}

// Supersession is the payload of SignalSuperseded: By is the newer
// remediation, SHA the newer failing commit, and the API signs it.
type Supersession struct {
	By        string          `json:"by"`
	SHA       string          `json:"sha,omitempty"`
	Reason    string          `json:"reason"`
	At        time.Time       `json:"at"`
	SignedAt  time.Time       `json:"signed_at,omitzero"`
	Signature *vote.Signature `json:"signature,omitempty"`
}

func (s Supersession) signed(id string) vote.Vote {
	return vote.Vote{RemediationID: id, Actor: "remediator", Channel: ChannelAPI, Comment: s.By, Reason: s.Reason,
		BaseSHA: s.SHA, SignedAt: s.SignedAt, Action: ActionSupersede}
}

// SignSupersession signs a supersession for remediation id (the API side).
func SignSupersession(sg *vote.Signer, id string, s Supersession, now time.Time) Supersession {
	s.SignedAt = now.UTC()
	sig := sg.Sign(s.signed(id))
	s.Signature = &sig
	return s
}

// Regeneration records one replacement of the fix: why, at whose request,
// and what it replaced (whose votes became void).
type Regeneration struct {
	At           time.Time `json:"at"`
	By           string    `json:"by"`
	Reason       string    `json:"reason"`
	FromDigest   string    `json:"from_digest"`
	FromBase     string    `json:"from_base"`
	FromDecision string    `json:"from_decision"`
	VoidedVotes  int       `json:"voided_votes"`
}

// Carry is the state a remediation hands to its next run when it continues
// as new while awaiting approval (version 5): everything the status shows
// and what the gate needs, so the new run goes straight back to waiting.
type Carry struct {
	Status          Status                  `json:"status"`
	Fix             activities.Fix          `json:"fix"`
	Caps            activities.Capabilities `json:"caps"`
	CreatedIncident bool                    `json:"created_incident,omitempty"`
	// DecisionRun is the run id regenerated decisions are keyed on (the
	// first run's), Generation the number of the current fix.
	DecisionRun string `json:"decision_run"`
	Generation  int    `json:"generation"`
	// ReminderStart is when the current wait began (reminders count from it).
	ReminderStart time.Time `json:"reminder_start"`
	Audit         AuditLog  `json:"audit"`
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
	ApproverRoles []string `json:"approver_roles,omitempty"`
	// ApproverGroups are the policy's named groups whose Members may
	// approve too (with the approver role).
	ApproverGroups  []string `json:"approver_groups,omitempty"`
	ApproverMembers []string `json:"approver_members,omitempty"`
	AdminRequired   bool     `json:"admin_required,omitempty"`
	ProtectedFiles  []string `json:"protected_files,omitempty"`
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
	ID             string `json:"id"`
	Phase          Phase  `json:"phase"`
	Reason         string `json:"reason,omitempty"`
	Repo           string `json:"repo"`
	Ref            string `json:"ref,omitempty"`
	SHA            string `json:"sha,omitempty"`
	FailureSummary string `json:"failure_summary,omitempty"`
	// LogExcerpt is the failure evidence the request carried (runs started
	// by version 5 and later; left out of Update results).
	LogExcerpt        string                  `json:"log_excerpt,omitempty"`
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
	// Authors wrote or asked for the fix (the requester, whoever asked for
	// a regeneration): none of them may approve it (version 5).
	Authors []string `json:"authors,omitempty"`
	// Generation numbers the current fix (1 for the first); Regenerations
	// record each replacement and VoidedVotes the votes it voided.
	Generation    int               `json:"generation,omitempty"`
	Regenerations []Regeneration    `json:"regenerations,omitempty"`
	VoidedVotes   []activities.Vote `json:"voided_votes,omitempty"`
	// SupersededBy is the remediation that replaced this one.
	SupersededBy string `json:"superseded_by,omitempty"`
	// Runs counts the workflow runs of this remediation (continue-as-new).
	Runs int `json:"runs,omitempty"`
}
