package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"remediator/internal/audit"
	"remediator/internal/correlation"
	"remediator/internal/orchestrator"
	"remediator/workflows"
)

// regenerateBody names the fix to replace, as the vote bodies do.
type regenerateBody struct {
	DecisionID string `json:"decision_id"`
	DiffDigest string `json:"diff_digest"`
	BaseSHA    string `json:"base_sha"`
	Reason     string `json:"reason"`
	Comment    string `json:"comment"`
}

// regenerate asks for a new fix through the regenerate Update: pending votes
// become void and approvers are asked again. The caller becomes an author of
// the fix.
func (h *handler) regenerate(c *gin.Context) {
	var b regenerateBody
	if err := h.readJSON(c, &b); err != nil {
		writeError(c, h.logger, err)
		return
	}
	problems := map[string]string{}
	key := c.GetHeader("Idempotency-Key")
	checkIdempotencyKey(problems, key)
	if checkText(problems, "decision_id", b.DecisionID, singleLine) && !decisionPattern.MatchString(b.DecisionID) {
		problems["decision_id"] = "required: the decision id shown by GET /api/remediations/{id}"
	}
	if checkText(problems, "diff_digest", b.DiffDigest, singleLine) && !digestPattern.MatchString(b.DiffDigest) {
		problems["diff_digest"] = "required: the 64-hex digest of the fix to replace"
	}
	if checkText(problems, "base_sha", b.BaseSHA, singleLine) && !baseSHAPattern.MatchString(b.BaseSHA) {
		problems["base_sha"] = "required: the base commit (fix.base_sha) of the fix to replace"
	}
	reason := b.Reason
	if reason == "" {
		reason = b.Comment
	}
	if checkText(problems, "reason", reason, multiLine) && len(reason) > maxTextLen {
		problems["reason"] = "limited to 2000 bytes"
	}
	if len(problems) > 0 {
		writeError(c, h.logger, validationError(problems))
		return
	}
	id := c.Param("id")
	if err := h.checkAccess(c, id); err != nil {
		writeError(c, h.logger, err)
		return
	}
	p, _ := principalOf(c)
	st, err := h.orch.Regenerate(c.Request.Context(), orchestrator.RegenerateRequest{
		ID: id, RequestID: key, Actor: p.Subject, Roles: p.Roles,
		DecisionID: b.DecisionID, DiffDigest: b.DiffDigest, BaseSHA: b.BaseSHA, Reason: reason, Channel: clientChannel(c),
	})
	if err != nil {
		h.auditRefusal(c, id, "regenerate", clientChannel(c), err)
		writeError(c, h.logger, err)
		return
	}
	c.JSON(http.StatusOK, statusResponse{Status: st, Links: h.links(st.ID)})
}

// auditResponse is the workflow's audit events and the store's records.
type auditResponse struct {
	ID     string                 `json:"id"`
	Events []workflows.AuditEvent `json:"events"`
	Stored []audit.Record         `json:"stored,omitempty"`
}

// getAudit answers the audit of a remediation within scope.
func (h *handler) getAudit(c *gin.Context) {
	id := c.Param("id")
	if err := h.checkAccess(c, id); err != nil {
		writeError(c, h.logger, err)
		return
	}
	events, err := h.orch.Audit(c.Request.Context(), id)
	if err != nil {
		writeError(c, h.logger, err)
		return
	}
	out := auditResponse{ID: id, Events: events}
	if h.opts.Audit != nil {
		recs, err := h.opts.Audit.List(c.Request.Context(), id)
		if err != nil {
			h.logger.WarnContext(c.Request.Context(), "reading the audit store failed", "error", err, "correlation_id", correlationID(c))
		} else {
			out.Stored = recs
		}
	}
	c.JSON(http.StatusOK, out)
}

// auditRefusal records in the audit store a request the workflow refused
// before its history (an Update's validator): the workflow cannot record
// those itself. Other failures (not found, unavailable) are not refusals.
func (h *handler) auditRefusal(c *gin.Context, id, what, channel string, err error) {
	p, _ := principalOf(c)
	h.recordRefusal(c.Request.Context(), p, id, what, channel, err)
}

// recordRefusal is auditRefusal for p, whatever the edge (the console too);
// the correlation id comes from ctx.
func (h *handler) recordRefusal(ctx context.Context, p Principal, id, what, channel string, err error) {
	var re *orchestrator.RejectedError
	if h.opts.Audit == nil || !errors.As(err, &re) {
		return
	}
	ev := audit.Event{
		ID: "api/" + uuid.NewString(), RemediationID: id, Kind: "refused", Actor: p.Subject, Roles: p.Roles,
		Channel: channel, At: time.Now().UTC(), CorrelationID: correlation.From(ctx),
		Detail: what + " refused (" + re.Code.Name + "): " + re.Message,
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if aerr := h.opts.Audit.Append(ctx, ev); aerr != nil {
		h.logger.WarnContext(ctx, "recording a refusal in the audit store failed", "error", aerr, "correlation_id", ev.CorrelationID)
	}
}

func voteWhat(approve bool) string {
	if approve {
		return "approve"
	}
	return "reject"
}

// clientChannel is the channel a REST vote is recorded under: "cli" when
// the remediator client says it sent it (X-Remediator-Channel), else "api".
// It only labels the vote of the authenticated caller.
func clientChannel(c *gin.Context) string {
	if c.GetHeader("X-Remediator-Channel") == workflows.ChannelCLI {
		return workflows.ChannelCLI
	}
	return workflows.ChannelAPI
}
