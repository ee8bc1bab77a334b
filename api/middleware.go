package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"remediator/internal/config"
)

// HeaderCorrelationID carries one id from the caller through the workflow
// memo, the search attributes and every log line.
const HeaderCorrelationID = "X-Correlation-ID"

var correlationPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{8,128}$`)

const (
	ctxCorrelation = "correlation_id"
	ctxPrincipal   = "principal"
)

// Principal is the authenticated caller.
type Principal struct {
	Subject string
	Roles   []string
}

// HasAny reports whether p holds one of roles.
func (p Principal) HasAny(roles ...string) bool {
	for _, r := range roles {
		if slices.Contains(p.Roles, r) {
			return true
		}
	}
	return false
}

// correlation accepts a well-formed X-Correlation-ID or replaces it.
func correlation() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(HeaderCorrelationID)
		if !correlationPattern.MatchString(id) {
			id = uuid.NewString()
		}
		c.Set(ctxCorrelation, id)
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

// tokenAuth authenticates bearer tokens against the configured table. Every
// entry is compared (constant time over the hashes) so timing does not tell
// which one almost matched.
func tokenAuth(logger *slog.Logger, tokens []config.Token) gin.HandlerFunc {
	return func(c *gin.Context) {
		raw, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		if !ok || strings.TrimSpace(raw) == "" {
			writeError(c, logger, newError(http.StatusUnauthorized, "unauthenticated", "a bearer token is required"))
			return
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(raw)))
		var found *config.Token
		for i := range tokens {
			if subtle.ConstantTimeCompare(sum[:], tokens[i].Hash[:]) == 1 {
				found = &tokens[i]
			}
		}
		if found == nil {
			writeError(c, logger, newError(http.StatusUnauthorized, "invalid_token", "the token is not valid"))
			return
		}
		c.Set(ctxPrincipal, Principal{Subject: found.Subject, Roles: slices.Clone(found.Roles)})
		c.Next()
	}
}

// requireRole answers 403 unless the principal holds one of roles.
func requireRole(logger *slog.Logger, roles ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, ok := principalOf(c)
		if !ok || !p.HasAny(roles...) {
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
