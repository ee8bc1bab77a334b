package slacktest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// webAPI dispatches a Web API method after Slack's checks: the bot token
// (as a Bearer header or a token form field) first.
func (s *Server) webAPI(w http.ResponseWriter, r *http.Request, method string, body []byte) {
	form := url.Values{}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		form, _ = url.ParseQuery(string(body))
	}
	for k, v := range r.URL.Query() {
		if _, ok := form[k]; !ok {
			form[k] = v
		}
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		token = form.Get("token")
	}
	switch {
	case token == "":
		slackError(w, "not_authed")
		return
	case token != s.token:
		slackError(w, "invalid_auth")
		return
	}
	switch method {
	case "chat.postMessage":
		s.postMessage(w, r, body)
	case "chat.update":
		s.update(w, r, body)
	case "conversations.history":
		s.history(w, form)
	case "views.open":
		s.openView(w, r, body)
	default:
		slackError(w, "unknown_method")
	}
}

// decodeJSON reads a JSON-bodied write method's arguments; Slack wants the
// JSON content type for them.
func decodeJSON(w http.ResponseWriter, r *http.Request, body []byte) (outgoing, bool) {
	var o outgoing
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		slackError(w, "invalid_form_data")
		return o, false
	}
	if err := json.Unmarshal(body, &o); err != nil {
		slackError(w, "invalid_json")
		return o, false
	}
	return o, true
}

func (s *Server) knows(channel string) bool { return slices.Contains(s.channels, channel) }

func (s *Server) postMessage(w http.ResponseWriter, r *http.Request, body []byte) {
	o, ok := decodeJSON(w, r, body)
	if !ok {
		return
	}
	if !s.knows(o.Channel) {
		slackError(w, "channel_not_found")
		return
	}
	p, code := o.posted()
	if code != "" {
		slackError(w, code)
		return
	}
	if p.ThreadTS != "" && !slices.ContainsFunc(s.messages, func(m *Posted) bool { return m.Channel == p.Channel && m.TS == p.ThreadTS }) {
		slackError(w, "thread_not_found")
		return
	}
	p.TS = s.nextTS()
	p.ReplaceOriginal = false
	s.messages = append(s.messages, &p)
	writeJSON(w, map[string]any{"ok": true, "channel": p.Channel, "ts": p.TS, "message": messageJSON(&p)})
}

func (s *Server) update(w http.ResponseWriter, r *http.Request, body []byte) {
	o, ok := decodeJSON(w, r, body)
	if !ok {
		return
	}
	if !s.knows(o.Channel) {
		slackError(w, "channel_not_found")
		return
	}
	var target *Posted
	for _, m := range s.messages {
		if m.Channel == o.Channel && m.TS == o.TS {
			target = m
		}
	}
	if target == nil || o.TS == "" {
		slackError(w, "message_not_found")
		return
	}
	if target.ViaWebhook {
		slackError(w, "cant_update_message")
		return
	}
	p, code := o.posted()
	if code != "" {
		slackError(w, code)
		return
	}
	target.Text, target.Blocks = p.Text, p.Blocks
	if p.Metadata != nil {
		target.Metadata = p.Metadata
	}
	target.Updates++
	writeJSON(w, map[string]any{"ok": true, "channel": target.Channel, "ts": target.TS, "text": target.Text, "message": messageJSON(target)})
}

// history serves conversations.history: newest first, from oldest on,
// metadata only with include_all_metadata, cursor pagination.
func (s *Server) history(w http.ResponseWriter, form url.Values) {
	channel := form.Get("channel")
	if !s.knows(channel) {
		slackError(w, "channel_not_found")
		return
	}
	limit := 100
	if v := form.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			slackError(w, "invalid_limit")
			return
		}
		if n > 0 {
			limit = min(n, 999)
		}
	}
	limit = min(limit, s.pageSize)
	offset := 0
	if c := form.Get("cursor"); c != "" {
		raw, err := base64.StdEncoding.DecodeString(c)
		n, aerr := strconv.Atoi(strings.TrimPrefix(string(raw), "offset:"))
		if err != nil || aerr != nil || n < 0 {
			slackError(w, "invalid_cursor")
			return
		}
		offset = n
	}
	oldest := form.Get("oldest")
	withMetadata := form.Get("include_all_metadata") == "true" || form.Get("include_all_metadata") == "1"
	var in []*Posted
	for _, m := range s.messages {
		if m.Channel == channel && (oldest == "" || compareTS(m.TS, oldest) > 0) {
			in = append(in, m)
		}
	}
	slices.SortStableFunc(in, func(a, b *Posted) int { return compareTS(b.TS, a.TS) })
	page := []any{}
	end := min(offset+limit, len(in))
	for i := min(offset, len(in)); i < end; i++ {
		m := messageJSON(in[i])
		if !withMetadata {
			delete(m, "metadata")
		}
		page = append(page, m)
	}
	more := end < len(in)
	next := ""
	if more {
		next = base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("offset:%d", end)))
	}
	writeJSON(w, map[string]any{
		"ok": true, "messages": page, "has_more": more, "pin_count": 0,
		"response_metadata": map[string]any{"next_cursor": next},
	})
}

func (s *Server) openView(w http.ResponseWriter, r *http.Request, body []byte) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		slackError(w, "invalid_form_data")
		return
	}
	var req struct {
		TriggerID string          `json:"trigger_id"`
		View      json.RawMessage `json:"view"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		slackError(w, "invalid_json")
		return
	}
	if req.TriggerID == "" {
		slackError(w, "invalid_trigger_id")
		return
	}
	var view map[string]any
	if json.Unmarshal(req.View, &view) != nil || checkView(view) != nil {
		slackError(w, "invalid_arguments")
		return
	}
	s.views = append(s.views, OpenedView{TriggerID: req.TriggerID, View: slices.Clone(req.View)})
	view["id"] = fmt.Sprintf("V%06d", len(s.views))
	writeJSON(w, map[string]any{"ok": true, "view": view})
}

// messageJSON is a message as the Web API returns it.
func messageJSON(p *Posted) map[string]any {
	m := map[string]any{"type": "message", "ts": p.TS, "text": p.Text}
	if len(p.Blocks) > 0 {
		m["blocks"] = p.Blocks
	}
	if p.ViaWebhook {
		m["subtype"] = "bot_message"
	} else {
		m["bot_id"] = "B0SLACKTEST"
		m["app_id"] = "A0SLACKTEST"
	}
	if p.Metadata != nil {
		m["metadata"] = p.Metadata
	}
	return m
}
