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
	"remediator/internal/errcode"
	"remediator/internal/ratelimit"
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
		writeError(c, logger, newError(errcode.Internal, "internal error"))
	})
}

// Header limits. maxHeaderBytes is the documented limit (64 KiB of request
// line and headers), enforced by limitHeaders so the answer has the JSON
// error shape and a correlation id. serverMaxHeaderBytes is what NewServer
// lets net/http read: above it Go answers a bare 431 itself, before any
// handler runs.
const (
	maxHeaderBytes       = 64 << 10
	serverMaxHeaderBytes = 1 << 20
)

// limitHeaders refuses requests whose headers exceed maxHeaderBytes with 431
// request_header_too_large, before routing or authentication looks at them.
func limitHeaders(logger *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if headerBytes(c.Request) > maxHeaderBytes {
			c.Header("Connection", "close")
			writeError(c, logger, newError(errcode.RequestHeaderTooLarge, "the request headers are larger than 64 KiB"))
			return
		}
		c.Next()
	}
}

// headerBytes counts the request line and header lines as they were sent
// (net/http moves Host out of Header), which is what MaxHeaderBytes bounds.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	n += len("Host: ") + len(r.Host) + 2
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n
}

// authenticate resolves the principal (JWT, API key or configured token) or
// answers 401 with a stable code; why a credential failed is logged, never
// returned. Failed authentications are counted per client IP under the
// auth_failures rule: once an IP has spent that budget, its requests are
// answered 429 before any credential is evaluated (so guessing, and the JWKS
// refreshes unknown key ids cause, stop), until the window resets.
// Successful authentications never count.
func (h *handler) authenticate() gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		key := "ip:" + c.ClientIP()
		// GitLab sends every project's hooks from a few shared addresses: a
		// wrong hook token must not lock the real hooks out. The token is a
		// long random secret, checked in constant time.
		gitlabHook := c.GetHeader(gitlabTokenHeader) != "" && c.FullPath() == ciEventPath
		if h.opts.Limiter != nil && !gitlabHook {
			res, err := h.opts.Limiter.Peek(ctx, ruleAuthFailures, key)
			switch {
			case err != nil:
				// Counted per route only when it ends the request: a read that
				// passes meets the route's own rule next, which counts it.
				if !h.limiterDown(c, ruleAuthFailures, c.Request.Method != http.MethodGet, err) {
					h.limited.WithLabelValues(c.Request.Method, c.FullPath(), ratelimit.OutcomeError).Inc()
					return
				}
			case res.Limited:
				h.limited.WithLabelValues(c.Request.Method, c.FullPath(), ratelimit.OutcomeLimited).Inc()
				h.refuseLimited(c, res, "too many failed authentications from this address")
				return
			}
		}
		p, code, err := h.identify(c)
		if err != nil {
			h.logger.InfoContext(ctx, "authentication failed", "code", code.Name, "error", err, "client_ip", c.ClientIP(), "correlation_id", correlationID(c))
			if h.opts.Limiter != nil && !gitlabHook {
				if _, terr := h.opts.Limiter.Take(ctx, ruleAuthFailures, key); terr != nil {
					h.logger.WarnContext(ctx, "failed authentication not counted: rate limit store unavailable", "error", terr, "correlation_id", correlationID(c))
				}
			}
			msg := "authentication failed"
			if code == errcode.MissingCredentials {
				msg = "authentication is required"
			}
			writeError(c, h.logger, newError(code, msg))
			return
		}
		c.Set(ctxPrincipal, p)
		c.Next()
	}
}

// identify runs the authenticator and turns a failure into its catalogue
// code (anything unexpected counts as an invalid token).
func (h *handler) identify(c *gin.Context) (Principal, errcode.Code, error) {
	r := c.Request
	if tok := r.Header.Get(gitlabTokenHeader); tok != "" && c.FullPath() == ciEventPath {
		return h.gitlabPrincipal(tok)
	}
	if h.opts.Auth == nil {
		return Principal{}, errcode.MissingCredentials, errors.New("no authenticator configured")
	}
	p, err := h.opts.Auth.Authenticate(r)
	if err != nil {
		code := errcode.InvalidToken
		var aerr *auth.Error
		if errors.As(err, &aerr) {
			if c, ok := errcode.Lookup(aerr.Code); ok && c.Status == http.StatusUnauthorized {
				code = c
			}
		}
		return Principal{}, code, err
	}
	if !subjectPattern.MatchString(p.Subject) {
		// Subjects become search attributes, memo values and Update IDs.
		return Principal{}, errcode.InvalidToken, errors.New("unusable subject")
	}
	return p, errcode.Code{}, nil
}

// subjectPattern bounds principal names (JWT `sub` is otherwise free text).
var subjectPattern = regexp.MustCompile(`^[A-Za-z0-9._@|+-]{1,128}$`)

// requireRole answers 403 unless the principal holds one of roles.
func requireRole(logger *slog.Logger, roles ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, ok := principalOf(c)
		if !ok || !p.HasRole(roles...) {
			writeError(c, logger, newError(errcode.Forbidden, "this action needs one of the roles: "+strings.Join(roles, ", ")))
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
