package kafka_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	otelprop "go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/kafka"
)

func newTracer(t *testing.T) (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return rec, tp
}

func hookedClient(t *testing.T, seeds []string, h *kafka.Hooks, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.WithHooks(h)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// pollOne polls cl until it returns records and hands each to fn with the
// poll's receive context.
func pollOne(t *testing.T, cl *kgo.Client, h *kafka.Hooks, fn func(ctx context.Context, r *kgo.Record)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatal("no records polled")
		}
		if fetches.NumRecords() == 0 {
			continue
		}
		rctx := h.ReceiveContext(ctx, fetches)
		fetches.EachRecord(func(r *kgo.Record) { fn(rctx, r) })
		return
	}
}

func spansNamed(rec *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func oneSpan(t *testing.T, rec *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	spans := spansNamed(rec, name)
	if len(spans) != 1 {
		var names []string
		for _, s := range rec.Ended() {
			names = append(names, s.Name())
		}
		t.Fatalf("%d spans named %q, want 1; have %q", len(spans), name, names)
	}
	return spans[0]
}

func hasLink(s sdktrace.ReadOnlySpan, sc trace.SpanContext) bool {
	for _, l := range s.Links() {
		if l.SpanContext.SpanID() == sc.SpanID() && l.SpanContext.TraceID() == sc.TraceID() {
			return true
		}
	}
	return false
}

func TestHooksProduceConsume(t *testing.T) {
	seeds, topic := cluster(t)
	rec, tp := newTracer(t)
	// One Hooks on both clients: the producer has no group, so the
	// consumer's is recorded. ParentMessageLinkReceive: the process span's
	// link shows that ReceiveContext carried the receive span.
	h := kafka.NewHooks(middleware.WithTracerProvider(tp), middleware.WithProcessParent(middleware.ParentMessageLinkReceive))
	producer := hookedClient(t, seeds, h)
	consumer := hookedClient(t, seeds, h, kgo.ConsumeTopics(topic), kgo.ConsumerGroup("g"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))

	ctx, root := tp.Tracer("test").Start(t.Context(), "root")
	r := &kgo.Record{Topic: topic, Key: []byte("k1"), Value: []byte("v")}
	if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	root.End()

	send := oneSpan(t, rec, "send "+topic)
	if send.Parent().SpanID() != root.SpanContext().SpanID() || send.SpanKind() != trace.SpanKindProducer {
		t.Errorf("send span parent %v kind %v, want child of root, producer", send.Parent().SpanID(), send.SpanKind())
	}
	if send.Status().Code == codes.Error {
		t.Errorf("send span status %v", send.Status())
	}
	for _, want := range []attribute.KeyValue{
		propagation.Partition(r.Partition), propagation.KafkaOffset(r.Offset), propagation.KafkaKey([]byte("k1")),
	} {
		if !hasAttr(send.Attributes(), want) {
			t.Errorf("send attributes %v miss %v", send.Attributes(), want)
		}
	}
	if n := countHeader(r, "traceparent"); n != 1 {
		t.Errorf("%d traceparent headers, want 1", n)
	}

	var fetchedParent trace.SpanContext
	pollOne(t, consumer, h, func(ctx context.Context, r *kgo.Record) {
		fetchedParent = trace.SpanContextFromContext(r.Context)
		_, span := h.StartProcess(ctx, r)
		middleware.End(span, nil)
	})
	if fetchedParent.SpanID() != send.SpanContext().SpanID() || !fetchedParent.IsRemote() {
		t.Errorf("fetched r.Context span %v, want the remote send span %v", fetchedParent, send.SpanContext())
	}

	process := oneSpan(t, rec, "process "+topic)
	receive := oneSpan(t, rec, "receive "+topic)
	if process.Parent().SpanID() != send.SpanContext().SpanID() || process.SpanContext().TraceID() != root.SpanContext().TraceID() {
		t.Errorf("process parent %v trace %v, want the send span %v in trace %v",
			process.Parent().SpanID(), process.SpanContext().TraceID(), send.SpanContext().SpanID(), root.SpanContext().TraceID())
	}
	if !hasLink(process, receive.SpanContext()) {
		t.Errorf("process span does not link the receive span")
	}
	if !hasLink(receive, send.SpanContext()) {
		t.Errorf("receive span does not link the send span")
	}
	for _, want := range []attribute.KeyValue{
		propagation.Partition(r.Partition), propagation.KafkaOffset(r.Offset),
		propagation.KafkaKey([]byte("k1")), propagation.ConsumerGroup("g"),
	} {
		if !hasAttr(process.Attributes(), want) {
			t.Errorf("process attributes %v miss %v", process.Attributes(), want)
		}
	}
	if !hasAttr(receive.Attributes(), propagation.ConsumerGroup("g")) {
		t.Errorf("receive attributes %v miss the group", receive.Attributes())
	}
}

func countHeader(r *kgo.Record, key string) int {
	n := 0
	for _, h := range r.Headers {
		if h.Key == key {
			n++
		}
	}
	return n
}

// TestHooksKeepTraceparent produces a record that already carries a
// creation context (a relay): it is kept, linked from the send span, and
// the consumer continues it.
func TestHooksKeepTraceparent(t *testing.T) {
	const (
		tp      = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		spanID  = "00f067aa0ba902b7"
	)
	seeds, topic := cluster(t)
	rec, prov := newTracer(t)
	h := kafka.NewHooks(middleware.WithTracerProvider(prov))
	producer := hookedClient(t, seeds, h)
	r := &kgo.Record{Topic: topic, Value: []byte("v"), Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(tp)}}}
	if err := producer.ProduceSync(t.Context(), r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if got := kafka.NewCarrier(r).Get("traceparent"); got != tp || countHeader(r, "traceparent") != 1 {
		t.Errorf("traceparent %q (%d headers), want %q kept", got, countHeader(r, "traceparent"), tp)
	}
	send := oneSpan(t, rec, "send "+topic)
	if len(send.Links()) != 1 || send.Links()[0].SpanContext.SpanID().String() != spanID {
		t.Errorf("send links %v, want the existing context", send.Links())
	}
	// Its context is not the record's creation context: a CLIENT (semconv).
	if send.SpanKind() != trace.SpanKindClient {
		t.Errorf("send span of a record keeping its creation context is a %v, want client", send.SpanKind())
	}

	consumer := hookedClient(t, seeds, h, kgo.ConsumeTopics(topic), kgo.ConsumerGroup("g"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	pollOne(t, consumer, h, func(ctx context.Context, r *kgo.Record) {
		_, span := h.StartProcess(ctx, r)
		span.End()
	})
	process := oneSpan(t, rec, "process "+topic)
	if process.Parent().SpanID().String() != spanID || process.SpanContext().TraceID().String() != traceID {
		t.Errorf("process parent %v/%v, want %s/%s", process.SpanContext().TraceID(), process.Parent().SpanID(), traceID, spanID)
	}
}

// TestHooksProduceError produces to a topic that does not exist: the send
// span ends with the produce error.
func TestHooksProduceError(t *testing.T) {
	seeds, _ := cluster(t)
	rec, tp := newTracer(t)
	h := kafka.NewHooks(middleware.WithTracerProvider(tp))
	producer := hookedClient(t, seeds, h, kgo.RecordDeliveryTimeout(time.Second), kgo.UnknownTopicRetries(1))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := producer.ProduceSync(ctx, &kgo.Record{Topic: "no-such-topic", Value: []byte("v")}).FirstErr()
	if err == nil {
		t.Fatal("produce to a missing topic succeeded")
	}
	send := oneSpan(t, rec, "send no-such-topic")
	if send.Status().Code != codes.Error {
		t.Errorf("send span status %v, want error (%v)", send.Status(), err)
	}
	if _, ok := attrValue(send.Attributes(), propagation.ErrorTypeKey); !ok {
		t.Errorf("send span has no error.type: %v", send.Attributes())
	}
}

// TestHooksClosedClient produces on a closed client: kgo fails the record
// after the buffered hook ran, so the span must still end, with the error.
func TestHooksClosedClient(t *testing.T) {
	seeds, topic := cluster(t)
	rec, tp := newTracer(t)
	h := kafka.NewHooks(middleware.WithTracerProvider(tp))
	producer := hookedClient(t, seeds, h)
	producer.Close()
	err := producer.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr()
	if !errors.Is(err, kgo.ErrClientClosed) {
		t.Fatalf("produce on a closed client = %v, want ErrClientClosed", err)
	}
	// kgo runs the buffered hook before it fails the record.
	send := oneSpan(t, rec, "send "+topic)
	if send.Status().Code != codes.Error {
		t.Errorf("send span status %v, want error", send.Status())
	}
	if n := len(rec.Started()) - len(rec.Ended()); n != 0 {
		t.Errorf("%d spans never ended", n)
	}
}

// TestHooksReproduce produces the same record twice (a caller retrying): the
// second send span is a sibling of the first, not its child, and the
// record keeps its first creation context.
func TestHooksReproduce(t *testing.T) {
	seeds, topic := cluster(t)
	rec, tp := newTracer(t)
	h := kafka.NewHooks(middleware.WithTracerProvider(tp))
	producer := hookedClient(t, seeds, h)
	ctx, root := tp.Tracer("test").Start(t.Context(), "root")
	r := &kgo.Record{Topic: topic, Value: []byte("v")}
	for range 2 {
		if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	root.End()
	sends := spansNamed(rec, "send "+topic)
	if len(sends) != 2 {
		t.Fatalf("%d send spans, want 2", len(sends))
	}
	for i, s := range sends {
		if s.Parent().SpanID() != root.SpanContext().SpanID() {
			t.Errorf("send %d parent %v, want root", i, s.Parent().SpanID())
		}
	}
	if !hasLink(sends[1], sends[0].SpanContext()) {
		t.Errorf("second send does not link the first (the record's creation context)")
	}
}

func attrValue(attrs []attribute.KeyValue, key attribute.Key) (attribute.Value, bool) {
	for _, a := range attrs {
		if a.Key == key {
			return a.Value, true
		}
	}
	return attribute.Value{}, false
}

// headerPropagator is W3C TraceContext and Baggage that records, for each
// extraction, the traceparent its carrier shows.
type headerPropagator struct {
	otelprop.TextMapPropagator
	mu   sync.Mutex
	seen []string
}

func newHeaderPropagator() *headerPropagator {
	return &headerPropagator{TextMapPropagator: otelprop.NewCompositeTextMapPropagator(otelprop.TraceContext{}, otelprop.Baggage{})}
}

func (p *headerPropagator) Extract(ctx context.Context, c otelprop.TextMapCarrier) context.Context {
	p.mu.Lock()
	p.seen = append(p.seen, c.Get(propagation.TraceParentKey))
	p.mu.Unlock()
	return p.TextMapPropagator.Extract(ctx, c)
}

func (p *headerPropagator) reset() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := p.seen
	p.seen = nil
	return seen
}

// startAttributes samples everything and records the attributes each span
// starts with, by name.
type startAttributes struct {
	mu     sync.Mutex
	starts map[string][]attribute.KeyValue
}

func (s *startAttributes) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	s.mu.Lock()
	s.starts[p.Name] = slices.Clone(p.Attributes)
	s.mu.Unlock()
	return sdktrace.AlwaysSample().ShouldSample(p)
}

func (s *startAttributes) Description() string { return "startAttributes" }

func attributeMap(attrs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value, len(attrs))
	for _, kv := range attrs {
		m[kv.Key] = kv.Value
	}
	return m
}

// fetchedRecord is a record as the consuming client hands it over: its
// headers carry creation (and bg when not empty) and the fetch hook ran.
func fetchedRecord(t *testing.T, h *kafka.Hooks, creation trace.SpanContext, bg string) *kgo.Record {
	t.Helper()
	r := &kgo.Record{Topic: "t", Partition: 3, Offset: 42, Key: []byte("k"), Value: []byte("hello")}
	otelprop.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), creation), kafka.NewCarrier(r))
	if bg != "" {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: propagation.BaggageKey, Value: []byte(bg)})
	}
	h.OnFetchRecordBuffered(r)
	return r
}

// TestHooksStartProcessUsesTheFetchedContext: StartProcess does not parse
// the trace context the fetch hook already extracted; it reads the baggage
// header alone (and only when there is one), filtered by
// WithInboundBaggage. The span starts with the sampling attributes (the
// partition, not the offset, key or ID) and ends with all of them.
func TestHooksStartProcessUsesTheFetchedContext(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	sampler := &startAttributes{starts: map[string][]attribute.KeyValue{}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(rec))
	prop := newHeaderPropagator()
	h := kafka.NewHooks(middleware.WithTracerProvider(tp), middleware.WithPropagator(prop), middleware.WithInboundBaggage("region"))
	creation := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{7}, SpanID: trace.SpanID{8}, TraceFlags: trace.FlagsSampled})

	for _, tc := range []struct {
		name      string
		bg        string
		fetchHook bool
		want      []string // the traceparents StartProcess's extractions see
	}{
		{name: "baggage", bg: "region=eu,user=alice", fetchHook: true, want: []string{""}},
		{name: "no baggage", fetchHook: true, want: nil},
		// Without the fetch hook's context, the headers are read in full.
		{name: "not fetched", bg: "region=eu,user=alice", want: []string{"00-07000000000000000000000000000000-0800000000000000-01"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec.Reset()
			r := fetchedRecord(t, h, creation, tc.bg)
			if !tc.fetchHook {
				r.Context = nil
			}
			prop.reset()
			ctx, span := h.StartProcess(context.Background(), r)
			if seen := prop.reset(); !slices.Equal(seen, tc.want) {
				t.Errorf("StartProcess extracted from carriers showing traceparent %q, want %q", seen, tc.want)
			}
			bg := baggage.FromContext(ctx)
			middleware.End(span, nil)
			if tc.bg != "" && (bg.Member("region").Value() != "eu" || bg.Member("user").Value() != "") {
				t.Errorf("handler baggage %s, want region=eu alone", bg)
			}
			process := oneSpan(t, rec, "process t")
			if process.Parent().SpanID() != creation.SpanID() || process.SpanContext().TraceID() != creation.TraceID() {
				t.Errorf("process parent %v, want the creation context", process.Parent())
			}
			head := append(propagation.OperationAttributes(propagation.SystemKafka, propagation.Process, "process", "t"), propagation.Partition(3))
			sampler.mu.Lock()
			start := sampler.starts["process t"]
			sampler.mu.Unlock()
			if got, want := attributeMap(start), attributeMap(head); !maps.Equal(got, want) || len(start) != len(head) {
				t.Errorf("process span started with %v, want %v", start, head)
			}
			// No body size: it is opt-in (middleware.WithBodySize).
			all := append(head, propagation.KafkaOffset(42), propagation.KafkaKey([]byte("k")),
				propagation.MessageID("t/3/42"))
			if got, want := attributeMap(process.Attributes()), attributeMap(all); !maps.Equal(got, want) {
				t.Errorf("process span attributes %v, want %v", process.Attributes(), all)
			}
		})
	}

	// What the propagation limits cut on fetch is still recorded on the
	// process span.
	rec.Reset()
	r := &kgo.Record{Topic: "t", Value: []byte("v"), Headers: []kgo.RecordHeader{{Key: propagation.TraceParentKey, Value: []byte("garbage")}}}
	h.OnFetchRecordBuffered(r)
	_, span := h.StartProcess(context.Background(), r)
	span.End()
	var events []string
	for _, e := range oneSpan(t, rec, "process t").Events() {
		if e.Name == propagation.DroppedEventName {
			v, _ := attrValue(e.Attributes, propagation.FieldKey)
			events = append(events, v.AsString())
		}
	}
	if !slices.Equal(events, []string{propagation.TraceParentKey}) {
		t.Errorf("dropped events for fields %q, want one for the invalid traceparent", events)
	}
}

// TestHooksDroppedSpansBuildNoRecordAttributes: for spans the sampler
// drops, the hooks build none of a record's attributes beyond the
// partition: a process span costs what StartProcessFrom with the partition
// alone costs, a keyed record's send span what an unkeyed one's does.
func TestHooksDroppedSpansBuildNoRecordAttributes(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	// Spans alone: what metrics cost is not this test's subject.
	h := kafka.NewHooksWithTracing(middleware.NewTracing(middleware.WithTracerProvider(tp)))
	creation := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{7}, SpanID: trace.SpanID{8}, TraceFlags: trace.FlagsSampled})
	r := fetchedRecord(t, h, creation, "")
	r.Key = []byte("a key long enough to need its own string")
	ctx := context.Background()
	d := middleware.Destination{System: propagation.SystemKafka, Name: "t"}
	want := testing.AllocsPerRun(100, func() {
		_, span := h.Tracing().StartProcessFrom(ctx, d, creation, baggage.Baggage{}, propagation.Partition(3))
		span.End()
	})
	if got := testing.AllocsPerRun(100, func() {
		_, span := h.StartProcess(ctx, r)
		span.End()
	}); got != want {
		t.Errorf("a dropped process span costs %v allocations, StartProcessFrom with the partition %v", got, want)
	}

	send := func(r *kgo.Record) float64 {
		return testing.AllocsPerRun(100, func() {
			r.Headers, r.Context = r.Headers[:0], nil
			h.OnProduceRecordBuffered(r)
			h.OnProduceRecordUnbuffered(r, nil)
		})
	}
	keyed := send(&kgo.Record{Topic: "t", Key: []byte("a key long enough to need its own string"), Value: []byte("v")})
	if plain := send(&kgo.Record{Topic: "t", Value: []byte("v")}); keyed != plain {
		t.Errorf("a dropped send span costs %v allocations for a keyed record, %v for an unkeyed one", keyed, plain)
	}
}

// TestHooksSendAttributes: a send span starts with the destination's
// attributes alone and ends with the record's: key and tombstone flag, and
// partition, offset and ID once the record is produced.
func TestHooksSendAttributes(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	sampler := &startAttributes{starts: map[string][]attribute.KeyValue{}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(rec))
	h := kafka.NewHooks(middleware.WithTracerProvider(tp))
	head := propagation.OperationAttributes(propagation.SystemKafka, propagation.Send, "send", "t")
	failed := errors.New("broker down")
	for _, tc := range []struct {
		name string
		r    *kgo.Record
		err  error
		want []attribute.KeyValue
	}{
		{
			name: "keyed", r: &kgo.Record{Topic: "t", Key: []byte("k"), Value: []byte("v"), Partition: 3, Offset: 42},
			want: []attribute.KeyValue{propagation.KafkaKey([]byte("k")), propagation.Partition(3), propagation.KafkaOffset(42), propagation.MessageID("t/3/42")},
		},
		{
			name: "tombstone", r: &kgo.Record{Topic: "t", Partition: 1, Offset: 7},
			want: []attribute.KeyValue{propagation.KafkaTombstone(true), propagation.Partition(1), propagation.KafkaOffset(7), propagation.MessageID("t/1/7")},
		},
		{
			name: "failed", r: &kgo.Record{Topic: "t", Key: []byte("k"), Value: []byte("v")}, err: failed,
			want: []attribute.KeyValue{propagation.KafkaKey([]byte("k")), propagation.ErrorTypeKey.String(middleware.ErrorType(failed))},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec.Reset()
			h.OnProduceRecordBuffered(tc.r)
			h.OnProduceRecordUnbuffered(tc.r, tc.err)
			sampler.mu.Lock()
			start := sampler.starts["send t"]
			sampler.mu.Unlock()
			if got, want := attributeMap(start), attributeMap(head); !maps.Equal(got, want) || len(start) != len(head) {
				t.Errorf("send span started with %v, want %v", start, head)
			}
			all := append(slices.Clip(head), tc.want...)
			if got, want := attributeMap(oneSpan(t, rec, "send t").Attributes()), attributeMap(all); !maps.Equal(got, want) {
				t.Errorf("send span attributes %v, want %v", got, all)
			}
		})
	}
}

// TestHooksParentBasedSampling: Hooks built with WithParentBasedSampling
// record nothing for a record produced under an unsampled parent, which
// crosses kfake with the parent's traceparent (flags 00); its process
// span's stand-in carries that context, and a sampled record beside it is
// traced as usual.
func TestHooksParentBasedSampling(t *testing.T) {
	seeds, topic := cluster(t)
	rec, tp := newTracer(t) // the SDK's default sampler: ParentBased(AlwaysSample)
	h := kafka.NewHooks(middleware.WithTracerProvider(tp), middleware.WithParentBasedSampling(true))
	producer := hookedClient(t, seeds, h)
	consumer := hookedClient(t, seeds, h, kgo.ConsumeTopics(topic), kgo.ConsumerGroup("g"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))

	unsampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0x5a}, SpanID: trace.SpanID{0x5b}})
	out := &kgo.Record{Topic: topic, Value: []byte("sampled out")}
	if err := producer.ProduceSync(trace.ContextWithSpanContext(t.Context(), unsampled), out).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ctx, root := tp.Tracer("test").Start(t.Context(), "root")
	in := &kgo.Record{Topic: topic, Value: []byte("sampled in")}
	if err := producer.ProduceSync(ctx, in).FirstErr(); err != nil {
		t.Fatal(err)
	}
	root.End()
	want := "00-" + unsampled.TraceID().String() + "-" + unsampled.SpanID().String() + "-00"
	if got := string(headerValue(out, "traceparent")); got != want {
		t.Errorf("traceparent %q, want the unsampled parent's %q", got, want)
	}

	seen := map[string]trace.SpanContext{}
	for len(seen) < 2 {
		pollOne(t, consumer, h, func(ctx context.Context, r *kgo.Record) {
			pctx, span := h.StartProcess(ctx, r)
			seen[string(r.Value)] = trace.SpanContextFromContext(pctx)
			middleware.End(span, nil)
		})
	}
	// The producer's parent itself: neither a send nor a process span was
	// started (a dropped one would have a span ID of its own).
	if sc := seen["sampled out"]; sc.TraceID() != unsampled.TraceID() || sc.SpanID() != unsampled.SpanID() || sc.IsSampled() {
		t.Errorf("sampled-out record: process context %v, want the producer's parent %v", sc, unsampled)
	}
	if sc := seen["sampled in"]; sc.TraceID() != root.SpanContext().TraceID() || !sc.IsSampled() {
		t.Errorf("sampled-in record: process context %v, want a sampled span in the root's trace", sc)
	}
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() == unsampled.TraceID() {
			t.Errorf("span %q recorded in the sampled-out trace", s.Name())
		}
	}
	if n := len(spansNamed(rec, "process "+topic)); n != 1 {
		t.Errorf("%d process spans, want the sampled record's alone", n)
	}
}

// headerValue is the value of r's last header named key.
func headerValue(r *kgo.Record, key string) []byte {
	var v []byte
	for _, h := range r.Headers {
		if h.Key == key {
			v = h.Value
		}
	}
	return v
}

// TestHooksRedactor: the record attributes the hooks learn after a span
// started (the key and ID on the send span once produced, the key and ID
// on the process span) go through WithRedactor like every message
// attribute: a key can be a user's identity.
func TestHooksRedactor(t *testing.T) {
	seeds, topic := cluster(t)
	rec, tp := newTracer(t)
	key, id := propagation.KafkaKey(nil).Key, propagation.MessageID("").Key
	h := kafka.NewHooks(middleware.WithTracerProvider(tp), middleware.WithRedactor(func(kv attribute.KeyValue) attribute.KeyValue {
		if kv.Key == key || kv.Key == id {
			return kv.Key.String("***")
		}
		return kv
	}))
	producer := hookedClient(t, seeds, h)
	consumer := hookedClient(t, seeds, h, kgo.ConsumeTopics(topic), kgo.ConsumerGroup("g"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	r := &kgo.Record{Topic: topic, Key: []byte("alice@example.com"), Value: []byte("v")}
	if err := producer.ProduceSync(t.Context(), r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	pollOne(t, consumer, h, func(ctx context.Context, r *kgo.Record) {
		_, span := h.StartProcess(ctx, r)
		middleware.End(span, nil)
	})
	for _, name := range []string{"send " + topic, "process " + topic} {
		s := oneSpan(t, rec, name)
		for _, k := range []attribute.Key{key, id} {
			found := false
			for _, kv := range s.Attributes() {
				if kv.Key == k {
					found = true
					if kv.Value.AsString() != "***" {
						t.Errorf("%s: %s = %q, not redacted", name, k, kv.Value.AsString())
					}
				}
			}
			if !found {
				t.Errorf("%s: no %s attribute", name, k)
			}
		}
	}
}

// TestHooksBinaryKey: the hooks' send and process spans leave out a key
// that is not UTF-8, as semconv says, and record nothing that is not UTF-8
// (the OTLP exporter refuses a batch holding such a string).
func TestHooksBinaryKey(t *testing.T) {
	seeds, topic := cluster(t)
	rec, tp := newTracer(t)
	h := kafka.NewHooks(middleware.WithTracerProvider(tp))
	producer := hookedClient(t, seeds, h)
	consumer := hookedClient(t, seeds, h, kgo.ConsumeTopics(topic), kgo.ConsumerGroup("g"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err := producer.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Key: []byte{0xff, 0xfe, 0, 1}, Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	pollOne(t, consumer, h, func(ctx context.Context, r *kgo.Record) {
		_, span := h.StartProcess(ctx, r)
		middleware.End(span, nil)
	})
	for _, name := range []string{"send " + topic, "process " + topic} {
		for _, kv := range oneSpan(t, rec, name).Attributes() {
			if kv.Key == propagation.KafkaKey(nil).Key || !utf8.ValidString(kv.Value.Emit()) {
				t.Errorf("%s records %s = %q", name, kv.Key, kv.Value.Emit())
			}
		}
	}
}
