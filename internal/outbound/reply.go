package outbound

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxRetryAfter bounds how long a server's Retry-After may park a call: a
// wait longer than an hour is more likely a clock or proxy problem.
const MaxRetryAfter = time.Hour

// RetryAfter reads a Retry-After header in seconds (whole or fractional) or
// as an HTTP date, clamped to [0, MaxRetryAfter]; ok is false when the
// header is absent or unreadable, so the caller's own backoff applies.
// Every client's typed error takes its delay from here, so a 429 from any
// service parks an activity the same way.
func RetryAfter(h http.Header, now time.Time) (d time.Duration, ok bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(s) {
		if s >= MaxRetryAfter.Seconds() {
			return MaxRetryAfter, true
		}
		d = time.Duration(s * float64(time.Second))
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now).Round(time.Second)
	} else {
		return 0, false
	}
	return min(max(d, 0), MaxRetryAfter), true
}

// Shorten cuts s to at most n bytes without splitting a UTF-8 sequence and
// marks the cut with "…": error bodies of other services are worth a line
// in a log or a workflow's reason, not a page.
func Shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n, 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
