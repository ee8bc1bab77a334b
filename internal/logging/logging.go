// Package logging builds the one slog logger of the process and adapts it for
// the Temporal SDK, so workflow, activity and HTTP logs share one format.
package logging

import (
	"io"
	"log/slog"

	sdklog "go.temporal.io/sdk/log"
)

// New returns a JSON or text logger at the given level ("debug", "info",
// "warn", "error").
func New(w io.Writer, format, level string) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// SDK adapts l for client.Options.Logger.
func SDK(l *slog.Logger) sdklog.Logger { return sdklog.NewStructuredLogger(l) }
