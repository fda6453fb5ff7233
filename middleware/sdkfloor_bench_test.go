package middleware_test

import (
	"context"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/internal/benchkit"
	"github.com/otelmq/otelmq/middleware"
)

// recordedSpan is one span of a message's path, as the replay needs it.
type recordedSpan struct {
	name   string
	kind   trace.SpanKind
	attrs  []attribute.KeyValue
	parent int   // index of the parent span in the path, -1 for none
	remote bool  // the parent is the extracted creation context
	links  []int // indexes of linked spans in the path
}

// recordPath runs one message through the tracing middleware over lb and
// returns its spans in start order, with parents and links as indexes.
func recordPath(b *testing.B, lb *benchkit.Loopback) []recordedSpan {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp))
	pub, sub := tr.Publisher(lb), tr.Subscriber(lb)
	_ = sub.Subscribe(context.Background(), "q", middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil }))
	if err := pub.Publish(context.Background(), "q", &middleware.Message{Body: make([]byte, 64)}); err != nil {
		b.Fatal(err)
	}
	spans := rec.Ended()
	slices.SortFunc(spans, func(x, y sdktrace.ReadOnlySpan) int { return x.StartTime().Compare(y.StartTime()) })
	index := func(id trace.SpanID) int {
		return slices.IndexFunc(spans, func(s sdktrace.ReadOnlySpan) bool { return s.SpanContext().SpanID() == id })
	}
	out := make([]recordedSpan, len(spans))
	for i, s := range spans {
		r := recordedSpan{name: s.Name(), kind: s.SpanKind(), attrs: s.Attributes(), parent: -1}
		if s.Parent().IsValid() {
			r.parent, r.remote = index(s.Parent().SpanID()), s.Parent().IsRemote()
		}
		for _, l := range s.Links() {
			r.links = append(r.links, index(l.SpanContext.SpanID()))
		}
		out[i] = r
	}
	return out
}

// replay starts and ends path's spans directly on tr, each with all its
// attributes at start, injecting after the first (the producer's) span
// and extracting for a span whose parent was the remote creation context.
func replay(tr trace.Tracer, prop propagation.TextMapPropagator, path []recordedSpan, ctxs []context.Context, spans []trace.Span) {
	headers := make(map[string]string, 3)
	for i, r := range path {
		parent := context.Background()
		switch {
		case r.remote:
			parent = prop.Extract(parent, propagation.MapCarrier(headers))
		case r.parent >= 0:
			parent = ctxs[r.parent]
		}
		opts := []trace.SpanStartOption{trace.WithSpanKind(r.kind), trace.WithAttributes(r.attrs...)}
		if len(r.links) > 0 {
			links := make([]trace.Link, len(r.links))
			for j, k := range r.links {
				links[j] = trace.Link{SpanContext: spans[k].SpanContext()}
			}
			opts = append(opts, trace.WithLinks(links...))
		}
		ctxs[i], spans[i] = tr.Start(parent, r.name, opts...)
		if i == 0 {
			prop.Inject(ctxs[0], propagation.MapCarrier(headers))
		}
	}
	for i := len(spans) - 1; i >= 0; i-- {
		spans[i].End()
	}
}

// BenchmarkSDKFloor puts the SDK's own cost for a message's spans beside
// the middleware's, every span recorded (always) or none (never), into a
// processor that costs nothing: "otelmq" is the Kafka-shaped middleware path of
// BenchmarkMiddlewarePathKafka; "replay" starts and ends the same spans
// (names, kinds, parents, links, attributes, recorded from one message of
// that path) straight on the SDK, all attributes at start, with a plain
// inject and extract. "replay" is a floor that no instrumentation making
// these spans goes under; "otelmq" minus "replay" is the middleware's own.
func BenchmarkSDKFloor(b *testing.B) {
	// A SpanCounter as the only processor costs nothing itself: what is
	// measured is the SDK's work up to the exporter, snapshot included.
	newProvider := func(sampler sdktrace.Sampler) (*sdktrace.TracerProvider, *benchkit.SpanCounter) {
		p := new(benchkit.SpanCounter)
		return sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(p)), p
	}
	path := recordPath(b, kafkaLoopback())
	if len(path) < 3 {
		b.Fatalf("recorded %d spans for a message, want create, receive, process (and settle)", len(path))
	}

	for _, sm := range []struct {
		name    string
		sampler sdktrace.Sampler
	}{{"always", sdktrace.AlwaysSample()}, {"never", sdktrace.NeverSample()}} {
		b.Run(sm.name+"/otelmq", func(b *testing.B) {
			tp, p := newProvider(sm.sampler)
			benchkit.Path(b, kafkaLoopback(), tp)
			b.ReportMetric(float64(p.Ended())/float64(b.N), "spans/op")
		})
		b.Run(sm.name+"/replay", func(b *testing.B) {
			tp, p := newProvider(sm.sampler)
			tr := tp.Tracer("replay")
			ctxs, spans := make([]context.Context, len(path)), make([]trace.Span, len(path))
			b.ReportAllocs()
			for b.Loop() {
				replay(tr, benchkit.W3C, path, ctxs, spans)
			}
			b.ReportMetric(float64(p.Ended())/float64(b.N), "spans/op")
		})
	}
}
