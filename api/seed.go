package api

import (
	"cmp"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"remediator/internal/errcode"
	"remediator/internal/orchestrator"
	"remediator/workflows"
)

// The seed service's own endpoints, kept for its clients and made safe:
// /api/generate really generates (and validates) a fix, /api/pr never opens
// an unapproved change, /api/approvals votes as the caller, not as the
// body's "approver".

// defaultGenerateWait bounds how long /api/generate waits for the fix.
const defaultGenerateWait = 20 * time.Second

type generateBody struct {
	Repo       string `json:"repo"`
	Prompt     string `json:"prompt"`
	Language   string `json:"language"` // accepted for the seed's clients; recipes and the model see the repository itself
	Ref        string `json:"ref"`
	SHA        string `json:"sha"`
	LogExcerpt string `json:"log_excerpt"`
	IncidentID string `json:"incident_id"`
	Deadline   string `json:"deadline"`
}

// decisionGate is the seed's view of the decision.
type decisionGate struct {
	DecisionID string `json:"decision_id"`
	Approved   bool   `json:"approved"`
	Status     string `json:"status"`
}

type generateResponse struct {
	ID            string                `json:"id"`
	DraftID       string                `json:"draft_id"`
	Phase         workflows.Phase       `json:"phase"`
	Reason        string                `json:"reason,omitempty"`
	Existing      bool                  `json:"existing"`
	Ready         bool                  `json:"ready"`
	Summary       string                `json:"summary"`
	Files         []string              `json:"files"`
	Fix           *workflows.FixSummary `json:"fix,omitempty"`
	Risk          *workflows.Risk       `json:"risk,omitempty"`
	DecisionID    string                `json:"decision_id,omitempty"`
	DecisionGate  decisionGate          `json:"decision_gate"`
	CorrelationID string                `json:"correlation_id"`
	Links         links                 `json:"links"`
}

// generate starts a remediation from the seed's {repo, prompt} and answers
// with the fix once it is generated, validated and has its decision; 202
// with the remediation's link when that takes longer than the wait.
func (h *handler) generate(c *gin.Context) {
	var b generateBody
	if err := h.readJSON(c, &b); err != nil {
		writeError(c, h.logger, err)
		return
	}
	problems := map[string]string{}
	promptOK := checkText(problems, "prompt", b.Prompt, multiLine)
	langOK := checkText(problems, "language", b.Language, singleLine)
	if promptOK && strings.TrimSpace(b.Prompt) == "" {
		problems["prompt"] = "required: what failed"
	}
	if promptOK && len(b.Prompt) > maxLogExcerptLen {
		problems["prompt"] = "at most 64 KiB"
	}
	if langOK && len(b.Language) > 64 {
		problems["language"] = "at most 64 bytes"
	}
	excerpt := b.LogExcerpt
	if excerpt == "" {
		excerpt = b.Prompt
	}
	sb := startBody{Repo: b.Repo, Ref: b.Ref, SHA: b.SHA, FailureSummary: firstLine(b.Prompt, maxSummaryLen),
		LogExcerpt: excerpt, IncidentID: b.IncidentID, Deadline: b.Deadline}
	key := c.GetHeader("Idempotency-Key")
	timeout, more := validateStart(&sb, key, time.Now())
	for k, v := range more {
		if k == "failure_summary" {
			k = "prompt"
		}
		if _, ok := problems[k]; !ok {
			problems[k] = v
		}
	}
	if len(problems) > 0 {
		writeError(c, h.logger, validationError(problems))
		return
	}
	req, err := h.startRequest(c, sb, key, timeout)
	if err != nil {
		writeError(c, h.logger, err)
		return
	}
	wait := h.opts.GenerateWait
	if wait <= 0 {
		wait = defaultGenerateWait
	}
	res, st, ready, err := h.orch.Generate(c.Request.Context(), req, wait)
	if err != nil {
		writeError(c, h.logger, err)
		return
	}
	if res.Existing {
		c.Header("Idempotent-Replayed", "true")
	}
	c.Header("Location", "/api/remediations/"+res.ID)
	out := generateResponse{ID: res.ID, DraftID: res.ID, Phase: res.Phase, Existing: res.Existing, Ready: ready,
		Summary: "Generating the fix; follow links.self.", Files: []string{}, CorrelationID: correlationID(c), Links: h.links(res.ID),
		DecisionGate: decisionGate{Status: "pending"}}
	if !ready {
		c.JSON(http.StatusAccepted, out)
		return
	}
	// The Update's answer leaves the diff out (it is kept in history once);
	// the status query serves it.
	if full, err := h.orch.Get(c.Request.Context(), res.ID); err == nil {
		st = full
	}
	out.Phase, out.Reason, out.Fix, out.Risk, out.DecisionID = st.Phase, st.Reason, st.Fix, st.Risk, st.DecisionID
	out.DecisionGate = gateOf(st)
	if st.Fix != nil {
		out.Summary, out.Files = st.Fix.Summary, st.Fix.Files
	} else {
		out.Summary = "No fix: " + st.Reason
	}
	c.JSON(http.StatusOK, out)
}

// gateOf is the seed's decision_gate for a status.
func gateOf(st orchestrator.Status) decisionGate {
	g := decisionGate{DecisionID: st.DecisionID, Status: "pending"}
	switch st.Phase {
	case workflows.PhaseOpeningPR, workflows.PhaseCompleted:
		g.Approved, g.Status = true, "approved"
	case workflows.PhaseRejected:
		g.Status = "rejected"
	case workflows.PhaseExpired:
		g.Status = "expired"
	case workflows.PhaseFailed:
		g.Status = "failed"
	case workflows.PhaseCancelled:
		g.Status = "cancelled"
	}
	return g
}

// firstLine is the first non-empty line of s, cut to max bytes.
func firstLine(s string, max int) string {
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			return oneLine(line, max)
		}
	}
	return ""
}

type prBody struct {
	DraftID       string `json:"draft_id"`
	RemediationID string `json:"remediation_id"`
	// The seed's other fields are accepted and not used: the change is the
	// approved fix, on the remediation's own branch, with a title and body
	// composed from verified facts.
	Repo        string `json:"repo"`
	Branch      string `json:"branch"`
	Title       string `json:"title"`
	Description string `json:"description"`
}

type prResponse struct {
	RemediationID string          `json:"remediation_id"`
	PRID          string          `json:"pr_id,omitempty"`
	PRURL         string          `json:"pr_url,omitempty"`
	Status        string          `json:"status"`
	Phase         workflows.Phase `json:"phase"`
	DecisionGate  decisionGate    `json:"decision_gate"`
	Links         links           `json:"links"`
}

// pr answers with the change of a remediation: 200 once it is opened, 202
// with the phase while it is not (yet), 409 when the remediation ended
// without one. It never opens anything: only an approved workflow does.
func (h *handler) pr(c *gin.Context) {
	var b prBody
	if err := h.readJSON(c, &b); err != nil {
		writeError(c, h.logger, err)
		return
	}
	problems := map[string]string{}
	for field, v := range map[string]string{"draft_id": b.DraftID, "remediation_id": b.RemediationID, "repo": b.Repo, "branch": b.Branch, "title": b.Title} {
		checkText(problems, field, v, singleLine)
	}
	checkText(problems, "description", b.Description, multiLine)
	id := b.RemediationID
	if id == "" {
		id = b.DraftID
	}
	if _, bad := problems["remediation_id"]; !bad && id == "" {
		problems["remediation_id"] = "required (or draft_id): the id /api/generate or /api/remediations answered"
	}
	if len(problems) > 0 {
		writeError(c, h.logger, validationError(problems))
		return
	}
	if err := h.checkAccess(c, id); err != nil {
		writeError(c, h.logger, err)
		return
	}
	st, err := h.orch.Get(c.Request.Context(), id)
	if err != nil {
		writeError(c, h.logger, err)
		return
	}
	out := prResponse{RemediationID: st.ID, Phase: st.Phase, DecisionGate: gateOf(st), Links: h.links(st.ID)}
	switch {
	case st.PR != nil:
		out.PRID, out.PRURL, out.Status = st.PR.ID, st.PR.URL, "opened"
		c.JSON(http.StatusOK, out)
	case st.Phase.Terminal():
		e := newError(errcode.AlreadyEnded, "the remediation ended "+string(st.Phase)+" without a change")
		e.details = map[string]string{"phase": string(st.Phase), "reason": st.Reason}
		writeError(c, h.logger, e)
	default:
		out.Status = "pending_approval"
		if st.Phase == workflows.PhaseOpeningPR {
			out.Status = "opening"
		} else if st.Phase != workflows.PhaseAwaitingApproval {
			out.Status = "generating"
		}
		c.JSON(http.StatusAccepted, out)
	}
}

type approvalsBody struct {
	IncidentID    string `json:"incident_id"`
	RemediationID string `json:"remediation_id"`
	DecisionID    string `json:"decision_id"`
	DiffDigest    string `json:"diff_digest"`
	BaseSHA       string `json:"base_sha"`
	Approved      *bool  `json:"approved"`
	Comment       string `json:"comment"`
	Reason        string `json:"reason"`
	Justification string `json:"justification"`
	// Approver is the seed's free-text identity. It is ignored: the vote is
	// the authenticated caller's.
	Approver string `json:"approver"`
}

// approvals is the seed's approval endpoint: the same signed vote through
// the same Update as /approve and /reject.
func (h *handler) approvals(c *gin.Context) {
	var b approvalsBody
	if err := h.readJSON(c, &b); err != nil {
		writeError(c, h.logger, err)
		return
	}
	problems := map[string]string{}
	for field, v := range map[string]string{"incident_id": b.IncidentID, "remediation_id": b.RemediationID, "decision_id": b.DecisionID, "diff_digest": b.DiffDigest, "base_sha": b.BaseSHA, "approver": b.Approver} {
		checkText(problems, field, v, singleLine)
	}
	for field, v := range map[string]string{"comment": b.Comment, "reason": b.Reason, "justification": b.Justification} {
		if checkText(problems, field, v, multiLine) && len(v) > maxTextLen {
			problems[field] = "limited to 2000 bytes"
		}
	}
	if b.Approved == nil {
		problems["approved"] = "required: true or false"
	}
	if _, bad := problems["decision_id"]; !bad && !decisionPattern.MatchString(b.DecisionID) {
		problems["decision_id"] = "required: the decision id of the remediation"
	}
	if _, bad := problems["base_sha"]; !bad && b.BaseSHA != "" && !baseSHAPattern.MatchString(b.BaseSHA) {
		problems["base_sha"] = "the base commit (fix.base_sha) you reviewed the diff against"
	}
	if _, bad := problems["diff_digest"]; !bad && b.DiffDigest != "" && !digestPattern.MatchString(b.DiffDigest) {
		problems["diff_digest"] = "the 64-hex digest of the diff you reviewed"
	}
	if b.RemediationID == "" && b.IncidentID == "" {
		problems["remediation_id"] = "remediation_id or incident_id is required"
	}
	if _, bad := problems["incident_id"]; !bad && b.IncidentID != "" && !safeIDPattern.MatchString(b.IncidentID) {
		problems["incident_id"] = "letters, digits and ._:/- only, at most 128"
	}
	key := c.GetHeader("Idempotency-Key")
	checkIdempotencyKey(problems, key)
	approve := b.Approved != nil && *b.Approved
	reason := firstNonEmpty(b.Reason, b.Justification, b.Comment)
	if b.Approved != nil && !approve && strings.TrimSpace(reason) == "" {
		problems["reason"] = "a rejection needs a reason"
	}
	if len(problems) > 0 {
		writeError(c, h.logger, validationError(problems))
		return
	}
	p, _ := principalOf(c)
	id := b.RemediationID
	if id == "" {
		found, err := h.orch.FindByIncident(c.Request.Context(), b.IncidentID, h.listScope(p))
		if err != nil {
			writeError(c, h.logger, err)
			return
		}
		id = found
	}
	if err := h.checkAccess(c, id); err != nil {
		writeError(c, h.logger, err)
		return
	}
	digest, base := b.DiffDigest, b.BaseSHA
	if digest == "" || base == "" {
		// The seed's body names the decision only; a decision is about one
		// fix, so its digest is the one the remediation proposes for it.
		cur, err := h.orch.Get(c.Request.Context(), id)
		if err != nil {
			writeError(c, h.logger, err)
			return
		}
		if cur.Fix == nil || cur.DecisionID != b.DecisionID {
			writeError(c, h.logger, newError(errcode.StaleVote, "decision_id does not match this remediation's decision"))
			return
		}
		// The decision names one fix: its base is the one the decision
		// (and the seed's approver) was shown.
		digest, base = cmp.Or(digest, cur.Fix.Digest), cur.Fix.BaseSHA
	}
	v := orchestrator.Vote{ID: id, RequestID: key, Approve: approve, Actor: p.Subject, Roles: p.Roles,
		DecisionID: b.DecisionID, DiffDigest: digest, BaseSHA: base}
	if approve {
		v.Comment = firstNonEmpty(b.Comment, b.Justification)
	} else {
		v.Reason = reason
	}
	st, err := h.orch.Decide(c.Request.Context(), v)
	if err != nil {
		h.auditRefusal(c, v.ID, voteWhat(v.Approve), workflows.ChannelAPI, err)
		writeError(c, h.logger, err)
		return
	}
	c.JSON(http.StatusOK, statusResponse{Status: st, Links: h.links(st.ID)})
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}
