package workflows

import (
	"slices"
	"strings"

	"remediator/internal/policy"
)

// applyPolicy (version 4) evaluates the worker's risk policy, recorded in
// Setup, for the fix: the level and the rule that set it, the quorum, who
// may approve, and the protected paths. It returns a reason when the policy
// refuses the fix (a protected path with mode refuse); risk is updated for
// the decision.
func (r *remediation) applyPolicy(in policy.Input, risk *policy.Assessment) string {
	// Setup records the worker's policy in every version-4 run; without
	// one (not expected) the heuristics decide and any approver may approve.
	pol := policy.Policy{Name: "none recorded", Default: "heuristics"}
	if r.caps.Policy != nil {
		pol = *r.caps.Policy
	}
	res := pol.Evaluate(policy.EvalInput{Input: in, Repo: r.in.Repo})
	*risk = res.Assessment
	// The decision and the Slack message show the reason: name the rule.
	risk.Reason = res.Reason + " [policy " + pol.Name + ", rule " + res.Rule + "]"
	r.st.Risk = &Risk{
		Level: res.Level, Score: res.Score, Gate: res.Gate, Reason: res.Reason, Rule: res.Rule, Policy: pol.Name,
		ApproverRoles: res.Roles, ProtectedFiles: res.ProtectedFiles,
		AdminRequired: len(res.ProtectedFiles) > 0 && res.ProtectedMode == policy.ProtectedAdmin,
	}
	r.st.RequiredApprovals = max(r.st.RequiredApprovals, res.Approvals)
	if len(res.ProtectedFiles) > 0 && res.ProtectedMode == policy.ProtectedRefuse {
		return "refused by the risk policy (" + pol.Name + "): the fix touches protected paths: " + strings.Join(res.ProtectedFiles, ", ")
	}
	return ""
}

// approverRoles are the roles that may approve this fix.
func (r *remediation) approverRoles() []string {
	if r.st.Risk != nil && len(r.st.Risk.ApproverRoles) > 0 {
		return r.st.Risk.ApproverRoles
	}
	return []string{RoleApprover, RoleAdmin}
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

// sameActor compares identities as the four-eyes rule does: without case.
func sameActor(a, b string) bool {
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}
