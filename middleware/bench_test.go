package middleware_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelmq/otelmq/middleware"
)

// loopback is a transport that hands each published message straight to
// a subscriber's handler, reporting the poll and the settlement like a real
// transport, so a benchmark measures only the middleware.
type loopback struct {
	h   middleware.Handler
	obs middleware.Observer
	ctx context.Context
	// attrs, when set, are the attributes of every delivered message and
	// dest the destination they are delivered from, as a Kafka consumer's.
	attrs []attribute.KeyValue
	dest  *middleware.Destination
	// stamp makes the benchmark loop stamp each message's Time, which the
	// loopback delivers, so metrics record a queue time.
	stamp bool
}

// Describe describes every destination as dest, when set.
func (l *loopback) Describe(dest string) middleware.Destination {
	if l.dest != nil {
		return *l.dest
	}
	return middleware.Destination{System: "bench", Name: dest}
}

func (l *loopback) Publish(ctx context.Context, dest string, msgs ...*middleware.Message) error {
	d := l.Describe(dest)
	for _, m := range msgs {
		in := &middleware.Message{ID: "id", Body: m.Body, Headers: m.Headers, Destination: dest, DeliveryCount: 1, Time: m.Time}
		if l.attrs != nil {
			in.SetAttributes(l.attrs...)
		}
		batch := []*middleware.Message{in}
		start := time.Now()
		hctx := l.obs.Received(l.ctx, d, start, batch)
		err := middleware.Call(hctx, l.h, in)
		l.obs.Settled(hctx, d, "ack", start, batch, err)
	}
	return nil
}

func (l *loopback) Subscribe(ctx context.Context, _ string, h middleware.Handler) error {
	l.h, l.obs, l.ctx = h, middleware.ObserverFrom(ctx), ctx
	return nil
}

func benchPath(b *testing.B, tp trace.TracerProvider) {
	benchPathOn(b, &loopback{}, tp)
}

func benchPathOn(b *testing.B, lb *loopback, tp trace.TracerProvider) {
	benchThrough(b, lb, middleware.NewTracing(middleware.WithTracerProvider(tp)))
}

// pubSubWrapper is middleware that wraps a Publisher and a Subscriber:
// Tracing, Metrics, Telemetry.
type pubSubWrapper interface {
	Publisher(middleware.Publisher) middleware.Publisher
	Subscriber(middleware.Subscriber) middleware.Subscriber
}

// benchThrough publishes and consumes one message per iteration through mw
// over lb.
func benchThrough(b *testing.B, lb *loopback, mw pubSubWrapper) {
	pub, sub := mw.Publisher(lb), mw.Subscriber(lb)
	handled := 0
	_ = sub.Subscribe(context.Background(), "q", middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
		handled++
		return nil
	}))
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), parent)
	body := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		msg := &middleware.Message{Body: body, Headers: make(map[string]string, 3)}
		if lb.stamp {
			msg.Time = time.Now()
		}
		if err := pub.Publish(ctx, "q", msg); err != nil {
			b.Fatal(err)
		}
	}
	if handled == 0 {
		b.Fatal("nothing handled")
	}
}

// benchBaseline is benchPath without middleware: the same loopback, the
// same messages, and a plain inject before publishing and extract in the
// handler, what hand-written propagation costs. The path's cost beyond it
// is the middleware's own.
func benchBaseline(b *testing.B) {
	lb := &loopback{}
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	// Called through interfaces the compiler cannot see through, as the
	// middleware calls the transport: the message and the variadic slice
	// then escape as they do on the middleware path.
	pub, sub := opaque(lb)
	handled := 0
	_ = sub.Subscribe(context.Background(), "q", middleware.HandlerFunc(func(ctx context.Context, msg *middleware.Message) error {
		if !trace.SpanContextFromContext(prop.Extract(ctx, propagation.MapCarrier(msg.Headers))).IsValid() {
			b.Fatal("lost")
		}
		handled++
		return nil
	}))
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), parent)
	body := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		msg := &middleware.Message{Body: body, Headers: make(map[string]string, 3)}
		prop.Inject(ctx, propagation.MapCarrier(msg.Headers))
		if err := pub.Publish(ctx, "q", msg); err != nil {
			b.Fatal(err)
		}
	}
	if handled == 0 {
		b.Fatal("nothing handled")
	}
}

// opaque returns lb as a Publisher and a Subscriber without letting the
// compiler devirtualize calls on them.
//
//go:noinline
func opaque(lb *loopback) (middleware.Publisher, middleware.Subscriber) { return lb, lb }

// BenchmarkMiddlewarePath is the per-message cost of publish + consume
// through the tracing middleware, with two references beside it: "carrier"
// is what propagation alone costs (inject into a header map and extract from
// it), the floor any instrumentation pays; "baseline" is the same loopback
// transport and messages as the middleware runs, with that inject and
// extract done by hand, so "noop" minus "baseline" is what the middleware
// adds (target: at most 300 ns and 4 allocations).
func BenchmarkMiddlewarePath(b *testing.B) {
	b.Run("carrier", func(b *testing.B) {
		parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
		ctx := trace.ContextWithSpanContext(context.Background(), parent)
		prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
		b.ReportAllocs()
		for b.Loop() {
			h := make(map[string]string, 3)
			prop.Inject(ctx, propagation.MapCarrier(h))
			if !trace.SpanContextFromContext(prop.Extract(context.Background(), propagation.MapCarrier(h))).IsValid() {
				b.Fatal("lost")
			}
		}
	})
	b.Run("baseline", benchBaseline)
	b.Run("noop", func(b *testing.B) { benchPath(b, noop.NewTracerProvider()) })
	b.Run("sdk-never-sample", func(b *testing.B) {
		benchPath(b, sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())))
	})
	b.Run("sdk-always-sample", func(b *testing.B) {
		benchPath(b, sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample())))
	})
}

// BenchmarkMiddlewarePathKafka is BenchmarkMiddlewarePath with messages as
// the Kafka Subscriber delivers them: a destination with server and
// consumer group, and per-message partition, offset, key, group and ID.
// A span the sampler drops should cost nothing for the per-message ones.
func BenchmarkMiddlewarePathKafka(b *testing.B) {
	d := middleware.Destination{System: "kafka", Name: "q", Attributes: []attribute.KeyValue{
		semconv.ServerAddress("broker"), semconv.ServerPort(9092), semconv.MessagingConsumerGroupName("g"),
	}}
	attrs := []attribute.KeyValue{
		semconv.MessagingDestinationPartitionID("3"), attribute.Int64("messaging.kafka.offset", 42),
		semconv.MessagingKafkaMessageKey("key"), semconv.MessagingConsumerGroupName("g"), semconv.MessagingMessageID("q/3/42"),
	}
	run := func(tp trace.TracerProvider) func(*testing.B) {
		return func(b *testing.B) { benchPathOn(b, &loopback{attrs: attrs, dest: &d}, tp) }
	}
	b.Run("noop", run(noop.NewTracerProvider()))
	b.Run("sdk-never-sample", run(sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))))
	b.Run("sdk-always-sample", run(sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))))
}
