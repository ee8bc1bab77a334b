package workflows

import (
	"strings"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"remediator/activities"
	"remediator/internal/policy"
	"remediator/internal/vote"
)

// maxWarnings bounds the integration warnings kept in the status.
const maxWarnings = 20

// IncidentKey is the typed search attribute holding the incident id.
var IncidentKey = temporal.NewSearchAttributeKeyKeyword(SearchAttrIncident)

// warn records that an integration failed; it never changes the outcome.
func (r *remediation) warn(msg string) {
	r.logger.Warn(msg)
	if len(r.st.Warnings) >= maxWarnings {
		r.st.Warnings = r.st.Warnings[1:]
	}
	r.st.Warnings = append(r.st.Warnings, msg)
}

// createIncident opens the incident of a remediation started without one,
// with a severity from the risk of the failure as reported. It is bounded
// (incidentCreateOptions): an incident API that is down delays the fix by
// minutes at most, then the remediation goes on without an incident.
func (r *remediation) createIncident(ctx workflow.Context) {
	risk := policy.Assess(policy.Input{FailureSummary: r.in.FailureSummary, LogExcerpt: r.in.LogExcerpt})
	var id string
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, incidentCreateOptions), acts.SyncIncident,
		activities.SyncIncidentInput{Record: r.incidentRecord(policy.Severity(risk.Level), risk.Level)}).Get(ctx, &id)
	if err != nil {
		r.warn("creating the incident failed: " + errMessage(err))
		return
	}
	r.st.IncidentID, r.in.IncidentID = id, id
	r.createdIncident = true
	if err := workflow.UpsertTypedSearchAttributes(ctx, IncidentKey.ValueSet(id)); err != nil {
		r.logger.Warn("upserting the incident search attribute failed", "error", err)
	}
}

func (r *remediation) incidentRecord(severity, level string) activities.IncidentRecord {
	rec := activities.IncidentRecord{
		RemediationID: r.in.ID, Repo: r.in.Repo, Ref: r.in.Ref, SHA: r.st.SHA, FailureSummary: r.in.FailureSummary,
		CorrelationID: r.in.CorrelationID, Severity: severity, RiskLevel: level, DecisionID: r.st.DecisionID,
		Phase: string(r.st.Phase), Reason: r.st.Reason,
	}
	if r.st.PR != nil {
		rec.PRURL = r.st.PR.URL
	}
	return rec
}

// updateIncident writes the decision, the change and the outcome into the
// incident (a sidecar send).
func (r *remediation) updateIncident(ctx workflow.Context) {
	level := ""
	if r.st.Risk != nil {
		level = r.st.Risk.Level
	}
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, writebackOptions), acts.SyncIncident,
		activities.SyncIncidentInput{IncidentID: r.st.IncidentID, Record: r.incidentRecord(policy.Severity(level), level)}).Get(ctx, nil)
	if err != nil {
		r.warn("updating the incident failed: " + errMessage(err))
	}
}

// sendNotice posts the approval message, or brings it up to date (a
// sidecar send).
func (r *remediation) sendNotice(ctx workflow.Context) {
	n := r.st.Notifications
	if n == nil {
		n = &Notifications{}
		r.st.Notifications = n
	}
	announce := ""
	if r.version >= versionPolicy && n.SlackPosted && r.announcements() > n.Announced &&
		r.st.Phase == PhaseAwaitingApproval && r.verdict == verdictPending {
		announce = r.announcement(n.Announced)
	}
	if n.SlackPosted && !r.caps.NotifyUpdates && !r.st.Phase.Terminal() && announce == "" {
		return // an incoming webhook cannot update; the outcome is posted once more
	}
	notice := r.st.Notice()
	notice.Announce = announce
	if announce != "" && r.st.Escalation != nil && strings.HasPrefix(announce, "Escalated to ") {
		notice.Mention = r.st.Escalation.To
	}
	due := r.announcements()
	var ref activities.MessageRef
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, writebackOptions), acts.Notify,
		activities.NotifyInput{Notice: notice, Ref: activities.MessageRef{Channel: n.SlackChannel, TS: n.SlackTS}}).Get(ctx, &ref)
	if err != nil {
		r.warn("posting to Slack failed: " + errMessage(err))
		return
	}
	n.SlackPosted = true
	if r.version >= versionPolicy {
		n.Announced = due
	}
	if ref.TS != "" {
		n.SlackChannel, n.SlackTS = ref.Channel, ref.TS
	}
}

// Notice is what the approval message shows of a status; the workflow posts
// it and the API answers a Slack click with it.
func (st Status) Notice() activities.Notice {
	n := activities.Notice{
		RemediationID: st.ID, DecisionID: st.DecisionID, Repo: st.Repo, Ref: st.Ref, BaseSHA: st.SHA,
		Failure: st.FailureSummary, Deadline: st.Deadline, Phase: string(st.Phase), Votes: st.Votes, Required: st.RequiredApprovals,
	}
	if st.Phase.Terminal() {
		n.Outcome = st.Reason
	}
	if f := st.Fix; f != nil {
		n.Digest, n.FixSummary, n.Files, n.Validated, n.Validation = f.Digest, f.Summary, f.Files, f.Validated, f.Validation
		n.FixSource = strings.TrimSpace(f.Source + " " + f.Recipe)
	}
	if k := st.Risk; k != nil {
		n.RiskLevel, n.RiskScore, n.RiskReason = k.Level, k.Score, k.Reason
	}
	if st.PR != nil {
		n.Links.Change = st.PR.URL
	}
	n.Reminders = len(st.Reminders)
	if st.Escalation != nil {
		n.EscalatedTo = st.Escalation.To
	}
	return n
}

// sidecar keeps an outside record (the incident, the Slack message) in
// step with the remediation: one goroutine sends the current state each
// time it is poked, in order, never two at once, and the run's end waits
// until the last state was sent. It runs on a disconnected context, so a
// cancelled remediation still reports that it was cancelled.
type sidecar struct {
	wanted, done int
	running      bool
}

func (r *remediation) startSidecar(ctx workflow.Context, sc *sidecar, send func(workflow.Context)) {
	nctx, _ := workflow.NewDisconnectedContext(ctx)
	sc.running, sc.wanted = true, 1
	workflow.Go(nctx, func(gctx workflow.Context) {
		for {
			if err := workflow.Await(gctx, func() bool { return sc.wanted > sc.done }); err != nil {
				sc.running = false
				return
			}
			want := sc.wanted
			send(gctx)
			sc.done = want
			if r.st.Phase.Terminal() && sc.done == sc.wanted {
				sc.running = false
				return
			}
		}
	})
}

// poke asks for the current state to be sent.
func (sc *sidecar) poke() {
	if sc.running {
		sc.wanted++
	}
}

// settled reports that everything asked for was sent (or nothing runs).
func (sc *sidecar) settled() bool { return !sc.running || sc.done >= sc.wanted }

// watchDecision polls the decision service (Dragon) while the gate is open,
// when it can take decisions itself, and applies what it says as a vote of
// the person who decided there. The returned func stops the watch.
func (r *remediation) watchDecision(ctx workflow.Context) func() {
	if !r.caps.WatchDecisions || r.st.DecisionID == "" {
		return func() {}
	}
	wctx, cancel := workflow.WithCancel(ctx)
	interval := r.caps.WatchInterval
	workflow.Go(wctx, func(gctx workflow.Context) {
		seen := ""
		opts := watchOptions(interval)
		for r.verdict == verdictPending {
			var v activities.DecisionVerdict
			err := workflow.ExecuteActivity(workflow.WithActivityOptions(gctx, opts), acts.WatchDecision,
				activities.WatchDecisionInput{DecisionID: r.st.DecisionID, Interval: interval, Seen: seen}).Get(gctx, &v)
			if err != nil {
				if gctx.Err() == nil {
					r.warn("watching the decision in Dragon stopped: " + errMessage(err))
				}
				return
			}
			seen = v.Key()
			r.dragonVerdict(gctx, v)
		}
	})
	return cancel
}

// dragonVerdict turns a decision taken in Dragon into a vote of whoever
// took it (channel dragon), validated like every other vote: the
// four-eyes rule holds, a decision naming nobody counts for nothing.
func (r *remediation) dragonVerdict(ctx workflow.Context, v activities.DecisionVerdict) {
	approve := v.Verdict == activities.VerdictApproved
	req := ApprovalRequest{
		Actor: v.Actor, Roles: v.Roles, DecisionID: r.st.DecisionID, DiffDigest: r.fix.Digest,
		Channel: ChannelDragon, SignedAt: workflow.Now(ctx),
	}
	if r.version >= versionSafety {
		req.BaseSHA = r.fix.BaseSHA // the decision is about this fix and base
	}
	if approve && v.Actor == "" {
		note := v.Note
		if note == "" {
			note = "the decision names nobody who may approve"
		}
		r.ignoreSignal(ctx, req, "Dragon: "+clip(note, maxTextLen))
		return
	}
	text := clip(v.Reason, maxTextLen)
	if approve {
		req.Comment = text
	} else {
		req.Reason = text
		if strings.TrimSpace(req.Reason) == "" {
			req.Reason = "rejected in Dragon (status " + clip(v.Status, 64) + ")"
		}
	}
	if err := r.validateVote(req, approve, workflow.Now(ctx), true); err != nil {
		r.ignoreSignal(ctx, req, "Dragon: "+voteMessage(err))
		return
	}
	r.vote(ctx, req, approve, ChannelDragon)
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && (s[n]&0xC0) == 0x80 {
		n--
	}
	return s[:n]
}

// startSigned reports whether the API signed this start (memo
// start_signature over the id, repository and requester) with a key of the
// worker's configuration.
func (r *remediation) startSigned(ctx workflow.Context) bool {
	memo := workflow.GetInfo(ctx).Memo
	if memo == nil || memo.GetFields()[MemoStartSignature] == nil {
		return false
	}
	var sig vote.Signature
	if err := converter.GetDefaultDataConverter().FromPayload(memo.GetFields()[MemoStartSignature], &sig); err != nil {
		return false
	}
	return vote.VerifyStartKeys(r.keys, r.in.ID, r.in.Repo, r.in.Requester, sig)
}

// proposalReady: the fix and its decision exist, or the run ended.
func (r *remediation) proposalReady() bool {
	return r.st.Phase != PhaseReceived && r.st.Phase != PhaseGeneratingFix
}

// watchOptions: one long poll, heartbeating every interval; a worker that
// dies mid-poll is noticed within two intervals and the poll restarts.
func watchOptions(interval time.Duration) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 31 * 24 * time.Hour,
		HeartbeatTimeout:    2*interval + 30*time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        5 * time.Minute,
			NonRetryableErrorTypes: activities.NonRetryableErrorTypes,
		},
	}
}
