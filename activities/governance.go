package activities

import (
	"context"
	"errors"
	"net/url"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"remediator/internal/vote"
)

// Capabilities tells the workflow, once per run and recorded in history,
// which integrations this worker has, so a run without them schedules
// nothing for them, and the keys votes are verified with.
type Capabilities struct {
	Keys           []vote.PublicKey `json:"keys"`
	Incidents      bool             `json:"incidents,omitempty"`
	Notify         bool             `json:"notify,omitempty"`
	NotifyUpdates  bool             `json:"notify_updates,omitempty"`
	WatchDecisions bool             `json:"watch_decisions,omitempty"`
	WatchInterval  time.Duration    `json:"watch_interval,omitempty"`
	// HistoryLimit is the history length (events) after which a
	// remediation waiting for approval continues as new (0: the default).
	HistoryLimit int `json:"history_limit,omitempty"`
}

// DefaultWatchInterval is how often Dragon is polled when no interval is configured.
const DefaultWatchInterval = 30 * time.Second

// Setup is the first step of a run (a local activity): the worker's vote
// keys and which integrations it has.
func (a *Activities) Setup(ctx context.Context) (Capabilities, error) {
	keys, err := a.VerificationKeys(ctx)
	if err != nil {
		return Capabilities{}, err
	}
	c := Capabilities{Keys: keys, Incidents: a.Incidents != nil, Notify: a.Notifier != nil, HistoryLimit: a.HistoryLimit}
	if a.Notifier != nil {
		c.NotifyUpdates = a.Notifier.CanUpdate()
	}
	if _, ok := a.Decisions.(DecisionWatcher); ok {
		c.WatchDecisions = true
		c.WatchInterval = a.WatchInterval
		if c.WatchInterval <= 0 {
			c.WatchInterval = DefaultWatchInterval
		}
	}
	return c, nil
}

// Links are where people follow a remediation.
type Links struct {
	API string `json:"api,omitempty"`
	UI  string `json:"ui,omitempty"`
	// Review is the remediation's page in the approver console.
	Review string `json:"review,omitempty"`
	Change string `json:"change,omitempty"`
}

// linksFor builds the API and Web UI links of a remediation.
func (a *Activities) linksFor(id string) Links {
	l := Links{}
	if a.PublicURL != "" {
		l.API = a.PublicURL + "/api/remediations/" + id
		l.Review = a.PublicURL + "/ui/remediations/" + id
	}
	if a.UIURL != "" && a.Namespace != "" {
		l.UI = a.UIURL + "/namespaces/" + url.PathEscape(a.Namespace) + "/workflows/" + id
	}
	return l
}

// IncidentClient keeps the incident record of a remediation.
type IncidentClient interface {
	CreateIncident(ctx context.Context, r IncidentRecord) (string, error)
	UpdateIncident(ctx context.Context, id string, r IncidentRecord) error
}

// IncidentRecord is what the incident says about a remediation.
type IncidentRecord struct {
	RemediationID  string
	Repo, Ref, SHA string
	FailureSummary string
	CorrelationID  string
	Severity       string
	RiskLevel      string
	DecisionID     string
	Phase, Reason  string
	PRURL          string
	Links          Links
}

// SyncIncidentInput creates the incident (IncidentID empty) or updates it.
type SyncIncidentInput struct {
	IncidentID string         `json:"incident_id,omitempty"`
	Record     IncidentRecord `json:"record"`
}

// SyncIncident creates the incident of a remediation started without one,
// or writes the decision, the change and the outcome into it. It answers
// the incident id.
func (a *Activities) SyncIncident(ctx context.Context, in SyncIncidentInput) (string, error) {
	if a.Incidents == nil {
		return "", notConfigured("incident API")
	}
	in.Record.Links = a.linksFor(in.Record.RemediationID)
	if in.Record.PRURL != "" {
		in.Record.Links.Change = in.Record.PRURL
	}
	if in.IncidentID == "" {
		id, err := a.Incidents.CreateIncident(ctx, in.Record)
		if err != nil {
			return "", classifyLogged(ctx, "creating the incident", err)
		}
		return id, nil
	}
	if err := a.Incidents.UpdateIncident(ctx, in.IncidentID, in.Record); err != nil {
		return "", classifyLogged(ctx, "updating the incident", err)
	}
	return in.IncidentID, nil
}

// Notifier posts a remediation's approval request and keeps it current.
type Notifier interface {
	// Notify posts the notice when ref is empty (idempotently where the
	// transport allows it) and updates the message ref names otherwise,
	// answering the message's ref (empty when the transport gives none).
	Notify(ctx context.Context, n Notice, ref MessageRef) (MessageRef, error)
	// CanUpdate says whether a posted message can be updated in place.
	CanUpdate() bool
}

// MessageRef names a posted message.
type MessageRef struct {
	Channel string `json:"channel,omitempty"`
	TS      string `json:"ts,omitempty"`
}

// Notice is what the approval message shows.
type Notice struct {
	RemediationID string    `json:"remediation_id"`
	DecisionID    string    `json:"decision_id"`
	Digest        string    `json:"digest"`
	Repo          string    `json:"repo"`
	Ref           string    `json:"ref,omitempty"`
	BaseSHA       string    `json:"base_sha,omitempty"`
	Failure       string    `json:"failure"`
	FixSummary    string    `json:"fix_summary"`
	Files         []string  `json:"files"`
	FixSource     string    `json:"fix_source,omitempty"`
	Validated     bool      `json:"validated"`
	Validation    string    `json:"validation,omitempty"`
	RiskLevel     string    `json:"risk_level,omitempty"`
	RiskScore     int       `json:"risk_score,omitempty"`
	RiskReason    string    `json:"risk_reason,omitempty"`
	Deadline      time.Time `json:"deadline"`
	Phase         string    `json:"phase"`
	Outcome       string    `json:"outcome,omitempty"`
	Votes         []Vote    `json:"votes,omitempty"`
	Required      int       `json:"required"`
	Links         Links     `json:"links"`
	// Reminders and EscalatedTo are shown on the message; Announce, when
	// set, is posted besides it (a reminder or an escalation).
	Reminders   int    `json:"reminders,omitempty"`
	EscalatedTo string `json:"escalated_to,omitempty"`
	Announce    string `json:"announce,omitempty"`
	// Mention leads an escalation: the policy's escalate_to when it is a
	// Slack mention token (<!subteam^ID>, <@U…>, <!here>, <!channel>).
	Mention string `json:"mention,omitempty"`
}

// NotifyInput is one post or update of the approval message.
type NotifyInput struct {
	Notice Notice     `json:"notice"`
	Ref    MessageRef `json:"ref"`
}

// Notify posts or updates the approval message (Slack).
func (a *Activities) Notify(ctx context.Context, in NotifyInput) (MessageRef, error) {
	if a.Notifier == nil {
		return MessageRef{}, notConfigured("notifier")
	}
	links := a.linksFor(in.Notice.RemediationID)
	links.Change = in.Notice.Links.Change
	in.Notice.Links = links
	ref, err := a.Notifier.Notify(ctx, in.Notice, in.Ref)
	if err != nil {
		return MessageRef{}, classifyLogged(ctx, "notifying", err)
	}
	return ref, nil
}

// DecisionWatcher is a decision service in which people can also decide
// (Dragon): the workflow polls it while awaiting approval.
type DecisionWatcher interface {
	Verdict(ctx context.Context, id string) (DecisionVerdict, error)
}

// Verdicts of a decision.
const (
	VerdictPending  = "pending"
	VerdictApproved = "approved"
	VerdictRejected = "rejected"
)

// DecisionVerdict is what the decision service says was decided.
type DecisionVerdict struct {
	Verdict string `json:"verdict"`
	Status  string `json:"status"` // as the service spelled it
	// Actor and Roles are whom the decision counts as (DragonUsers); an
	// approval by nobody who may approve has no Actor, and Note says why.
	Actor  string   `json:"actor,omitempty"`
	Roles  []string `json:"roles,omitempty"`
	Note   string   `json:"note,omitempty"`
	Reason string   `json:"reason,omitempty"`
}

// Key identifies a verdict, so a watch returns only a change.
func (v DecisionVerdict) Key() string { return v.Verdict + "\x00" + v.Status + "\x00" + v.Actor }

// WatchDecisionInput asks for the next verdict other than Seen.
type WatchDecisionInput struct {
	DecisionID string        `json:"decision_id"`
	Interval   time.Duration `json:"interval"`
	Seen       string        `json:"seen,omitempty"`
}

// minWatchInterval keeps a misconfigured interval from hammering Dragon.
const minWatchInterval = time.Second

// WatchDecision polls the decision service until the decision is approved
// or rejected (and differs from Seen), heartbeating between polls so a
// cancel (the gate closed) stops it and a crashed worker's poll is taken
// over quickly. Transient errors are retried in place; a permanent one
// (bad credentials, unknown decision) ends the watch.
func (a *Activities) WatchDecision(ctx context.Context, in WatchDecisionInput) (DecisionVerdict, error) {
	w, ok := a.Decisions.(DecisionWatcher)
	if !ok {
		return DecisionVerdict{}, notConfigured("decision watcher")
	}
	interval := max(in.Interval, minWatchInterval)
	for {
		v, err := w.Verdict(ctx, in.DecisionID)
		switch {
		case err != nil && ctx.Err() != nil:
			return DecisionVerdict{}, ctx.Err()
		case err != nil:
			cerr := classifyLogged(ctx, "reading the decision", err)
			var appErr *temporal.ApplicationError
			if errors.As(cerr, &appErr) && appErr.NonRetryable() {
				return DecisionVerdict{}, cerr
			}
		case v.Verdict != VerdictPending && v.Key() != in.Seen:
			return v, nil
		}
		activity.RecordHeartbeat(ctx, in.DecisionID)
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return DecisionVerdict{}, ctx.Err()
		case <-t.C:
		}
	}
}
