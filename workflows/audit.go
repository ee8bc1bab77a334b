package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"remediator/activities"
	"remediator/internal/audit"
)

// AuditEvent is one audit record of a remediation: what happened, who did
// it with which roles through which channel, when, under which correlation
// id, about which diff and base. The workflow numbers them (Seq) and the
// ID "<remediation id>/<seq>" makes appending them to the store idempotent.
type AuditEvent = activities.AuditEvent

// AuditLog is the remediation's audit events and how many of them reached
// the store.
type AuditLog struct {
	Events []AuditEvent `json:"events,omitempty"`
	// Seq is the last number handed out; Flushed the last one stored.
	Seq     int `json:"seq"`
	Flushed int `json:"flushed"`
}

// maxAuditEvents bounds the events kept in the workflow (the store keeps
// every one); the oldest stored ones go first.
const maxAuditEvents = 500

// auditEvent is what a step says about itself; audit fills in the rest.
type auditEvent struct {
	Kind, Actor, Channel, Detail string
	Roles                        []string
	Digest, Base                 string
}

// audit records an event (version 5) and asks for it to be stored.
func (r *remediation) audit(ctx workflow.Context, e auditEvent) {
	if r.version < versionSafety {
		return
	}
	r.auditLog.Seq++
	// Actors, roles and texts come from requests: they are made valid for
	// the store here, so one odd vote can never block the log.
	roles := make([]string, 0, min(len(e.Roles), audit.MaxRoles))
	for _, role := range e.Roles[:min(len(e.Roles), audit.MaxRoles)] {
		if role = auditText(role, audit.MaxRoleBytes, false); role != "" {
			roles = append(roles, role)
		}
	}
	ev := AuditEvent{
		ID: fmt.Sprintf("%s/%d", r.in.ID, r.auditLog.Seq), RemediationID: r.in.ID, Seq: r.auditLog.Seq,
		Kind: e.Kind, Phase: string(r.st.Phase), Actor: auditText(e.Actor, audit.MaxActorBytes, false), Roles: roles, Channel: e.Channel,
		At: workflow.Now(ctx).UTC(), CorrelationID: auditText(r.in.CorrelationID, audit.MaxShortBytes, false),
		Digest: auditText(e.Digest, audit.MaxShortBytes, false), Base: auditText(e.Base, audit.MaxShortBytes, false),
		Detail: auditText(e.Detail, 1000, true),
	}
	if len(roles) == 0 {
		ev.Roles = nil
	}
	if ev.Channel == "" {
		ev.Channel = "workflow"
	}
	if ev.Digest == "" && r.st.Fix != nil {
		ev.Digest, ev.Base = auditText(r.st.Fix.Digest, audit.MaxShortBytes, false), auditText(r.st.Fix.BaseSHA, audit.MaxShortBytes, false)
	}
	r.auditLog.Events = append(r.auditLog.Events, ev)
	for len(r.auditLog.Events) > maxAuditEvents && r.auditLog.Events[0].Seq <= r.auditLog.Flushed {
		r.auditLog.Events = r.auditLog.Events[1:]
	}
}

// auditNow records an event and stores what is pending now. Events are
// stored in batches, at the points that matter (the gate opening, a vote,
// a refusal, a reminder, the end): each store is a marker in the history.
func (r *remediation) auditNow(ctx workflow.Context, e auditEvent) {
	r.audit(ctx, e)
	r.auditor.poke()
}

// auditOptions: appending is quick; a store that is down is retried for a
// while, then the events stay pending until the next one (and the end).
var auditOptions = workflow.LocalActivityOptions{
	ScheduleToCloseTimeout: 5 * time.Minute,
	StartToCloseTimeout:    30 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        time.Minute,
		NonRetryableErrorTypes: activities.NonRetryableErrorTypes,
	},
}

// startAuditor (version 5) starts storing audit events as they happen.
func (r *remediation) startAuditor(ctx workflow.Context) {
	if r.version < versionSafety {
		return
	}
	r.startSidecar(ctx, &r.auditor, r.flushAudit)
}

// flushAudit appends the events not stored yet (a sidecar send).
func (r *remediation) flushAudit(ctx workflow.Context) {
	var batch []AuditEvent
	for _, e := range r.auditLog.Events {
		if e.Seq > r.auditLog.Flushed {
			batch = append(batch, e)
		}
	}
	if len(batch) == 0 {
		return
	}
	last := batch[len(batch)-1].Seq
	err := workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, auditOptions), acts.AppendAudit,
		activities.AppendAuditInput{Events: batch}).Get(ctx, nil)
	if err != nil {
		r.warn("appending to the audit log failed: " + errMessage(err))
		return
	}
	r.auditLog.Flushed = max(r.auditLog.Flushed, last)
}

// auditText is s as the audit store takes it: valid UTF-8 without control
// characters (line breaks and tabs kept when multiline), cut to max bytes.
func auditText(s string, max int, multiline bool) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if (r < 0x20 && !(multiline && (r == '\n' || r == '\t'))) || (r >= 0x7f && r <= 0x9f) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	return clip(s, max)
}
