package middleware_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/memory"
)

// TestHandlerContextCarriesTheTraceSpan: where no process span starts (a
// no-op provider; an unsampled parent under WithParentBasedSampling), the
// handler's ctx carries the message's creation context as the trace
// package's own span, which code that type-asserts it relies on: the
// deprecated trace.NewNoopTracerProvider's tracer keeps the span context
// of that type only. remoteparent.Context's span would lose it.
func TestHandlerContextCarriesTheTraceSpan(t *testing.T) {
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	for name, opts := range map[string][]middleware.Option{
		"no-op provider": {middleware.WithTracerProvider(noop.NewTracerProvider())},
		"unsampled parent, parent-based": {
			middleware.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))),
			middleware.WithParentBasedSampling(true),
		},
	} {
		t.Run(name, func(t *testing.T) {
			b := memory.New()
			tr := middleware.NewTracing(opts...)
			msg := middleware.NewMessage([]byte("x"))
			msg.Headers["traceparent"] = traceparent
			if err := tr.Publisher(b).Publish(context.Background(), "q", msg); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var got trace.SpanContext
			_ = tr.Subscriber(b).Subscribe(ctx, "q", middleware.HandlerFunc(func(ctx context.Context, _ *middleware.Message) error {
				//nolint:staticcheck // the deprecated provider is the one that type-asserts
				_, s := trace.NewNoopTracerProvider().Tracer("user").Start(ctx, "user work")
				got = s.SpanContext()
				cancel()
				return nil
			}))
			if got.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || got.SpanID().String() != "00f067aa0ba902b7" {
				t.Errorf("a span started in the handler has context %v, want the message's", got)
			}
		})
	}
}
