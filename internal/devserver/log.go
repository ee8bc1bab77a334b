//go:build !production

package devserver

import (
	"context"
	"log/slog"
	"sync/atomic"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// serverLogger adapts an slog.Logger to the server's log.Logger, dropping
// everything below warn: at info the server logs hundreds of lines per start,
// none of which a `remediator dev` user can act on.
//
// Once muted (Server.Stop sets it) it drops everything: while the services
// shut down one by one they log dozens of "Not enough hosts to serve the
// request" errors, and some system workers of the server outlive Stop and keep
// logging failed polls. Stop reports its own failure as an error instead.
type serverLogger struct {
	log   *slog.Logger
	muted *atomic.Bool
}

var (
	_ log.Logger     = serverLogger{}
	_ log.WithLogger = serverLogger{}
)

func newServerLogger(l *slog.Logger, muted *atomic.Bool) serverLogger {
	return serverLogger{log: l, muted: muted}
}

// Debug is dropped (below warn).
func (serverLogger) Debug(string, ...tag.Tag) {}

// Info is dropped (below warn).
func (serverLogger) Info(string, ...tag.Tag) {}

func (l serverLogger) Warn(msg string, tags ...tag.Tag)  { l.emit(slog.LevelWarn, msg, tags) }
func (l serverLogger) Error(msg string, tags ...tag.Tag) { l.emit(slog.LevelError, msg, tags) }

// DPanic is logged as an error: it only panics in development builds of zap.
func (l serverLogger) DPanic(msg string, tags ...tag.Tag) { l.emit(slog.LevelError, msg, tags) }

// Panic logs and panics, as the server's own logger does.
func (l serverLogger) Panic(msg string, tags ...tag.Tag) {
	l.emit(slog.LevelError, msg, tags)
	panic(msg)
}

// Fatal is logged as an error and does not exit: the server is embedded, so
// the host process decides what a failed start means (Start returns an error).
func (l serverLogger) Fatal(msg string, tags ...tag.Tag) { l.emit(slog.LevelError, msg, tags) }

// With returns a logger that adds tags to every record.
func (l serverLogger) With(tags ...tag.Tag) log.Logger {
	return serverLogger{log: slog.New(l.log.Handler().WithAttrs(tagsToAttrs(tags))), muted: l.muted}
}

func (l serverLogger) emit(level slog.Level, msg string, tags []tag.Tag) {
	ctx := context.Background()
	if l.muted.Load() || !l.log.Enabled(ctx, level) {
		return
	}
	l.log.LogAttrs(ctx, level, msg, tagsToAttrs(tags)...)
}

func tagsToAttrs(tags []tag.Tag) []slog.Attr {
	attrs := make([]slog.Attr, 0, len(tags))
	for _, t := range tags {
		attrs = append(attrs, slog.Any(t.Key(), t.Value()))
	}
	return attrs
}
