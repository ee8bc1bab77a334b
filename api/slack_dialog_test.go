package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"remediator/internal/auth"
	"remediator/internal/errcode"
	"remediator/internal/orchestrator"
	"remediator/internal/slack"
	"remediator/internal/slack/slacktest"
	"remediator/workflows"
)

const (
	slackSigningSecret = "slack-signing-secret-0123"
	slackBotToken      = "xoxb-test-0123456789"
)

// slackEnv is the API with a real Slack client in front of a fake Slack.
type slackEnv struct {
	slack *slacktest.Server
	orch  *fakeOrch
	h     http.Handler
}

// newSlackEnv configures the Slack client with the bot token, or with an
// incoming webhook only.
func newSlackEnv(t *testing.T, botToken bool) slackEnv {
	t.Helper()
	fake := slacktest.New(t, slackBotToken, slacktest.ChannelID)
	cfg := slack.Config{APIURL: fake.APIURL(), Timeout: 5 * time.Second}
	if botToken {
		cfg.BotToken, cfg.Channel = slackBotToken, slacktest.ChannelID
	} else {
		cfg.WebhookURL = fake.WebhookURL()
	}
	client, err := slack.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	orch := &fakeOrch{statuses: map[string]orchestrator.Status{}}
	h := NewHandler(quietLogger(), orch, Options{
		Auth: testAuth(t), Repos: testRepos(), SlackSecret: []byte(slackSigningSecret), Slack: client,
		SlackUsers: map[string]auth.Principal{"U0ALICE": {Subject: "alice", Roles: []string{"approver"}, Repos: []string{"acme/*"}}},
	})
	return slackEnv{slack: fake, orch: orch, h: h}
}

// post sends a form body signed as Slack signs it.
func (e slackEnv) post(t *testing.T, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	ts, sig := slacktest.Sign([]byte(slackSigningSecret), body, time.Now())
	req := httptest.NewRequest("POST", "/webhooks/slack", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", sig)
	rec := serve(t, e.h, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("Slack is answered 200, got %d %s", rec.Code, rec.Body)
	}
	return rec
}

// buttonValue is what the approval message's buttons carry for rem-1.
var buttonValue = "rem-1|dec_1|" + fixDigest

type viewAnswer struct {
	ResponseAction string            `json:"response_action"`
	Errors         map[string]string `json:"errors"`
}

func TestSlackRejectOpensTheReasonDialog(t *testing.T) {
	e := newSlackEnv(t, true)
	rec := e.post(t, slacktest.BlockAction("U0ALICE", "remediation_reject", buttonValue, "trig-4711.1", ""))
	if txt := decodeInto[slackResponse](t, rec.Body.Bytes()).Text; !strings.Contains(txt, "dialog") {
		t.Fatalf("the click is answered with a pointer to the dialog: %s", rec.Body)
	}
	if len(e.orch.votes) != 0 {
		t.Fatalf("a Reject click with a dialog votes nothing: %+v", e.orch.votes)
	}
	views := e.slack.Views()
	if len(views) != 1 || views[0].TriggerID != "trig-4711.1" {
		t.Fatalf("views.open with the click's trigger id: %+v", views)
	}
	view := decodeInto[map[string]any](t, views[0].View)
	if view["private_metadata"] != buttonValue || view["callback_id"] != slack.ReasonCallbackID || view["type"] != "modal" {
		t.Fatalf("the dialog carries the button's value: %s", views[0].View)
	}

	// A click the linked principal may not make opens nothing.
	e.post(t, slacktest.BlockAction("U0ALICE", "remediation_reject", "rem-other|dec_1|"+fixDigest, "trig-4711.2", ""))
	e.post(t, slacktest.BlockAction("U0STRANGER", "remediation_reject", buttonValue, "trig-4711.3", ""))
	if n := len(e.slack.Views()); n != 1 {
		t.Fatalf("refused clicks open no dialog: %d views", n)
	}

	// Without a bot token no dialog can open: the click rejects at once.
	w := newSlackEnv(t, false)
	rec = w.post(t, slacktest.BlockAction("U0ALICE", "remediation_reject", buttonValue, "trig-4711.4", ""))
	if len(w.orch.votes) != 1 || w.orch.votes[0].Approve || w.orch.votes[0].Reason == "" || len(w.slack.Views()) != 0 {
		t.Fatalf("a webhook-only Slack: %s %+v", rec.Body, w.orch.votes)
	}
}

func TestSlackReasonDialogRejectsWithTheReason(t *testing.T) {
	e := newSlackEnv(t, true)
	rec := e.post(t, slacktest.ViewSubmission("U0ALICE", buttonValue, "  breaks the build on arm64  "))
	if a := decodeInto[viewAnswer](t, rec.Body.Bytes()); a.ResponseAction != "clear" {
		t.Fatalf("a counted rejection closes the dialog: %s", rec.Body)
	}
	if len(e.orch.votes) != 1 {
		t.Fatalf("one vote: %+v", e.orch.votes)
	}
	v := e.orch.votes[0]
	if v.Approve || v.Reason != "breaks the build on arm64" || v.Actor != "alice" || v.Channel != workflows.ChannelSlack ||
		v.ID != "rem-1" || v.DecisionID != "dec_1" || v.DiffDigest != fixDigest || !strings.HasPrefix(v.RequestID, "slack:") {
		t.Fatalf("the rejection is alice's, with her reason: %+v", v)
	}
	if len(e.slack.Views()) != 0 {
		t.Fatalf("a submission opens no other dialog: %+v", e.slack.Views())
	}

	// Refusals keep the dialog open with the reason under the field.
	rec = e.post(t, slacktest.ViewSubmission("U0STRANGER", buttonValue, "no"))
	if a := decodeInto[viewAnswer](t, rec.Body.Bytes()); a.ResponseAction != "errors" || !strings.Contains(a.Errors["reason"], "not linked") {
		t.Fatalf("an unlinked user: %s", rec.Body)
	}
	e.orch.err = &orchestrator.RejectedError{Code: errcode.DuplicateVote, Message: "alice already voted"}
	rec = e.post(t, slacktest.ViewSubmission("U0ALICE", buttonValue, "again"))
	if a := decodeInto[viewAnswer](t, rec.Body.Bytes()); a.ResponseAction != "errors" || !strings.Contains(a.Errors["reason"], "alice already voted") {
		t.Fatalf("a refused vote: %s", rec.Body)
	}
	if len(e.orch.votes) != 2 {
		t.Fatalf("the unlinked user's submission votes nothing: %+v", e.orch.votes)
	}
}

func TestSlackReasonDialogRefusesAnEmptyReason(t *testing.T) {
	e := newSlackEnv(t, true)
	rec := e.post(t, slacktest.ViewSubmission("U0ALICE", buttonValue, "   "))
	a := decodeInto[viewAnswer](t, rec.Body.Bytes())
	if a.ResponseAction != "errors" || a.Errors["reason"] == "" {
		t.Errorf("a blank reason keeps the dialog open with an error under the field: %s", rec.Body)
	}
	if len(e.orch.votes) != 0 {
		t.Fatalf("a blank reason votes nothing: %+v", e.orch.votes)
	}
}

// waitForResponses polls the fake until it holds n response_url posts.
func waitForResponses(t *testing.T, fake *slacktest.Server, n int) []slacktest.Posted {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := fake.Responses()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSlackClickUpdatesTheMessageThroughItsResponseURL(t *testing.T) {
	e := newSlackEnv(t, true)
	e.orch.statuses["rem-1"] = proposed("rem-1", workflows.PhaseOpeningPR)
	url := e.slack.NewResponseURL()
	rec := e.post(t, slacktest.BlockAction("U0ALICE", "remediation_approve", buttonValue, "trig-5", url))
	if txt := decodeInto[slackResponse](t, rec.Body.Bytes()).Text; !strings.Contains(txt, "Approved by alice") {
		t.Fatalf("the click counted: %s", rec.Body)
	}
	got := waitForResponses(t, e.slack, 1)
	if len(got) != 1 {
		t.Fatalf("the clicked message is answered through its response_url: %+v", got)
	}
	r := got[0]
	if r.URL != url || !r.ReplaceOriginal {
		t.Fatalf("the original message is replaced: %+v", r)
	}
	var blocks []map[string]any
	if err := json.Unmarshal(r.Blocks, &blocks); err != nil || len(blocks) == 0 {
		t.Fatalf("blocks: %v %s", err, r.Blocks)
	}
	for _, b := range blocks {
		if b["type"] == "actions" {
			t.Fatalf("a remediation past approval shows no buttons: %s", r.Blocks)
		}
	}
	if strings.Contains(string(r.Blocks), "remediation_approve") || !strings.Contains(string(r.Blocks), string(workflows.PhaseOpeningPR)) {
		t.Fatalf("the message shows the new phase and no vote button: %s", r.Blocks)
	}
}

func TestSlackResponseURLOnAForeignHostIsNeverDialled(t *testing.T) {
	e := newSlackEnv(t, true)
	e.orch.statuses["rem-1"] = proposed("rem-1", workflows.PhaseOpeningPR)
	foreign := slacktest.New(t, "xoxb-foreign")
	e.post(t, slacktest.BlockAction("U0ALICE", "remediation_approve", buttonValue, "trig-6", foreign.NewResponseURL()))
	// A trusted response_url after it: once its answer arrived, the
	// foreign one had as long to be dialled.
	e.post(t, slacktest.BlockAction("U0ALICE", "remediation_approve", buttonValue, "trig-7", e.slack.NewResponseURL()))
	if got := waitForResponses(t, e.slack, 1); len(got) != 1 {
		t.Fatalf("the trusted response_url is answered: %+v", got)
	}
	time.Sleep(100 * time.Millisecond)
	if reqs := foreign.Requests(); len(reqs) != 0 {
		t.Fatalf("a response_url on another host was dialled: %+v", reqs)
	}
	if len(e.orch.votes) != 2 {
		t.Fatalf("both clicks counted: %+v", e.orch.votes)
	}
}
