// Package benchkit is what the benchmarks of several packages share: a
// loopback transport that leaves only the middleware to measure, the
// reference benchmarks set beside the middleware path, and a span counter
// that proves an SDK pipeline dropped nothing. It is test support for this
// module, not API (the `go test -bench` benchmarks and examples/bench run
// the same code through it).
package benchkit

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
)

// Loopback is a transport that hands each published message straight to
// the subscriber's handler, reporting a receive and a settlement around it
// like a real transport, so a benchmark measures only the middleware.
type Loopback struct {
	// Attrs, when set, are the attributes of every delivered message and
	// Dest the destination they are delivered from, as a Kafka consumer's.
	Attrs []attribute.KeyValue
	Dest  *middleware.Destination
	// Stamp makes Through stamp each message's Time, which the loopback
	// delivers, so metrics record a queue time.
	Stamp bool

	h   middleware.Handler
	obs middleware.Observer
	ctx context.Context
}

// Describe describes every destination as Dest, when set.
func (l *Loopback) Describe(dest string) middleware.Destination {
	if l.Dest != nil {
		return *l.Dest
	}
	return middleware.Destination{System: "bench", Name: dest}
}

// Publish delivers each message to the subscribed handler at once.
func (l *Loopback) Publish(_ context.Context, dest string, msgs ...*middleware.Message) error {
	d := l.Describe(dest)
	for _, m := range msgs {
		in := &middleware.Message{ID: "id", Body: m.Body, Headers: m.Headers, Destination: dest, DeliveryCount: 1, Time: m.Time}
		if l.Attrs != nil {
			in.SetAttributes(l.Attrs...)
		}
		batch := []*middleware.Message{in}
		start := time.Now()
		hctx := l.obs.Received(l.ctx, d, start, batch)
		err := middleware.Call(hctx, l.h, in)
		l.obs.Settled(hctx, d, "ack", start, batch, err)
	}
	return nil
}

// Subscribe registers h and returns at once.
func (l *Loopback) Subscribe(ctx context.Context, _ string, h middleware.Handler) error {
	l.h, l.obs, l.ctx = h, middleware.ObserverFrom(ctx), ctx
	return nil
}

// opaque returns lb as a Publisher and a Subscriber without letting the
// compiler devirtualize calls on them, so Baseline calls the transport
// through interfaces as the middleware does (the message and the variadic
// slice then escape as they do on the middleware path).
//
//go:noinline
func opaque(lb *Loopback) (middleware.Publisher, middleware.Subscriber) { return lb, lb }

// SampledContext is a context holding a sampled span context, the parent
// every benchmark publishes under.
func SampledContext() context.Context {
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	return trace.ContextWithSpanContext(context.Background(), parent)
}

// UnsampledContext is a context holding a span context that is not
// sampled: a request whose trace was sampled out before it published.
func UnsampledContext() context.Context {
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}})
	return trace.ContextWithSpanContext(context.Background(), parent)
}

// Body is the 64-byte payload of every benchmark message.
var Body = make([]byte, 64)

// W3C is the propagator hand-written propagation uses in the references.
var W3C = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Carrier is the floor any instrumentation pays: inject the context into a
// header map and extract it again.
func Carrier(b *testing.B) {
	ctx := SampledContext()
	b.ReportAllocs()
	for b.Loop() {
		h := make(map[string]string, 3)
		W3C.Inject(ctx, propagation.MapCarrier(h))
		if !trace.SpanContextFromContext(W3C.Extract(context.Background(), propagation.MapCarrier(h))).IsValid() {
			b.Fatal("lost the span context")
		}
	}
}

// Baseline is Through without middleware: the same loopback and messages,
// with a plain inject before publishing and extract in the handler, what
// hand-written propagation costs. What the middleware path costs beyond it
// is the middleware's own.
func Baseline(b *testing.B) {
	pub, sub := opaque(&Loopback{})
	handled := 0
	_ = sub.Subscribe(context.Background(), "q", middleware.HandlerFunc(func(ctx context.Context, msg *middleware.Message) error {
		if !trace.SpanContextFromContext(W3C.Extract(ctx, propagation.MapCarrier(msg.Headers))).IsValid() {
			b.Fatal("lost the span context")
		}
		handled++
		return nil
	}))
	ctx := SampledContext()
	b.ReportAllocs()
	for b.Loop() {
		msg := &middleware.Message{Body: Body, Headers: make(map[string]string, 3)}
		W3C.Inject(ctx, propagation.MapCarrier(msg.Headers))
		if err := pub.Publish(ctx, "q", msg); err != nil {
			b.Fatal(err)
		}
	}
	if handled == 0 {
		b.Fatal("nothing handled")
	}
}

// Wrapper is middleware that wraps a Publisher and a Subscriber: Tracing,
// Metrics, Telemetry.
type Wrapper interface {
	Publisher(middleware.Publisher) middleware.Publisher
	Subscriber(middleware.Subscriber) middleware.Subscriber
}

// Through publishes and consumes one message per iteration through mw over
// lb, under SampledContext.
func Through(b *testing.B, lb *Loopback, mw Wrapper) { ThroughFrom(b, SampledContext(), lb, mw) }

// ThroughFrom is Through publishing under ctx.
func ThroughFrom(b *testing.B, ctx context.Context, lb *Loopback, mw Wrapper) {
	pub, sub := mw.Publisher(lb), mw.Subscriber(lb)
	handled := 0
	_ = sub.Subscribe(context.Background(), "q", middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
		handled++
		return nil
	}))
	b.ReportAllocs()
	for b.Loop() {
		msg := &middleware.Message{Body: Body, Headers: make(map[string]string, 3)}
		if lb.Stamp {
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

// Path is Through with the tracing middleware over tp, on lb.
func Path(b *testing.B, lb *Loopback, tp trace.TracerProvider) {
	Through(b, lb, middleware.NewTracing(middleware.WithTracerProvider(tp)))
}

// SpanCounter is both a span processor that counts the spans that end,
// before a batch processor could drop any, and an exporter that discards
// spans and counts them: a pipeline that pays for sampling, recording,
// batching and the export hand-off but not for an encoder or a network, and
// whose two counts prove that nothing was dropped, so no mode looks cheap
// by losing spans. As a processor alone it costs nothing itself.
type SpanCounter struct{ ended, exported atomic.Int64 }

func (c *SpanCounter) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (c *SpanCounter) OnEnd(sdktrace.ReadOnlySpan)                     { c.ended.Add(1) }
func (c *SpanCounter) Shutdown(context.Context) error                  { return nil }
func (c *SpanCounter) ForceFlush(context.Context) error                { return nil }

// ExportSpans counts spans and discards them.
func (c *SpanCounter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	c.exported.Add(int64(len(spans)))
	return nil
}

// Ended is how many spans ended.
func (c *SpanCounter) Ended() int64 { return c.ended.Load() }

// Exported is how many spans reached the exporter.
func (c *SpanCounter) Exported() int64 { return c.exported.Load() }

// NewSDK returns an SDK TracerProvider as production runs one (sampler, a
// BatchSpanProcessor) exporting into a SpanCounter. The queue holds queue
// spans (size it to a run's spans, within memory) and the processor blocks
// rather than drops when it is full anyway: a dropped span is work not
// done, which would flatter the mode that drops.
func NewSDK(sampler sdktrace.Sampler, queue int) (*sdktrace.TracerProvider, *SpanCounter) {
	c := new(SpanCounter)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sampler),
		sdktrace.WithSpanProcessor(c),
		sdktrace.WithBatcher(c,
			sdktrace.WithMaxQueueSize(queue),
			sdktrace.WithMaxExportBatchSize(2048),
			sdktrace.WithBlocking()),
	)
	return tp, c
}

// Finish flushes tp and shuts it down, then returns c's counts and an error
// when the exporter saw fewer spans than ended.
func Finish(ctx context.Context, tp *sdktrace.TracerProvider, c *SpanCounter) (ended, exported int64, err error) {
	if err := tp.ForceFlush(ctx); err != nil {
		return 0, 0, fmt.Errorf("flushing spans: %w", err)
	}
	if err := tp.Shutdown(ctx); err != nil {
		return 0, 0, fmt.Errorf("shutting the provider down: %w", err)
	}
	ended, exported = c.Ended(), c.Exported()
	if ended != exported {
		return ended, exported, fmt.Errorf("%d spans ended, %d exported: the batch processor dropped spans", ended, exported)
	}
	return ended, exported, nil
}
