package activities_test

import (
	"strings"
	"testing"
	"time"

	"remediator/activities"
	"remediator/internal/vote"
)

// OpenPR enforces the policy's quorum on its own: distinct approvers (names
// compared without case), the roles the level allows, and an admin when
// protected paths are touched.
func TestVerifyApprovalsEnforcesThePolicy(t *testing.T) {
	signer, facts, in := dragonInput(t)
	now := time.Now().UTC()
	voteBy := func(actor string, roles ...string) activities.Vote {
		v := activities.Vote{Actor: actor, Approved: true, Roles: roles, Channel: "api", DecisionID: "dec-1",
			DiffDigest: in.DiffDigest, At: now, SignedAt: now}
		sig := signer.Sign(v.Signed(in.RemediationID))
		v.Signature = &sig
		return v
	}
	for name, tc := range map[string]struct {
		required int
		roles    []string
		admin    bool
		votes    []activities.Vote
		want     string // "" = ok
	}{
		"quorum of two":               {2, nil, false, []activities.Vote{voteBy("alice", "approver"), voteBy("bob", "approver")}, ""},
		"one short":                   {2, nil, false, []activities.Vote{voteBy("alice", "approver")}, "1 verified approvals, 2 required"},
		"same person in another case": {2, nil, false, []activities.Vote{voteBy("alice", "approver"), voteBy("Alice", "approver")}, "voted twice"},
		"HIGH needs admin role":       {1, []string{"admin"}, false, []activities.Vote{voteBy("alice", "approver")}, "none of the roles"},
		"HIGH with an admin":          {1, []string{"admin"}, false, []activities.Vote{voteBy("root", "admin")}, ""},
		"protected without an admin":  {1, nil, true, []activities.Vote{voteBy("alice", "approver")}, "an admin must be among the approvers"},
		"protected with an admin":     {2, nil, true, []activities.Vote{voteBy("alice", "approver"), voteBy("root", "admin")}, ""},
	} {
		i := in
		i.RequiredApprovals, i.ApproverRoles, i.AdminRequired, i.Votes = tc.required, tc.roles, tc.admin, tc.votes
		_, err := activities.VerifyApprovals(signerKeys(signer), facts, i, now)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: want %q, got %v", name, tc.want, err)
		}
	}
}

func signerKeys(s interface{ PublicKey() vote.PublicKey }) []vote.PublicKey {
	return []vote.PublicKey{s.PublicKey()}
}
