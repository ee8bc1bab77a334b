package slack_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"remediator/internal/slack"
	"remediator/internal/slack/slacktest"
)

const (
	testDigest  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testBaseSHA = "89abcdef0123456789abcdef0123456789abcdef"
)

const hostile = "<!channel> <https://evil|click> *bold* &amp; <@U123>\nsecond line\x00\u202e"

func approvalInfo(phase string) slack.ApprovalInfo {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	return slack.ApprovalInfo{
		RemediationID: "rem-1", DecisionID: "dec-1", Digest: testDigest,
		Repo: "acme/app", Ref: "main", BaseSHA: testBaseSHA,
		Failure: "lint: gofmt check failed", FixSummary: "gofmt main.go",
		Files: []string{"main.go"}, FixSource: "recipe gofmt", Validated: true, Validation: "go vet passed",
		RiskLevel: "low", RiskScore: 10, RiskReason: "formatting only",
		Deadline: at, Phase: phase, Required: 1,
		Links: slack.ApprovalLinks{API: "https://remediator.example/api/remediations/rem-1"},
	}
}

// texts returns every text of a text object in the blocks (at any depth).
func texts(t *testing.T, m slack.Message) []string {
	t.Helper()
	data, err := json.Marshal(m.Blocks)
	if err != nil || !json.Valid(data) {
		t.Fatalf("blocks do not marshal: %v", err)
	}
	var blocks []any
	if err := json.Unmarshal(data, &blocks); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if s, ok := x["text"].(string); ok {
				out = append(out, s)
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(blocks)
	return append(out, m.Text)
}

// ownMarkup is the only markup ApprovalMessage writes itself: date tokens
// and links with fixed labels.
var ownMarkup = regexp.MustCompile(`<!date\^\d+\^\{date_short_pretty\} \{time\}\|[0-9TZ:+-]+>|<https?://[^|<>\s]+\|(Review|API|Web UI|Change)>`)

func blocksOfType(t *testing.T, m slack.Message, typ string) []slack.Block {
	t.Helper()
	var out []slack.Block
	for _, b := range m.Blocks {
		if b["type"] == typ {
			out = append(out, b)
		}
	}
	return out
}

func TestApprovalMessageNeutralisesHostileText(t *testing.T) {
	a := approvalInfo(slack.PhaseAwaitingApproval)
	a.Repo, a.Ref, a.FixSummary, a.FixSource, a.Validation, a.RiskReason = hostile, hostile, hostile, hostile, hostile, hostile
	a.Failure = strings.Repeat("é<", 3500) + hostile // > 10 KB, multi-byte
	a.Files = nil
	for i := range 500 {
		a.Files = append(a.Files, fmt.Sprintf("%s/file%03d.go", hostile, i))
	}
	a.Votes = []slack.VoteLine{{Actor: hostile, Approved: true, Channel: hostile, Text: hostile, At: a.Deadline}}
	a.Links = slack.ApprovalLinks{API: "https://api.example/r?a=1&b=2", UI: "https://evil.example/|x", Change: "javascript:alert(1)",
		Review: "https://api.example/ui/remediations/rem-1"}
	m := slack.ApprovalMessage(a)

	all := texts(t, m)
	for _, s := range all {
		if !utf8.ValidString(s) {
			t.Errorf("invalid UTF-8 in %q", s)
		}
		rest := ownMarkup.ReplaceAllString(s, "")
		if strings.ContainsAny(rest, "<>\x00\u202e") {
			t.Errorf("unescaped markup or control character in %q", s)
		}
	}
	joined := strings.Join(all, "\n")
	if !strings.Contains(joined, "&lt;!channel&gt;") || !strings.Contains(joined, "&amp;amp;") {
		t.Errorf("hostile text not shown escaped:\n%s", joined)
	}
	if !strings.Contains(joined, "<https://api.example/ui/remediations/rem-1|Review>") {
		t.Errorf("the Review link (approver console) is missing:\n%s", joined)
	}
	if !strings.Contains(joined, "<https://api.example/r?a=1&amp;b=2|API>") {
		t.Errorf("API link missing:\n%s", joined)
	}
	if strings.Contains(joined, "evil.example") || strings.Contains(joined, "javascript") {
		t.Errorf("unsafe link rendered:\n%s", joined)
	}
	if !strings.Contains(joined, "… and 480 more") {
		t.Errorf("file list not capped at 20:\n%s", joined)
	}
	if strings.Contains(m.Text, "\n") || len(m.Text) > 1000 {
		t.Errorf("fallback text is not one bounded line: %d bytes", len(m.Text))
	}

	if len(m.Blocks) > 50 {
		t.Errorf("%d blocks", len(m.Blocks))
	}
	for _, b := range m.Blocks {
		switch b["type"] {
		case "header":
			if s := b["text"].(map[string]any)["text"].(string); utf8.RuneCountInString(s) > 150 {
				t.Errorf("header of %d characters", utf8.RuneCountInString(s))
			}
		case "section":
			if txt, ok := b["text"].(map[string]any); ok && len(txt["text"].(string)) > 3000 {
				t.Errorf("section text of %d bytes", len(txt["text"].(string)))
			}
			if fields, ok := b["fields"].([]any); ok {
				if len(fields) > 10 {
					t.Errorf("%d fields", len(fields))
				}
				for _, f := range fields {
					if s := f.(map[string]any)["text"].(string); len(s) > 2000 {
						t.Errorf("field of %d bytes", len(s))
					}
				}
			}
		}
	}
	// Slack's own limits, as the fake enforces them, accept the message.
	_, c := newBot(t)
	if _, err := c.Post(t.Context(), m); err != nil {
		t.Fatalf("the fake Slack refused the message: %v", err)
	}
}

func TestApprovalMessageFields(t *testing.T) {
	a := approvalInfo(slack.PhaseAwaitingApproval)
	a.RiskLevel, a.RiskScore, a.RiskReason = "high", 85, "touches CI config"
	m := slack.ApprovalMessage(a)
	joined := strings.Join(texts(t, m), "\n")
	for _, want := range []string{
		"Approval needed: acme/app",
		"HIGH (85) — touches CI config",
		fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|2030-01-02T03:04:05Z>", a.Deadline.Unix()),
		"recipe gofmt",
		"✅ go vet passed",
		"`" + testDigest[:12] + "`",
		"`dec-1`",
		"`" + testBaseSHA[:12] + "`",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("message lacks %q:\n%s", want, joined)
		}
	}
	if m.Metadata == nil || m.Metadata.EventType != slack.EventTypeApproval ||
		m.Metadata.EventPayload["remediation_id"] != "rem-1" || m.Metadata.EventPayload["decision_id"] != "dec-1" ||
		m.Metadata.EventPayload["digest"] != testDigest {
		t.Errorf("metadata = %+v", m.Metadata)
	}
	a.Validated, a.Validation = false, "tests not run"
	if joined := strings.Join(texts(t, slack.ApprovalMessage(a)), "\n"); !strings.Contains(joined, "⚠️ tests not run") {
		t.Errorf("unvalidated fix not flagged:\n%s", joined)
	}
}

func TestApprovalButtonsOnlyWhileAwaiting(t *testing.T) {
	for _, phase := range []string{"AwaitingApproval", "OpeningPR", "Completed", "Rejected", "Expired", "Failed", "Cancelled"} {
		a := approvalInfo(phase)
		a.Outcome = "rejected by <@U1>: not needed"
		a.Votes = []slack.VoteLine{{Actor: "bob", Approved: false, Channel: "slack", Text: "not needed"}}
		m := slack.ApprovalMessage(a)
		actions := blocksOfType(t, m, "actions")
		joined := strings.Join(texts(t, m), "\n")
		if phase != slack.PhaseAwaitingApproval {
			if len(actions) != 0 {
				t.Errorf("%s: buttons still present", phase)
			}
			if !strings.Contains(joined, phase+": acme/app") || !strings.Contains(joined, "rejected by &lt;@U1&gt;: not needed") {
				t.Errorf("%s: outcome not shown:\n%s", phase, joined)
			}
			continue
		}
		if len(actions) != 1 {
			t.Fatalf("%s: %d actions blocks", phase, len(actions))
		}
		buttons := actions[0]["elements"].([]any)
		if len(buttons) != 2 {
			t.Fatalf("%d buttons", len(buttons))
		}
		want := []struct{ id, style string }{{"remediation_approve", "primary"}, {"remediation_reject", "danger"}}
		for i, b := range buttons {
			btn := b.(slack.Block)
			if btn["action_id"] != want[i].id || btn["style"] != want[i].style || btn["value"] != "rem-1|dec-1|"+testDigest+"|89abcdef0123456789abcdef0123456789abcdef" {
				t.Errorf("button %d = %v", i, btn)
			}
			if _, ok := btn["confirm"]; ok {
				t.Errorf("button %d has a confirm dialog", i)
			}
		}
	}
}

func TestApprovalButtonsNeedAnUnambiguousValue(t *testing.T) {
	a := approvalInfo(slack.PhaseAwaitingApproval)
	a.DecisionID = "dec|evil"
	m := slack.ApprovalMessage(a)
	if len(blocksOfType(t, m, "actions")) != 0 {
		t.Fatal("a button was rendered for a value that cannot be split back")
	}
}

func TestReasonModal(t *testing.T) {
	v := slack.ReasonModal("rem-1|dec-1|" + testDigest)
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if slack.ReasonCallbackID != slacktest.ReasonCallbackID {
		t.Errorf("the fake's callback id %q differs", slacktest.ReasonCallbackID)
	}
	if raw["type"] != "modal" || raw["callback_id"] != slack.ReasonCallbackID || raw["private_metadata"] != "rem-1|dec-1|"+testDigest {
		t.Errorf("modal = %s", data)
	}
	for k, want := range map[string]string{"title": "Reject fix", "submit": "Reject", "close": "Cancel"} {
		if raw[k].(map[string]any)["text"] != want {
			t.Errorf("%s = %v", k, raw[k])
		}
	}
	blocks := raw["blocks"].([]any)
	in := blocks[0].(map[string]any)
	el := in["element"].(map[string]any)
	if len(blocks) != 1 || in["type"] != "input" || in["block_id"] != "reason" || el["action_id"] != "reason" ||
		el["type"] != "plain_text_input" || el["multiline"] != true || el["min_length"] != 1.0 || el["max_length"] != 2000.0 ||
		in["label"].(map[string]any)["text"] != "Why are you rejecting this fix?" {
		t.Errorf("input block = %v", in)
	}
}

func TestReasonFromSubmission(t *testing.T) {
	body := slacktest.ViewSubmission("U1", "rem-1|dec-1|"+testDigest, "  breaks the build \n")
	pm, reason, err := slack.ReasonFromSubmission(body)
	if err != nil || pm != "rem-1|dec-1|"+testDigest || reason != "breaks the build" {
		t.Fatalf("ReasonFromSubmission = %q, %q, %v", pm, reason, err)
	}
	// The JSON of the payload field works as well as the whole form.
	jsonPayload := `{"type":"view_submission","view":{"callback_id":"remediation_reject_reason","private_metadata":"x",` +
		`"state":{"values":{"reason":{"reason":{"type":"plain_text_input","value":"why"}}}}}}`
	if pm, reason, err := slack.ReasonFromSubmission([]byte(jsonPayload)); err != nil || pm != "x" || reason != "why" {
		t.Errorf("JSON payload: %q %q %v", pm, reason, err)
	}
	bad := map[string][]byte{
		"empty reason":   slacktest.ViewSubmission("U1", "x", "   "),
		"other callback": []byte(strings.Replace(jsonPayload, "remediation_reject_reason", "other", 1)),
		"block action":   slacktest.BlockAction("U1", "remediation_reject", "x", "t", "https://hooks.slack.com/actions/1"),
		"not JSON":       []byte("{nope"),
		"no payload":     []byte("a=b"),
	}
	for name, b := range bad {
		if _, _, err := slack.ReasonFromSubmission(b); !errors.Is(err, slack.ErrInvalidSubmission) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// TestFreeTextCannotStyleTheMessage: a failure, fix summary or outcome that
// spells mrkdwn styling (or a code span of its own) stays inside one code
// span, where Slack applies no formatting.
func TestFreeTextCannotStyleTheMessage(t *testing.T) {
	hostile := "*✅ approved by security* _ok_ ~x~ `break` out"
	m := slack.ApprovalMessage(slack.ApprovalInfo{RemediationID: "rem-1", DecisionID: "dec-1", Digest: strings.Repeat("a", 64),
		Repo: "acme/api", Failure: hostile, FixSummary: hostile, Phase: "Rejected", Outcome: hostile})
	raw, err := json.Marshal(m.Blocks)
	if err != nil {
		t.Fatal(err)
	}
	spans := 0
	for _, b := range m.Blocks {
		text, _ := b["text"].(map[string]any)
		s, _ := text["text"].(string)
		i := strings.Index(s, "*✅")
		if i < 0 {
			continue
		}
		spans++
		if i == 0 || s[i-1] != '`' || !strings.HasSuffix(s, "`") || strings.Count(s[i:len(s)-1], "`") != 0 {
			t.Errorf("free text outside one code span: %q", s)
		}
	}
	if spans != 3 {
		t.Fatalf("want the failure, fix summary and outcome each in a code span, found %d in %s", spans, raw)
	}
}
