package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"remediator/activities"
	"remediator/internal/policy"
	"remediator/internal/vote"
)

// acts is only used for method references: the worker registers the real
// *activities.Activities, and the method names become activity type names.
var acts *activities.Activities

// PhaseKey is the typed search attribute holding the current phase.
var PhaseKey = temporal.NewSearchAttributeKeyKeyword(SearchAttrPhase)

// Remediation is one incident's path from failure to an approved, opened
// change: generate a fix, create the governance decision, wait durably for
// approval by someone other than the requester (or expire), open the change
// exactly once, and write the outcome back. Business outcomes (rejected,
// expired, failed) are results, not errors; only cancellation returns one.
func Remediation(ctx workflow.Context, in RemediationInput) (Status, error) {
	version := workflow.GetVersion(ctx, changeTrustBoundaries, workflow.DefaultVersion, versionSafety)
	r := newRemediation(ctx, in, version)
	if in.Carry == nil {
		r.countStarted(ctx)
	}
	if err := r.setup(ctx); err != nil {
		return r.st, err
	}
	if version >= versionSafety {
		if err := r.setupSafety(ctx); err != nil {
			return r.st, err
		}
		if in.Carry != nil {
			return r.resume(ctx)
		}
		r.startAuditor(ctx)
	}
	return r.run(ctx)
}

// changeTrustBoundaries names the change that made votes signed, the
// deadline absolute and the diff bytes. Executions without its marker (started
// by older workers) keep the old command sequence; see "Changing the
// workflow" in the README.
// Version 2 of the same change adds the governance loop: a Setup local
// activity at the start (keys and integrations), the incident record, the
// Slack message and the watch of Dragon's own decision. Reusing the change
// id keeps it to one marker per run.
// Version 4 takes the level and who must approve from the risk policy the
// worker recorded in Setup (quorum, roles, protected paths; a fix the
// policy refuses ends Failed before any decision).
// Version 5 binds votes to the base commit, regenerates the fix when the
// base moved (or on request), supersedes, continues as new during long
// waits and keeps the audit log; see workflows/safety.go.
// Version 3 creates the decision on a disconnected context, so a cancel that
// arrives while CreateDecision runs records the cancellation on the decision
// instead of leaving it pending forever, and writes no outcome when no
// decision was created.
const (
	changeTrustBoundaries = "trust-boundaries"
	versionSignedVotes    = workflow.Version(1)
	versionGovernance     = workflow.Version(2)
	versionTopology       = workflow.Version(3)
	versionPolicy         = workflow.Version(4)
	versionSafety         = workflow.Version(5)
)

type verdict int

const (
	verdictPending verdict = iota
	verdictApproved
	verdictRejected
)

// remediation is the private per-run state; handlers and the main loop share
// it, which is safe because workflow coroutines never run concurrently.
type remediation struct {
	in      RemediationInput
	version workflow.Version
	st      Status
	fix     activities.Fix
	patch   []byte // the exact bytes approvers review and OpenPR applies
	verdict verdict
	logger  log.Logger
	signals workflow.ReceiveChannel
	// keys verify vote signatures; nil for executions that reached the gate
	// before votes were signed (OpenPR still verifies theirs).
	keys []vote.PublicKey
	// caps are the worker's integrations, recorded at the start (version 2).
	caps activities.Capabilities
	// notifier and incident keep the Slack message and the incident in step.
	notifier, incident sidecar
	// createdIncident: the incident is this remediation's own (an incident
	// id given with the request belongs to someone else and is not written).
	createdIncident bool
	// risk is the assessment the decision shows.
	risk policy.Assessment
	// Version 5: the fix's number and the run its decisions are keyed on,
	// a regeneration asked for, a supersession received, the audit log,
	// and when the current wait began.
	generation    int
	decisionRun   string
	regen         *regenRequest
	supersession  *Supersession
	auditLog      AuditLog
	auditor       sidecar
	reminderStart time.Time
}

func newRemediation(ctx workflow.Context, in RemediationInput, version workflow.Version) *remediation {
	if in.ID == "" || version >= versionSignedVotes {
		// The remediation id is the workflow ID: votes are signed for it,
		// so an input naming another remediation could borrow its votes.
		in.ID = workflow.GetInfo(ctx).WorkflowExecution.ID
	}
	if in.ApprovalTimeout <= 0 {
		in.ApprovalTimeout = DefaultApprovalTimeout
	}
	if in.RequiredApprovals < 1 {
		in.RequiredApprovals = 1
	}
	now := workflow.Now(ctx)
	deadline := now.Add(in.ApprovalTimeout)
	if version >= versionSignedVotes && !in.Deadline.IsZero() {
		deadline = in.Deadline.UTC()
	}
	excerpt := ""
	if version >= versionSafety {
		excerpt = in.LogExcerpt
	}
	return &remediation{
		in:      in,
		version: version,
		st: Status{
			ID:                in.ID,
			Phase:             PhaseReceived,
			Repo:              in.Repo,
			Ref:               in.Ref,
			SHA:               in.SHA,
			FailureSummary:    in.FailureSummary,
			LogExcerpt:        excerpt,
			IncidentID:        in.IncidentID,
			Requester:         in.Requester,
			CorrelationID:     in.CorrelationID,
			RequiredApprovals: in.RequiredApprovals,
			Votes:             []activities.Vote{},
			CreatedAt:         now,
			UpdatedAt:         now,
			Deadline:          deadline,
		},
		logger: log.With(workflow.GetLogger(ctx), "remediation_id", in.ID, "correlation_id", in.CorrelationID),
	}
}

func (r *remediation) run(ctx workflow.Context) (Status, error) {
	if r.version >= versionGovernance {
		// The worker's keys and integrations, recorded in history: replay
		// verifies votes with exactly the keys the live run used.
		setupCtx := workflow.WithLocalActivityOptions(ctx, voteKeysOptions)
		if err := workflow.ExecuteLocalActivity(setupCtx, acts.Setup).Get(ctx, &r.caps); err != nil {
			return r.endOnError(ctx, "reading the worker's configuration failed", err)
		}
		r.keys = r.caps.Keys
		if !r.startSigned(ctx) {
			// Started straight on Temporal: it may generate a fix and wait,
			// but it announces itself nowhere and Dragon cannot approve it.
			r.caps.Incidents, r.caps.Notify, r.caps.NotifyUpdates, r.caps.WatchDecisions = false, false, false, false
			r.warn("not started through the API: no incident, Slack message or Dragon watch")
		}
	}
	if r.version >= versionSafety {
		// Recorded only (stored with the next batch): no command.
		r.st.Generation = 1
		r.addAuthor(r.in.Requester)
		r.audit(ctx, auditEvent{Kind: "started", Actor: r.in.Requester, Channel: ChannelAPI})
	}
	r.setPhase(ctx, PhaseGeneratingFix, "")
	if r.caps.Incidents && r.st.IncidentID == "" {
		r.createIncident(ctx)
	}
	r.generation = 1
	r.decisionRun = workflow.GetInfo(ctx).WorkflowExecution.RunID
	if st, err, ended := r.propose(ctx, r.in.Ref, r.in.SHA); ended {
		return st, err
	}
	if st, err, ended := r.createDecision(ctx); ended {
		return st, err
	}
	if r.version == versionSignedVotes {
		// The worker's own keys, recorded in history: replay verifies votes
		// with exactly the keys the live run used.
		keysCtx := workflow.WithLocalActivityOptions(ctx, voteKeysOptions)
		if err := workflow.ExecuteLocalActivity(keysCtx, acts.VerificationKeys).Get(ctx, &r.keys); err != nil {
			return r.endOnError(ctx, "reading the vote verification keys failed", err)
		}
	}
	r.startSidecars(ctx)
	return r.gate(ctx)
}

// startSidecars starts keeping the incident and the Slack message in step.
func (r *remediation) startSidecars(ctx workflow.Context) {
	if r.createdIncident {
		r.startSidecar(ctx, &r.incident, r.updateIncident)
	}
	if r.caps.Notify {
		r.startSidecar(ctx, &r.notifier, r.sendNotice)
	}
}

// propose generates the fix at ref/sha and applies the risk policy; ended
// when the run ended instead (no fix, refused, deadline passed).
func (r *remediation) propose(ctx workflow.Context, ref, sha string) (Status, error, bool) {
	fixCtx := workflow.WithActivityOptions(ctx, generateFixOptions)
	var fix activities.Fix
	err := workflow.ExecuteActivity(fixCtx, acts.GenerateFix, activities.GenerateFixInput{
		RemediationID:  r.in.ID,
		Repo:           r.in.Repo,
		Ref:            ref,
		SHA:            sha,
		FailureSummary: r.in.FailureSummary,
		LogExcerpt:     r.in.LogExcerpt,
		CIRun:          r.in.CIRun,
	}).Get(ctx, &fix)
	if err != nil {
		st, err := r.endOnError(ctx, "generating the fix failed", err)
		return st, err, true
	}
	if r.superseded(ctx) {
		st, err := r.endSuperseded(ctx)
		return st, err, true
	}
	r.fix = fix
	r.patch = r.fix.Patch
	if len(r.patch) == 0 {
		r.patch = []byte(r.fix.Diff) // a result recorded before Patch existed
	}
	r.st.SHA = r.fix.BaseSHA
	r.st.Fix = &FixSummary{
		Recipe: r.fix.Recipe, Summary: r.fix.Summary, Files: r.fix.Files, Digest: r.fix.Digest,
		BaseSHA: r.fix.BaseSHA, BaseBranch: r.fix.BaseBranch, Validated: r.fix.Validated,
		Source: r.fix.Source, Validation: r.fix.Validation, Attempts: r.fix.Attempts,
	}
	riskIn := policy.Input{
		FailureSummary: r.in.FailureSummary, LogExcerpt: r.in.LogExcerpt, Files: r.fix.Files,
		Source: r.fix.Source, DiffBytes: len(r.patch),
	}
	r.risk = policy.Assess(riskIn)
	r.st.Risk = &Risk{Level: r.risk.Level, Score: r.risk.Score, Gate: r.risk.Gate, Reason: r.risk.Reason}
	if r.version >= versionPolicy {
		if refused := r.applyPolicy(riskIn, &r.risk, workflow.Now(ctx)); refused != "" {
			st, err := r.end(ctx, PhaseFailed, refused)
			return st, err, true
		}
	}
	r.audit(ctx, auditEvent{Kind: "fix_proposed", Detail: r.fix.Summary + " (" + r.fix.Source + " " + r.fix.Recipe + "; risk " + r.st.Risk.Level + ", rule " + r.st.Risk.Rule + ")"})
	if r.version >= versionSignedVotes {
		r.st.Fix.Patch = r.patch
		if !workflow.Now(ctx).Before(r.st.Deadline) {
			st, err := r.end(ctx, PhaseExpired, "the approval deadline "+r.st.Deadline.UTC().Format(time.RFC3339)+" passed before the fix was ready")
			return st, err, true
		}
	} else {
		r.st.Fix.Diff = r.fix.Diff
	}
	return Status{}, nil, false
}

// createDecision creates the governance decision for the current fix.
func (r *remediation) createDecision(ctx workflow.Context) (Status, error, bool) {
	var dec activities.Decision
	ledgerCtx := workflow.WithActivityOptions(ctx, ledgerOptions)
	runID := ""
	if r.version >= versionSignedVotes {
		runID = r.decisionRun
		if r.generation > 1 {
			// A regenerated fix is another change: it gets a decision
			// (and votes) of its own.
			runID += fmt.Sprintf("#%d", r.generation)
		}
	}
	decisionCtx := ctx
	stopCreate := func() {}
	if r.version >= versionTopology {
		// A cancel must not abandon a create that may already have
		// written the decision: wait for its answer (bounded by
		// cancelCreateGrace), then record the cancellation on it.
		decisionCtx, stopCreate = workflow.NewDisconnectedContext(ctx)
		ledgerCtx = workflow.WithActivityOptions(decisionCtx, ledgerOptions)
	}
	created := workflow.ExecuteActivity(ledgerCtx, acts.CreateDecision, activities.CreateDecisionInput{
		RemediationID: r.in.ID,
		RunID:         runID,
		Repo:          r.in.Repo,
		Requester:     r.in.Requester,
		IncidentID:    r.in.IncidentID,
		CorrelationID: r.in.CorrelationID,
		Summary:       r.fix.Summary,
		Recipe:        r.fix.Recipe,
		Files:         r.fix.Files,
		DiffDigest:    r.fix.Digest,
		BaseSHA:       r.fix.BaseSHA,
		RiskLevel:     r.risk.Level,
		RiskScore:     r.risk.Score,
		RiskReason:    r.risk.Reason,
		FixSource:     r.fix.Source,
		Validation:    r.fix.Validation,
		Ref:           r.in.Ref,
	})
	if r.version >= versionTopology {
		r.awaitCreateOrGrace(ctx, decisionCtx, created, stopCreate)
	}
	if err := created.Get(decisionCtx, &dec); err != nil {
		st, err := r.endOnError(ctx, "creating the decision failed", err)
		return st, err, true
	}
	r.st.DecisionID = dec.ID
	if r.version >= versionTopology && ctx.Err() != nil {
		st, err := r.end(ctx, PhaseCancelled, "cancelled while the decision was being created")
		return st, err, true
	}
	r.audit(ctx, auditEvent{Kind: "decision_created"})
	return Status{}, nil, false
}

// gate waits for the verdict and acts on it: the change is opened for an
// approved fix; a regeneration (asked for, or because the base moved) goes
// round again with a new fix and decision.
func (r *remediation) gate(ctx workflow.Context) (Status, error) {
	for {
		r.setPhase(ctx, PhaseAwaitingApproval, "")
		r.auditor.poke() // the gate is open: store what led here
		stopWatch := r.watchDecision(ctx)
		await := r.awaitApproval
		if r.version >= versionPolicy {
			await = r.awaitWithReminders
		}
		decided, err := await(ctx)
		stopWatch()
		if err != nil {
			return r.endOnError(ctx, "cancelled while awaiting approval", err)
		}
		if r.version >= versionSafety && r.verdict == verdictPending {
			switch {
			case r.superseded(ctx):
				return r.endSuperseded(ctx)
			case r.regen != nil:
				req := *r.regen
				if st, err, ended := r.regenerate(ctx, req.by, req.reason, ""); ended {
					return st, err
				}
				continue
			case r.wantsContinueAsNew(ctx):
				return r.continueAsNew(ctx)
			}
		}
		switch {
		case !decided:
			return r.end(ctx, PhaseExpired, fmt.Sprintf("no decision before the deadline %s", r.st.Deadline.UTC().Format(time.RFC3339)))
		case r.verdict == verdictRejected:
			return r.end(ctx, PhaseRejected, r.st.Reason)
		}
		st, err, again := r.openChange(ctx)
		if again {
			continue
		}
		return st, err
	}
}

// openChange opens the approved change, exactly once. again: the base
// moved under the approved diff (version 5), the fix was regenerated and
// approvers are to be asked again.
func (r *remediation) openChange(ctx workflow.Context) (st Status, err error, again bool) {
	r.setPhase(ctx, PhaseOpeningPR, "")
	// Once approved, the change is opened even if a cancel arrives meanwhile:
	// abandoning a half-run OpenPR would leave a branch that the record calls
	// Cancelled. The run then ends Completed, with the truth recorded.
	openCtx, _ := workflow.NewDisconnectedContext(ctx)
	pol := r.policyOf()
	in := activities.OpenPRInput{
		RemediationID:     r.in.ID,
		Repo:              r.fix.Repo,
		Branch:            BranchFor(r.in.ID),
		BaseBranch:        r.fix.BaseBranch,
		BaseSHA:           r.fix.BaseSHA,
		Patch:             r.patch,
		DiffDigest:        r.fix.Digest,
		DecisionID:        r.st.DecisionID,
		Requester:         r.in.Requester,
		RequiredApprovals: r.st.RequiredApprovals,
		ApproverRoles:     pol.ApproverRoles,
		AdminRequired:     pol.AdminRequired,
		RiskLevel:         pol.Level,
		RiskRule:          pol.Rule,
		Votes:             r.st.Votes,
		FailureSummary:    r.in.FailureSummary,
		FixSummary:        r.fix.Summary,
		Recipe:            r.fix.Recipe,
		IncidentID:        r.in.IncidentID,
		CommitTime:        r.st.UpdatedAt,
	}
	if r.version >= versionSafety {
		in.ApproverMembers, in.Authors, in.BaseBound = pol.ApproverMembers, r.st.Authors, true
		if len(pol.ApproverRoles) == 0 && len(pol.ApproverMembers) > 0 {
			in.ApproverRoles = []string{noRole}
		}
	}
	var pr activities.PullRequest
	prCtx := workflow.WithActivityOptions(openCtx, openPROptions)
	err = workflow.ExecuteActivity(prCtx, acts.OpenPR, in).Get(openCtx, &pr)
	if head, moved := baseMoved(err); moved && r.version >= versionSafety && ctx.Err() == nil {
		st, err, ended := r.regenerate(ctx, "remediator", "the base branch "+r.fix.BaseBranch+" moved to "+head+" and the approved diff no longer applies", head)
		return st, err, !ended
	}
	if err != nil {
		r.countChangeFailure(ctx)
		st, err := r.end(ctx, PhaseFailed, "opening the change request failed: "+errMessage(err))
		return st, err, false
	}
	r.st.PR = &pr
	r.audit(ctx, auditEvent{Kind: "change_opened", Detail: pr.URL})
	if ctx.Err() != nil {
		st, err := r.end(ctx, PhaseCompleted, "cancel requested after approval; the change was already being opened")
		return st, err, false
	}
	st, err = r.end(ctx, PhaseCompleted, "")
	return st, err, false
}

// baseMoved reports an OpenPR refused because the base moved under the
// approved diff, with the new head.
func baseMoved(err error) (string, bool) {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != activities.ErrTypeBaseMoved {
		return "", false
	}
	var bc activities.BaseCheck
	if appErr.HasDetails() {
		_ = appErr.Details(&bc)
	}
	return bc.Head, true
}

// cancelCreateGrace bounds how long a cancelled remediation waits for a
// CreateDecision that is still running (a ledger or Dragon outage retries
// for a day): after it the create is abandoned and the run ends Cancelled.
const cancelCreateGrace = 2 * time.Minute

// awaitCreateOrGrace returns when the create finished or, once ctx is
// cancelled, when it finished within cancelCreateGrace; otherwise it cancels
// the create (stop) and returns.
func (r *remediation) awaitCreateOrGrace(ctx, decisionCtx workflow.Context, created workflow.Future, stop func()) {
	sel := workflow.NewSelector(decisionCtx)
	sel.AddFuture(created, func(workflow.Future) {})
	sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
	sel.Select(decisionCtx)
	if created.IsReady() {
		return
	}
	timerCtx, cancelTimer := workflow.WithCancel(decisionCtx)
	defer cancelTimer()
	timer := workflow.NewTimer(timerCtx, cancelCreateGrace)
	grace := workflow.NewSelector(decisionCtx)
	grace.AddFuture(created, func(workflow.Future) {})
	grace.AddFuture(timer, func(workflow.Future) {
		r.logger.Warn("cancelled while the decision was being created; giving up on it", "after", cancelCreateGrace)
		stop()
	})
	grace.Select(decisionCtx)
}

// endOnError ends as Cancelled when the workflow was cancelled and as Failed
// otherwise, keeping the activity's own message as the reason.
func (r *remediation) endOnError(ctx workflow.Context, what string, err error) (Status, error) {
	if ctx.Err() != nil || temporal.IsCanceledError(err) {
		return r.end(ctx, PhaseCancelled, "cancelled")
	}
	return r.end(ctx, PhaseFailed, what+": "+errMessage(err))
}

// errMessage keeps an activity failure's type and message for the reason,
// without its chain of causes: activities put only safe text in the message
// (no file contents, command output or filesystem probes) and the raw cause
// stays in the worker log and the failure's cause.
func errMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		if appErr.Type() != "" {
			return appErr.Type() + ": " + appErr.Message()
		}
		return appErr.Message()
	}
	var timeoutErr *temporal.TimeoutError
	if errors.As(err, &timeoutErr) {
		return "timed out (" + timeoutErr.TimeoutType().String() + ")"
	}
	return err.Error()
}

// end records the terminal phase everywhere and returns the final status.
// The outcome is written from a disconnected context, so cancellation
// cannot skip it.
func (r *remediation) end(ctx workflow.Context, phase Phase, reason string) (Status, error) {
	r.setPhase(ctx, phase, reason)
	r.auditor.poke()
	cancelled := phase == PhaseCancelled
	// Disconnected: a cancel arriving now must not lose the ledger's record.
	recCtx, _ := workflow.NewDisconnectedContext(ctx)
	// The incident and the Slack message learn the outcome alongside the
	// decision; none of them holds the end state back (it is set above).
	r.incident.poke()
	r.notifier.poke()
	if r.createdIncident && !r.incident.running && r.incident.wanted == 0 {
		// It ended before the decision (no fix, expired, cancelled): the
		// incident still learns how.
		r.startSidecar(ctx, &r.incident, r.updateIncident)
	}
	outcomeOpts := ledgerOptions
	if r.version >= versionGovernance {
		outcomeOpts = writebackOptions
	}
	var release workflow.Future
	if r.version >= versionSafety && r.in.Admitted {
		// The repository's coordinator frees the slot; sent alongside the
		// outcome (one task), awaited below.
		release = sendRelease(recCtx, r.in.Repo, r.in.ID)
	}
	var err error
	if r.version < versionTopology || r.st.DecisionID != "" {
		err = workflow.ExecuteActivity(workflow.WithActivityOptions(recCtx, outcomeOpts), acts.RecordOutcome,
			activities.RecordOutcomeInput{
				RemediationID: r.in.ID,
				DecisionID:    r.st.DecisionID,
				Phase:         string(phase),
				Reason:        reason,
				Votes:         r.st.Votes,
				PR:            r.st.PR,
			}).Get(recCtx, nil)
	}
	if err != nil {
		r.logger.Error("recording the outcome failed", "error", err)
		r.warn("writing the outcome to the decision failed: " + errMessage(err))
	}
	if r.version >= versionSafety {
		// Signals still buffered are recorded (and audited) before the
		// audit's last store.
		r.drainSignals(ctx)
	}
	if err := workflow.Await(recCtx, func() bool { return r.incident.settled() && r.notifier.settled() && r.auditor.settled() }); err != nil {
		r.logger.Warn("waiting for the write-backs interrupted", "error", err)
	}
	r.drainSignals(ctx)
	if release != nil {
		awaitRelease(ctx, recCtx, release)
	}
	if err := workflow.Await(recCtx, func() bool { return workflow.AllHandlersFinished(recCtx) }); err != nil {
		r.logger.Warn("waiting for handlers interrupted", "error", err)
	}
	r.logger.Info("remediation ended", "phase", phase, "reason", reason)
	r.countEnded(ctx, phase)
	if cancelled {
		return r.st, temporal.NewCanceledError(reason)
	}
	return r.st, nil
}

// setPhase changes the phase and upserts the search attribute only when the
// value really changes: every upsert is a visibility write.
func (r *remediation) setPhase(ctx workflow.Context, phase Phase, reason string) {
	r.st.UpdatedAt = workflow.Now(ctx)
	if reason != "" {
		r.st.Reason = reason
	}
	if r.st.Phase == phase {
		return
	}
	r.st.Phase = phase
	if err := workflow.UpsertTypedSearchAttributes(ctx, PhaseKey.ValueSet(string(phase))); err != nil {
		r.logger.Warn("upserting the phase search attribute failed", "error", err)
	}
	r.audit(ctx, auditEvent{Kind: "phase", Detail: reason})
	r.logger.Info("phase changed", "phase", phase)
}
