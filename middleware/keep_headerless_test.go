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

// TestRepublishKeepsTracestateOfIgnoredTraceparent: with a propagator that
// does not read W3C (WithPropagator: B3, Jaeger; singleHeader here), a
// message from a W3C producer keeps its traceparent when published again
// (the propagator neither reads nor writes it), and its tracestate, which
// belongs to that traceparent, must stay beside it: ae0db10 made such a
// traceparent "not invalid", but keep() still took it for one and emptied
// its tracestate, leaving the traceparent without its vendors' state.
func TestRepublishKeepsTracestateOfIgnoredTraceparent(t *testing.T) {
	var published map[string]string
	pub := middleware.NewTracing(middleware.WithTracerProvider(sdktrace.NewTracerProvider()), middleware.WithPropagator(singleHeader{})).Publisher(
		middleware.PublisherFunc(func(_ context.Context, _ string, msgs ...*middleware.Message) error {
			published = msgs[0].Headers
			return nil
		}))
	const (
		tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		ts = "congo=t61rcWkgMzE,ot=th:8"
	)
	msg := middleware.NewMessage([]byte("from a W3C producer"))
	msg.Headers["traceparent"], msg.Headers["tracestate"] = tp, ts
	ctx, span := sdktrace.NewTracerProvider().Tracer("test").Start(context.Background(), "relay")
	defer span.End()
	if err := pub.Publish(ctx, "q", msg); err != nil {
		t.Fatal(err)
	}
	if published["traceparent"] != tp || published["tracestate"] != ts {
		t.Errorf("published traceparent %q tracestate %q, want both as they came (%q, %q)", published["traceparent"], published["tracestate"], tp, ts)
	}
	if published["x-ctx"] == "" {
		t.Errorf("headers %v: the propagator's own context was not injected", published)
	}

	// An invalid traceparent's tracestate still goes.
	bad := middleware.NewMessage([]byte("broken"))
	bad.Headers["traceparent"], bad.Headers["tracestate"] = "00-zz", ts
	if err := pub.Publish(ctx, "q", bad); err != nil {
		t.Fatal(err)
	}
	if _, ok := published["tracestate"]; ok {
		t.Errorf("tracestate %q kept beside an invalid traceparent", published["tracestate"])
	}
}
