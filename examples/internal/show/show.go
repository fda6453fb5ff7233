// Package show prints recorded spans for the per-broker examples: one line
// per span with its trace, span and parent IDs, so a reader can see which
// spans share a trace without a tracing backend.
package show

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// Spans prints spans in start order under title.
func Spans(w io.Writer, title string, spans []sdktrace.ReadOnlySpan) {
	spans = append([]sdktrace.ReadOnlySpan(nil), spans...)
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].StartTime().Before(spans[j].StartTime()) })
	fmt.Fprintf(w, "%s\n", title)
	for _, s := range spans {
		parent := "-"
		if s.Parent().IsValid() {
			parent = s.Parent().SpanID().String()
		}
		fmt.Fprintf(w, "  trace %s  span %s  parent %-16s  %-8s  %s%s\n",
			s.SpanContext().TraceID().String()[:8]+"…", s.SpanContext().SpanID(), parent,
			strings.ToLower(s.SpanKind().String()), s.Name(), links(s))
	}
}

func links(s sdktrace.ReadOnlySpan) string {
	if len(s.Links()) == 0 {
		return ""
	}
	var ids []string
	for _, l := range s.Links() {
		ids = append(ids, l.SpanContext.SpanID().String())
	}
	return "  (links " + strings.Join(ids, ", ") + ")"
}

// OneTrace reports whether the spans share one trace ID, and that ID.
// Receive spans are left out: a poll can return messages of many traces, so
// the semantic conventions make each receive a root of its own that links
// the messages (recognised here as a parentless span with links).
func OneTrace(spans []sdktrace.ReadOnlySpan) (trace.TraceID, bool) {
	var id trace.TraceID
	for _, s := range spans {
		if !s.Parent().IsValid() && len(s.Links()) > 0 {
			continue
		}
		switch {
		case !id.IsValid():
			id = s.SpanContext().TraceID()
		case s.SpanContext().TraceID() != id:
			return id, false
		}
	}
	return id, id.IsValid()
}

// Section runs one example against its own span recorder, so its spans
// print apart, and checks they form one trace.
func Section(w io.Writer, title string, f func(tp trace.TracerProvider) error) error {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	if err := f(tp); err != nil {
		return fmt.Errorf("%s: %w", title, err)
	}
	Spans(w, title, rec.Ended())
	if _, ok := OneTrace(rec.Ended()); !ok {
		return fmt.Errorf("%s: spans are not in one trace", title)
	}
	return nil
}
