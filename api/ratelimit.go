package api

import (
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"remediator/internal/errcode"
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
			key = principalKey(p)
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
			if h.limiterDown(c, rule, write, err) {
				c.Next()
			}
			return
		}
		setLimitHeaders(c, res)
		if res.Limited {
			h.refuseLimited(c, res, "rate limit "+rule+" exceeded")
			return
		}
		c.Next()
	}
}

// limiterDown decides what a failed budget check means: a read passes (the
// store is only unavailable, logged), anything else answers 503
// rate_limit_unavailable, so writes never run unlimited. It reports whether
// the request may go on.
func (h *handler) limiterDown(c *gin.Context, rule string, write bool, err error) bool {
	if errors.Is(err, ratelimit.ErrStoreUnavailable) && !write {
		h.logger.WarnContext(c.Request.Context(), "rate limit store unavailable; letting a read pass", "rule", rule, "error", err)
		return true
	}
	h.logger.ErrorContext(c.Request.Context(), "rate limit store unavailable", "rule", rule, "error", err, "correlation_id", correlationID(c))
	writeError(c, h.logger, newError(errcode.RateLimitUnavailable, "rate limiting is unavailable, so writes are refused; retry later"))
	return false
}

// refuseLimited answers 429 rate_limited with the budget's headers and
// Retry-After (whole seconds until the window resets, at least 1). Refusals
// are counted in the metrics, not logged: a flood must not flood the log.
func (h *handler) refuseLimited(c *gin.Context, res ratelimit.Result, message string) {
	setLimitHeaders(c, res)
	wait := int64(math.Ceil(time.Until(res.Reset).Seconds()))
	if wait < 1 {
		wait = 1
	}
	c.Header("Retry-After", strconv.FormatInt(wait, 10))
	writeError(c, h.logger, newError(errcode.RateLimited, message))
}

func setLimitHeaders(c *gin.Context, res ratelimit.Result) {
	hdr := c.Writer.Header()
	hdr.Set("X-RateLimit-Limit", strconv.FormatInt(res.Limit, 10))
	hdr.Set("X-RateLimit-Remaining", strconv.FormatInt(res.Remaining, 10))
	hdr.Set("X-RateLimit-Reset", strconv.FormatInt(res.Reset.Unix(), 10))
}

func (h *handler) metrics(c *gin.Context) {
	if h.opts.Metrics == nil {
		writeError(c, h.logger, newError(errcode.NotFound, "metrics are not enabled"))
		return
	}
	h.opts.Metrics.ServeHTTP(c.Writer, c.Request)
}

// principalKey is the rate-limit key of an authenticated caller.
func principalKey(p Principal) string { return "principal:" + p.Method + ":" + p.Subject }
