package slacktest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"remediator/internal/slack/slacktest"
	"remediator/internal/webhook"
)

const token = "xoxb-fake"

// call sends a raw request and returns status and body.
func call(t *testing.T, method, target, contentType, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func slackErr(t *testing.T, body string) string {
	t.Helper()
	var env struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatalf("not JSON: %q", body)
	}
	if env.OK {
		return ""
	}
	return env.Error
}

const jsonType = "application/json; charset=utf-8"

func TestWebAPIChecksTokenAndChannel(t *testing.T) {
	f := slacktest.New(t, token, "C1")
	post := f.APIURL() + "chat.postMessage"
	for _, c := range []struct {
		auth, body, want string
	}{
		{"", `{"channel":"C1","text":"x"}`, "not_authed"},
		{"xoxb-other", `{"channel":"C1","text":"x"}`, "invalid_auth"},
		{token, `{"channel":"C2","text":"x"}`, "channel_not_found"},
		{token, `{"channel":"C1"}`, "no_text"},
		{token, `{"channel":"C1","text":"x","blocks":[{"type":"header","text":{"type":"plain_text","text":"` + strings.Repeat("h", 151) + `"}}]}`, "invalid_blocks"},
		{token, `{"channel":"C1","text":"x","blocks":[{"type":"header","text":{"type":"mrkdwn","text":"h"}}]}`, "invalid_blocks"},
		{token, `{"channel":"C1","text":"x","metadata":{"event_payload":{}}}`, "invalid_metadata_format"},
		{token, `{"channel":"C1","text":"x"}`, ""},
	} {
		status, body := call(t, http.MethodPost, post, jsonType, c.auth, c.body)
		if status != http.StatusOK || slackErr(t, body) != c.want {
			t.Errorf("%s: %d %s, want %q", c.body, status, body, c.want)
		}
	}
	if _, body := call(t, http.MethodPost, f.APIURL()+"chat.delete", jsonType, token, `{}`); slackErr(t, body) != "unknown_method" {
		t.Errorf("unknown method: %s", body)
	}
	if n := len(f.Messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
	if n := len(f.Requests()); n != 9 {
		t.Errorf("%d requests recorded, want 9", n)
	}
}

func TestHistoryPagesNewestFirstWithMetadataOnRequest(t *testing.T) {
	f := slacktest.New(t, token, "C1")
	md := &slacktest.Metadata{EventType: "e", EventPayload: map[string]any{"remediation_id": "r"}}
	first := f.AddMessage(slacktest.Posted{Channel: "C1", TS: "1000.000001", Text: "old", Metadata: md})
	f.AddMessage(slacktest.Posted{Channel: "C1", TS: "2000.000001", Text: "mid"})
	f.AddMessage(slacktest.Posted{Channel: "C1", TS: "3000.000001", Text: "new"})
	f.AddMessage(slacktest.Posted{Channel: "C9", TS: "3000.000002", Text: "elsewhere"})
	f.SetHistoryPageSize(2)

	type page struct {
		Messages []struct {
			TS       string              `json:"ts"`
			Metadata *slacktest.Metadata `json:"metadata"`
		} `json:"messages"`
		HasMore          bool `json:"has_more"`
		ResponseMetadata struct {
			NextCursor string `json:"next_cursor"`
		} `json:"response_metadata"`
	}
	get := func(form url.Values) page {
		t.Helper()
		_, body := call(t, http.MethodPost, f.APIURL()+"conversations.history", "application/x-www-form-urlencoded", token, form.Encode())
		var p page
		if err := json.Unmarshal([]byte(body), &p); err != nil || slackErr(t, body) != "" {
			t.Fatalf("history: %s", body)
		}
		return p
	}
	p1 := get(url.Values{"channel": {"C1"}, "limit": {"200"}, "include_all_metadata": {"true"}})
	if len(p1.Messages) != 2 || p1.Messages[0].TS != "3000.000001" || !p1.HasMore || p1.ResponseMetadata.NextCursor == "" {
		t.Fatalf("page 1 = %+v", p1)
	}
	p2 := get(url.Values{"channel": {"C1"}, "include_all_metadata": {"true"}, "cursor": {p1.ResponseMetadata.NextCursor}})
	if len(p2.Messages) != 1 || p2.Messages[0].TS != first || p2.Messages[0].Metadata == nil || p2.HasMore {
		t.Fatalf("page 2 = %+v", p2)
	}
	noMeta := get(url.Values{"channel": {"C1"}, "oldest": {"1500"}})
	if len(noMeta.Messages) != 2 || noMeta.Messages[1].TS != "2000.000001" {
		t.Fatalf("oldest filter = %+v", noMeta)
	}
	withoutFlag := get(url.Values{"channel": {"C1"}, "oldest": {"999"}, "cursor": {p1.ResponseMetadata.NextCursor}})
	if len(withoutFlag.Messages) != 1 || withoutFlag.Messages[0].Metadata != nil {
		t.Errorf("metadata without include_all_metadata: %+v", withoutFlag)
	}
	// JSON is not accepted by conversations.history, as on Slack.
	if _, body := call(t, http.MethodPost, f.APIURL()+"conversations.history", jsonType, token, `{"channel":"C1"}`); slackErr(t, body) != "channel_not_found" {
		t.Errorf("JSON history: %s", body)
	}
}

func TestUpdateAndViews(t *testing.T) {
	f := slacktest.New(t, token, "C1")
	_, body := call(t, http.MethodPost, f.APIURL()+"chat.postMessage", jsonType, token, `{"channel":"C1","text":"a"}`)
	var posted struct{ Channel, TS string }
	if err := json.Unmarshal([]byte(body), &posted); err != nil || posted.Channel != "C1" || posted.TS == "" {
		t.Fatalf("post: %s", body)
	}
	if _, body := call(t, http.MethodPost, f.APIURL()+"chat.update", jsonType, token, `{"channel":"C1","ts":"`+posted.TS+`","text":"b"}`); slackErr(t, body) != "" {
		t.Fatalf("update: %s", body)
	}
	if _, body := call(t, http.MethodPost, f.APIURL()+"chat.update", jsonType, token, `{"channel":"C1","ts":"9.000009","text":"b"}`); slackErr(t, body) != "message_not_found" {
		t.Errorf("update of a missing message: %s", body)
	}
	if m := f.Messages(); len(m) != 1 || m[0].Text != "b" || m[0].Updates != 1 {
		t.Errorf("messages = %+v", m)
	}
	view := `{"type":"modal","title":{"type":"plain_text","text":"T"},"blocks":[]}`
	if _, body := call(t, http.MethodPost, f.APIURL()+"views.open", jsonType, token, `{"trigger_id":"","view":`+view+`}`); slackErr(t, body) != "invalid_trigger_id" {
		t.Errorf("empty trigger: %s", body)
	}
	if _, body := call(t, http.MethodPost, f.APIURL()+"views.open", jsonType, token, `{"trigger_id":"t1","view":`+view+`}`); slackErr(t, body) != "" {
		t.Errorf("views.open: %s", body)
	}
	if v := f.Views(); len(v) != 1 || v[0].TriggerID != "t1" {
		t.Errorf("views = %+v", v)
	}
}

func TestWebhookAndResponseURLsAnswerPlainText(t *testing.T) {
	f := slacktest.New(t, token, "C1")
	if status, body := call(t, http.MethodPost, f.WebhookURL(), jsonType, "", `{"text":"hi"}`); status != 200 || body != "ok" {
		t.Errorf("webhook: %d %q", status, body)
	}
	if status, body := call(t, http.MethodPost, f.WebhookURL(), jsonType, "", `{}`); status != 400 || body != "no_text" {
		t.Errorf("webhook without text: %d %q", status, body)
	}
	if status, body := call(t, http.MethodPost, f.WebhookURL(), jsonType, "", `{nope`); status != 400 || body != "invalid_payload" {
		t.Errorf("webhook with bad JSON: %d %q", status, body)
	}
	u := f.NewResponseURL()
	if !strings.HasPrefix(u, f.URL()+"/actions/") {
		t.Errorf("response URL %q is not on the fake", u)
	}
	if status, body := call(t, http.MethodPost, u, jsonType, "", `{"text":"done","replace_original":true}`); status != 200 || body != "ok" {
		t.Errorf("response URL: %d %q", status, body)
	}
	if status, _ := call(t, http.MethodPost, f.URL()+"/actions/999", jsonType, "", `{"text":"x"}`); status != 404 {
		t.Errorf("unissued response URL: %d", status)
	}
	if m := f.Messages(); len(m) != 1 || !m[0].ViaWebhook || m[0].Channel != "C1" {
		t.Errorf("messages = %+v", m)
	}
	if r := f.Responses(); len(r) != 1 || r[0].Text != "done" || !r[0].ReplaceOriginal {
		t.Errorf("responses = %+v", r)
	}
}

func TestFailNext(t *testing.T) {
	f := slacktest.New(t, token, "C1")
	f.FailNext(2, http.StatusTooManyRequests, `{"ok":false,"error":"ratelimited"}`, http.Header{"Retry-After": {"3"}})
	for range 2 {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, f.WebhookURL(), strings.NewReader(`{"text":"x"}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" {
			t.Errorf("injected failure: %d %v", resp.StatusCode, resp.Header)
		}
	}
	if status, _ := call(t, http.MethodPost, f.WebhookURL(), jsonType, "", `{"text":"x"}`); status != 200 {
		t.Errorf("third request: %d", status)
	}
	if n, m := len(f.Requests()), len(f.Messages()); n != 3 || m != 1 {
		t.Errorf("%d requests, %d messages", n, m)
	}
}

func TestInteractionPayloadsVerify(t *testing.T) {
	secret := []byte("signing-secret")
	body := slacktest.BlockAction("U1", "remediation_approve", "rem|dec|dig", "trig-1", "https://hooks.slack.com/actions/1")
	ts, sig := slacktest.Sign(secret, body, time.Now())
	if err := webhook.VerifySlack(secret, body, ts, sig, time.Now()); err != nil {
		t.Fatalf("VerifySlack: %v", err)
	}
	if err := webhook.VerifySlack([]byte("other"), body, ts, sig, time.Now()); err == nil {
		t.Error("a signature verified with another secret")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		t.Fatal(err)
	}
	var act struct {
		Type        string `json:"type"`
		TriggerID   string `json:"trigger_id"`
		ResponseURL string `json:"response_url"`
		User        struct{ ID string }
		Actions     []struct {
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
		}
	}
	if err := json.Unmarshal([]byte(form.Get("payload")), &act); err != nil {
		t.Fatal(err)
	}
	if act.Type != "block_actions" || act.TriggerID != "trig-1" || act.User.ID != "U1" || act.ResponseURL == "" ||
		len(act.Actions) != 1 || act.Actions[0].ActionID != "remediation_approve" || act.Actions[0].Value != "rem|dec|dig" {
		t.Errorf("block action = %+v", act)
	}

	sub := slacktest.ViewSubmission("U2", "rem|dec|dig", "no")
	form, err = url.ParseQuery(string(sub))
	if err != nil {
		t.Fatal(err)
	}
	var vs struct {
		Type string `json:"type"`
		View struct {
			CallbackID      string `json:"callback_id"`
			PrivateMetadata string `json:"private_metadata"`
		} `json:"view"`
	}
	if err := json.Unmarshal([]byte(form.Get("payload")), &vs); err != nil || vs.Type != "view_submission" ||
		vs.View.CallbackID != slacktest.ReasonCallbackID || vs.View.PrivateMetadata != "rem|dec|dig" {
		t.Errorf("view submission = %+v, %v", vs, err)
	}
}
