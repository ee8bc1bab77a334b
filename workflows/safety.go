package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"remediator/activities"
	"remediator/internal/vote"
)

// Version 5 (change safety): votes name the base commit; a fix is
// regenerated when its base moved and no longer takes the diff, or when a
// developer asks; a newer failure supersedes; long waits continue as new;
// every step is an audit event.

// maxRegenerations bounds the fixes of one remediation: a base that keeps
// moving, or a developer asking again and again, ends it instead.
const maxRegenerations = 5

// noRole is a role nobody holds: OpenPR's roles when only named groups may
// approve (an empty list would mean "approver or admin").
const noRole = "-"

// regenRequest is a regeneration asked for through the Update.
type regenRequest struct {
	by, reason, channel string
	roles               []string
}

// addAuthor records someone who wrote or asked for the fix.
func (r *remediation) addAuthor(who string) {
	who = strings.TrimSpace(who)
	if who == "" || slices.ContainsFunc(r.st.Authors, func(a string) bool { return activities.SameActor(a, who) }) {
		return
	}
	r.st.Authors = append(r.st.Authors, who)
}

// isAuthor: who wrote or asked for the fix (version 5).
func (r *remediation) isAuthor(who string) bool {
	return r.version >= versionSafety && slices.ContainsFunc(r.st.Authors, func(a string) bool { return activities.SameActor(a, who) })
}

// interrupted: the wait must end for something other than a verdict.
func (r *remediation) interrupted() bool {
	return r.version >= versionSafety && (r.regen != nil || r.supersession != nil)
}

// superseded reports a verified supersession (version 5).
func (r *remediation) superseded(workflow.Context) bool {
	return r.version >= versionSafety && r.supersession != nil
}

// endSuperseded ends the run as Superseded: pending votes are void.
func (r *remediation) endSuperseded(ctx workflow.Context) (Status, error) {
	s := r.supersession
	r.st.SupersededBy = s.By
	r.voidVotes()
	reason := "superseded by " + s.By
	if s.SHA != "" {
		reason += " (a newer failure at " + s.SHA + ")"
	}
	if s.Reason != "" {
		reason += ": " + s.Reason
	}
	return r.end(ctx, PhaseSuperseded, reason)
}

// voidVotes moves the votes cast so far aside: they were for a fix (or a
// remediation) that no longer stands.
func (r *remediation) voidVotes() int {
	n := len(r.st.Votes)
	r.st.VoidedVotes = append(r.st.VoidedVotes, r.st.Votes...)
	r.st.Votes = []activities.Vote{}
	r.verdict = verdictPending
	return n
}

// regenerate replaces the fix: the current decision is closed as replaced,
// votes are void, a new fix is made on the head of the base branch (or at
// sha) with a decision of its own, and approvers are asked again.
func (r *remediation) regenerate(ctx workflow.Context, by, reason, sha string) (Status, error, bool) {
	r.regen = nil
	if len(r.st.Regenerations) >= maxRegenerations {
		st, err := r.end(ctx, PhaseFailed, fmt.Sprintf("the fix was regenerated %d times (%s); giving up", maxRegenerations, reason))
		return st, err, true
	}
	now := workflow.Now(ctx)
	reg := Regeneration{At: now, By: by, Reason: reason, FromDigest: r.fix.Digest, FromBase: r.fix.BaseSHA, FromDecision: r.st.DecisionID}
	reg.VoidedVotes = r.voidVotes()
	r.st.Regenerations = append(r.st.Regenerations, reg)
	r.audit(ctx, auditEvent{Kind: "regenerated", Actor: by, Detail: reason})
	old := r.st.DecisionID
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, writebackOptions), acts.RecordOutcome,
		activities.RecordOutcomeInput{RemediationID: r.in.ID, DecisionID: old, Phase: string(PhaseSuperseded),
			Reason: "replaced by a regenerated fix: " + reason, Votes: r.st.VoidedVotes[len(r.st.VoidedVotes)-reg.VoidedVotes:]}).Get(ctx, nil)
	if err != nil {
		r.warn("closing the replaced decision failed: " + errMessage(err))
	}
	r.setPhase(ctx, PhaseGeneratingFix, "regenerating: "+reason)
	r.generation++
	r.st.Generation = r.generation
	ref := r.fix.BaseBranch
	if ref == "" {
		ref = r.in.Ref
	}
	if ref == "" && sha == "" {
		sha = r.fix.BaseSHA
	}
	if st, err, ended := r.propose(ctx, ref, sha); ended {
		return st, err, true
	}
	if st, err, ended := r.createDecision(ctx); ended {
		return st, err, true
	}
	r.st.Reason = ""
	r.incident.poke()
	r.notifier.poke()
	return Status{}, nil, false
}

// validateRegenerate refuses, before history, a regeneration that must not
// happen: not signed by the API, not a developer, not waiting.
func (r *remediation) validateRegenerate(req ApprovalRequest, now time.Time) error {
	if r.version < versionSafety {
		return voteError(ErrTypeGateClosed, "this remediation predates regeneration")
	}
	if r.st.Phase != PhaseAwaitingApproval || r.verdict != verdictPending || r.interrupted() {
		return voteError(ErrTypeGateClosed, "the remediation is not awaiting approval (phase "+string(r.st.Phase)+")")
	}
	if req.Signature == nil {
		return voteError(ErrTypeUnsigned, "the request is not signed: ask through the API or the CLI")
	}
	if skew := now.Sub(req.SignedAt); skew > VoteMaxSkew || skew < -VoteMaxSkew {
		return voteError(ErrTypeUnsigned, "the request was not signed within "+VoteMaxSkew.String()+" of its delivery")
	}
	if err := vote.Verify(r.keys, req.signedAction(r.in.ID, ActionRegenerate), *req.Signature); err != nil {
		return voteError(ErrTypeUnsigned, err.Error())
	}
	if strings.TrimSpace(req.Actor) == "" {
		return voteError(ErrTypeForbidden, "the request carries no identity")
	}
	if !slices.ContainsFunc(req.Roles, func(role string) bool { return slices.Contains([]string{RoleDeveloper, RoleApprover, RoleAdmin}, role) }) {
		return voteError(ErrTypeForbidden, "regenerating needs the developer role")
	}
	if len(r.st.Regenerations) >= maxRegenerations {
		return voteError(ErrTypeInvalidVote, fmt.Sprintf("the fix was already regenerated %d times", maxRegenerations))
	}
	if req.DecisionID != r.st.DecisionID || req.DiffDigest != r.fix.Digest || req.BaseSHA != r.fix.BaseSHA {
		return voteError(ErrTypeStaleVote, "the request names another fix than the one proposed (decision, digest or base)")
	}
	if len(req.Reason) > maxTextLen {
		return voteError(ErrTypeInvalidVote, "the reason is limited to 2000 bytes")
	}
	return nil
}

// setupSafety registers the version-5 handlers: regenerate, the
// supersession signal and the audit query.
func (r *remediation) setupSafety(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryAudit, func() ([]AuditEvent, error) {
		return r.auditLog.Events, nil
	}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateRegenerate,
		func(ctx workflow.Context, req ApprovalRequest) (Status, error) {
			reason := strings.TrimSpace(req.Reason)
			if reason == "" {
				reason = "asked for by " + req.Actor
			}
			channel := ChannelAPI
			if slices.Contains(Channels, req.Channel) {
				channel = req.Channel
			}
			r.addAuthor(req.Actor)
			r.regen = &regenRequest{by: req.Actor, reason: reason, channel: channel, roles: req.Roles}
			r.auditNow(ctx, auditEvent{Kind: "regenerate_requested", Actor: req.Actor, Roles: req.Roles, Channel: channel, Detail: reason})
			return r.answer(PhaseGeneratingFix), nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req ApprovalRequest) error {
			return r.validateRegenerate(req, workflow.Now(ctx))
		}}); err != nil {
		return err
	}
	sup := workflow.GetSignalChannel(ctx, SignalSuperseded)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var s Supersession
			if more := sup.Receive(ctx, &s); !more {
				return
			}
			r.handleSupersession(ctx, s)
		}
	})
	return nil
}

// handleSupersession applies a verified supersession while the change is
// not being opened yet; anything else is recorded and ignored.
func (r *remediation) handleSupersession(ctx workflow.Context, s Supersession) {
	ignore := func(why string) {
		r.ignoreSignal(ctx, ApprovalRequest{Actor: "supersession by " + clip(s.By, 80)}, why)
	}
	switch {
	case s.Signature == nil || r.keys == nil:
		ignore("the supersession is not signed")
	case vote.Verify(r.keys, s.signed(r.in.ID), *s.Signature) != nil:
		ignore("the supersession's signature does not verify")
	case s.By == r.in.ID || !strings.HasPrefix(s.By, IDPrefix):
		ignore("the supersession names no other remediation")
	case r.st.Phase.Terminal() || r.st.Phase == PhaseOpeningPR || r.verdict == verdictApproved:
		ignore("too late to supersede (phase " + string(r.st.Phase) + ")")
	case r.supersession != nil:
	default:
		s.Reason, s.SHA = clip(s.Reason, maxTextLen), clip(s.SHA, 64)
		r.supersession = &s
		r.auditNow(ctx, auditEvent{Kind: "superseded", Detail: "by " + s.By + " " + s.SHA})
	}
}

// historyLimit is the default number of events after which a waiting
// remediation continues as new (the server also suggests it, near its own
// limits).
const historyLimit = 2000

// wantsContinueAsNew: the history is long enough that the wait should go on
// in a new run. Only while nothing is decided or asked for.
func (r *remediation) wantsContinueAsNew(ctx workflow.Context) bool {
	if r.version < versionSafety || r.verdict != verdictPending || r.interrupted() {
		return false
	}
	info := workflow.GetInfo(ctx)
	limit := r.caps.HistoryLimit
	if limit <= 0 {
		limit = historyLimit
	}
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= limit
}

// continueAsNew hands the whole state to a new run: signals are drained
// (an approval among them may settle the gate instead), write-backs and
// Update handlers finish first.
func (r *remediation) continueAsNew(ctx workflow.Context) (Status, error) {
	r.drainPending(ctx)
	if err := workflow.Await(ctx, func() bool {
		return r.notifier.settled() && r.incident.settled() && r.auditor.settled() && workflow.AllHandlersFinished(ctx)
	}); err != nil {
		return r.endOnError(ctx, "cancelled while awaiting approval", err)
	}
	if r.verdict != verdictPending || r.interrupted() {
		// Something arrived meanwhile: act on it in this run.
		return r.gate(ctx)
	}
	r.st.Runs = max(r.st.Runs, 1) + 1
	r.auditNow(ctx, auditEvent{Kind: "continued_as_new", Detail: fmt.Sprintf("run %d", r.st.Runs)})
	if err := workflow.Await(ctx, r.auditor.settled); err != nil {
		return r.endOnError(ctx, "cancelled while awaiting approval", err)
	}
	fix := r.fix
	fix.Patch, fix.Diff = nil, "" // the status carries the patch once
	in := r.in
	in.Carry = &Carry{
		Status: r.st, Fix: fix, Caps: r.caps, CreatedIncident: r.createdIncident,
		DecisionRun: r.decisionRun, Generation: r.generation, ReminderStart: r.reminderStart, Audit: r.auditLog,
	}
	in.Deadline = r.st.Deadline
	r.logger.Info("continuing as new while awaiting approval", "history_length", workflow.GetInfo(ctx).GetCurrentHistoryLength())
	return r.st, workflow.NewContinueAsNewError(ctx, WorkflowName, in)
}

// drainPending handles the signals still buffered, as their goroutines
// would have.
func (r *remediation) drainPending(ctx workflow.Context) {
	for {
		var req ApprovalRequest
		if !r.signals.ReceiveAsync(&req) {
			break
		}
		r.handleSignal(ctx, req)
	}
}

// resume is a run that continued as new: the previous run's state, straight
// back to the gate.
func (r *remediation) resume(ctx workflow.Context) (Status, error) {
	c := r.in.Carry
	r.in.Carry = nil
	r.st = c.Status
	r.fix = c.Fix
	if r.st.Fix != nil {
		r.patch = r.st.Fix.Patch
	}
	r.fix.Patch = r.patch
	r.caps, r.keys = c.Caps, c.Caps.Keys
	r.createdIncident = c.CreatedIncident
	r.decisionRun, r.generation = c.DecisionRun, c.Generation
	r.reminderStart = c.ReminderStart
	r.auditLog = c.Audit
	if r.st.Risk != nil {
		r.risk.Level, r.risk.Score, r.risk.Gate, r.risk.Reason = r.st.Risk.Level, r.st.Risk.Score, r.st.Risk.Gate, r.st.Risk.Reason
	}
	if r.st.Votes == nil {
		r.st.Votes = []activities.Vote{}
	}
	// Votes cast in the previous run keep counting (the quorum may be 2).
	r.startSidecars(ctx)
	r.startAuditor(ctx)
	return r.gate(ctx)
}
