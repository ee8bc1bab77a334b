package api

import (
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"remediator/internal/auth"
	"remediator/internal/correlation"
)

// HeaderCorrelationID carries one id from the caller through the workflow
// memo, the search attributes and every log line.
const HeaderCorrelationID = correlation.Header

var correlationPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{8,128}$`)

const (
	ctxCorrelation = "correlation_id"
	ctxPrincipal   = "principal"
)

// Principal is the authenticated caller.
type Principal = auth.Principal

// withCorrelationID accepts a well-formed X-Correlation-ID or replaces it.
func withCorrelationID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(HeaderCorrelationID)
		if !correlationPattern.MatchString(id) {
			id = uuid.NewString()
		}
		c.Set(ctxCorrelation, id)
		c.Request = c.Request.WithContext(correlation.With(c.Request.Context(), id))
		c.Header(HeaderCorrelationID, id)
		c.Next()
	}
}

func correlationID(c *gin.Context) string { return c.GetString(ctxCorrelation) }

// securityHeaders are safe for a JSON-only API.
func securityHeaders() gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Cache-Control", "no-store")
		c.Next()
	}
}

// accessLog writes one line per request, after it finished.
func accessLog(logger *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		attrs := []any{
			"method", c.Request.Method, "path", c.FullPath(), "status", c.Writer.Status(),
			"duration_ms", time.Since(start).Milliseconds(), "correlation_id", correlationID(c),
		}
		if p, ok := principalOf(c); ok {
			attrs = append(attrs, "principal", p.Subject)
		}
		logger.InfoContext(c.Request.Context(), "http request", attrs...)
	}
}

// recovery turns a panic into the generic 500 body; the stack goes to the log only.
func recovery(logger *slog.Logger) gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, err any) {
		logger.Error("panic in handler", "panic", err, "path", c.Request.URL.Path, "correlation_id", correlationID(c))
		c.AbortWithStatusJSON(http.StatusInternalServerError, errorBody{Error: "internal", Message: "internal error", CorrelationID: correlationID(c)})
	})
}

// authenticate resolves the principal (JWT, API key or configured token) or
// answers 401 with a stable code; why a credential failed is logged, never
// returned.
func authenticate(logger *slog.Logger, a *auth.Authenticator) gin.HandlerFunc {
	return func(c *gin.Context) {
		if a == nil {
			writeError(c, logger, newError(http.StatusUnauthorized, auth.CodeMissingCredentials, "authentication is required"))
			return
		}
		p, err := a.Authenticate(c.Request)
		if err != nil {
			code := auth.CodeInvalidToken
			var aerr *auth.Error
			if errors.As(err, &aerr) {
				code = aerr.Code
			}
			logger.InfoContext(c.Request.Context(), "authentication failed", "code", code, "error", err, "correlation_id", correlationID(c))
			writeError(c, logger, newError(http.StatusUnauthorized, code, "authentication failed"))
			return
		}
		if !subjectPattern.MatchString(p.Subject) {
			// Subjects become search attributes, memo values and Update IDs.
			logger.InfoContext(c.Request.Context(), "authentication failed", "code", auth.CodeInvalidToken, "error", "unusable subject", "correlation_id", correlationID(c))
			writeError(c, logger, newError(http.StatusUnauthorized, auth.CodeInvalidToken, "authentication failed"))
			return
		}
		c.Set(ctxPrincipal, p)
		c.Next()
	}
}

// subjectPattern bounds principal names (JWT `sub` is otherwise free text).
var subjectPattern = regexp.MustCompile(`^[A-Za-z0-9._@|+-]{1,128}$`)

// requireRole answers 403 unless the principal holds one of roles.
func requireRole(logger *slog.Logger, roles ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, ok := principalOf(c)
		if !ok || !p.HasRole(roles...) {
			writeError(c, logger, newError(http.StatusForbidden, "forbidden", "this action needs one of the roles: "+strings.Join(roles, ", ")))
			return
		}
		c.Next()
	}
}

func principalOf(c *gin.Context) (Principal, bool) {
	v, ok := c.Get(ctxPrincipal)
	if !ok {
		return Principal{}, false
	}
	p, ok := v.(Principal)
	return p, ok
}
