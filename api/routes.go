package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"remediator/internal/errcode"
	"remediator/internal/orchestrator"
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
	rulePR        = "pr"
	// ruleAuthFailures counts failed authentications per client IP; it is
	// applied by authenticate, not by a route.
	ruleAuthFailures = "auth_failures"
)

// route is one row of the HTTP surface. The OpenAPI test checks every row's
// roles and rule against the document, so the two cannot drift.
type route struct {
	method, path string
	rule         string   // rate-limit rule; "" = not limited
	roles        []string // nil = public (webhooks verify signatures instead)
	handle       gin.HandlerFunc
}

// routeTable is the whole HTTP surface in one place. Authenticated routes
// are limited per principal, public ones per client IP.
func (h *handler) routeTable() []route {
	anyRole := []string{roleDeveloper, roleApprover, roleAdmin}
	approvers := []string{roleApprover, roleAdmin}
	return []route{
		{"GET", "/livez", "", nil, h.livez},
		{"GET", "/readyz", "", nil, h.readyz},
		{"GET", "/health", ruleGeneral, nil, h.health},
		{"GET", "/openapi.yaml", ruleGeneral, nil, h.serveOpenAPI},
		{"GET", "/metrics", "", nil, h.metrics},
		{"POST", "/webhooks/github", ruleWebhooks, nil, h.githubWebhook},
		{"POST", "/webhooks/slack", ruleWebhooks, nil, h.slackWebhook},
		{"POST", "/webhooks/dragon", ruleWebhooks, nil, h.dragonWebhook},
		{"POST", "/api/remediations", ruleGenerate, []string{roleDeveloper, roleAdmin}, h.startRemediation},
		{"GET", "/api/remediations", ruleGeneral, anyRole, h.listRemediations},
		{"GET", "/api/remediations/:id", ruleGeneral, anyRole, h.getRemediation},
		{"POST", "/api/remediations/:id/approve", ruleApprovals, approvers, h.vote(true)},
		{"POST", "/api/remediations/:id/reject", ruleApprovals, approvers, h.vote(false)},
		{"POST", "/api/remediations/:id/regenerate", ruleGenerate, []string{roleDeveloper, roleAdmin}, h.regenerate},
		{"GET", "/api/remediations/:id/audit", ruleGeneral, anyRole, h.getAudit},
		{"POST", "/api/remediations/:id/cancel", ruleGeneral, []string{roleAdmin}, h.cancelRemediation},
		{"GET", "/api/decisions/:id", ruleGeneral, anyRole, h.getDecision},
		{"POST", ciEventPath, ruleWebhooks, []string{roleDeveloper, roleAdmin}, h.ciEvent},
		{"POST", "/api/observability/alert", ruleWebhooks, []string{roleDeveloper, roleAdmin}, h.observabilityAlert},
		{"POST", "/api/generate", ruleGenerate, []string{roleDeveloper, roleAdmin}, h.generate},
		{"POST", "/api/pr", rulePR, anyRole, h.pr},
		{"POST", "/api/approvals", ruleApprovals, approvers, h.approvals},
	}
}

// routes registers the table: /api routes authenticate first (refused at
// once while the client IP has spent its failed-authentication budget), then
// count against their rule (writes fail closed when the limiter is down), then
// check roles.
func routes(r *gin.Engine, h *handler) {
	authed := r.Group("/api", h.authenticate())
	for _, rt := range h.routeTable() {
		var chain []gin.HandlerFunc
		if rt.rule != "" {
			chain = append(chain, h.limit(rt.rule, rt.method != http.MethodGet))
		}
		if rt.roles != nil {
			chain = append(chain, requireRole(h.logger, rt.roles...))
		}
		chain = append(chain, rt.handle)
		if rest, ok := strings.CutPrefix(rt.path, "/api/"); ok {
			authed.Handle(rt.method, "/"+rest, chain...)
		} else {
			r.Handle(rt.method, rt.path, chain...)
		}
	}
	h.codecRoutes(r)
	if h.opts.UI != nil {
		// The console authenticates with its own session cookie and
		// answers in HTML; scope and vote delivery are the API's (Access).
		r.Any("/ui/*path", gin.WrapH(h.opts.UI(h.access())))
	}
	r.NoRoute(func(c *gin.Context) {
		writeError(c, h.logger, newError(errcode.NotFound, "no such route"))
	})
	r.NoMethod(func(c *gin.Context) {
		writeError(c, h.logger, newError(errcode.MethodNotAllowed, "method not allowed on this route"))
	})
}

// Access is what the approver console (Options.UI) shares with the REST
// API, so both apply one set of rules: the same listing scope, the same
// per-repository check, the same subjects, links and refusal records.
type Access struct {
	// ListScope is the visibility condition of a principal's listing.
	ListScope func(p Principal) orchestrator.Scope
	// MayAccess reports whether p may see repo (any of its names).
	MayAccess func(p Principal, repo string) bool
	// Canonical canonicalises a repository filter ("" = leave as is).
	Canonical func(ctx context.Context, repo string) string
	// ValidSubject reports whether a subject is usable as an actor (the
	// API refuses credentials whose subject is not).
	ValidSubject func(subject string) bool
	// WebUIURL links a remediation in the Temporal Web UI ("" = none).
	WebUIURL func(id string) string
	// Refused records in the audit store a vote the workflow refused
	// before its history, as the REST vote does.
	Refused func(ctx context.Context, p Principal, id, what, channel string, err error)
	// TakeVote counts a vote against p's approvals budget (the rule of
	// the REST vote routes): limited, or an error when the limit store is
	// down (votes then fail closed, like every write).
	TakeVote func(ctx context.Context, p Principal) (limited bool, err error)
}

// access is the handler's Access.
func (h *handler) access() Access {
	return Access{
		ListScope: h.listScope,
		MayAccess: h.principalMayAccess,
		Canonical: func(ctx context.Context, repo string) string {
			if h.opts.Repos != nil {
				if c, err := h.opts.Repos.Canonical(ctx, repo); err == nil {
					return c
				}
			}
			return repo
		},
		ValidSubject: subjectPattern.MatchString,
		WebUIURL: func(id string) string {
			if h.opts.UIURL == "" {
				return ""
			}
			return h.opts.UIURL + "/namespaces/" + url.PathEscape(h.orch.Namespace()) + "/workflows/" + url.PathEscape(id)
		},
		Refused: h.recordRefusal,
		TakeVote: func(ctx context.Context, p Principal) (bool, error) {
			if h.opts.Limiter == nil {
				return false, nil
			}
			res, err := h.opts.Limiter.Take(ctx, ruleApprovals, principalKey(p))
			return err == nil && res.Limited, err
		},
	}
}
