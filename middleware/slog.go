package middleware

import (
	"context"
	"log/slog"
	"slices"

	"go.opentelemetry.io/otel/trace"
)

// Log attribute names NewLogHandler adds.
const (
	LogTraceID = "trace_id"
	LogSpanID  = "span_id"
)

// NewLogHandler returns a slog.Handler that adds trace_id and span_id to
// every record logged with a context that holds a span (such as a handler's
// ctx), then passes it to next, so logs link to traces. Use the
// *Context logging methods: slog.InfoContext(ctx, ...). The IDs stay at the
// top level of the record under a logger's groups (logger.WithGroup), where
// log pipelines look for them.
func NewLogHandler(next slog.Handler) slog.Handler { return &logHandler{next: next} }

// logHandler passes attributes added before any group straight to next;
// from the first WithGroup on it keeps the groups and their attributes
// itself, and nests them in each record, so that the IDs it adds are not
// inside them.
type logHandler struct {
	next   slog.Handler
	groups []logGroup
}

type logGroup struct {
	name  string
	attrs []slog.Attr
}

func (h *logHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	if len(h.groups) == 0 {
		if sc.IsValid() {
			r = r.Clone()
			r.AddAttrs(slog.String(LogTraceID, sc.TraceID().String()), slog.String(LogSpanID, sc.SpanID().String()))
		}
		return h.next.Handle(ctx, r)
	}
	// The record's attributes go in the innermost group, each group in the
	// one around it.
	inner := make([]slog.Attr, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		inner = append(inner, a)
		return true
	})
	for i := len(h.groups) - 1; i >= 0; i-- {
		// A group holds the attributes added after it opened, then the
		// groups opened inside it (or the record's).
		g := h.groups[i]
		inner = []slog.Attr{{Key: g.name, Value: slog.GroupValue(append(slices.Clip(g.attrs), inner...)...)}}
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	if sc.IsValid() {
		out.AddAttrs(slog.String(LogTraceID, sc.TraceID().String()), slog.String(LogSpanID, sc.SpanID().String()))
	}
	out.AddAttrs(inner...)
	return h.next.Handle(ctx, out)
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	if len(h.groups) == 0 {
		return &logHandler{next: h.next.WithAttrs(attrs)}
	}
	groups := slices.Clone(h.groups)
	last := &groups[len(groups)-1]
	last.attrs = append(slices.Clip(last.attrs), attrs...)
	return &logHandler{next: h.next, groups: groups}
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h // slog's rule: an empty group name adds no group
	}
	return &logHandler{next: h.next, groups: append(slices.Clip(h.groups), logGroup{name: name})}
}
