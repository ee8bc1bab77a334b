package api

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"remediator/internal/dragon"
	"remediator/internal/errcode"
	"remediator/internal/orchestrator"
	"remediator/internal/webhook"
	"remediator/workflows"
)

// DragonClient reads decisions from Dragon: the callback is only a hint
// that one changed, Dragon's API is the authority on what was decided.
type DragonClient interface {
	Get(ctx context.Context, id string) (dragon.Decision, error)
}

type dragonResponse struct {
	Status        string          `json:"status"` // counted, ignored, refused
	DecisionID    string          `json:"decision_id"`
	RemediationID string          `json:"remediation_id,omitempty"`
	Phase         workflows.Phase `json:"phase,omitempty"`
	Reason        string          `json:"reason,omitempty"`
}

// dragonWebhook takes Dragon's callback: HMAC over timestamp and body with
// KLYNX_DRAGON_WEBHOOK_SECRET (fail closed) within 5 minutes, then the
// decision is read from Dragon and, if decided, voted through the same
// signed Update as every other channel — as the person who decided in
// Dragon (channel dragon), so the four-eyes rule holds. A replayed or
// repeated callback carries the same Update ID and counts once.
func (h *handler) dragonWebhook(c *gin.Context) {
	body, err := readRaw(c, h.opts.MaxBodyBytes)
	if err != nil {
		writeError(c, h.logger, err)
		return
	}
	err = dragon.VerifyWebhook(h.opts.DragonWebhookSecret, body, c.GetHeader(dragon.TimestampHeader), c.GetHeader(dragon.SignatureHeader), time.Now())
	if err != nil {
		if errors.Is(err, dragon.ErrNoSecret) {
			err = errors.Join(err, webhook.ErrNoSecret)
		}
		h.rejectSignature(c, "dragon", err)
		return
	}
	ev, err := dragon.ParseWebhookEvent(body)
	if err != nil {
		writeError(c, h.logger, newError(errcode.MalformedPayload, "the callback names no decision"))
		return
	}
	if h.opts.Dragon == nil {
		c.JSON(http.StatusAccepted, dragonResponse{Status: "ignored", DecisionID: ev.Decision.ID, Reason: "Dragon is not configured"})
		return
	}
	d, err := h.opts.Dragon.Get(c.Request.Context(), ev.Decision.ID)
	var apiErr *dragon.APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
		c.JSON(http.StatusOK, dragonResponse{Status: "ignored", DecisionID: ev.Decision.ID, Reason: "Dragon does not know the decision"})
		return
	}
	if err != nil {
		h.logger.WarnContext(c.Request.Context(), "reading the decision from Dragon failed", "decision", ev.Decision.ID, "error", err, "correlation_id", correlationID(c))
		writeError(c, h.logger, newError(errcode.UpstreamUnavailable, "Dragon could not be asked about the decision; retry later"))
		return
	}
	out := dragonResponse{DecisionID: d.ID, RemediationID: d.RemediationID}
	c.Set(ctxPrincipal, dragonPrincipal)
	verdict := d.Verdict()
	switch {
	case verdict == dragon.VerdictPending:
		out.Status, out.Reason = "ignored", "the decision is still pending"
	case d.RemediationID == "" || h.checkAccess(c, d.RemediationID) != nil:
		out.Status, out.Reason = "ignored", "the decision is not one of this service's remediations"
	default:
		if err := h.dragonVote(c, d, verdict == dragon.VerdictApproved, &out); err != nil {
			// Temporal is unavailable: answer so that Dragon retries.
			writeError(c, h.logger, err)
			return
		}
	}
	h.logger.InfoContext(c.Request.Context(), "dragon callback", "decision", d.ID, "remediation_id", d.RemediationID,
		"status", out.Status, "reason", out.Reason, "correlation_id", correlationID(c))
	c.JSON(http.StatusOK, out)
}

// dragonPrincipal is who acts for Dragon's callbacks: it may reach every
// repository, and votes carry the person Dragon names, not this principal.
var dragonPrincipal = Principal{Subject: "webhook:dragon", Roles: []string{roleApprover}, Repos: []string{"*"}, Method: "dragon_signature"}

// dragonVote votes for d's decider and fills out; it returns an error only
// when the vote could not be delivered and a retry may succeed.
func (h *handler) dragonVote(c *gin.Context, d dragon.Decision, approve bool, out *dragonResponse) error {
	repo, err := h.orch.RepoOf(c.Request.Context(), d.RemediationID)
	if err != nil {
		out.Status, out.Reason = "ignored", "no such remediation"
		return nil
	}
	// Whom the decision counts as: a linked principal with an approver
	// role and this repository in scope (REMEDIATOR_DRAGON_USERS); a
	// rejection vetoes whoever took it.
	actor, roles, why := h.opts.DragonUsers.Decider(d.Approver, repo, approve)
	if actor == "" {
		out.Status, out.Reason = "refused", why
		return nil
	}
	digest, base := d.DiffDigest, d.BaseSHA
	if digest == "" || base == "" {
		// A Dragon that does not echo the digest or the base: the
		// decision is about the one fix its remediation proposed for it
		// (each fix gets a decision of its own; OpenPR checks the facts).
		st, err := h.orch.Get(c.Request.Context(), d.RemediationID)
		if err != nil || st.Fix == nil || st.DecisionID != d.ID {
			out.Status, out.Reason = "ignored", "the decision is not the one this remediation awaits"
			return nil
		}
		digest, base = cmp.Or(digest, st.Fix.Digest), cmp.Or(base, st.Fix.BaseSHA)
	}
	v := orchestrator.Vote{ID: d.RemediationID, Approve: approve, Actor: actor, Roles: roles, DecisionID: d.ID,
		DiffDigest: digest, BaseSHA: base, Channel: workflows.ChannelDragon,
		RequestID: "dragon:" + d.ID + ":" + strings.ToLower(strings.TrimSpace(d.Status)) + ":" + actor}
	reason := oneLine(d.Reason, maxTextLen)
	if approve {
		v.Comment = reason
	} else {
		v.Reason = reason
		if v.Reason == "" {
			v.Reason = "rejected in Dragon (status " + oneLine(d.Status, 64) + ")"
		}
	}
	st, err := h.orch.Decide(c.Request.Context(), v)
	h.auditRefusal(c, v.ID, voteWhat(v.Approve), workflows.ChannelDragon, err)
	var rej *orchestrator.RejectedError
	switch {
	case errors.As(err, &rej):
		out.Status, out.Reason = "refused", rej.Message
	case errors.Is(err, orchestrator.ErrNotFound):
		out.Status, out.Reason = "ignored", "no such remediation"
	case err != nil:
		return err
	default:
		out.Status, out.Phase = "counted", st.Phase
	}
	return nil
}
