// Package logging builds the one slog logger of the process and adapts it for
// the Temporal SDK, so workflow, activity and HTTP logs share one format.
package logging

import (
	"io"
	"log/slog"
	"regexp"
	"strings"

	sdklog "go.temporal.io/sdk/log"
)

// Redacted replaces the value of every attribute that names a secret.
const Redacted = "[REDACTED]"

// secretKey matches attribute keys that hold credentials, wherever they
// come from (our code, the SDK, a library): their values never reach a log.
var secretKey = regexp.MustCompile(`(?i)(token|secret|password|passwd|authorization|api[_-]?key|private[_-]?key|signing[_-]?key|cookie|credential)`)

// valueRules mask credentials written inside a value: bearer and basic
// credentials, passwords in URLs, Slack webhook paths, JWTs and the token
// shapes of Slack, GitHub, GitLab and model APIs.
var valueRules = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=-]{8,}`), "${1}${2}" + Redacted},
	{regexp.MustCompile(`(://[^:/@\s?#]*:)[^@\s/?#]+(@)`), "${1}" + Redacted + "${2}"},
	{regexp.MustCompile(`(hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]+`), "${1}" + Redacted},
	{regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`), Redacted},
	{regexp.MustCompile(`\b(?:xox[abprs]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{16,}|sk-[A-Za-z0-9_-]{20,})`), Redacted},
}

// New returns a JSON or text logger at the given level ("debug", "info",
// "warn", "error"). Attributes named like secrets are replaced by
// [REDACTED], and credentials inside string values are masked.
func New(w io.Writer, format, level string) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: redact}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// redact is the handlers' ReplaceAttr.
func redact(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindGroup {
		return a
	}
	if secretKey.MatchString(a.Key) && !harmlessKey(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	if a.Value.Kind() == slog.KindString || a.Value.Kind() == slog.KindAny {
		if v := a.Value.String(); MaskValue(v) != v {
			return slog.String(a.Key, MaskValue(v))
		}
	}
	return a
}

// harmlessKey: counts and flags about secrets are not secrets.
func harmlessKey(k string) bool {
	k = strings.ToLower(k)
	return strings.HasSuffix(k, "_count") || strings.HasSuffix(k, "_set") || strings.HasSuffix(k, "_configured") || strings.HasSuffix(k, "_tokens") || strings.HasSuffix(k, "tokens_total")
}

// MaskValue masks the credentials valueRules find inside s.
func MaskValue(s string) string {
	for _, r := range valueRules {
		s = r.re.ReplaceAllString(s, r.repl)
	}
	return s
}

// SDK adapts l for client.Options.Logger.
func SDK(l *slog.Logger) sdklog.Logger { return sdklog.NewStructuredLogger(l) }
