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

// routes is the whole HTTP surface in one place.
func routes(r *gin.Engine, h *handler) {
	r.GET("/livez", h.livez)
	r.GET("/readyz", h.readyz)
	r.GET("/health", h.health)

	authed := r.Group("/api", tokenAuth(h.logger, h.opts.Tokens))
	anyRole := requireRole(h.logger, roleDeveloper, roleApprover, roleAdmin)
	authed.POST("/remediations", requireRole(h.logger, roleDeveloper, roleAdmin), h.startRemediation)
	authed.GET("/remediations", anyRole, h.listRemediations)
	authed.GET("/remediations/:id", anyRole, h.getRemediation)
	authed.POST("/remediations/:id/approve", requireRole(h.logger, roleApprover, roleAdmin), h.vote(true))
	authed.POST("/remediations/:id/reject", requireRole(h.logger, roleApprover, roleAdmin), h.vote(false))
	authed.POST("/remediations/:id/cancel", requireRole(h.logger, roleAdmin), h.cancelRemediation)
	authed.GET("/decisions/:id", anyRole, h.getDecision)

	r.NoRoute(func(c *gin.Context) {
		writeError(c, h.logger, newError(http.StatusNotFound, "not_found", "no such route"))
	})
	r.NoMethod(func(c *gin.Context) {
		writeError(c, h.logger, newError(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this route"))
	})
}
