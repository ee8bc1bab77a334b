package activities

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"remediator/internal/vote"
)

// Roles that may approve (as the API's route table and the workflow's
// validator also say).
var approverRoles = []string{"approver", "admin"}

// ChannelDragon is the channel of votes taken in Dragon (as the workflow
// contract names it).
const ChannelDragon = "dragon"

// maxTitleBytes bounds change titles (forges cut around 256).
const maxTitleBytes = 200

// BranchPrefix starts the branch of every change: "autofix/<remediation id>".
const BranchPrefix = "autofix/"

// MaxVoteAge bounds how old a vote OpenPR accepts may be: longer than any
// approval window, so only replays of old votes are refused.
const MaxVoteAge = 31 * 24 * time.Hour

// VerifyApprovals is the check at the point of effect. What is to be applied
// must be what the decision was created for (remediation, repository, base
// commit, digest, requester, as the governance record says), on the
// remediation's own branch; the patch must hash to the digest; every vote
// must carry a signature the worker's keys verify for this remediation, made
// within MaxVoteAge; no vote may reject; and enough distinct people other
// than the requester, holding an approver role, must have approved exactly
// this decision and digest. It returns the verified approvals.
func VerifyApprovals(keys []vote.PublicKey, facts DecisionFacts, in OpenPRInput, now time.Time) ([]Vote, error) {
	if len(keys) == 0 {
		return nil, errors.New("no vote verification keys are configured on this worker")
	}
	digest := Digest(in.Patch)
	switch {
	case in.DiffDigest != digest:
		return nil, fmt.Errorf("the patch has digest %s, not the approved %s", digest, in.DiffDigest)
	case in.Branch != BranchPrefix+in.RemediationID:
		return nil, fmt.Errorf("the branch %q is not the remediation's own", in.Branch)
	case facts.RemediationID != in.RemediationID || facts.Repo != in.Repo || facts.BaseSHA != in.BaseSHA ||
		facts.DiffDigest != digest || facts.Requester != in.Requester:
		return nil, fmt.Errorf("decision %s was made about another change (%s at %s, digest %s)", in.DecisionID, facts.Repo, facts.BaseSHA, facts.DiffDigest)
	}
	if facts.Verdict == VerdictRejected {
		// Dragon's own decision is a veto whatever the votes say.
		return nil, fmt.Errorf("decision %s was rejected in the decision service", in.DecisionID)
	}
	required := max(in.RequiredApprovals, 1)
	allowed := approverRoles
	if len(in.ApproverRoles) > 0 {
		allowed = in.ApproverRoles
	}
	var approvals []Vote
	for _, v := range in.Votes {
		switch {
		case v.Signature == nil && v.Channel == ChannelDragon:
			// Taken in Dragon and seen by the workflow's own poll: Dragon,
			// asked again now, must say the same person approved.
			if facts.Verdict != VerdictApproved || facts.Approver == "" || facts.Approver != v.Actor {
				return nil, fmt.Errorf("the decision service does not confirm that %q approved (it says %q by %q)", v.Actor, facts.Verdict, facts.Approver)
			}
		case v.Signature == nil:
			return nil, fmt.Errorf("the vote of %q is not signed", v.Actor)
		default:
			if err := vote.Verify(keys, v.Signed(in.RemediationID), *v.Signature); err != nil {
				return nil, fmt.Errorf("the vote of %q does not verify: %w", v.Actor, err)
			}
		}
		if age := now.Sub(v.SignedAt); age > MaxVoteAge || age < -time.Hour {
			return nil, fmt.Errorf("the vote of %q was signed at %s, outside the time a vote counts", v.Actor, v.SignedAt.Format(time.RFC3339))
		}
		if !v.Approved {
			return nil, fmt.Errorf("%q rejected the change", v.Actor)
		}
		// A member of one of the level's named groups may approve with the
		// approver role alone; everyone needs at least that.
		member := slices.ContainsFunc(in.ApproverMembers, func(m string) bool { return SameActor(m, v.Actor) }) &&
			slices.ContainsFunc(v.Roles, func(r string) bool { return slices.Contains(approverRoles, r) })
		switch {
		case v.Actor == "" || SameActor(v.Actor, in.Requester):
			return nil, fmt.Errorf("the requester %q cannot approve their own remediation", in.Requester)
		case slices.ContainsFunc(in.Authors, func(a string) bool { return SameActor(a, v.Actor) }):
			return nil, fmt.Errorf("%q is an author of this fix and cannot approve it", v.Actor)
		case !member && !slices.ContainsFunc(v.Roles, func(r string) bool { return slices.Contains(allowed, r) }):
			return nil, fmt.Errorf("%q holds none of the roles that may approve this fix (%s)", v.Actor, strings.Join(allowed, ", "))
		case in.BaseBound && v.BaseSHA != in.BaseSHA:
			return nil, fmt.Errorf("the vote of %q approves the diff on base %q, not %s", v.Actor, v.BaseSHA, in.BaseSHA)
		case v.DecisionID != in.DecisionID || in.DecisionID == "":
			return nil, fmt.Errorf("the vote of %q is for decision %q, not %q", v.Actor, v.DecisionID, in.DecisionID)
		case v.DiffDigest != digest:
			return nil, fmt.Errorf("the vote of %q approves digest %s, not %s", v.Actor, v.DiffDigest, digest)
		case slices.ContainsFunc(approvals, func(a Vote) bool { return SameActor(a.Actor, v.Actor) }):
			return nil, fmt.Errorf("%q voted twice", v.Actor)
		}
		approvals = append(approvals, v)
	}
	if len(approvals) < required {
		return nil, fmt.Errorf("%d verified approvals, %d required", len(approvals), required)
	}
	if in.AdminRequired && !slices.ContainsFunc(approvals, func(a Vote) bool { return slices.Contains(a.Roles, "admin") }) {
		return nil, errors.New("the fix touches protected paths: an admin must be among the approvers")
	}
	return approvals, nil
}

// SameActor compares identities as the four-eyes rule does: trimmed and
// without case, so "Alice" is neither a second approver nor someone other
// than the requester "alice".
func SameActor(a, b string) bool {
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}

// ChangeMessage composes the title and body of the change (and of its
// commit) from verified facts. Request text can never add a line of its own:
// the failure summary is quoted on one line, and the facts are git trailers
// in the last paragraph, built from the verified approvals only.
func ChangeMessage(in OpenPRInput, approvals []Vote) (title, body string) {
	summary := in.FixSummary
	if strings.TrimSpace(summary) == "" {
		summary = in.FailureSummary
	}
	title = truncate("autofix: "+oneLine(summary), maxTitleBytes)

	var b strings.Builder
	// Quoted on one line and in a code span: forges render change bodies as
	// Markdown, and request text must neither link, embed nor mention.
	fmt.Fprintf(&b, "Automated fix for the failure `%s`", strings.ReplaceAll(strconv.Quote(truncate(oneLine(in.FailureSummary), 1000)), "`", "'"))
	if in.Recipe != "" {
		fmt.Fprintf(&b, " by the recipe %s", strconv.Quote(oneLine(in.Recipe)))
	}
	b.WriteString(".\n\n")
	trailer := func(key, val string) {
		if val = oneLine(val); val != "" {
			b.WriteString(key + ": " + val + "\n")
		}
	}
	trailer("Remediation-Id", in.RemediationID)
	trailer("Decision-Id", in.DecisionID)
	trailer("Incident-Id", in.IncidentID)
	trailer("Requested-by", in.Requester)
	for _, v := range approvals {
		trailer("Approved-by", v.Actor+" ("+v.Channel+")")
	}
	if in.RiskLevel != "" {
		trailer("Risk", in.RiskLevel+" (rule: "+in.RiskRule+")")
	}
	trailer("Diff-Digest", in.DiffDigest)
	trailer("Base-Commit", in.BaseSHA)
	return title, b.String()
}

// oneLine turns every control character (newlines included) and invalid
// UTF-8 into a space and trims the result.
func oneLine(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, " ")
	}
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s))
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
