// Package slacktest is a fake Slack for tests: one httptest server that
// speaks Slack's wire format for what the service uses — the Web API under
// /api/ (chat.postMessage, chat.update, conversations.history with message
// metadata, views.open), an incoming webhook at /hooks/webhook and
// interaction response URLs at /actions/<n> — and builds the signed
// interaction payloads Slack sends back. It records everything it receives
// and can answer the next requests with an injected failure.
//
// Like Slack, the Web API answers HTTP 200 with {"ok":false,"error":…} for
// most failures (invalid_auth for a wrong token, channel_not_found for an
// unknown channel, invalid_blocks for blocks over Slack's limits), while the
// webhook and response URLs answer plain text: "ok", or an error status with
// a code.
//
// Only tests import this package.
package slacktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Paths the fake serves.
const (
	apiPrefix     = "/api/"
	webhookPath   = "/hooks/webhook"
	actionsPrefix = "/actions/"
)

// Server is the fake. All methods are safe for concurrent use.
type Server struct {
	srv *httptest.Server

	mu        sync.Mutex
	token     string
	channels  []string
	messages  []*Posted
	responses []Posted
	views     []OpenedView
	requests  []Request
	failures  []failure
	issued    map[string]bool // response URL paths handed out
	pageSize  int             // cap on conversations.history's limit
	seq       int
	base      int64 // the seconds part of new message timestamps
}

// Posted is a message as the fake holds it.
type Posted struct {
	Channel         string
	TS              string
	Text            string
	Blocks          json.RawMessage // as posted; null when none
	Metadata        *Metadata
	Updates         int  // chat.update calls that changed it
	ViaWebhook      bool // posted through the incoming webhook
	ReplaceOriginal bool // for response URL posts: replace_original
	URL             string
	ThreadTS        string // a reply in the thread of this message
	ReplyBroadcast  bool   // the reply is also shown in the channel
}

// Metadata is Slack's message metadata.
type Metadata struct {
	EventType    string         `json:"event_type"`
	EventPayload map[string]any `json:"event_payload"`
}

// OpenedView is a views.open call that succeeded.
type OpenedView struct {
	TriggerID string
	View      json.RawMessage
}

// Request is one request the fake received, failed ones included.
type Request struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
}

type failure struct {
	status int
	body   string
	header http.Header
}

// New starts a fake that accepts botToken and knows the given channel IDs
// (the incoming webhook posts into the first); it stops when the test ends.
func New(t testing.TB, botToken string, channels ...string) *Server {
	t.Helper()
	s := &Server{
		token:    botToken,
		channels: append([]string(nil), channels...),
		issued:   map[string]bool{},
		pageSize: 1000,
		base:     time.Now().Unix(),
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the server's base URL.
func (s *Server) URL() string { return s.srv.URL }

// APIURL is the Web API base, ending in "/api/" (SLACK_API_URL).
func (s *Server) APIURL() string { return s.srv.URL + apiPrefix }

// WebhookURL is the incoming webhook (KLYNX_SLACK_WEBHOOK_URL).
func (s *Server) WebhookURL() string { return s.srv.URL + webhookPath }

// NewResponseURL hands out a fresh response_url on the fake's host, as
// Slack puts one in every interaction payload.
func (s *Server) NewResponseURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	p := actionsPrefix + strconv.Itoa(s.seq)
	s.issued[p] = true
	return s.srv.URL + p
}

// SetHistoryPageSize caps how many messages one conversations.history page
// returns, whatever limit the client asks for, to exercise pagination.
func (s *Server) SetHistoryPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageSize = max(n, 1)
}

// AddMessage puts a message into a channel as if it had been posted
// earlier (TS chooses when; empty means now) and returns its ts.
func (s *Server) AddMessage(p Posted) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.TS == "" {
		p.TS = s.nextTS()
	}
	s.messages = append(s.messages, &p)
	slices.SortStableFunc(s.messages, func(a, b *Posted) int { return compareTS(a.TS, b.TS) })
	return p.TS
}

// Messages returns copies of every message in the fake's channels, oldest
// first.
func (s *Server) Messages() []Posted {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Posted, 0, len(s.messages))
	for _, m := range s.messages {
		out = append(out, copyPosted(*m))
	}
	return out
}

// Responses returns what was posted to response URLs, in order.
func (s *Server) Responses() []Posted {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Posted, 0, len(s.responses))
	for _, m := range s.responses {
		out = append(out, copyPosted(m))
	}
	return out
}

// Views returns the views opened, in order.
func (s *Server) Views() []OpenedView {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]OpenedView, 0, len(s.views))
	for _, v := range s.views {
		out = append(out, OpenedView{TriggerID: v.TriggerID, View: slices.Clone(v.View)})
	}
	return out
}

// Requests returns every request received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, 0, len(s.requests))
	for _, r := range s.requests {
		out = append(out, Request{Method: r.Method, Path: r.Path, Query: r.Query, Header: r.Header.Clone(), Body: slices.Clone(r.Body)})
	}
	return out
}

// FailNext answers the next n requests, whatever their path, with status,
// body and header instead of serving them.
func (s *Server) FailNext(n int, status int, body string, header http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, failure{status: status, body: body, header: header.Clone()})
	}
}

func copyPosted(p Posted) Posted {
	p.Blocks = slices.Clone(p.Blocks)
	if p.Metadata != nil {
		md := *p.Metadata
		md.EventPayload = make(map[string]any, len(p.Metadata.EventPayload))
		for k, v := range p.Metadata.EventPayload {
			md.EventPayload[k] = v
		}
		p.Metadata = &md
	}
	return p
}

// maxRequest is the largest body the fake reads; Slack refuses far smaller.
const maxRequest = 4 << 20

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequest))
	if err != nil {
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	if len(s.failures) > 0 {
		f := s.failures[0]
		s.failures = s.failures[1:]
		for k, v := range f.header {
			w.Header()[k] = slices.Clone(v)
		}
		w.WriteHeader(f.status)
		_, _ = io.WriteString(w, f.body)
		return
	}
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, apiPrefix):
		s.webAPI(w, r, strings.TrimPrefix(p, apiPrefix), body)
	case p == webhookPath:
		s.webhook(w, r, body)
	case strings.HasPrefix(p, actionsPrefix):
		s.respond(w, r, body)
	default:
		http.NotFound(w, r)
	}
}

// webhook plays an incoming webhook: JSON {text, blocks} into the first
// channel, plain-text answers.
func (s *Server) webhook(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost {
		plain(w, http.StatusMethodNotAllowed, "invalid_method")
		return
	}
	if len(s.channels) == 0 {
		plain(w, http.StatusNotFound, "channel_not_found")
		return
	}
	msg, code := parseOutgoing(r, body)
	if code != "" {
		plain(w, http.StatusBadRequest, code)
		return
	}
	msg.Channel, msg.TS, msg.ViaWebhook, msg.Metadata = s.channels[0], s.nextTS(), true, nil
	s.messages = append(s.messages, &msg)
	plain(w, http.StatusOK, "ok")
}

// respond plays a response_url: only URLs handed out by NewResponseURL
// exist.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, body []byte) {
	if !s.issued[r.URL.Path] {
		plain(w, http.StatusNotFound, "expired_url")
		return
	}
	if r.Method != http.MethodPost {
		plain(w, http.StatusMethodNotAllowed, "invalid_method")
		return
	}
	msg, code := parseOutgoing(r, body)
	if code != "" {
		plain(w, http.StatusBadRequest, code)
		return
	}
	msg.URL = s.srv.URL + r.URL.Path
	msg.Metadata = nil
	s.responses = append(s.responses, msg)
	plain(w, http.StatusOK, "ok")
}

// outgoing is the JSON body of webhook, response URL and chat methods.
type outgoing struct {
	Channel         string          `json:"channel"`
	TS              string          `json:"ts"`
	Text            *string         `json:"text"`
	Blocks          json.RawMessage `json:"blocks"`
	Metadata        json.RawMessage `json:"metadata"`
	ReplaceOriginal bool            `json:"replace_original"`
	ThreadTS        string          `json:"thread_ts"`
	ReplyBroadcast  bool            `json:"reply_broadcast"`
}

// parseOutgoing decodes and checks a message body; the code is Slack's
// error string when it is refused.
func parseOutgoing(r *http.Request, body []byte) (Posted, string) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		return Posted{}, "invalid_payload"
	}
	var o outgoing
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&o); err != nil {
		return Posted{}, "invalid_payload"
	}
	return o.posted()
}

func (o outgoing) posted() (Posted, string) {
	p := Posted{Channel: o.Channel, TS: o.TS, ReplaceOriginal: o.ReplaceOriginal, ThreadTS: o.ThreadTS, ReplyBroadcast: o.ReplyBroadcast}
	hasBlocks := len(o.Blocks) > 0 && string(o.Blocks) != "null"
	if (o.Text == nil || *o.Text == "") && !hasBlocks {
		return p, "no_text"
	}
	if o.Text != nil {
		if len(*o.Text) > 40000 {
			return p, "msg_too_long"
		}
		p.Text = *o.Text
	}
	if hasBlocks {
		var blocks []map[string]any
		if json.Unmarshal(o.Blocks, &blocks) != nil || checkBlocks(blocks, 50) != nil {
			return p, "invalid_blocks"
		}
		p.Blocks = slices.Clone(o.Blocks)
	}
	if len(o.Metadata) > 0 && string(o.Metadata) != "null" {
		var md Metadata
		if json.Unmarshal(o.Metadata, &md) != nil || md.EventType == "" {
			return p, "invalid_metadata_format"
		}
		p.Metadata = &md
	}
	return p, ""
}

// nextTS is a new message timestamp, increasing like Slack's.
func (s *Server) nextTS() string {
	s.seq++
	return fmt.Sprintf("%d.%06d", s.base, s.seq)
}

// compareTS orders Slack timestamps ("seconds.micros").
func compareTS(a, b string) int {
	as, au := splitTS(a)
	bs, bu := splitTS(b)
	if as != bs {
		return cmpInt(as, bs)
	}
	return cmpInt(au, bu)
}

func splitTS(ts string) (int64, int64) {
	sec, frac, _ := strings.Cut(ts, ".")
	s, _ := strconv.ParseInt(sec, 10, 64)
	frac = (frac + "000000")[:6]
	u, _ := strconv.ParseInt(frac, 10, 64)
	return s, u
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func plain(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, text)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

func slackError(w http.ResponseWriter, code string) {
	writeJSON(w, map[string]any{"ok": false, "error": code})
}
