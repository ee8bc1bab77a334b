package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"remediator/activities"
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
	ev := AuditEvent{
		ID: fmt.Sprintf("%s/%d", r.in.ID, r.auditLog.Seq), RemediationID: r.in.ID, Seq: r.auditLog.Seq,
		Kind: e.Kind, Phase: string(r.st.Phase), Actor: e.Actor, Roles: e.Roles, Channel: e.Channel,
		At: workflow.Now(ctx).UTC(), CorrelationID: r.in.CorrelationID, Digest: e.Digest, Base: e.Base, Detail: clip(e.Detail, 1000),
	}
	if ev.Channel == "" {
		ev.Channel = "workflow"
	}
	if ev.Digest == "" && r.st.Fix != nil {
		ev.Digest, ev.Base = r.st.Fix.Digest, r.st.Fix.BaseSHA
	}
	r.auditLog.Events = append(r.auditLog.Events, ev)
	for len(r.auditLog.Events) > maxAuditEvents && r.auditLog.Events[0].Seq <= r.auditLog.Flushed {
		r.auditLog.Events = r.auditLog.Events[1:]
	}
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
