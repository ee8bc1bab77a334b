package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// Roles, as the README's route table lists them.
const (
	roleDeveloper = "developer"
	roleApprover  = "approver"
	roleAdmin     = "admin"
)

// Rate-limit rules (see REMEDIATOR_RATE_LIMITS).
const (
	ruleGenerate  = "generate"
	ruleApprovals = "approvals"
	ruleWebhooks  = "webhooks"
	ruleGeneral   = "general"
)

// routes is the whole HTTP surface in one place: path, rate-limit rule,
// required roles, handler. Authenticated routes are limited per principal,
// public ones per client IP.
func routes(r *gin.Engine, h *handler) {
	r.GET("/livez", h.livez)
	r.GET("/readyz", h.readyz)
	r.GET("/health", h.limit(ruleGeneral, false), h.health)
	r.GET("/openapi.yaml", h.limit(ruleGeneral, false), h.serveOpenAPI)
	r.GET("/metrics", h.metrics)

	r.POST("/webhooks/github", h.limit(ruleWebhooks, true), h.githubWebhook)
	r.POST("/webhooks/slack", h.limit(ruleWebhooks, true), h.slackWebhook)

	authed := r.Group("/api", authenticate(h.logger, h.opts.Auth))
	anyRole := requireRole(h.logger, roleDeveloper, roleApprover, roleAdmin)
	approvers := requireRole(h.logger, roleApprover, roleAdmin)
	authed.POST("/remediations", h.limit(ruleGenerate, true), requireRole(h.logger, roleDeveloper, roleAdmin), h.startRemediation)
	authed.GET("/remediations", h.limit(ruleGeneral, false), anyRole, h.listRemediations)
	authed.GET("/remediations/:id", h.limit(ruleGeneral, false), anyRole, h.getRemediation)
	authed.POST("/remediations/:id/approve", h.limit(ruleApprovals, true), approvers, h.vote(true))
	authed.POST("/remediations/:id/reject", h.limit(ruleApprovals, true), approvers, h.vote(false))
	authed.POST("/remediations/:id/cancel", h.limit(ruleGeneral, true), requireRole(h.logger, roleAdmin), h.cancelRemediation)
	authed.GET("/decisions/:id", h.limit(ruleGeneral, false), anyRole, h.getDecision)

	r.NoRoute(func(c *gin.Context) {
		writeError(c, h.logger, newError(http.StatusNotFound, "not_found", "no such route"))
	})
	r.NoMethod(func(c *gin.Context) {
		writeError(c, h.logger, newError(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this route"))
	})
}
