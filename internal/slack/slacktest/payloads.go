package slacktest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strconv"
	"time"
)

// Identities the interaction payloads carry.
const (
	TeamID    = "T0SLACKTEST"
	AppID     = "A0SLACKTEST"
	ChannelID = "C0SLACKTEST"
	// ReasonCallbackID is the reject-reason modal's callback id, as
	// internal/slack's ReasonModal sets it.
	ReasonCallbackID = "remediation_reject_reason"
)

// BlockAction is the form-encoded body Slack POSTs to the interactivity
// URL when userID clicks the button actionID carrying value.
func BlockAction(userID, actionID, value, triggerID, responseURL string) []byte {
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10) + ".000100"
	payload := map[string]any{
		"type":       "block_actions",
		"api_app_id": AppID,
		"token":      "verification-token-unused",
		"trigger_id": triggerID,
		"team":       map[string]any{"id": TeamID, "domain": "slacktest"},
		"user":       map[string]any{"id": userID, "username": userID, "name": userID, "team_id": TeamID},
		"container": map[string]any{
			"type": "message", "message_ts": ts, "channel_id": ChannelID, "is_ephemeral": false,
		},
		"channel":      map[string]any{"id": ChannelID, "name": "remediations"},
		"message":      map[string]any{"type": "message", "ts": ts, "bot_id": "B0SLACKTEST", "text": ""},
		"response_url": responseURL,
		"actions": []any{map[string]any{
			"type":      "button",
			"action_id": actionID,
			"block_id":  "remediation_vote",
			"value":     value,
			"text":      map[string]any{"type": "plain_text", "text": actionID, "emoji": true},
			"action_ts": strconv.FormatInt(now.Unix(), 10) + ".000200",
		}},
	}
	return formPayload(payload)
}

// ViewSubmission is the form-encoded body Slack POSTs when userID submits
// the reject-reason modal opened with privateMetadata.
func ViewSubmission(userID, privateMetadata, reason string) []byte {
	payload := map[string]any{
		"type":       "view_submission",
		"api_app_id": AppID,
		"token":      "verification-token-unused",
		"trigger_id": "trigger-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		"team":       map[string]any{"id": TeamID, "domain": "slacktest"},
		"user":       map[string]any{"id": userID, "username": userID, "name": userID, "team_id": TeamID},
		"view": map[string]any{
			"id":               "V0SLACKTEST",
			"team_id":          TeamID,
			"type":             "modal",
			"callback_id":      ReasonCallbackID,
			"private_metadata": privateMetadata,
			"title":            map[string]any{"type": "plain_text", "text": "Reject fix"},
			"state": map[string]any{"values": map[string]any{
				"reason": map[string]any{
					"reason": map[string]any{"type": "plain_text_input", "value": reason},
				},
			}},
		},
		"response_urls": []any{},
	}
	return formPayload(payload)
}

func formPayload(payload map[string]any) []byte {
	// Maps of strings and slices always marshal.
	data, _ := json.Marshal(payload)
	return []byte(url.Values{"payload": {string(data)}}.Encode())
}

// Sign signs body with Slack's v0 scheme, returning the values of the
// X-Slack-Request-Timestamp and X-Slack-Signature headers.
func Sign(secret []byte, body []byte, now time.Time) (timestampHeader, signatureHeader string) {
	ts := strconv.FormatInt(now.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("v0:" + ts + ":"))
	mac.Write(body)
	return ts, "v0=" + hex.EncodeToString(mac.Sum(nil))
}
