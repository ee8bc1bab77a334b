package slack

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Action ids of the approval buttons; api/webhooks.go dispatches on them.
const (
	ActionApprove = "remediation_approve"
	ActionReject  = "remediation_reject"
)

// EventTypeApproval is the metadata event type of approval messages; Post
// finds a message again by it and the remediation_id in its payload.
const EventTypeApproval = "remediation_approval"

// PhaseAwaitingApproval is the only phase whose message carries buttons.
const PhaseAwaitingApproval = "AwaitingApproval"

// Slack's Block Kit limits (in characters; this package counts bytes,
// which is never fewer).
const (
	maxSectionText = 3000
	maxFieldText   = 2000
	maxHeaderText  = 150
	maxContextText = 2000
	maxBlocks      = 50
	maxButtonValue = 2000
	maxFallback    = 1000
	maxListedFiles = 20
	maxListedVotes = 20
	maxFileName    = 300
	maxVoteText    = 300
)

// ApprovalInfo is everything an approver needs to judge a fix from Slack.
// Text fields may come from repositories, logs or people: ApprovalMessage
// escapes and bounds every one of them.
type ApprovalInfo struct {
	RemediationID, DecisionID, Digest string
	Repo, Ref, BaseSHA                string
	Failure                           string // one-line failure summary
	FixSummary                        string
	Files                             []string
	FixSource                         string // "recipe gofmt", "model gpt-4o", ...
	Validated                         bool
	Validation                        string // what validation ran and its result, one line
	RiskLevel                         string
	RiskScore                         int
	RiskReason                        string
	Deadline                          time.Time
	Phase                             string // AwaitingApproval, OpeningPR, Completed, Rejected, Expired, Failed, Cancelled
	Outcome                           string // reason text for end states
	Votes                             []VoteLine
	Required                          int // approvals required
	Links                             ApprovalLinks
	Reminders                         int    // how often the request was repeated
	EscalatedTo                       string // whom it was escalated to, if it was
}

// VoteLine is one vote as the message shows it.
type VoteLine struct {
	Actor    string
	Approved bool
	Channel  string
	Text     string
	At       time.Time
}

// ApprovalLinks are where to look further; each is shown only when it is
// a plain http(s) URL.
type ApprovalLinks struct {
	API, UI, Review, Change string
}

// ApprovalMessage renders the one message kept per remediation: while it
// awaits approval it carries Approve and Reject buttons whose value is
// "<remediation id>|<decision id>|<digest>", so a click names exactly what
// was reviewed; afterwards the buttons are gone and the outcome is shown.
// No text from the input can mention anyone, link anywhere or break the
// block limits.
func ApprovalMessage(a ApprovalInfo) Message {
	awaiting := a.Phase == PhaseAwaitingApproval
	title := "Approval needed: "
	if !awaiting {
		phase := a.Phase
		if phase == "" {
			phase = "Remediation"
		}
		title = phase + ": "
	}
	blocks := []Block{{
		"type": "header",
		"text": plainText(esc(title+a.Repo, maxHeaderText)),
	}}

	failure := "_no failure summary_"
	if a.Failure != "" {
		// Text from logs and people goes in a code span: no *bold*, _italic_
		// or ~strike~ from it can dress up as part of the message.
		failure = code(a.Failure, maxSectionText-len("*Failure*\n")-2)
	}
	blocks = append(blocks, section("*Failure*\n"+failure))

	blocks = append(blocks, Block{"type": "section", "fields": facts(a)})

	if a.FixSummary != "" {
		blocks = append(blocks, section("*Proposed fix*\n"+code(a.FixSummary, maxSectionText-len("*Proposed fix*\n")-2)))
	}
	if len(a.Files) > 0 {
		blocks = append(blocks, section(fileList(a.Files)))
	}
	blocks = append(blocks, section(votes(a)))
	if !awaiting {
		blocks = append(blocks, section(outcome(a)))
	}
	blocks = append(blocks, Block{"type": "context", "elements": []any{mrkdwn(ids(a))}})
	if l := links(a.Links); l != "" {
		blocks = append(blocks, Block{"type": "context", "elements": []any{mrkdwn(l)}})
	}
	if awaiting {
		if value, ok := buttonValue(a); ok {
			blocks = append(blocks, Block{
				"type":     "actions",
				"block_id": "remediation_vote",
				"elements": []any{
					button("Approve", ActionApprove, "primary", value),
					button("Reject", ActionReject, "danger", value),
				},
			})
		} else {
			blocks = append(blocks, section("_Vote through the API or the CLI: this remediation's ids cannot be carried by a button._"))
		}
	}
	if len(blocks) > maxBlocks {
		blocks = blocks[:maxBlocks]
	}
	return Message{
		Text:   fallback(a, awaiting),
		Blocks: blocks,
		Metadata: &Metadata{EventType: EventTypeApproval, EventPayload: map[string]any{
			"remediation_id": a.RemediationID, "decision_id": a.DecisionID, "digest": a.Digest,
		}},
	}
}

// facts are the section fields: at most 10, each within the field limit.
func facts(a ApprovalInfo) []any {
	field := func(label, value string) any {
		return mrkdwn("*" + label + "*\n" + value)
	}
	budget := maxFieldText - 40 // room for the label
	ref := esc(a.Ref, budget/2)
	if a.BaseSHA != "" {
		ref += " @ " + code(shortHex(a.BaseSHA), 40)
	}
	if ref == "" {
		ref = "—"
	}
	repo := esc(a.Repo, budget)
	if repo == "" {
		repo = "—"
	}
	out := []any{field("Repository", repo), field("Ref", ref)}
	if a.RiskLevel != "" {
		risk := esc(strings.ToUpper(a.RiskLevel), 40) + fmt.Sprintf(" (%d)", a.RiskScore)
		if a.RiskReason != "" {
			risk += " — " + esc(a.RiskReason, budget-len(risk)-10)
		}
		out = append(out, field("Risk", risk))
	}
	if !a.Deadline.IsZero() {
		out = append(out, field("Deadline", dateToken(a.Deadline)))
	}
	if a.Reminders > 0 || a.EscalatedTo != "" {
		status := fmt.Sprintf("%d reminder(s)", a.Reminders)
		if a.EscalatedTo != "" {
			status += ", escalated to " + esc(a.EscalatedTo, 80)
		}
		out = append(out, field("Waiting", status))
	}
	if a.FixSource != "" {
		out = append(out, field("Fix source", esc(a.FixSource, budget)))
	}
	validation := "⚠️ "
	if a.Validated {
		validation = "✅ "
	}
	switch {
	case a.Validation != "":
		validation += esc(a.Validation, budget)
	case a.Validated:
		validation += "validated"
	default:
		validation += "not validated"
	}
	return append(out, field("Validation", validation))
}

// fileList lists at most maxListedFiles paths and never exceeds the
// section limit; what does not fit is counted.
func fileList(files []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*Files changed (%d)*", len(files))
	reserve := len("\n… and 100000000 more")
	shown := 0
	for _, f := range files {
		line := "\n• " + esc(f, maxFileName)
		if shown == maxListedFiles || b.Len()+len(line) > maxSectionText-reserve {
			break
		}
		b.WriteString(line)
		shown++
	}
	if rest := len(files) - shown; rest > 0 {
		fmt.Fprintf(&b, "\n… and %d more", rest)
	}
	return b.String()
}

// votes lists the votes so far and how many approvals are needed.
func votes(a ApprovalInfo) string {
	approvals := 0
	for _, v := range a.Votes {
		if v.Approved {
			approvals++
		}
	}
	var b strings.Builder
	b.WriteString("*Votes*")
	if a.Required > 0 {
		fmt.Fprintf(&b, " — %d of %d approvals", approvals, a.Required)
	}
	if len(a.Votes) == 0 {
		b.WriteString("\n_none yet_")
		return b.String()
	}
	reserve := len("\n… and 100000000 more")
	shown := 0
	for _, v := range a.Votes {
		mark := "❌ rejected by "
		if v.Approved {
			mark = "✅ approved by "
		}
		line := "\n" + mark + "*" + esc(v.Actor, 100) + "*"
		if v.Channel != "" {
			line += " via " + esc(v.Channel, 30)
		}
		if !v.At.IsZero() {
			line += " " + dateToken(v.At)
		}
		if v.Text != "" {
			line += ": " + esc(v.Text, maxVoteText)
		}
		if shown == maxListedVotes || b.Len()+len(line) > maxSectionText-reserve {
			break
		}
		b.WriteString(line)
		shown++
	}
	if rest := len(a.Votes) - shown; rest > 0 {
		fmt.Fprintf(&b, "\n… and %d more", rest)
	}
	return b.String()
}

// outcome is the end of the story, shown once the buttons are gone.
func outcome(a ApprovalInfo) string {
	head := "*" + esc(a.Phase, 40) + "*"
	if a.Phase == "" {
		head = "*Outcome*"
	}
	if a.Outcome == "" {
		return head
	}
	return head + ": " + code(a.Outcome, maxSectionText-len(head)-4)
}

// ids is the context line naming what exactly is being voted on.
func ids(a ApprovalInfo) string {
	parts := []string{}
	if a.RemediationID != "" {
		parts = append(parts, "Remediation "+code(a.RemediationID, 200))
	}
	if a.DecisionID != "" {
		parts = append(parts, "Decision "+code(a.DecisionID, 200))
	}
	if a.Digest != "" {
		parts = append(parts, "Digest "+code(shortHex(a.Digest), 40))
	}
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, " · ")
}

// links renders the links that are safe to render; the labels are fixed.
func links(l ApprovalLinks) string {
	var parts []string
	for _, x := range []struct{ url, label string }{{l.Review, "Review"}, {l.API, "API"}, {l.UI, "Web UI"}, {l.Change, "Change"}} {
		if safeLink(x.url) {
			parts = append(parts, "<"+strings.ReplaceAll(x.url, "&", "&amp;")+"|"+x.label+">")
		}
	}
	out := strings.Join(parts, " · ")
	if len(out) > maxContextText {
		return ""
	}
	return out
}

// safeLink accepts absolute http(s) URLs that cannot close or split Slack's
// <url|label> markup.
func safeLink(raw string) bool {
	if raw == "" || len(raw) > 1000 || strings.ContainsAny(raw, "|<> \"`") ||
		strings.ContainsFunc(raw, func(r rune) bool { return unicode.IsControl(r) || r >= utf8.RuneSelf }) {
		return false
	}
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil
}

// buttonValue is what api/webhooks.go splits on "|": remediation, decision,
// digest and, when known, the base commit the approver sees (the vote names
// it); none of its parts may contain one, and it must fit the button value
// limit.
func buttonValue(a ApprovalInfo) (string, bool) {
	parts := []string{a.RemediationID, a.DecisionID, a.Digest}
	if a.BaseSHA != "" {
		parts = append(parts, a.BaseSHA)
	}
	for _, p := range parts {
		if p == "" || strings.Contains(p, "|") || !utf8.ValidString(p) {
			return "", false
		}
	}
	v := strings.Join(parts, "|")
	return v, len(v) <= maxButtonValue
}

// fallback is the notification text: one escaped line.
func fallback(a ApprovalInfo, awaiting bool) string {
	var s string
	if awaiting {
		s = "Approval needed: " + a.Repo
		if a.Ref != "" {
			s += " (" + a.Ref + ")"
		}
		if a.Failure != "" {
			s += ": " + a.Failure
		}
	} else {
		s = a.Phase + ": " + a.Repo
		if a.Outcome != "" {
			s += ": " + a.Outcome
		}
	}
	return esc(s, maxFallback)
}

func button(label, actionID, style, value string) Block {
	return Block{
		"type":      "button",
		"action_id": actionID,
		"style":     style,
		"value":     value,
		"text":      plainText(label),
	}
}

func section(text string) Block {
	return Block{"type": "section", "text": mrkdwn(text)}
}

// mrkdwn is a text object that Slack does not pre-process (verbatim):
// bare URLs, channel names and "@here"-style words stay text.
func mrkdwn(text string) map[string]any {
	return map[string]any{"type": "mrkdwn", "text": text, "verbatim": true}
}

func plainText(text string) map[string]any {
	return map[string]any{"type": "plain_text", "text": text, "emoji": true}
}

// dateToken renders t in each reader's time zone, with RFC 3339 as the
// fallback for clients that cannot.
func dateToken(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.UTC().Format(time.RFC3339))
}

// shortHex is the first 12 characters of a digest or commit id.
func shortHex(s string) string {
	if len(s) > 12 {
		return cutUTF8(s, 12)
	}
	return s
}

// code renders s as inline code; a backtick in s would end the span early,
// so it is replaced.
func code(s string, limit int) string {
	return "`" + esc(strings.ReplaceAll(s, "`", "'"), limit) + "`"
}

// esc makes s safe inside mrkdwn (and plain_text): &, < and > become
// entities, so nothing can form a mention, a link or a date token;
// control, line-separator and bidirectional-override characters become
// spaces; invalid UTF-8 becomes U+FFFD. The result is at most limit bytes,
// cut on a character boundary (never inside an entity) with "…".
func esc(s string, limit int) string {
	const ellipsis = "…"
	var b strings.Builder
	fits := 0 // length of b at the last point where the ellipsis still fits
	for _, r := range s {
		p := escRune(r)
		if b.Len()+len(p) > limit {
			return b.String()[:fits] + ellipsis
		}
		b.WriteString(p)
		if b.Len() <= limit-len(ellipsis) {
			fits = b.Len()
		}
	}
	return b.String()
}

func escRune(r rune) string {
	switch {
	case r == '&':
		return "&amp;"
	case r == '<':
		return "&lt;"
	case r == '>':
		return "&gt;"
	case r == utf8.RuneError:
		return "\uFFFD"
	case unicode.IsControl(r), r == '\u2028', r == '\u2029', r == '\u200e', r == '\u200f',
		r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
		return " "
	}
	return string(r)
}

// cutUTF8 returns the longest prefix of s of at most n bytes that does not
// split a character.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// mentionToken is a Slack mention the policy may name as escalate_to: a user
// group, a user, @here or @channel, in Slack's own syntax.
var mentionToken = regexp.MustCompile(`^<(!subteam\^[A-Z0-9]{2,20}|@[UW][A-Z0-9]{2,20}|!here|!channel)>$`)

// IsMention says whether s is a mention token the announcement may carry.
func IsMention(s string) bool { return mentionToken.MatchString(s) }

// AnnouncementText is the reminder or escalation posted under the approval
// message: the text is escaped, so nothing in it can mention anyone or link
// anywhere; mention, when it is a mention token (the policy's escalate_to),
// leads it unescaped so the people it names are notified.
func AnnouncementText(text, mention string) string {
	text = esc(text, maxSectionText-40)
	if IsMention(mention) {
		return mention + " " + text
	}
	return text
}
