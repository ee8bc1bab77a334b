package activities

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"remediator/internal/auth"
	"remediator/internal/dragon"
)

// DragonDecisions keeps decisions in Dragon: created with structured fields,
// read back for OpenPR's check (Dragon must echo the fields it was given;
// a decision that does not is "about another change", and nothing opens),
// polled while awaiting approval, and given the outcome at the end.
type DragonDecisions struct {
	Client *dragon.Client
	// Users decides whom a decision taken in Dragon counts as.
	Users DragonUsers
}

// DragonUsers says whom a decision taken in Dragon counts as. Without
// links, Dragon's own permissions decide who may approve there and its
// identity is the actor (compared with the requester case-insensitively);
// with links (REMEDIATOR_DRAGON_USERS) only a linked principal with an
// approver role and the repository in scope approves, as that principal.
// The API's callback and the workflow's poll both use it.
type DragonUsers struct {
	// Users maps a Dragon identity, in lower case, to its principal; empty
	// leaves who may approve to Dragon.
	Users map[string]auth.Principal
	// ScopeNames lists the names a repository is matched by (its canonical
	// form and, for local ones, its path under each root); nil: the
	// canonical form only.
	ScopeNames func(repo string) []string
}

// DragonVeto is the actor of a rejection in Dragon by someone who cannot be
// named: a veto needs no identity (anyone may stop a change), but it must
// never pass for a person's vote.
const DragonVeto = "dragon"

// dragonIdentity is what an identity from Dragon must look like to be
// recorded as an actor.
var dragonIdentity = regexp.MustCompile(`^[A-Za-z0-9._@+-]{1,128}$`)

// Decider is whom a decision Dragon says identity took about repo counts
// as, with the roles the vote carries; for an approval by nobody who may
// approve, actor is empty and why says so. A rejection always counts (as
// DragonVeto when its author cannot be named).
func (u DragonUsers) Decider(identity, repo string, approve bool) (actor string, roles []string, why string) {
	raw := strings.TrimSpace(identity)
	if len(u.Users) == 0 {
		switch {
		case dragonIdentity.MatchString(raw):
			return raw, []string{"approver"}, ""
		case !approve:
			return DragonVeto, []string{"approver"}, ""
		case raw == "":
			return "", nil, "Dragon names nobody who approved, so the four-eyes rule cannot be checked"
		}
		return "", nil, "Dragon names who approved in a form that cannot be recorded"
	}
	p, linked := u.Users[strings.ToLower(raw)]
	if !approve {
		if linked {
			return p.Subject, []string{"approver"}, ""
		}
		return DragonVeto, []string{"approver"}, ""
	}
	switch {
	case raw == "":
		return "", nil, "Dragon names nobody who approved, so the four-eyes rule cannot be checked"
	case !linked:
		return "", nil, "the Dragon user who approved is not linked to a remediator identity (REMEDIATOR_DRAGON_USERS)"
	case !p.HasRole("approver", "admin"):
		return "", nil, p.Subject + " (linked from Dragon) holds no approver role"
	case !u.mayAccess(p, repo):
		return "", nil, p.Subject + " (linked from Dragon) may not approve changes to this repository"
	}
	return p.Subject, p.Roles, ""
}

func (u DragonUsers) mayAccess(p auth.Principal, repo string) bool {
	names := []string{repo}
	if u.ScopeNames != nil {
		names = u.ScopeNames(repo)
	}
	return slices.ContainsFunc(names, p.CanAccessRepo)
}

// clientReference keys a decision for find-before-create: one per run.
func clientReference(in CreateDecisionInput) string {
	if in.RunID == "" {
		return "remediator:" + in.RemediationID
	}
	return "remediator:" + in.RemediationID + ":" + in.RunID
}

// CreateDecision implements DecisionClient.
func (d *DragonDecisions) CreateDecision(ctx context.Context, in CreateDecisionInput) (Decision, error) {
	alert := in.IncidentID
	if alert == "" {
		alert = in.RemediationID
	}
	impact := fmt.Sprintf("%d file(s) in %s", len(in.Files), in.Repo)
	req := dragon.DecisionRequest{
		AlertID: alert, Proposer: "remediator", ProposedAction: "apply_autofix",
		Rationale:       fmt.Sprintf("%s. Risk %s (%d): %s. Impact: %s.", oneLine(in.Summary), in.RiskLevel, in.RiskScore, oneLine(in.RiskReason), impact),
		ClientReference: clientReference(in), RemediationID: in.RemediationID, Repo: in.Repo, Requester: in.Requester,
		IncidentID: in.IncidentID, CorrelationID: in.CorrelationID, RiskLevel: in.RiskLevel, RiskScore: in.RiskScore,
		Impact: impact, DiffDigest: in.DiffDigest, BaseSHA: in.BaseSHA, Files: in.Files, FixSource: in.FixSource,
		Summary: in.Summary, Links: in.Links,
	}
	dec, err := d.Client.Create(ctx, req)
	if err != nil {
		return Decision{}, err
	}
	if dec.RemediationID != "" && dec.RemediationID != in.RemediationID {
		return Decision{}, Permanent(ErrTypeConflict, "Dragon answered with a decision about another remediation", nil)
	}
	return Decision{ID: dec.ID, Status: dec.Status, Watch: true}, nil
}

// Facts implements DecisionClient: what Dragon says the decision is about,
// and what was decided there.
func (d *DragonDecisions) Facts(ctx context.Context, id string) (DecisionFacts, error) {
	dec, err := d.Client.Get(ctx, id)
	if err != nil {
		return DecisionFacts{}, err
	}
	v := d.verdictOf(dec)
	return DecisionFacts{RemediationID: dec.RemediationID, Repo: dec.Repo, Requester: dec.Requester, DiffDigest: dec.DiffDigest,
		BaseSHA: dec.BaseSHA, Verdict: v.Verdict, Approver: v.Actor}, nil
}

// Verdict implements DecisionWatcher.
func (d *DragonDecisions) Verdict(ctx context.Context, id string) (DecisionVerdict, error) {
	dec, err := d.Client.Get(ctx, id)
	if err != nil {
		return DecisionVerdict{}, err
	}
	return d.verdictOf(dec), nil
}

// verdictOf reads what was decided and whom it counts as.
func (d *DragonDecisions) verdictOf(dec dragon.Decision) DecisionVerdict {
	v := DecisionVerdict{Verdict: VerdictPending, Status: truncate(oneLine(dec.Status), 64), Reason: truncate(oneLine(dec.Reason), 2000)}
	switch dec.Verdict() {
	case dragon.VerdictApproved:
		v.Verdict = VerdictApproved
	case dragon.VerdictRejected:
		v.Verdict = VerdictRejected
	default:
		return v
	}
	v.Actor, v.Roles, v.Note = d.Users.Decider(dec.Approver, dec.Repo, v.Verdict == VerdictApproved)
	return v
}

// RecordOutcome implements DecisionClient. A Dragon without the outcome
// endpoint (404/405) is logged and not retried.
func (d *DragonDecisions) RecordOutcome(ctx context.Context, in RecordOutcomeInput) error {
	o := dragon.Outcome{Outcome: strings.ToLower(in.Phase), Status: outcomeStatus(in.Phase), Reason: truncate(oneLine(in.Reason), 2000),
		RemediationID: in.RemediationID, At: time.Now().UTC()}
	if o.Outcome == "completed" && in.PR == nil {
		o.Outcome = "failed"
	}
	if in.PR != nil {
		o.PRURL = in.PR.URL
	}
	for _, v := range in.Votes {
		o.Votes = append(o.Votes, dragon.OutcomeVote{Actor: v.Actor, Approved: v.Approved, Channel: v.Channel, Comment: v.Text(), At: v.At})
	}
	err := d.Client.RecordOutcome(ctx, in.DecisionID, o)
	var apiErr *dragon.APIError
	if errors.As(err, &apiErr) && (apiErr.Status == 404 || apiErr.Status == 405) {
		return Permanent(ErrTypeUpstream, "Dragon does not accept the outcome of this decision", err)
	}
	return err
}

func outcomeStatus(phase string) string {
	switch phase {
	case "Completed":
		return "approved"
	case "Rejected":
		return "rejected"
	case "Expired":
		return "expired"
	case "Cancelled", "Superseded":
		// Superseded (a newer failure, or a regenerated fix): withdrawn,
		// the outcome says why.
		return "cancelled"
	}
	return "failed"
}
