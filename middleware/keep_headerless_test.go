package middleware_test

import (
	"context"
	"sync/atomic"
	"testing"

	otelprop "go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelmq/otelmq/middleware"
)

// countingPropagator is W3C TraceContext + Baggage, as an application sets
// it (globally or with WithPropagator), counting its Extract calls.
type countingPropagator struct {
	otelprop.TextMapPropagator
	extracts atomic.Int64
}

func (p *countingPropagator) Extract(ctx context.Context, c otelprop.TextMapCarrier) context.Context {
	p.extracts.Add(1)
	return p.TextMapPropagator.Extract(ctx, c)
}

// TestKeepSkipsMessagesWithoutHeaders: a message with no headers at all
// (NewMessage, the common publish) carries no creation context in any
// propagator's fields, so publishing it asks no propagator to extract one.
// With the W3C composite every application sets, that extraction found
// nothing and cost about 300 ns per published message (as much again as
// the whole no-op publish), under the no-op provider and the SDK alike.
func TestKeepSkipsMessagesWithoutHeaders(t *testing.T) {
	for name, tp := range map[string]middleware.Option{
		"noop": middleware.WithTracerProvider(noop.NewTracerProvider()),
		"sdk":  middleware.WithTracerProvider(sdktrace.NewTracerProvider()),
	} {
		t.Run(name, func(t *testing.T) {
			prop := &countingPropagator{TextMapPropagator: otelprop.NewCompositeTextMapPropagator(otelprop.TraceContext{}, otelprop.Baggage{})}
			var published *middleware.Message
			pub := middleware.NewTracing(tp, middleware.WithPropagator(prop)).Publisher(
				middleware.PublisherFunc(func(_ context.Context, _ string, msgs ...*middleware.Message) error {
					published = msgs[0]
					return nil
				}))
			ctx, span := sdktrace.NewTracerProvider().Tracer("test").Start(context.Background(), "request")
			defer span.End()
			if err := pub.Publish(ctx, "q", middleware.NewMessage([]byte("order"))); err != nil {
				t.Fatal(err)
			}
			if n := prop.extracts.Load(); n != 0 {
				t.Errorf("%d extraction(s) from a message without headers, want none", n)
			}
			if published.Headers["traceparent"] == "" {
				t.Errorf("headers %v: the context was not injected", published.Headers)
			}

			// A message with headers is still asked: its creation context
			// is kept.
			const tp = "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
			msg := middleware.NewMessage([]byte("relayed"))
			msg.Headers = map[string]string{"traceparent": tp}
			if err := pub.Publish(ctx, "q", msg); err != nil {
				t.Fatal(err)
			}
			if prop.extracts.Load() == 0 || published.Headers["traceparent"] != tp {
				t.Errorf("relayed message: %d extraction(s), traceparent %q; want its own kept", prop.extracts.Load(), published.Headers["traceparent"])
			}
		})
	}
}
