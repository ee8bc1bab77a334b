package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"remediator/activities"
	"remediator/internal/policy"
)

// applyPolicy (version 4) evaluates the worker's risk policy, recorded in
// Setup, for the fix: the level and the rule that set it, the quorum, who
// may approve, and the protected paths. It returns a reason when the policy
// refuses the fix (a protected path with mode refuse); risk is updated for
// the decision.
func (r *remediation) applyPolicy(in policy.Input, risk *policy.Assessment, now time.Time) string {
	// GenerateFix applied the worker's policy and its answer is in the
	// recorded result. A fix from a worker that predates it is judged by
	// the built-in heuristics, with any approver.
	var res policy.Result
	if r.fix.Policy != nil {
		res = *r.fix.Policy
	} else {
		res = policy.Policy{Name: "none recorded", Default: "heuristics"}.Evaluate(policy.EvalInput{Input: in, Repo: r.in.Repo})
	}
	*risk = res.Assessment
	// The decision and the Slack message show the reason: name the rule.
	risk.Reason = res.Reason + " [policy " + res.Policy + ", rule " + res.Rule + "]"
	r.st.Risk = &Risk{
		Level: res.Level, Score: res.Score, Gate: res.Gate, Reason: res.Reason, Rule: res.Rule, Policy: res.Policy,
		ApproverRoles: res.Roles, ApproverGroups: res.Groups, ApproverMembers: res.Members, ProtectedFiles: res.ProtectedFiles,
		AdminRequired: len(res.ProtectedFiles) > 0 && res.ProtectedMode == policy.ProtectedAdmin,
		RemindEvery:   res.RemindEvery, EscalateBefore: res.EscalateBefore, EscalateTo: res.EscalateTo,
	}
	if len(res.Roles) == 0 && len(res.Members) == 0 {
		r.st.Risk.ApproverRoles = []string{RoleApprover, RoleAdmin}
	}
	r.st.RequiredApprovals = max(r.st.RequiredApprovals, res.Approvals)
	if res.Deadline > 0 {
		// The level's window starts when the fix is ready; it only ever
		// shortens the request's deadline.
		if d := now.Add(res.Deadline); d.Before(r.st.Deadline) {
			r.st.Deadline = d
		}
	}
	r.st.RequiredApprovals = max(r.st.RequiredApprovals, res.Approvals)
	if len(res.ProtectedFiles) > 0 && res.ProtectedMode == policy.ProtectedRefuse {
		return "refused by the risk policy (" + res.Policy + "): the fix touches protected paths: " + strings.Join(res.ProtectedFiles, ", ")
	}
	return ""
}

// approverRoles are the roles that may approve this fix.
func (r *remediation) approverRoles() []string {
	if r.st.Risk != nil && len(r.st.Risk.ApproverRoles) > 0 {
		return r.st.Risk.ApproverRoles
	}
	if r.st.Risk != nil && len(r.st.Risk.ApproverMembers) > 0 {
		return nil // only the named groups' members
	}
	return []string{RoleApprover, RoleAdmin}
}

// mayApprove: the voter holds a role the policy lets approve, or is a
// member of one of the level's named groups (version 5).
func (r *remediation) mayApprove(req ApprovalRequest) bool {
	if slices.ContainsFunc(req.Roles, func(role string) bool { return slices.Contains(r.approverRoles(), role) }) {
		return true
	}
	return r.version >= versionSafety && r.st.Risk != nil &&
		slices.ContainsFunc(r.st.Risk.ApproverMembers, func(m string) bool { return activities.SameActor(m, req.Actor) })
}

// approversText names who may approve, for a refusal.
func (r *remediation) approversText() string {
	who := r.approverRoles()
	if r.st.Risk != nil && len(r.st.Risk.ApproverGroups) > 0 {
		who = append(slices.Clone(who), "members of "+strings.Join(r.st.Risk.ApproverGroups, ", "))
	}
	return strings.Join(who, " or ")
}

// quorumMet: enough distinct approvals, and an admin among them when the fix
// touches protected paths.
func (r *remediation) quorumMet() bool {
	approvals, admin := 0, false
	for _, v := range r.st.Votes {
		if v.Approved {
			approvals++
			admin = admin || slices.Contains(v.Roles, RoleAdmin)
		}
	}
	if approvals < r.st.RequiredApprovals {
		return false
	}
	return r.st.Risk == nil || !r.st.Risk.AdminRequired || admin
}

// maxReminders bounds the reminders of one run (a short interval over a long
// window must not flood the channel or the history).
const maxReminders = 24

// awaitWithReminders (version 4) waits for a verdict or the deadline like
// awaitApproval, and meanwhile repeats the request every RemindEvery and
// escalates EscalateBefore the deadline, on durable timers; each is recorded
// in the status and sent through the notifier.
func (r *remediation) awaitWithReminders(ctx workflow.Context) (bool, error) {
	decided := func() bool { return r.verdict != verdictPending }
	if r.version >= versionSafety {
		// A regeneration, a supersession or a long history end the wait
		// too; the gate tells them apart.
		decided = func() bool { return r.verdict != verdictPending || r.interrupted() || r.wantsContinueAsNew(ctx) }
	}
	k := r.st.Risk
	start := workflow.Now(ctx)
	if r.version >= versionSafety {
		if r.reminderStart.IsZero() {
			r.reminderStart = start
		}
		start = r.reminderStart
	}
	for {
		now := workflow.Now(ctx)
		if decided() {
			return true, nil
		}
		if !now.Before(r.st.Deadline) {
			return false, nil
		}
		next := r.st.Deadline
		var reminderAt, escalateAt time.Time
		if k != nil && k.RemindEvery > 0 && len(r.st.Reminders) < maxReminders {
			reminderAt = start.Add(time.Duration(len(r.st.Reminders)+1) * k.RemindEvery)
			if reminderAt.Before(next) {
				next = reminderAt
			}
		}
		if k != nil && k.EscalateTo != "" && r.st.Escalation == nil {
			escalateAt = r.st.Deadline.Add(-k.EscalateBefore)
			// A window shorter than escalate_before escalates half-way,
			// not the moment the request is made.
			if half := start.Add(r.st.Deadline.Sub(start) / 2); escalateAt.Before(half) {
				escalateAt = half
			}
			if escalateAt.Before(next) {
				next = escalateAt
			}
		}
		if wait := next.Sub(now); wait > 0 {
			if _, err := workflow.AwaitWithTimeout(ctx, wait, decided); err != nil {
				return false, err
			}
			continue
		}
		now = workflow.Now(ctx)
		if !escalateAt.IsZero() && !now.Before(escalateAt) {
			r.st.Escalation = &Escalation{To: k.EscalateTo, At: now}
			r.logger.Info("approval escalated", "to", k.EscalateTo)
			r.auditNow(ctx, auditEvent{Kind: "escalated", Detail: "escalated to " + k.EscalateTo})
		} else if !reminderAt.IsZero() && !now.Before(reminderAt) {
			r.st.Reminders = append(r.st.Reminders, now)
			r.logger.Info("approval reminder", "n", len(r.st.Reminders))
			r.auditNow(ctx, auditEvent{Kind: "reminder", Detail: fmt.Sprintf("reminder %d", len(r.st.Reminders))})
		}
		r.st.UpdatedAt = now
		r.notifier.poke()
	}
}

// announcements counts the reminders and escalations so far.
func (r *remediation) announcements() int {
	n := len(r.st.Reminders)
	if r.st.Escalation != nil {
		n++
	}
	return n
}

// announcement is the text of what is due since the last announcement
// (sent counts the reminders and escalation already announced): the latest
// reminder, the escalation, or both when they fell due together.
func (r *remediation) announcement(sent int) string {
	approvals := 0
	for _, v := range r.st.Votes {
		if v.Approved {
			approvals++
		}
	}
	what := fmt.Sprintf("remediation %s of %s awaits approval (%d of %d), deadline %s UTC", r.in.ID, r.in.Repo, approvals,
		r.st.RequiredApprovals, r.st.Deadline.UTC().Format("2006-01-02 15:04"))
	var parts []string
	newReminders := r.announcements() - sent
	if e := r.st.Escalation; e != nil && !r.escalationAnnounced(sent) {
		parts = append(parts, "Escalated to "+e.To)
		newReminders--
	}
	if newReminders > 0 && len(r.st.Reminders) > 0 {
		parts = append(parts, fmt.Sprintf("Reminder %d", len(r.st.Reminders)))
	}
	return strings.Join(parts, ", ") + ": " + what
}

// escalationAnnounced: the escalation is among the first sent
// announcements, in time order (reminders before it count first).
func (r *remediation) escalationAnnounced(sent int) bool {
	e := r.st.Escalation
	if e == nil {
		return false
	}
	before := 0
	for _, t := range r.st.Reminders {
		if t.Before(e.At) {
			before++
		}
	}
	return sent > before
}

// policyOf is what OpenPR must enforce of the policy: nothing for runs
// before version 4 (their change message and checks stay as they were).
func (r *remediation) policyOf() Risk {
	if r.version < versionPolicy || r.st.Risk == nil {
		return Risk{}
	}
	return *r.st.Risk
}
