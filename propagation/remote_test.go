package propagation

import (
	"context"
	"errors"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

type otherKey struct{}

// TestContextWithRemote: the context ContextWithRemote returns is, to the
// trace package, the SDK and context's own functions, the one
// trace.ContextWithRemoteSpanContext returns, in one allocation.
func TestContextWithRemote(t *testing.T) {
	if !spanKeyFound {
		t.Fatal("the trace package's span key was not found: ContextWithRemote falls back to two allocations")
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9}, SpanID: trace.SpanID{0x00, 0xf0}, TraceFlags: trace.FlagsSampled,
	})
	parent, cancel := context.WithCancelCause(context.WithValue(context.Background(), otherKey{}, "kept"))
	ctx := ContextWithRemote(parent, sc)

	got := trace.SpanContextFromContext(ctx)
	if !got.Equal(sc.WithRemote(true)) {
		t.Errorf("span context %v, want %v marked remote", got, sc)
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		t.Error("the remote span records")
	}
	if ctx.Value(otherKey{}) != "kept" {
		t.Error("a value of the parent context is lost")
	}
	// A context made on top of it still sees both.
	child, stop := context.WithCancel(ctx)
	defer stop()
	if !trace.SpanContextFromContext(child).Equal(got) || child.Value(otherKey{}) != "kept" {
		t.Error("a child context loses the span context or a value")
	}
	cause := errors.New("shutdown")
	cancel(cause)
	<-child.Done()
	if ctx.Err() == nil || context.Cause(child) != cause {
		t.Errorf("cancellation: Err %v, cause %v", ctx.Err(), context.Cause(child))
	}

	// The SDK parents a span on it, in sc's trace.
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	_, span := tp.Tracer("test").Start(ContextWithRemote(context.Background(), sc), "process")
	span.End()
	s := rec.Ended()[0]
	if s.Parent().SpanID() != sc.SpanID() || !s.Parent().IsRemote() || s.SpanContext().TraceID() != sc.TraceID() {
		t.Errorf("SDK span parent %v in trace %v, want remote %v", s.Parent(), s.SpanContext().TraceID(), sc)
	}

	bg := context.Background()
	if n := testing.AllocsPerRun(100, func() { ctx = ContextWithRemote(bg, sc) }); n != 1 {
		t.Errorf("ContextWithRemote makes %v allocations, want 1", n)
	}
}
