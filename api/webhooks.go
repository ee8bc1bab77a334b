package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"remediator/activities"
	"remediator/internal/errcode"
	"remediator/internal/orchestrator"
	"remediator/internal/slack"
	"remediator/internal/webhook"
	"remediator/workflows"
)

var (
	deliveryPattern = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
	fullNamePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$`)
	fullSHAPattern  = regexp.MustCompile(`^[0-9a-f]{40}$`)
)

// webhookRequester is the principal recorded for remediations GitHub started.
// The ':' keeps it apart from every configured subject, which cannot contain one.
const webhookRequester = "webhook:github"

type webhookResponse struct {
	Status     string `json:"status"`
	DeliveryID string `json:"delivery_id"`
	WorkflowID string `json:"workflow_id,omitempty"`
}

// rejectSignature answers 401 for a webhook whose signature failed (or whose
// secret is missing) and logs why; the reason never reaches the caller.
func (h *handler) rejectSignature(c *gin.Context, source string, err error) {
	code, reason := errcode.InvalidSignature, "invalid"
	if errors.Is(err, webhook.ErrNoSecret) {
		code, reason = errcode.WebhookNotConfigured, "not_configured"
	}
	h.webhookRejected.WithLabelValues(source, reason).Inc()
	h.logger.WarnContext(c.Request.Context(), "webhook rejected", "source", source, "reason", err.Error(),
		"delivery", c.GetHeader("X-GitHub-Delivery"), "correlation_id", correlationID(c))
	writeError(c, h.logger, newError(code, "the request signature is not valid"))
}

type githubPayload struct {
	Action     string `json:"action"`
	Repository struct {
		FullName string `json:"full_name"`
	} `json:"repository"`
	WorkflowRun *struct {
		HeadRepository *struct {
			FullName string `json:"full_name"`
		} `json:"head_repository"`
		ID         int64     `json:"id"`
		WorkflowID int64     `json:"workflow_id"`
		RunAttempt int64     `json:"run_attempt"`
		Name       string    `json:"name"`
		Conclusion string    `json:"conclusion"`
		HeadBranch string    `json:"head_branch"`
		HeadSHA    string    `json:"head_sha"`
		HTMLURL    string    `json:"html_url"`
		CreatedAt  time.Time `json:"created_at"`
	} `json:"workflow_run"`
	CheckSuite *githubCheck `json:"check_suite"`
	CheckRun   *struct {
		githubCheck
		Name       string       `json:"name"`
		CheckSuite *githubCheck `json:"check_suite"`
	} `json:"check_run"`
}

// githubCheck is what check_suite and check_run events share.
type githubCheck struct {
	ID         int64  `json:"id"`
	Conclusion string `json:"conclusion"`
	HeadBranch string `json:"head_branch"`
	HeadSHA    string `json:"head_sha"`
	App        struct {
		Slug string `json:"slug"`
	} `json:"app"`
}

// githubActionsApp is the app of the check suites and runs GitHub Actions
// creates; their failures arrive (with the run to fetch logs from) as
// workflow_run events.
const githubActionsApp = "github-actions"

// githubFailure is what a GitHub delivery reports, or nil when it reports no
// failure to remediate.
type githubFailure struct {
	body        startBody
	fingerprint string // identifies the failure, without the attempt
	generation  int64
	run         *activities.CIRun
	// line is where the failure happened (CI workflow and branch): a newer
	// failure there supersedes the remediations of older ones.
	line *orchestrator.Line
}

func githubFailureOf(event string, p githubPayload) *githubFailure {
	repo := p.Repository.FullName
	switch {
	case event == "workflow_run" && p.Action == "completed" && p.WorkflowRun != nil && p.WorkflowRun.Conclusion == "failure" &&
		(p.WorkflowRun.HeadRepository == nil || strings.EqualFold(p.WorkflowRun.HeadRepository.FullName, repo)):
		// A run of a fork's pull request is the fork's code: remediating it
		// would put the fork's commits on a branch of this repository.
		wr := p.WorkflowRun
		attempt := max(wr.RunAttempt, 1)
		return &githubFailure{
			body: startBody{Ref: wr.HeadBranch, SHA: wr.HeadSHA,
				FailureSummary: oneLine("GitHub workflow "+wr.Name+" failed on "+wr.HeadBranch, maxSummaryLen),
				LogExcerpt:     oneLine(wr.HTMLURL, maxLogExcerptLen)},
			fingerprint: fmt.Sprintf("%s@%s/workflow:%d", repo, wr.HeadSHA, wr.WorkflowID),
			generation:  attempt,
			run:         &activities.CIRun{RunID: wr.ID, Attempt: attempt},
			line:        ciLine(repo, fmt.Sprintf("workflow:%d", wr.WorkflowID), wr.HeadBranch, wr.CreatedAt),
		}
	case event == "check_suite" && p.CheckSuite != nil && p.CheckSuite.Conclusion == "failure" && p.CheckSuite.App.Slug != githubActionsApp:
		cs := p.CheckSuite
		return &githubFailure{
			body: startBody{Ref: cs.HeadBranch, SHA: cs.HeadSHA,
				FailureSummary: oneLine("GitHub check suite of "+cs.App.Slug+" failed on "+cs.HeadBranch, maxSummaryLen)},
			fingerprint: fmt.Sprintf("%s@%s/check:%s", repo, cs.HeadSHA, cs.App.Slug),
			generation:  1,
		}
	case event == "check_run" && p.Action == "completed" && p.CheckRun != nil && p.CheckRun.Conclusion == "failure" && p.CheckRun.App.Slug != githubActionsApp:
		cr := p.CheckRun
		branch := cr.HeadBranch
		if cr.CheckSuite != nil && branch == "" {
			branch = cr.CheckSuite.HeadBranch
		}
		return &githubFailure{
			body: startBody{Ref: branch, SHA: cr.HeadSHA,
				FailureSummary: oneLine("GitHub check "+cr.Name+" of "+cr.App.Slug+" failed on "+branch, maxSummaryLen)},
			// A check run coalesces with its app's check suite.
			fingerprint: fmt.Sprintf("%s@%s/check:%s", repo, cr.HeadSHA, cr.App.Slug),
			generation:  1,
		}
	}
	return nil
}

func (h *handler) githubWebhook(c *gin.Context) {
	body, err := readRaw(c, h.opts.WebhookMaxBytes)
	if err != nil {
		writeError(c, h.logger, err)
		return
	}
	if err := webhook.VerifyGitHub(h.opts.GitHubSecret, body, c.GetHeader("X-Hub-Signature-256")); err != nil {
		h.rejectSignature(c, "github", err)
		return
	}
	event, delivery := c.GetHeader("X-GitHub-Event"), c.GetHeader("X-GitHub-Delivery")
	if event == "" || !deliveryPattern.MatchString(delivery) {
		writeError(c, h.logger, newError(errcode.MissingHeaders, "X-GitHub-Event and X-GitHub-Delivery are required"))
		return
	}
	if event == "ping" {
		c.JSON(http.StatusOK, webhookResponse{Status: "pong", DeliveryID: delivery})
		return
	}
	var p githubPayload
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&p); err != nil {
		writeError(c, h.logger, newError(errcode.MalformedJSON, "the delivery is not a JSON object"))
		return
	}
	// The text composed from the delivery is made one clean line (GitHub
	// cannot fix its payload); the fields passed on as they are (ref, sha,
	// repository) are validated like an API request's, control characters
	// included, so none reaches a workflow.
	f := githubFailureOf(event, p)
	if f == nil {
		c.JSON(http.StatusAccepted, webhookResponse{Status: "ignored", DeliveryID: delivery})
		return
	}
	sb := f.body
	sb.Repo = p.Repository.FullName
	if !fullNamePattern.MatchString(sb.Repo) || !fullSHAPattern.MatchString(sb.SHA) {
		writeError(c, h.logger, validationError(map[string]string{"repository": "owner/name and a 40-hex head sha are required"}))
		return
	}
	if _, problems := validateStart(&sb, "", time.Now()); len(problems) > 0 {
		writeError(c, h.logger, validationError(problems))
		return
	}
	// Only a repository this service can act on starts a workflow.
	repo, err := h.canonicalRepo(c, sb.Repo)
	if err != nil {
		writeError(c, h.logger, err)
		return
	}
	res, err := h.orch.Start(c.Request.Context(), orchestrator.StartRequest{
		// One remediation per failure, whichever delivery reports it first;
		// a later attempt of the run starts another once this one ended.
		IdempotencyKey: "github:" + f.fingerprint,
		Fingerprint:    f.fingerprint,
		Generation:     f.generation,
		CIRun:          f.run,
		Line:           f.line,
		Requester:      webhookRequester, CorrelationID: correlationID(c),
		Repo: repo, Ref: sb.Ref, SHA: sb.SHA, FailureSummary: sb.FailureSummary, LogExcerpt: sb.LogExcerpt,
	})
	if err != nil {
		writeError(c, h.logger, err)
		return
	}
	status := "accepted"
	if res.Existing {
		status = "duplicate"
	} else if f.line != nil {
		h.supersede(c, res.ID, sb.SHA, *f.line)
	}
	h.logger.InfoContext(c.Request.Context(), "github delivery", "event", event, "delivery", delivery,
		"workflow_id", res.ID, "status", status, "correlation_id", correlationID(c))
	c.JSON(http.StatusAccepted, webhookResponse{Status: status, DeliveryID: delivery, WorkflowID: res.ID})
}

type slackResponse struct {
	Text string `json:"text"`
}

// Slack button action ids; the button value is "<remediation id>|<decision id>|<diff digest>".
const (
	slackApprove = "remediation_approve"
	slackReject  = "remediation_reject"
)

type slackAction struct {
	Type        string `json:"type"`
	TriggerID   string `json:"trigger_id"`
	ResponseURL string `json:"response_url"`
	User        struct {
		ID string `json:"id"`
	} `json:"user"`
	Actions []struct {
		ActionID string `json:"action_id"`
		Value    string `json:"value"`
	} `json:"actions"`
	View struct {
		ID string `json:"id"`
	} `json:"view"`
}

// SlackClient is what the Slack webhook needs of Slack: the reason dialog
// of a Reject, and the answer to a click through its response_url.
type SlackClient interface {
	CanOpenViews() bool
	OpenView(ctx context.Context, triggerID string, v slack.View) error
	Respond(ctx context.Context, responseURL string, m slack.Message) error
}

// slackWebhook verifies Slack's v0 signature within its 5-minute window, then
// turns an Approve/Reject button into the same Update the API uses, as the
// remediator principal linked to the Slack user (REMEDIATOR_SLACK_USERS), so
// roles, repository scope, four-eyes and the digest binding all apply.
// Slack shows the answer text to the clicking user; refusals are 200s with a
// reason, because Slack displays nothing else.
func (h *handler) slackWebhook(c *gin.Context) {
	body, err := readRaw(c, h.opts.MaxBodyBytes)
	if err != nil {
		writeError(c, h.logger, err)
		return
	}
	err = webhook.VerifySlack(h.opts.SlackSecret, body, c.GetHeader("X-Slack-Request-Timestamp"), c.GetHeader("X-Slack-Signature"), time.Now())
	if err != nil {
		h.rejectSignature(c, "slack", err)
		return
	}
	form, err := url.ParseQuery(string(body))
	var act slackAction
	if err != nil || form.Get("payload") == "" || json.Unmarshal([]byte(form.Get("payload")), &act) != nil {
		writeError(c, h.logger, newError(errcode.MalformedPayload, "a form field payload with JSON is required"))
		return
	}
	if act.Type == "view_submission" {
		h.slackReasonSubmitted(c, act, []byte(form.Get("payload")))
		return
	}
	c.JSON(http.StatusOK, slackResponse{Text: h.slackVote(c, act, "")})
}

// slackReasonSubmitted takes the reason dialog a Reject opened and rejects
// with the reason given. Refusals are shown on the dialog's field.
func (h *handler) slackReasonSubmitted(c *gin.Context, act slackAction, payload []byte) {
	value, reason, err := slack.ReasonFromSubmission(payload)
	if err != nil {
		var probe struct {
			View struct {
				CallbackID string `json:"callback_id"`
			} `json:"view"`
		}
		if json.Unmarshal(payload, &probe) == nil && probe.View.CallbackID == slack.ReasonCallbackID {
			// Our dialog with a blank or overlong reason: say so on the field.
			c.JSON(http.StatusOK, slackFieldError("A rejection needs a reason of at most 2000 characters."))
			return
		}
		c.JSON(http.StatusOK, gin.H{}) // another app's dialog: nothing to do
		return
	}
	if strings.TrimSpace(reason) == "" {
		c.JSON(http.StatusOK, slackFieldError("A rejection needs a reason."))
		return
	}
	act.Actions = []struct {
		ActionID string `json:"action_id"`
		Value    string `json:"value"`
	}{{ActionID: slackReject, Value: value}}
	if act.TriggerID == "" {
		act.TriggerID = act.View.ID
	}
	act.Type = "block_actions"
	text := h.slackVote(c, act, reason)
	if !strings.HasPrefix(text, "Rejected by ") {
		c.JSON(http.StatusOK, slackFieldError(text))
		return
	}
	c.JSON(http.StatusOK, gin.H{"response_action": "clear"})
}

// slackFieldError keeps the dialog open with text under the reason field.
func slackFieldError(text string) gin.H {
	return gin.H{"response_action": "errors", "errors": gin.H{"reason": oneLine(text, 150)}}
}

// slackVote returns the text Slack shows for the action. reason is the
// reason a Reject's dialog gave ("" for a button click).
func (h *handler) slackVote(c *gin.Context, act slackAction, reason string) string {
	if act.Type != "block_actions" || len(act.Actions) != 1 ||
		(act.Actions[0].ActionID != slackApprove && act.Actions[0].ActionID != slackReject) {
		return "Nothing to do for this action."
	}
	p, ok := h.opts.SlackUsers[act.User.ID]
	if !ok {
		return "Your Slack account is not linked to a remediator identity, so your vote was not counted."
	}
	if !p.HasRole(roleApprover, roleAdmin) {
		return "Voting needs the approver role."
	}
	parts := strings.Split(act.Actions[0].Value, "|")
	if (len(parts) != 3 && len(parts) != 4) || !digestPattern.MatchString(parts[2]) || !decisionPattern.MatchString(parts[1]) ||
		(len(parts) == 4 && !baseSHAPattern.MatchString(parts[3])) {
		return "This button does not name a remediation."
	}
	base := ""
	if len(parts) == 4 {
		base = parts[3] // the base the message showed; older messages name none
	}
	approve := act.Actions[0].ActionID == slackApprove
	c.Set(ctxPrincipal, p)
	if err := h.checkAccess(c, parts[0]); err != nil {
		return "No such remediation."
	}
	if !approve && reason == "" && h.opts.Slack != nil && h.opts.Slack.CanOpenViews() && act.TriggerID != "" {
		// A rejection needs a reason: ask for it in a dialog, whose
		// submission rejects.
		if err := h.opts.Slack.OpenView(c.Request.Context(), act.TriggerID, slack.ReasonModal(act.Actions[0].Value)); err == nil {
			return "Tell us why in the dialog."
		} else {
			h.logger.WarnContext(c.Request.Context(), "opening the reason dialog failed", "error", err, "correlation_id", correlationID(c))
		}
	}
	v := orchestrator.Vote{ID: parts[0], Approve: approve, Actor: p.Subject, Roles: p.Roles, DecisionID: parts[1],
		DiffDigest: parts[2], BaseSHA: base, Channel: workflows.ChannelSlack, RequestID: "slack:" + act.TriggerID}
	if !approve {
		v.Reason = oneLine(reason, maxTextLen)
		if strings.TrimSpace(reason) == "" {
			v.Reason = "rejected in Slack by " + p.Subject
		}
	}
	st, err := h.orch.Decide(c.Request.Context(), v)
	h.auditRefusal(c, v.ID, voteWhat(v.Approve), workflows.ChannelSlack, err)
	var rej *orchestrator.RejectedError
	switch {
	case errors.As(err, &rej):
		return "Not counted: " + rej.Message
	case errors.Is(err, orchestrator.ErrNotFound):
		return "No such remediation."
	case err != nil:
		h.logger.ErrorContext(c.Request.Context(), "slack vote failed", "error", err, "correlation_id", correlationID(c))
		return "The vote could not be delivered; try again."
	}
	verb := "Approved"
	if !approve {
		verb = "Rejected"
	}
	h.slackRespond(c, act.ResponseURL, st)
	return verb + " by " + p.Subject + "; " + st.ID + " is now " + string(st.Phase) + "."
}

// slackRespond brings the clicked message up to date through its
// response_url (only Slack's own hosts are dialled), after the click was
// answered: Slack wants its answer within 3 seconds.
func (h *handler) slackRespond(c *gin.Context, responseURL string, st orchestrator.Status) {
	if h.opts.Slack == nil || responseURL == "" {
		return
	}
	n := st.Notice()
	l := h.links(st.ID)
	n.Links.API, n.Links.UI = l.Self, l.UI
	msg := slack.ApprovalMessage(activities.SlackApprovalInfo(n))
	ctx := context.WithoutCancel(c.Request.Context())
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := h.opts.Slack.Respond(ctx, responseURL, msg); err != nil {
			h.logger.WarnContext(ctx, "answering through Slack's response_url failed", "error", err)
		}
	}()
}
