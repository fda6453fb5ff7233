package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelmq/otelmq/middleware"
)

// loopback is a transport that hands each published message straight to
// the subscriber's handler, reporting the poll and the settlement like a
// real transport, so the path benchmark measures only the middleware.
// Copied from middleware/bench_test.go (a _test file cannot be imported).
type loopback struct {
	h   middleware.Handler
	obs middleware.Observer
	ctx context.Context
}

func (l *loopback) Publish(_ context.Context, dest string, msgs ...*middleware.Message) error {
	for _, m := range msgs {
		in := &middleware.Message{ID: "id", Body: m.Body, Headers: m.Headers, Destination: dest, DeliveryCount: 1}
		batch := []*middleware.Message{in}
		start := time.Now()
		hctx := l.obs.Received(l.ctx, middleware.Destination{System: "bench", Name: dest}, start, batch)
		err := middleware.Call(hctx, l.h, in)
		l.obs.Settled(hctx, middleware.Destination{System: "bench", Name: dest}, "ack", start, batch, err)
	}
	return nil
}

func (l *loopback) Subscribe(ctx context.Context, _ string, h middleware.Handler) error {
	l.h, l.obs, l.ctx = h, middleware.ObserverFrom(ctx), ctx
	return nil
}

func sampledContext() context.Context {
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	return trace.ContextWithSpanContext(context.Background(), parent)
}

// benchCarrier is the floor any instrumentation pays: inject the context
// into a header map and extract it again.
func benchCarrier(b *testing.B) {
	ctx := sampledContext()
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	b.ReportAllocs()
	for b.Loop() {
		h := make(map[string]string, 3)
		prop.Inject(ctx, propagation.MapCarrier(h))
		if !trace.SpanContextFromContext(prop.Extract(context.Background(), propagation.MapCarrier(h))).IsValid() {
			b.Fatal("lost the span context")
		}
	}
}

// opaque returns lb as a Publisher and a Subscriber without letting the
// compiler devirtualize calls on them, so the baseline calls the transport
// through interfaces as the middleware does.
//
//go:noinline
func opaque(lb *loopback) (middleware.Publisher, middleware.Subscriber) { return lb, lb }

// benchBaseline is benchNoopPath without middleware: the same loopback and
// messages, with a plain inject before publishing and extract in the
// handler. What the path costs beyond it is the middleware's own.
func benchBaseline(b *testing.B) {
	lb := &loopback{}
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	pub, sub := opaque(lb)
	handled := 0
	_ = sub.Subscribe(context.Background(), "q", middleware.HandlerFunc(func(ctx context.Context, msg *middleware.Message) error {
		if !trace.SpanContextFromContext(prop.Extract(ctx, propagation.MapCarrier(msg.Headers))).IsValid() {
			b.Fatal("lost the span context")
		}
		handled++
		return nil
	}))
	ctx := sampledContext()
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

// benchNoopPath is publish + consume of one message through the tracing
// middleware over a no-op provider, on the loopback transport.
func benchNoopPath(b *testing.B) {
	lb := &loopback{}
	tr := middleware.NewTracing(middleware.WithTracerProvider(noop.NewTracerProvider()))
	pub, sub := tr.Publisher(lb), tr.Subscriber(lb)
	handled := 0
	_ = sub.Subscribe(context.Background(), "q", middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
		handled++
		return nil
	}))
	ctx := sampledContext()
	b.ReportAllocs()
	for b.Loop() {
		msg := &middleware.Message{Body: body, Headers: make(map[string]string, 3)}
		if err := pub.Publish(ctx, "q", msg); err != nil {
			b.Fatal(err)
		}
	}
	if handled == 0 {
		b.Fatal("nothing handled")
	}
}

// pathCost prints the middleware path with a no-op provider beside the
// carrier alone and the baseline (the same loopback and messages with
// hand-written propagation), and the targets for what the middleware adds
// beyond the baseline (issue 7: at most 300 ns and 4 allocations).
func pathCost(out io.Writer, quick bool) {
	// testing.Benchmark reads -test.benchtime; registering the testing
	// flags (a no-op inside a test binary) lets -quick shorten it.
	testing.Init()
	bt := "1s"
	if quick {
		bt = "100ms"
	}
	_ = flag.Set("test.benchtime", bt)
	carrier := testing.Benchmark(benchCarrier)
	baseline := testing.Benchmark(benchBaseline)
	path := testing.Benchmark(benchNoopPath)
	const w = 36
	fmt.Fprintf(out, "\n== middleware path (publish + consume on a loopback transport, testing.Benchmark, benchtime %s)\n", bt)
	fmt.Fprintf(out, "%-*s %10s %12s\n", w, "", "ns/msg", "allocs/msg")
	row := func(name string, ns, allocs int64) { fmt.Fprintf(out, "%-*s %10d %12d\n", w, name, ns, allocs) }
	row("carrier only (inject+extract)", carrier.NsPerOp(), carrier.AllocsPerOp())
	row("baseline (loopback, hand propagation)", baseline.NsPerOp(), baseline.AllocsPerOp())
	row("otelmq, noop provider", path.NsPerOp(), path.AllocsPerOp())
	row("beyond the carrier", path.NsPerOp()-carrier.NsPerOp(), path.AllocsPerOp()-carrier.AllocsPerOp())
	dns, dallocs := path.NsPerOp()-baseline.NsPerOp(), path.AllocsPerOp()-baseline.AllocsPerOp()
	row("beyond the baseline (the middleware)", dns, dallocs)
	status := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "MISS"
	}
	fmt.Fprintf(out, "target %-58s %-22s %s\n", "noop path <= 300 ns beyond the baseline", fmt.Sprintf("%d ns", dns), status(dns <= 300))
	fmt.Fprintf(out, "target %-58s %-22s %s\n", "noop path <= 4 allocs beyond the baseline", fmt.Sprintf("%d", dallocs), status(dallocs <= 4))
}
