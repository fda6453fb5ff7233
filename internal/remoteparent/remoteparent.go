// Package remoteparent puts a message's creation context in a context for a
// tracer to start the message's process span under, in one allocation.
package remoteparent

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Context returns ctx with sc, marked remote, as its current span
// context, for a tracer to start a span under: what
// trace.ContextWithRemoteSpanContext returns, in one allocation where that
// makes two (the context, and the span that wraps sc, boxed in it). Every
// consumed message with a trace context pays this once, to parent its
// process span on its creation context.
//
// The span in it is not the trace package's own type: code that
// type-asserts that (trace.NewNoopTracerProvider's tracer does) would not
// see sc. So use it only for a context that goes straight to
// Tracer.Start, whose span then hides it, and
// trace.ContextWithRemoteSpanContext for one that user code gets.
//
// It works by answering the trace package's own context key, which it
// learns once by asking; if that ever fails to give ctx sc (a future
// trace package that reads contexts differently), it falls back to
// trace.ContextWithRemoteSpanContext, as it does for a nil ctx.
func Context(ctx context.Context, sc trace.SpanContext) context.Context {
	if !spanKeyFound || ctx == nil {
		return trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	return &remoteContext{Context: ctx, span: remoteSpan{sc: sc.WithRemote(true)}}
}

// remoteContext is a context whose current span is span.
type remoteContext struct {
	context.Context
	span remoteSpan
}

func (c *remoteContext) Value(key any) any {
	if key == spanKey {
		return &c.span
	}
	return c.Context.Value(key)
}

func (c *remoteContext) String() string {
	return fmt.Sprintf("%v.WithRemoteSpanContext(%s-%s)", c.Context, c.span.sc.TraceID(), c.span.sc.SpanID())
}

// remoteSpan is a span known only by its context, as the trace package's
// own non-recording span: it records nothing, and ending it does nothing.
type remoteSpan struct {
	noop.Span
	sc trace.SpanContext
}

func (s *remoteSpan) SpanContext() trace.SpanContext { return s.sc }

// TracerProvider is the trace package's non-recording span's, which is not
// always a no-op one (OpenTelemetry's eBPF auto-instrumentation swaps it).
func (s *remoteSpan) TracerProvider() trace.TracerProvider {
	return trace.SpanFromContext(context.Background()).TracerProvider()
}

// spanKey is the key the trace package stores the current span under,
// learned at init by handing trace.SpanFromContext a context that records
// the key it is asked for; spanKeyFound says a remoteContext then gave
// trace.SpanContextFromContext its span context back.
var (
	spanKey      any
	spanKeyFound bool
)

func init() {
	probe := &keyProbe{Context: context.Background()}
	trace.SpanFromContext(probe)
	if probe.asked == nil {
		return
	}
	spanKey = probe.asked
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, Remote: true})
	got := trace.SpanContextFromContext(&remoteContext{Context: context.Background(), span: remoteSpan{sc: sc}})
	spanKeyFound = got.Equal(sc)
}

type keyProbe struct {
	context.Context
	asked any
}

func (p *keyProbe) Value(key any) any {
	p.asked = key
	return nil
}
