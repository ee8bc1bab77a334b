// Package slack posts the approval request of a remediation to Slack, keeps
// that one message current as votes arrive and when the remediation ends,
// answers interactions through their response_url and opens the modal that
// asks a rejecting approver for a reason.
//
// Two transports are supported. An incoming webhook can only post: Slack
// returns no message id, so the message can neither be updated nor found
// again. A bot token (with the chat:write and channels:history or
// groups:history scopes) posts with metadata naming the remediation, finds
// that message again before posting (so a retried activity does not post
// twice) and updates it in place.
package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"remediator/internal/correlation"
	"remediator/internal/outbound"
	"remediator/internal/telemetry"
)

const (
	// DefaultAPIURL is Slack's Web API base.
	DefaultAPIURL = "https://slack.com/api/"
	// responseHost is the host of the response_url Slack hands out in
	// interaction payloads.
	responseHost = "hooks.slack.com"

	defaultTimeout = 15 * time.Second
	// maxBody caps what is read of any answer; Slack's are a few KiB.
	maxBody = 1 << 20

	// historyWindow, historyPageSize and historyPages bound the search for
	// a message posted by an earlier attempt: a remediation waits for
	// approval days, not months, and the search must stay cheap on a busy
	// channel.
	historyWindow   = 30 * 24 * time.Hour
	historyPageSize = 200
	historyPages    = 5
)

// Methods and pseudo-methods named in errors.
const (
	methodWebhook  = "webhook"
	methodResponse = "response_url"
)

// Config says how to reach Slack. Set WebhookURL, or BotToken with Channel,
// or both (the bot token is then used for everything).
type Config struct {
	// WebhookURL is an incoming webhook (KLYNX_SLACK_WEBHOOK_URL). Its path
	// is a credential and never appears in errors.
	WebhookURL string
	// BotToken (SLACK_BOT_TOKEN, "xoxb-…") and Channel (SLACK_CHANNEL) are
	// required together. Channel is the channel's ID ("C0123ABCD"), not its
	// name: conversations.history, which makes Post idempotent, accepts
	// only IDs.
	BotToken, Channel string
	// APIURL is the Web API base (SLACK_API_URL); it defaults to
	// DefaultAPIURL. Response URLs on its host are trusted too, so a fake
	// Slack can serve them in tests.
	APIURL string
	// HTTPClient is the guarded client every request goes through (built by
	// outbound.NewClient in production); nil means a plain client that
	// still propagates correlation ids. Redirects are never followed.
	HTTPClient *http.Client
	// Timeout bounds each request; 0 means 15s.
	Timeout time.Duration
}

// Client talks to Slack. It holds no mutable state and is safe for
// concurrent use.
type Client struct {
	hc      http.Client
	timeout time.Duration
	webhook string   // "" when not configured
	token   string   // "" when not configured
	channel string   // with token
	api     *url.URL // Web API base, ending in "/"
}

// channelID is the shape of a Slack conversation ID: public (C), private
// (G) or direct (D) conversations.
var channelID = regexp.MustCompile(`^[CGD][A-Z0-9]{2,40}$`)

// New checks the configuration now rather than on the first call, so a
// malformed URL or a half-configured bot fails the process at start.
func New(cfg Config) (*Client, error) {
	c := &Client{timeout: cfg.Timeout, token: cfg.BotToken, channel: cfg.Channel}
	if c.timeout <= 0 {
		c.timeout = defaultTimeout
	}
	switch {
	case cfg.WebhookURL == "" && cfg.BotToken == "" && cfg.Channel == "":
		return nil, errors.New("slack: set WebhookURL, or BotToken with Channel")
	case (cfg.BotToken == "") != (cfg.Channel == ""):
		return nil, errors.New("slack: BotToken and Channel are required together")
	case cfg.Channel != "" && !channelID.MatchString(cfg.Channel):
		return nil, errors.New("slack: Channel must be a channel ID such as C0123ABCD, not a name")
	case strings.ContainsFunc(cfg.BotToken, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return nil, errors.New("slack: BotToken contains whitespace or control characters")
	}
	if cfg.WebhookURL != "" {
		if _, err := checkURL(cfg.WebhookURL); err != nil {
			return nil, fmt.Errorf("slack: WebhookURL: %w", err)
		}
		c.webhook = cfg.WebhookURL
	}
	raw := cfg.APIURL
	if raw == "" {
		raw = DefaultAPIURL
	}
	api, err := checkURL(raw)
	if err != nil {
		return nil, fmt.Errorf("slack: APIURL: %w", err)
	}
	api.RawQuery, api.Fragment = "", ""
	if !strings.HasSuffix(api.Path, "/") {
		api.Path += "/"
	}
	c.api = api
	if cfg.HTTPClient != nil {
		c.hc = *cfg.HTTPClient
	} else {
		c.hc = http.Client{Timeout: defaultTimeout, Transport: telemetry.HTTPTransport(correlation.Transport{})}
	}
	// A POST is not replayed across a redirect and the token or the
	// webhook path must not follow one: answers are taken as they come.
	c.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c, nil
}

// checkURL accepts absolute https URLs without credentials, and http only
// for a loopback host (a fake in tests). The URL is never quoted in errors.
func checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Opaque != "" {
		return nil, errors.New("must be an absolute URL without credentials")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return nil, errors.New("must be https (http only for a loopback host)")
	}
	return u, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CanUpdate reports whether messages can be updated (and found again),
// which needs the bot token.
func (c *Client) CanUpdate() bool { return c.token != "" }

// CanOpenViews reports whether modals can be opened, which needs the bot
// token.
func (c *Client) CanOpenViews() bool { return c.token != "" }

// MessageRef names a posted message, for Update. It is empty for messages
// posted through the incoming webhook.
type MessageRef struct {
	Channel string `json:"channel"`
	TS      string `json:"ts"`
}

// Message is what is posted: the fallback text Slack shows in
// notifications, the Block Kit blocks and the metadata that lets Post find
// the message again.
type Message struct {
	Text     string    `json:"text"`
	Blocks   []Block   `json:"blocks,omitempty"`
	Metadata *Metadata `json:"metadata,omitempty"`
}

// Metadata is Slack's message metadata; Post matches on EventType and the
// "remediation_id" of EventPayload.
type Metadata struct {
	EventType    string         `json:"event_type"`
	EventPayload map[string]any `json:"event_payload"`
}

// Block is one Block Kit block as its JSON object.
type Block = map[string]any

// View is a Block Kit view (a modal) as its JSON object.
type View = map[string]any

// Post posts m and returns where it went.
//
// With a bot token it first looks for a message an earlier attempt posted:
// conversations.history over the last 30 days (at most 5 pages), for a
// message whose metadata has m.Metadata's event type and remediation_id.
// If one exists its ref is returned and nothing is posted, which makes
// Post safe to retry. Without metadata naming a remediation it just posts.
//
// With only the incoming webhook it posts and returns an empty ref. No
// search is possible there, so a retry after an answer was lost (a timeout
// after Slack accepted the message) can post the message twice.
func (c *Client) Post(ctx context.Context, m Message) (MessageRef, error) {
	if c.token == "" {
		body := struct {
			Text   string  `json:"text"`
			Blocks []Block `json:"blocks,omitempty"`
		}{m.Text, m.Blocks}
		return MessageRef{}, c.hook(ctx, "post", methodWebhook, c.webhook, body)
	}
	if key, ok := remediationKey(m.Metadata); ok {
		ref, found, err := c.find(ctx, m.Metadata.EventType, key)
		if err != nil || found {
			return ref, err
		}
	}
	var out struct {
		Channel string `json:"channel"`
		TS      string `json:"ts"`
	}
	body := postBody{Channel: c.channel, Text: m.Text, Blocks: m.Blocks, Metadata: m.Metadata}
	if err := c.call(ctx, "post", "chat.postMessage", jsonBody(body), &out); err != nil {
		return MessageRef{}, err
	}
	if out.Channel == "" || out.TS == "" {
		return MessageRef{}, &APIError{Op: "post", Method: "chat.postMessage", Status: http.StatusBadGateway,
			Message: "the answer names no channel or ts", Err: ErrMalformedResponse}
	}
	return MessageRef{Channel: out.Channel, TS: out.TS}, nil
}

type postBody struct {
	Channel  string    `json:"channel"`
	TS       string    `json:"ts,omitempty"`
	Text     string    `json:"text"`
	Blocks   []Block   `json:"blocks,omitempty"`
	Metadata *Metadata `json:"metadata,omitempty"`
}

// remediationKey is the remediation_id Post searches for, if m names one.
func remediationKey(md *Metadata) (string, bool) {
	if md == nil || md.EventType == "" {
		return "", false
	}
	v, ok := md.EventPayload["remediation_id"]
	if !ok || v == nil {
		return "", false
	}
	s := fmt.Sprint(v)
	return s, s != ""
}

// find pages through the channel's recent history for the message that
// carries eventType and remediation id key.
func (c *Client) find(ctx context.Context, eventType, key string) (MessageRef, bool, error) {
	oldest := time.Now().Add(-historyWindow).Unix()
	cursor := ""
	for range historyPages {
		form := url.Values{
			"channel":              {c.channel},
			"oldest":               {fmt.Sprintf("%d.000000", oldest)},
			"limit":                {fmt.Sprint(historyPageSize)},
			"include_all_metadata": {"true"},
		}
		if cursor != "" {
			form.Set("cursor", cursor)
		}
		var out historyPage
		if err := c.call(ctx, "find", "conversations.history", formBody(form), &out); err != nil {
			return MessageRef{}, false, err
		}
		for _, msg := range out.Messages {
			if msg.Metadata == nil || msg.Metadata.EventType != eventType || msg.TS == "" {
				continue
			}
			if v, ok := msg.Metadata.EventPayload["remediation_id"]; ok && v != nil && fmt.Sprint(v) == key {
				return MessageRef{Channel: c.channel, TS: msg.TS}, true, nil
			}
		}
		cursor = out.ResponseMetadata.NextCursor
		if !out.HasMore || cursor == "" {
			break
		}
	}
	return MessageRef{}, false, nil
}

type historyPage struct {
	Messages []struct {
		TS       string    `json:"ts"`
		Text     string    `json:"text"`
		Metadata *Metadata `json:"metadata"`
	} `json:"messages"`
	HasMore          bool `json:"has_more"`
	ResponseMetadata struct {
		NextCursor string `json:"next_cursor"`
	} `json:"response_metadata"`
}

// Announce posts a reminder or an escalation: in the approval message's
// thread (and to the channel) with a bot token, as a new message through an
// incoming webhook. The text is escaped.
func (c *Client) Announce(ctx context.Context, ref MessageRef, text, mention string) error {
	text = AnnouncementText(text, mention)
	if c.token == "" {
		return c.hook(ctx, "announce", methodWebhook, c.webhook, struct {
			Text string `json:"text"`
		}{text})
	}
	channel := ref.Channel
	if channel == "" {
		channel = c.channel
	}
	body := struct {
		Channel        string `json:"channel"`
		Text           string `json:"text"`
		ThreadTS       string `json:"thread_ts,omitempty"`
		ReplyBroadcast bool   `json:"reply_broadcast,omitempty"`
	}{Channel: channel, Text: text, ThreadTS: ref.TS, ReplyBroadcast: ref.TS != ""}
	var out struct {
		TS string `json:"ts"`
	}
	return c.call(ctx, "announce", "chat.postMessage", jsonBody(body), &out)
}

// Update replaces the text, blocks (and metadata, when m has some) of a
// message posted with the bot token.
func (c *Client) Update(ctx context.Context, ref MessageRef, m Message) error {
	const op, method = "update", "chat.update"
	if c.token == "" {
		return refused(op, method, ErrNotConfigured, "")
	}
	if ref.Channel == "" || ref.TS == "" {
		return refused(op, method, ErrInvalidArgument, "the message ref is empty")
	}
	body := postBody{Channel: ref.Channel, TS: ref.TS, Text: m.Text, Blocks: m.Blocks, Metadata: m.Metadata}
	return c.call(ctx, op, method, jsonBody(body), nil)
}

// Respond replaces the message an interaction came from, through the
// interaction's response_url. Only https URLs on hooks.slack.com (or on the
// configured API host) are used: anything else fails with ErrUntrustedURL
// before a request is made, because the URL comes from a request body.
func (c *Client) Respond(ctx context.Context, responseURL string, m Message) error {
	if !c.trustedResponseURL(responseURL) {
		return refused("respond", methodResponse, ErrUntrustedURL, "")
	}
	body := struct {
		Text            string  `json:"text"`
		Blocks          []Block `json:"blocks,omitempty"`
		ReplaceOriginal bool    `json:"replace_original"`
	}{m.Text, m.Blocks, true}
	return c.hook(ctx, "respond", methodResponse, responseURL, body)
}

func (c *Client) trustedResponseURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Opaque != "" || u.Host == "" {
		return false
	}
	if u.Scheme == "https" && strings.EqualFold(u.Host, responseHost) {
		return true
	}
	return u.Scheme == c.api.Scheme && strings.EqualFold(u.Host, c.api.Host)
}

// OpenView opens a modal for the user whose interaction carried triggerID
// (valid for three seconds after the click).
func (c *Client) OpenView(ctx context.Context, triggerID string, v View) error {
	const op, method = "open view", "views.open"
	if c.token == "" {
		return refused(op, method, ErrNotConfigured, "")
	}
	if triggerID == "" || len(v) == 0 {
		return refused(op, method, ErrInvalidArgument, "a trigger id and a view are required")
	}
	body := struct {
		TriggerID string `json:"trigger_id"`
		View      View   `json:"view"`
	}{triggerID, v}
	return c.call(ctx, op, method, jsonBody(body), nil)
}

// requestBody is an encoded body and its content type.
type requestBody struct {
	data        []byte
	contentType string
	err         error
}

func jsonBody(v any) requestBody {
	data, err := json.Marshal(v)
	return requestBody{data: data, contentType: "application/json; charset=utf-8", err: err}
}

func formBody(v url.Values) requestBody {
	return requestBody{data: []byte(v.Encode()), contentType: "application/x-www-form-urlencoded"}
}

// call invokes a Web API method and decodes the answer into out (which may
// be nil). Slack reports failures as {"ok":false,"error":"…"}, mostly with
// HTTP 200, and rate limits with HTTP 429.
func (c *Client) call(ctx context.Context, op, method string, body requestBody, out any) error {
	if body.err != nil {
		return refused(op, method, ErrInvalidArgument, "the request cannot be encoded as JSON")
	}
	target := c.api.JoinPath(method).String()
	resp, data, err := c.do(ctx, op, method, target, body, true)
	if err != nil {
		return err
	}
	var env struct {
		OK               *bool  `json:"ok"`
		Error            string `json:"error"`
		ResponseMetadata struct {
			Messages []string `json:"messages"`
		} `json:"response_metadata"`
	}
	jsonErr := json.Unmarshal(data, &env)
	if jsonErr != nil || env.OK == nil {
		return malformed(op, method, resp, jsonErr)
	}
	if !*env.OK || resp.StatusCode/100 != 2 {
		return fromAnswer(op, method, resp, env.Error, strings.Join(env.ResponseMetadata.Messages, "; "))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return malformed(op, method, resp, err)
		}
	}
	return nil
}

// hook posts JSON to an incoming webhook or a response_url. Both answer
// "ok" as plain text on success and a plain-text error code with an error
// status otherwise; a JSON {"ok":…} answer is understood as well.
func (c *Client) hook(ctx context.Context, op, method, target string, v any) error {
	body := jsonBody(v)
	if body.err != nil {
		return refused(op, method, ErrInvalidArgument, "the request cannot be encoded as JSON")
	}
	resp, data, err := c.do(ctx, op, method, target, body, false)
	if err != nil {
		return err
	}
	text := strings.TrimSpace(string(data))
	if strings.HasPrefix(text, "{") {
		var env struct {
			OK    *bool  `json:"ok"`
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &env) == nil && env.OK != nil {
			if *env.OK && resp.StatusCode/100 == 2 {
				return nil
			}
			return fromAnswer(op, method, resp, env.Error, "")
		}
		return malformed(op, method, resp, nil)
	}
	if resp.StatusCode/100 == 2 && text == "ok" {
		return nil
	}
	if resp.StatusCode/100 != 2 && errorCode.MatchString(text) {
		return fromAnswer(op, method, resp, text, "")
	}
	return malformed(op, method, resp, nil)
}

// errorCode is the shape of Slack's plain-text error codes.
var errorCode = regexp.MustCompile(`^[a-z][a-z0-9_]{0,79}$`)

// do sends one POST under the per-call timeout, with the bot token only
// when withToken (webhook and response URLs carry their own credential),
// and reads the answer through the size cap. Rate limits and redirects
// become errors here; every other answer is the caller's to judge.
func (c *Client) do(ctx context.Context, op, method, target string, body requestBody, withToken bool) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body.data))
	if err != nil {
		return nil, nil, refused(op, method, ErrInvalidArgument, "the request URL is not valid")
	}
	req.Header.Set("Content-Type", body.contentType)
	req.Header.Set("Accept", "application/json")
	if withToken {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, networkError(op, method, err)
	}
	defer resp.Body.Close()
	data, truncated, err := outbound.LimitedBody(resp.Body, maxBody)
	if err != nil {
		return nil, nil, networkError(op, method, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) // let the connection be reused
	if resp.StatusCode/100 == 3 {
		return nil, nil, &APIError{Op: op, Method: method, Status: http.StatusBadGateway,
			Message: fmt.Sprintf("HTTP %d", resp.StatusCode), Err: ErrUnexpectedRedirect}
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		return nil, nil, fromAnswer(op, method, resp, "ratelimited", "")
	}
	if truncated {
		return nil, nil, malformed(op, method, resp, errors.New("the answer exceeds 1 MiB"))
	}
	return resp, data, nil
}

// networkError wraps a failure without an HTTP answer, keeping it
// retryable. The URL inside it is cut to scheme and host, because webhook
// and response URL paths are credentials.
func networkError(op, method string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			ue.URL = u.Scheme + "://" + u.Host + "/…"
		} else {
			ue.URL = "(URL withheld)"
		}
	}
	return fmt.Errorf("slack: %s: %s: %w", op, method, err)
}

// fromAnswer builds the error of an answer that carries Slack's error code.
func fromAnswer(op, method string, resp *http.Response, code, msg string) *APIError {
	e := &APIError{Op: op, Method: method, Status: resp.StatusCode, Code: code, Message: clipASCII(msg, 500)}
	d, ok := outbound.RetryAfter(resp.Header, time.Now())
	switch {
	case e.HTTPStatus() == http.StatusTooManyRequests:
		if !ok || d <= 0 {
			d = defaultRateLimitWait
		}
		e.RetryAfter = d
	case ok:
		e.RetryAfter = d
	}
	return e
}

// malformed builds the error of an answer that is not Slack's: a 2xx is
// reported as 502 so it is retried; an error status keeps its status.
func malformed(op, method string, resp *http.Response, cause error) *APIError {
	e := &APIError{Op: op, Method: method, Status: resp.StatusCode, Err: ErrMalformedResponse}
	if resp.StatusCode/100 == 2 {
		e.Status = http.StatusBadGateway
		e.Message = fmt.Sprintf("HTTP %d with a body that is not Slack's answer", resp.StatusCode)
	}
	if cause != nil {
		e.Err = fmt.Errorf("%w: %v", ErrMalformedResponse, cause)
	}
	if d, ok := outbound.RetryAfter(resp.Header, time.Now()); ok {
		e.RetryAfter = d
	}
	return e
}

// clipASCII keeps detail from Slack printable and short.
func clipASCII(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > n {
		s = cutUTF8(s, n)
	}
	return s
}
