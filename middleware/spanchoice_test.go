package middleware_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelmq/otelmq/internal/benchkit"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// unsampledContext is a producer's span context that a sampler dropped.
func unsampledContext() trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{10}})
}

// starts counts the spans the sampler was asked about whose names begin
// with prefix.
func (s *startSampler) count(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for name, starts := range s.starts {
		if strings.HasPrefix(name, prefix) {
			n += len(starts)
		}
	}
	return n
}

// capture is a Publisher that keeps what it is given.
type capture struct{ msgs []*middleware.Message }

func (c *capture) Publish(_ context.Context, _ string, msgs ...*middleware.Message) error {
	c.msgs = append(c.msgs, msgs...)
	return nil
}

// TestParentBasedSamplingPublish: under an unsampled parent,
// WithParentBasedSampling starts no send or create span, and the messages
// carry the parent's span context, not-sampled flag included; without the
// option the SDK is asked for each span (and drops them all).
func TestParentBasedSamplingPublish(t *testing.T) {
	parent := trace.ContextWithSpanContext(context.Background(), unsampledContext())
	for _, on := range []bool{false, true} {
		sampler := newStartSampler(sdktrace.ParentBased(sdktrace.AlwaysSample()))
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(rec))
		tr := middleware.NewTracing(middleware.WithTracerProvider(tp), middleware.WithParentBasedSampling(on))
		var c capture
		msgs := []*middleware.Message{middleware.NewMessage(nil), middleware.NewMessage(nil)}
		if err := tr.Publisher(&c).Publish(parent, "q", msgs...); err != nil {
			t.Fatal(err)
		}
		if n := len(rec.Ended()); n != 0 {
			t.Errorf("parent-based %v: %d spans recorded under an unsampled parent", on, n)
		}
		asked := sampler.count("send") + sampler.count("create")
		switch {
		case on && asked != 0:
			t.Errorf("parent-based: the sampler was asked about %d send/create spans, want none", asked)
		case !on && asked != 3:
			t.Errorf("default: the sampler was asked about %d send/create spans, want 3 (send, 2 creates)", asked)
		}
		if on {
			want := "00-" + unsampledContext().TraceID().String() + "-" + unsampledContext().SpanID().String() + "-00"
			for i, m := range c.msgs {
				if got := m.Headers[propagation.TraceParentKey]; got != want {
					t.Errorf("message %d: traceparent %q, want the parent's %q", i, got, want)
				}
			}
		}
	}
}

// TestParentBasedSamplingConsume: a message created in an unsampled trace
// gets no process or settle span with WithParentBasedSampling, and its
// handler still runs in the producer's trace, unsampled, so its own spans
// are dropped; a sampled message's spans are recorded as without the option.
func TestParentBasedSamplingConsume(t *testing.T) {
	sampler := newStartSampler(sdktrace.ParentBased(sdktrace.AlwaysSample()))
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(rec))
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp), middleware.WithParentBasedSampling(true))

	unsampled, sampled := kafkaMessage(unsampledContext()), kafkaMessage(producerContext())
	src := &fakePull{d: kafkaDest, msgs: []*middleware.Message{unsampled, sampled}}
	seen := map[*middleware.Message]trace.SpanContext{}
	err := tr.Subscriber(src).Subscribe(context.Background(), "t", middleware.HandlerFunc(func(ctx context.Context, msg *middleware.Message) error {
		seen[msg] = trace.SpanContextFromContext(ctx)
		_, child := tp.Tracer("handler").Start(ctx, "handler work")
		child.End()
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}

	if got := seen[unsampled]; got.TraceID() != unsampledContext().TraceID() || got.IsSampled() {
		t.Errorf("unsampled message: handler context %v, want the producer's trace, not sampled", got)
	}
	if got := seen[sampled]; got.TraceID() != producerContext().TraceID() || !got.IsSampled() || got.SpanID() == producerContext().SpanID() {
		t.Errorf("sampled message: handler context %v, want a sampled process span in the producer's trace", got)
	}
	// Asked about: the receive span (a root), the process and ack spans of
	// the sampled message only, and the handler's spans (the application
	// starts those; the one in the unsampled trace is dropped).
	for prefix, want := range map[string]int{"receive": 1, "process": 1, "ack": 1, "handler": 2} {
		if n := sampler.count(prefix); n != want {
			t.Errorf("the sampler was asked about %d %q spans, want %d", n, prefix, want)
		}
	}
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() == unsampledContext().TraceID() {
			t.Errorf("span %q recorded in the unsampled trace", s.Name())
		}
	}
	if n := len(rec.Ended()); n != 4 {
		t.Errorf("%d spans recorded, want 4 (receive, and process, ack, handler work of the sampled message)", n)
	}
}

// TestParentBasedSamplingLeavesRecordOnlyParents: a parent the sampler
// records without sampling (RecordOnly) is the caller's span; the span
// otelmq does not start must not stand in as it, or ending ours would end
// the caller's.
func TestParentBasedSamplingLeavesRecordOnlyParents(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(recordOnly{}), sdktrace.WithSpanProcessor(rec))
	ctx, request := tp.Tracer("app").Start(context.Background(), "request")
	if !request.IsRecording() || request.SpanContext().IsSampled() {
		t.Fatal("the parent should record without being sampled")
	}
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp), middleware.WithParentBasedSampling(true))
	sctx, send := tr.StartSend(ctx, middleware.Destination{System: "bench", Name: "q"}, 1)
	if send == request || send.IsRecording() {
		t.Fatal("the stand-in for the send span is the caller's span")
	}
	if !trace.SpanContextFromContext(sctx).Equal(request.SpanContext()) {
		t.Error("the stand-in does not carry the parent's span context")
	}
	middleware.End(send, nil)
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("ending the stand-in ended %d spans", n)
	}
	request.End()
	if n := len(rec.Ended()); n != 1 {
		t.Fatalf("%d spans ended, want the request", n)
	}
}

// recordOnly records every span and samples none.
type recordOnly struct{}

func (recordOnly) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	return sdktrace.SamplingResult{Decision: sdktrace.RecordOnly, Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
}

func (recordOnly) Description() string { return "recordOnly" }

// TestParentBasedSamplingAllocations: a message of a trace sampled out
// upstream costs fewer allocations with WithParentBasedSampling than
// without, on the Kafka-shaped loopback with ParentBased(NeverSample), the
// benchmark BenchmarkSampledOut measures.
func TestParentBasedSamplingAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts: skipped in -short")
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	allocs := func(opts ...middleware.Option) float64 {
		r := testing.Benchmark(func(b *testing.B) {
			benchkit.ThroughFrom(b, benchkit.UnsampledContext(), kafkaLoopback(), middleware.NewTracing(append(opts, middleware.WithTracerProvider(tp))...))
		})
		return float64(r.MemAllocs) / float64(r.N)
	}
	def, pb := allocs(), allocs(middleware.WithParentBasedSampling(true))
	t.Logf("allocations per message: default %.1f, parent-based %.1f", def, pb)
	// Three of the four spans are not started (send, process, ack); each
	// dropped one costs the SDK at least 3 allocations.
	if pb > def-9 {
		t.Errorf("parent-based sampling saves %.1f allocations per message, want at least 9", def-pb)
	}
}

// TestSettleSpansOff: WithSettleSpans(false) records the receive and
// process spans and no settle span, and the sampler is not asked about one;
// StartSettle hands back its context and a span that records nothing.
func TestSettleSpansOff(t *testing.T) {
	for _, on := range []bool{true, false} {
		sampler := newStartSampler(sdktrace.AlwaysSample())
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(rec))
		tr := middleware.NewTracing(middleware.WithTracerProvider(tp), middleware.WithSettleSpans(on))
		src := &fakePull{d: kafkaDest, msgs: []*middleware.Message{kafkaMessage(producerContext()), kafkaMessage(producerContext())}}
		if err := tr.Subscriber(src).Subscribe(context.Background(), "t", middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })); err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"receive": 1, "process": 2, "ack": 2}
		if !on {
			want["ack"] = 0
		}
		for prefix, n := range want {
			if got := sampler.count(prefix); got != n {
				t.Errorf("settle spans %v: the sampler was asked about %d %q spans, want %d", on, got, prefix, n)
			}
		}
		if got := len(rec.Ended()); got != 3+want["ack"] {
			t.Errorf("settle spans %v: %d spans recorded, want %d", on, got, 3+want["ack"])
		}
		ctx := context.WithValue(context.Background(), struct{}{}, 1)
		sctx, span := tr.StartSettle(ctx, kafkaDest, "ack", []trace.SpanContext{producerContext()})
		recording := span.IsRecording()
		span.End()
		if on == (sctx == ctx) || on != recording {
			t.Errorf("settle spans %v: StartSettle returned a new context %v, a recording span %v", on, sctx != ctx, recording)
		}
	}
}

// countingSource is a Native whose attributes count how often they were
// asked for.
type countingSource struct {
	mu    sync.Mutex
	asked int
}

func (*countingSource) As(any) bool { return false }

func (s *countingSource) MessageAttributes() []attribute.KeyValue {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked++
	return []attribute.KeyValue{propagation.PartitionID("3"), propagation.KafkaOffset(42)}
}

// TestAttributeSourceAskedOnlyForRecordedSpans: a message whose Native is
// an AttributeSource has its attributes built only for a span that is
// started: not with a no-op provider, not for a trace sampled out with
// WithParentBasedSampling; and a recorded process span has them.
func TestAttributeSourceAskedOnlyForRecordedSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	sdk := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	for _, tc := range []struct {
		name     string
		opts     []middleware.Option
		creation trace.SpanContext
		asked    bool
	}{
		{"noop", []middleware.Option{middleware.WithTracerProvider(noop.NewTracerProvider())}, producerContext(), false},
		{"sampled out", []middleware.Option{middleware.WithTracerProvider(sdk), middleware.WithParentBasedSampling(true)}, unsampledContext(), false},
		{"recorded", []middleware.Option{middleware.WithTracerProvider(sdk)}, producerContext(), true},
	} {
		src := &countingSource{}
		msg := &middleware.Message{Headers: map[string]string{}}
		propagation.Inject(trace.ContextWithSpanContext(context.Background(), tc.creation), propagation.MapCarrier(msg.Headers))
		msg.SetNative(src)
		pull := &fakePull{d: kafkaDest, msgs: []*middleware.Message{msg}}
		err := middleware.NewTracing(tc.opts...).Subscriber(pull).Subscribe(context.Background(), "t",
			middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil }))
		if err != nil {
			t.Fatal(err)
		}
		if (src.asked > 0) != tc.asked {
			t.Errorf("%s: attributes asked for %d times", tc.name, src.asked)
		}
	}
	process := oneSpan(t, rec, "process t")
	if v, ok := attrOf(process, propagation.KafkaOffset(0).Key); !ok || v.AsInt64() != 42 {
		t.Errorf("the recorded process span lacks the source's offset: %v", process.Attributes())
	}
}
