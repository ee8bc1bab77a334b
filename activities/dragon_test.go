package activities_test

import (
	"testing"
	"time"

	"remediator/activities"
	"remediator/internal/auth"
	"remediator/internal/vote"
)

func dragonInput(t *testing.T) (*vote.Signer, activities.DecisionFacts, activities.OpenPRInput) {
	t.Helper()
	key, err := vote.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := vote.NewSigner(key)
	patch := []byte("diff --git a/x b/x\n")
	in := activities.OpenPRInput{RemediationID: "rem-d", Repo: "acme/api", Branch: "autofix/rem-d", BaseSHA: "abc",
		Patch: patch, DiffDigest: activities.Digest(patch), DecisionID: "dec-1", Requester: "dev", RequiredApprovals: 1}
	facts := activities.DecisionFacts{RemediationID: "rem-d", Repo: "acme/api", Requester: "dev", DiffDigest: in.DiffDigest, BaseSHA: "abc"}
	return signer, facts, in
}

// TestDragonVotesAreConfirmedByDragon: a vote the workflow's poll recorded
// carries no signature; OpenPR counts it only when Dragon, asked again,
// says that same person approved, and no vote opens a decision Dragon
// rejected.
func TestDragonVotesAreConfirmedByDragon(t *testing.T) {
	signer, facts, in := dragonInput(t)
	keys := []vote.PublicKey{signer.PublicKey()}
	now := time.Now().UTC()
	polled := activities.Vote{Actor: "carol", Approved: true, Roles: []string{"approver"}, Channel: activities.ChannelDragon,
		DecisionID: "dec-1", DiffDigest: in.DiffDigest, At: now, SignedAt: now}
	signedAPI := polled
	signedAPI.Channel = "api"
	sig := signer.Sign(signedAPI.Signed(in.RemediationID))
	signedAPI.Signature = &sig

	for name, tc := range map[string]struct {
		verdict, approver string
		vote              activities.Vote
		ok                bool
	}{
		"confirmed by Dragon":                 {activities.VerdictApproved, "carol", polled, true},
		"Dragon names someone else":           {activities.VerdictApproved, "dave", polled, false},
		"Dragon still pending":                {activities.VerdictPending, "", polled, false},
		"an unsigned vote of another channel": {activities.VerdictApproved, "carol", func() activities.Vote { v := polled; v.Channel = "api"; return v }(), false},
		"a signed vote, Dragon rejected":      {activities.VerdictRejected, "erin", signedAPI, false},
		"a signed vote, Dragon pending":       {activities.VerdictPending, "", signedAPI, true},
	} {
		f := facts
		f.Verdict, f.Approver = tc.verdict, tc.approver
		i := in
		i.Votes = []activities.Vote{tc.vote}
		_, err := activities.VerifyApprovals(keys, f, i, now)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", name, err, tc.ok)
		}
	}
}

func TestDragonUsersDeciderWithoutLinks(t *testing.T) {
	var u activities.DragonUsers
	for _, tc := range []struct {
		identity string
		approve  bool
		actor    string
	}{
		{" carol ", true, "carol"},
		{"carol@example.com", true, "carol@example.com"},
		{"", true, ""},
		{"Carol Smith", true, ""},
		{"<script>", false, activities.DragonVeto},
		{"erin", false, "erin"},
	} {
		actor, _, why := u.Decider(tc.identity, "acme/api", tc.approve)
		if actor != tc.actor || (actor == "" && why == "") {
			t.Errorf("%q approve=%v: actor %q (%s), want %q", tc.identity, tc.approve, actor, why, tc.actor)
		}
	}
}

func TestDragonUsersDecider(t *testing.T) {
	u := activities.DragonUsers{Users: map[string]auth.Principal{
		"carol@example.com": {Subject: "carol", Roles: []string{"approver"}, Repos: []string{"acme/*"}},
		"dev":               {Subject: "dev", Roles: []string{"developer"}, Repos: []string{"*"}},
	}}
	for _, tc := range []struct {
		identity, repo string
		approve        bool
		actor          string
	}{
		{"Carol@Example.com", "acme/api", true, "carol"},
		{"carol@example.com", "other/api", true, ""},
		{"dev", "acme/api", true, ""},
		{"mallory", "acme/api", true, ""},
		{"", "acme/api", true, ""},
		{"mallory", "acme/api", false, activities.DragonVeto},
		{"dev", "acme/api", false, "dev"},
	} {
		actor, roles, why := u.Decider(tc.identity, tc.repo, tc.approve)
		if actor != tc.actor {
			t.Errorf("%q on %s approve=%v: actor %q (%s), want %q", tc.identity, tc.repo, tc.approve, actor, why, tc.actor)
		}
		if actor == "" && why == "" {
			t.Errorf("%q: refused without a reason", tc.identity)
		}
		if actor != "" && len(roles) == 0 {
			t.Errorf("%q: no roles", tc.identity)
		}
	}
}
