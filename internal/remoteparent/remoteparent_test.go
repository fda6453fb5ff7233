package remoteparent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

type otherKey struct{}

// TestContext: to the SDK starting a span under it, to the
// trace package's lookups and to the context package's functions, the
// context Context returns is the one
// trace.ContextWithRemoteSpanContext returns, in one allocation. (Not to
// code that type-asserts the trace package's span: see its doc.)
func TestContext(t *testing.T) {
	if !spanKeyFound {
		t.Fatal("the trace package's span key was not found: Context falls back to two allocations")
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9}, SpanID: trace.SpanID{0x00, 0xf0}, TraceFlags: trace.FlagsSampled,
	})
	parent, cancel := context.WithCancelCause(context.WithValue(context.Background(), otherKey{}, "kept"))
	ctx := Context(parent, sc)

	got := trace.SpanContextFromContext(ctx)
	if !got.Equal(sc.WithRemote(true)) {
		t.Errorf("span context %v, want %v marked remote", got, sc)
	}
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() {
		t.Error("the remote span records")
	}
	if want := trace.SpanFromContext(trace.ContextWithRemoteSpanContext(parent, sc)).TracerProvider(); span.TracerProvider() != want {
		t.Errorf("TracerProvider %T, want the trace package's %T", span.TracerProvider(), want)
	}
	if s := fmt.Sprint(ctx); !strings.Contains(s, sc.SpanID().String()) || !strings.Contains(s, "WithCancel") {
		t.Errorf("String() = %q, want the parent's and the span ID", s)
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
	_, sdkSpan := tp.Tracer("test").Start(Context(context.Background(), sc), "process")
	sdkSpan.End()
	s := rec.Ended()[0]
	if s.Parent().SpanID() != sc.SpanID() || !s.Parent().IsRemote() || s.SpanContext().TraceID() != sc.TraceID() {
		t.Errorf("SDK span parent %v in trace %v, want remote %v", s.Parent(), s.SpanContext().TraceID(), sc)
	}

	// A nil ctx gets the trace package's behaviour: a panic now rather
	// than at the first Value or Done.
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Context(nil, sc) did not panic")
			}
		}()
		Context(nil, sc) //nolint:staticcheck // the nil context is the point
	}()

	bg := context.Background()
	if n := testing.AllocsPerRun(100, func() { ctx = Context(bg, sc) }); n != 1 {
		t.Errorf("Context makes %v allocations, want 1", n)
	}
}
