package api

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"remediator/internal/ratelimit"
)

// limit applies rule to the request, keyed on the principal when there is one
// and on the client IP otherwise (X-Forwarded-For counts only from trusted
// proxies). When the shared store is down, writes fail closed with 503 and
// reads pass (counted as errors).
func (h *handler) limit(rule string, write bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if h.opts.Limiter == nil {
			c.Next()
			return
		}
		key := "ip:" + c.ClientIP()
		if p, ok := principalOf(c); ok {
			key = "principal:" + p.Method + ":" + p.Subject
		}
		res, err := h.opts.Limiter.Take(c.Request.Context(), rule, key)
		outcome := ratelimit.OutcomeAllowed
		switch {
		case err != nil:
			outcome = ratelimit.OutcomeError
		case res.Limited:
			outcome = ratelimit.OutcomeLimited
		}
		h.limited.WithLabelValues(c.Request.Method, c.FullPath(), outcome).Inc()
		if err != nil {
			if errors.Is(err, ratelimit.ErrStoreUnavailable) && !write {
				h.logger.WarnContext(c.Request.Context(), "rate limit store unavailable; letting a read pass", "rule", rule, "error", err)
				c.Next()
				return
			}
			h.logger.ErrorContext(c.Request.Context(), "rate limit store unavailable", "rule", rule, "error", err, "correlation_id", correlationID(c))
			writeError(c, h.logger, newError(http.StatusServiceUnavailable, "rate_limit_unavailable",
				"rate limiting is unavailable, so writes are refused; retry later"))
			return
		}
		hdr := c.Writer.Header()
		hdr.Set("X-RateLimit-Limit", strconv.FormatInt(res.Limit, 10))
		hdr.Set("X-RateLimit-Remaining", strconv.FormatInt(res.Remaining, 10))
		hdr.Set("X-RateLimit-Reset", strconv.FormatInt(res.Reset.Unix(), 10))
		if res.Limited {
			wait := int64(math.Ceil(time.Until(res.Reset).Seconds()))
			if wait < 1 {
				wait = 1
			}
			hdr.Set("Retry-After", strconv.FormatInt(wait, 10))
			writeError(c, h.logger, newError(http.StatusTooManyRequests, "rate_limited", "rate limit "+rule+" exceeded"))
			return
		}
		c.Next()
	}
}

func (h *handler) metrics(c *gin.Context) {
	if h.opts.Metrics == nil {
		writeError(c, h.logger, newError(http.StatusNotFound, "not_found", "metrics are not enabled"))
		return
	}
	h.opts.Metrics.ServeHTTP(c.Writer, c.Request)
}
