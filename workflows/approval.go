package workflows

import (
	"errors"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"remediator/activities"
	"remediator/internal/vote"
)

// maxTextLen bounds comments and reasons kept in history.
const maxTextLen = 2000

// maxIgnoredSignals bounds the record of rejected signals.
const maxIgnoredSignals = 50

// setup registers the status query, the approve/reject Updates with their
// validators, and the operator approval signal.
func (r *remediation) setup(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) {
		return r.st, nil
	}); err != nil {
		return err
	}
	for _, u := range []struct {
		name    string
		approve bool
	}{{UpdateApprove, true}, {UpdateReject, false}} {
		approve := u.approve
		err := workflow.SetUpdateHandlerWithOptions(ctx, u.name,
			func(ctx workflow.Context, req ApprovalRequest) (Status, error) {
				channel := ChannelAPI
				if req.Channel == ChannelSlack || req.Channel == ChannelDragon || req.Channel == ChannelCLI || req.Channel == ChannelWeb {
					channel = req.Channel
				}
				return r.vote(ctx, req, approve, channel), nil
			},
			workflow.UpdateHandlerOptions{
				Validator: func(ctx workflow.Context, req ApprovalRequest) error {
					return r.validateVote(req, approve, workflow.Now(ctx), false)
				},
			})
		if err != nil {
			return err
		}
	}
	// await_proposal answers once the fix and its decision exist (or the run
	// ended): POST /api/generate starts a remediation with it.
	// Once the proposal exists the validator refuses (before history), so
	// repeated requests cannot fill the run's history or its Update budget:
	// the caller reads the status instead.
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateAwaitProposal, func(ctx workflow.Context) (Status, error) {
		if err := workflow.Await(ctx, r.proposalReady); err != nil {
			return Status{}, err
		}
		return r.answer(r.st.Phase), nil
	}, workflow.UpdateHandlerOptions{Validator: func(workflow.Context) error {
		if r.proposalReady() {
			return temporal.NewApplicationError("the proposal is ready: read the status", ErrTypeProposalReady)
		}
		return nil
	}}); err != nil {
		return err
	}
	r.signals = workflow.GetSignalChannel(ctx, SignalApproval)
	attached := workflow.GetSignalChannel(ctx, SignalEventAttached)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var ev AttachedEvent
			if more := attached.Receive(ctx, &ev); !more {
				return
			}
			r.st.Attached++
			if ev.At.After(r.st.LastAttachedAt) {
				r.st.LastAttachedAt = ev.At
			}
		}
	})
	resolved := workflow.GetSignalChannel(ctx, SignalAlertResolved)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var res AlertResolution
			if more := resolved.Receive(ctx, &res); !more {
				return
			}
			if r.st.AlertResolvedAt.IsZero() {
				r.st.AlertResolvedAt = res.At
				r.logger.Info("the alert resolved", "fingerprint", res.Fingerprint)
			}
		}
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var req ApprovalRequest
			if more := r.signals.Receive(ctx, &req); !more {
				return
			}
			r.handleSignal(ctx, req)
		}
	})
	return nil
}

// awaitApproval blocks until a verdict or the deadline. It returns false when
// the deadline passed first; an error only when the workflow was cancelled.
func (r *remediation) awaitApproval(ctx workflow.Context) (bool, error) {
	wait := r.st.Deadline.Sub(workflow.Now(ctx))
	if wait <= 0 {
		return r.verdict != verdictPending, nil
	}
	return workflow.AwaitWithTimeout(ctx, wait, func() bool { return r.verdict != verdictPending })
}

// validateVote rejects, before anything reaches history, every vote that must
// not count. It must not change state.
//
// trusted is true only for the verdict of the workflow's own Dragon watch,
// which carries no signature: it comes from an activity of this run (OpenPR
// confirms it with Dragon again). Updates and signals are never trusted.
func (r *remediation) validateVote(req ApprovalRequest, approve bool, now time.Time, trusted bool) error {
	if r.st.Phase != PhaseAwaitingApproval || r.verdict != verdictPending || r.interrupted() {
		return voteError(ErrTypeGateClosed, "the remediation is not awaiting approval (phase "+string(r.st.Phase)+")")
	}
	if !trusted {
		if err := r.checkSignature(req, approve, now); err != nil {
			return err
		}
	}
	if strings.TrimSpace(req.Actor) == "" {
		return voteError(ErrTypeForbidden, "the vote carries no identity")
	}
	if !slices.Contains(req.Roles, RoleApprover) && !slices.Contains(req.Roles, RoleAdmin) {
		return voteError(ErrTypeForbidden, "voting needs the approver role")
	}
	if r.version >= versionPolicy && approve && !r.mayApprove(req) {
		return voteError(ErrTypeForbidden, "the risk policy lets only "+r.approversText()+" approve this fix (risk "+r.st.Risk.Level+", rule "+r.st.Risk.Rule+")")
	}
	if approve && activities.SameActor(req.Actor, r.in.Requester) {
		return voteError(ErrTypeSelfApproval, "the requester cannot approve their own remediation")
	}
	if approve && r.isAuthor(req.Actor) {
		return voteError(ErrTypeSelfApproval, req.Actor+" asked for this fix and cannot approve it")
	}
	for _, v := range r.st.Votes {
		if v.Actor == req.Actor || (r.version >= versionPolicy && activities.SameActor(v.Actor, req.Actor)) {
			return voteError(ErrTypeDuplicate, req.Actor+" has already voted")
		}
	}
	if req.DecisionID == "" || req.DiffDigest == "" {
		return voteError(ErrTypeInvalidVote, "decision_id and diff_digest are required: they bind the vote to what was reviewed")
	}
	if req.DecisionID != r.st.DecisionID {
		return voteError(ErrTypeStaleVote, "decision_id does not match this remediation's decision")
	}
	if req.DiffDigest != r.fix.Digest {
		return voteError(ErrTypeStaleVote, "diff_digest does not match the proposed fix")
	}
	if r.version >= versionSafety && !trusted && req.BaseSHA == "" {
		return voteError(ErrTypeInvalidVote, "base_sha is required: it binds the vote to the base commit you reviewed the diff against")
	}
	if r.version >= versionSafety && req.BaseSHA != r.fix.BaseSHA && !(trusted && req.BaseSHA == "") {
		return voteError(ErrTypeStaleVote, "base_sha does not match the base commit of the proposed fix (it was regenerated)")
	}
	if !approve && strings.TrimSpace(req.Reason) == "" {
		return voteError(ErrTypeInvalidVote, "a rejection needs a reason")
	}
	if len(req.Reason) > maxTextLen || len(req.Comment) > maxTextLen {
		return voteError(ErrTypeInvalidVote, "comment and reason are limited to 2000 bytes")
	}
	return nil
}

// checkSignature accepts only votes the API side signed, with a key from the
// worker's configuration (recorded at the gate), for this remediation, not
// long ago. Executions that reached the gate before votes were signed have
// no keys: their votes are verified by OpenPR alone.
func (r *remediation) checkSignature(req ApprovalRequest, approve bool, now time.Time) error {
	if r.keys == nil {
		return nil
	}
	if req.Signature == nil {
		return voteError(ErrTypeUnsigned, "the vote is not signed: vote through the API, the CLI or Slack")
	}
	if !slices.Contains(Channels, req.Channel) {
		return voteError(ErrTypeUnsigned, "the vote names an unknown channel")
	}
	if skew := now.Sub(req.SignedAt); skew > VoteMaxSkew || skew < -VoteMaxSkew {
		return voteError(ErrTypeUnsigned, "the vote was not signed within "+VoteMaxSkew.String()+" of its delivery")
	}
	if err := vote.Verify(r.keys, req.Record(approve, time.Time{}).Signed(r.in.ID), *req.Signature); err != nil {
		return voteError(ErrTypeUnsigned, err.Error())
	}
	return nil
}

// vote records a validated vote and settles the gate: one reject vetoes,
// RequiredApprovals approvals approve. The record keeps every signed field,
// so OpenPR can verify it again.
func (r *remediation) vote(ctx workflow.Context, req ApprovalRequest, approve bool, channel string) Status {
	rec := req.Record(approve, workflow.Now(ctx))
	if !slices.Contains(Channels, rec.Channel) {
		rec.Channel = channel
	}
	if approve && !slices.ContainsFunc(r.st.Votes, func(v activities.Vote) bool { return v.Approved }) {
		r.recordFirstApproval(ctx)
	}
	r.st.Votes = append(r.st.Votes, rec)
	r.st.UpdatedAt = workflow.Now(ctx)
	kind := "approved"
	if !approve {
		kind = "rejected"
	}
	r.auditNow(ctx, auditEvent{Kind: "vote_" + kind, Actor: req.Actor, Roles: req.Roles, Channel: rec.Channel, Digest: req.DiffDigest, Base: req.BaseSHA, Detail: rec.Text()})
	if r.caps.NotifyUpdates {
		r.notifier.poke()
	}
	r.logger.Info("vote recorded", "actor", req.Actor, "approved", approve, "channel", channel)
	if !approve {
		r.verdict = verdictRejected
		r.st.Reason = "rejected by " + req.Actor + ": " + req.Reason
		return r.answer(PhaseRejected)
	}
	approvals := 0
	for _, v := range r.st.Votes {
		if v.Approved {
			approvals++
		}
	}
	if (r.version < versionPolicy && approvals >= r.st.RequiredApprovals) || (r.version >= versionPolicy && r.quorumMet()) {
		r.verdict = verdictApproved
		return r.answer(PhaseOpeningPR)
	}
	return r.answer(r.st.Phase)
}

// answer is what an Update returns: the state its vote caused. A settling
// vote reports the phase the main loop moves to right after the handler
// returns (the phase itself, and its search attribute, change in the main
// loop, keeping the command order of existing histories). The diff is left
// out: Update results are stored in history, and the status query serves it.
func (r *remediation) answer(next Phase) Status {
	st := r.st
	st.Phase = next
	st.LogExcerpt = "" // the status query serves it
	if st.Fix != nil {
		fix := *st.Fix
		fix.Diff, fix.Patch = "", nil
		st.Fix = &fix
	}
	return st
}

// handleSignal applies the same validation as the Updates; an invalid signal
// cannot be refused (it is already in history), so it is recorded and ignored.
func (r *remediation) handleSignal(ctx workflow.Context, req ApprovalRequest) {
	if err := r.validateVote(req, req.Approve, workflow.Now(ctx), false); err != nil {
		r.ignoreSignal(ctx, req, voteMessage(err))
		return
	}
	r.vote(ctx, req, req.Approve, ChannelSignal)
}

func (r *remediation) ignoreSignal(ctx workflow.Context, req ApprovalRequest, reason string) {
	r.logger.Warn("approval signal ignored", "actor", req.Actor, "reason", reason)
	r.auditNow(ctx, auditEvent{Kind: "refused", Actor: req.Actor, Roles: req.Roles, Channel: ChannelSignal, Digest: req.DiffDigest, Base: req.BaseSHA, Detail: reason})
	if len(r.st.IgnoredSignals) >= maxIgnoredSignals {
		r.st.IgnoredSignals = r.st.IgnoredSignals[1:]
	}
	r.st.IgnoredSignals = append(r.st.IgnoredSignals, IgnoredSignal{Actor: req.Actor, Reason: reason, At: workflow.Now(ctx)})
}

// drainSignals records signals still buffered when the run ends, so none is
// silently lost.
func (r *remediation) drainSignals(ctx workflow.Context) {
	for {
		var req ApprovalRequest
		if ok := r.signals.ReceiveAsync(&req); !ok {
			return
		}
		r.ignoreSignal(ctx, req, "the remediation already ended ("+string(r.st.Phase)+")")
	}
}

// voteMessage is a refusal's message without its error type.
func voteMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}

func voteError(errType, msg string) error {
	return temporal.NewApplicationError(msg, errType)
}
