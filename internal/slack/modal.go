package slack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// ReasonCallbackID identifies the reject-reason modal's submissions.
const ReasonCallbackID = "remediation_reject_reason"

// The reason input's block and action ids, where a submission carries it.
const (
	reasonBlockID  = "reason"
	reasonActionID = "reason"
	// MaxReasonLength is the longest reason the modal accepts.
	MaxReasonLength = 2000
	// maxPrivateMetadata is Slack's limit on a view's private_metadata.
	maxPrivateMetadata = 3000
)

// ReasonModal is the modal a Reject click opens: a rejection must say why.
// privateMetadata (the button's value) comes back with the submission, so
// the vote still names what was reviewed. A value longer than Slack's 3000
// characters is cut, which ReasonFromSubmission's caller will then refuse.
func ReasonModal(privateMetadata string) View {
	return View{
		"type":             "modal",
		"callback_id":      ReasonCallbackID,
		"title":            plainText("Reject fix"),
		"submit":           plainText("Reject"),
		"close":            plainText("Cancel"),
		"private_metadata": cutUTF8(privateMetadata, maxPrivateMetadata),
		"blocks": []any{Block{
			"type":     "input",
			"block_id": reasonBlockID,
			"label":    plainText("Why are you rejecting this fix?"),
			"element": map[string]any{
				"type":       "plain_text_input",
				"action_id":  reasonActionID,
				"multiline":  true,
				"min_length": 1,
				"max_length": MaxReasonLength,
			},
		}},
	}
}

// ReasonFromSubmission reads a view_submission of ReasonModal: the private
// metadata it was opened with and the reason typed. payload is the JSON of
// the "payload" form field, or the whole form-encoded request body. The
// reason is returned as typed (trimmed); escape it before rendering.
func ReasonFromSubmission(payload []byte) (privateMetadata, reason string, err error) {
	data := bytes.TrimSpace(payload)
	if len(data) > 0 && data[0] != '{' {
		form, perr := url.ParseQuery(string(data))
		if perr != nil || form.Get("payload") == "" {
			return "", "", fmt.Errorf("%w: no payload form field", ErrInvalidSubmission)
		}
		data = []byte(form.Get("payload"))
	}
	var p struct {
		Type string `json:"type"`
		View struct {
			CallbackID      string `json:"callback_id"`
			PrivateMetadata string `json:"private_metadata"`
			State           struct {
				Values map[string]map[string]struct {
					Type  string  `json:"type"`
					Value *string `json:"value"`
				} `json:"values"`
			} `json:"state"`
		} `json:"view"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return "", "", fmt.Errorf("%w: the payload is not JSON", ErrInvalidSubmission)
	}
	if p.Type != "view_submission" || p.View.CallbackID != ReasonCallbackID {
		return "", "", fmt.Errorf("%w: type %q, callback %q", ErrInvalidSubmission, cutUTF8(p.Type, 40), cutUTF8(p.View.CallbackID, 80))
	}
	v := p.View.State.Values[reasonBlockID][reasonActionID].Value
	if v == nil || strings.TrimSpace(*v) == "" {
		return "", "", fmt.Errorf("%w: the reason is empty", ErrInvalidSubmission)
	}
	reason = strings.TrimSpace(*v)
	if !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > MaxReasonLength {
		return "", "", fmt.Errorf("%w: the reason is not valid text of at most %d characters", ErrInvalidSubmission, MaxReasonLength)
	}
	return p.View.PrivateMetadata, reason, nil
}
