package middleware_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// The tests in this file check that spans start with the attributes the
// semantic conventions call important for sampling decisions, and that the
// others are built and recorded only for spans that record.

// fakePull is a pull-based transport (as Kafka is) that delivers msgs in one
// poll and settles each alone; Publish records what it is given.
type fakePull struct {
	d    middleware.Destination
	msgs []*middleware.Message
}

func (f *fakePull) Describe(string) middleware.Destination { return f.d }

func (f *fakePull) Publish(context.Context, string, ...*middleware.Message) error { return nil }

func (f *fakePull) Subscribe(ctx context.Context, _ string, h middleware.Handler) error {
	obs := middleware.ObserverFrom(ctx)
	start := time.Now()
	hctx := obs.Received(ctx, f.d, start, f.msgs)
	for _, m := range f.msgs {
		err := middleware.Call(hctx, h, m)
		obs.Settled(hctx, f.d, "ack", start, []*middleware.Message{m}, err)
	}
	return nil
}

// kafkaDest is a Kafka-like destination: server and consumer group.
var kafkaDest = middleware.Destination{
	System: propagation.SystemKafka,
	Name:   "t",
	Attributes: []attribute.KeyValue{
		propagation.ServerAddress("broker"), propagation.ServerPort(9092), propagation.ConsumerGroup("g"),
	},
}

// kafkaMessage is a consumed message as the Kafka transport builds it: its
// attributes repeat the consumer group of the destination.
func kafkaMessage(creation trace.SpanContext) *middleware.Message {
	msg := &middleware.Message{
		ID: "t/3/42", Body: []byte("hello"), DeliveryCount: 2, Destination: "t",
		Headers: map[string]string{"tenant": "acme"},
	}
	propagation.Inject(trace.ContextWithSpanContext(context.Background(), creation), propagation.MapCarrier(msg.Headers))
	msg.SetAttributes(propagation.PartitionID("3"), propagation.KafkaOffset(42),
		propagation.ConsumerGroup("g"), propagation.MessageID("t/3/42"))
	return msg
}

func producerContext() trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{7}, SpanID: trace.SpanID{8}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
}

// operation is the attributes every span of op (of type typ) on kafkaDest
// has, destination ones included.
func operation(typ propagation.OperationType, op string) []attribute.KeyValue {
	return append(propagation.OperationAttributes(propagation.SystemKafka, typ, op, "t"), kafkaDest.Attributes...)
}

func asMap(t *testing.T, what string, kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	t.Helper()
	m := make(map[attribute.Key]attribute.Value, len(kvs))
	for _, kv := range kvs {
		if _, dup := m[kv.Key]; dup {
			t.Errorf("%s: %s given twice in %v", what, kv.Key, kvs)
		}
		m[kv.Key] = kv.Value
	}
	return m
}

func sameAttributes(t *testing.T, what string, got, want []attribute.KeyValue) {
	t.Helper()
	if g, w := asMap(t, what, got), asMap(t, what+" (want)", want); !maps.Equal(g, w) {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

// startSampler records the attributes each span starts with, by span name,
// and samples as its inner sampler does.
type startSampler struct {
	sdktrace.Sampler
	mu     sync.Mutex
	starts map[string][][]attribute.KeyValue
}

func newStartSampler(inner sdktrace.Sampler) *startSampler {
	return &startSampler{Sampler: inner, starts: map[string][][]attribute.KeyValue{}}
}

func (s *startSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	s.mu.Lock()
	s.starts[p.Name] = append(s.starts[p.Name], slices.Clone(p.Attributes))
	s.mu.Unlock()
	return s.Sampler.ShouldSample(p)
}

func (s *startSampler) Description() string { return "startSampler" }

func (s *startSampler) only(t *testing.T, name string) []attribute.KeyValue {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.starts[name]) != 1 {
		t.Fatalf("%d %q spans sampled, want 1", len(s.starts[name]), name)
	}
	return s.starts[name][0]
}

func oneSpan(t *testing.T, rec *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %q spans, want 1", len(found), name)
	}
	return found[0]
}

// TestSpansStartWithSamplingAttributes: a sampler sees, at start, the
// attributes the semantic conventions list as important for sampling
// (operation, destination, consumer group, server, partition) and the
// batch size where it is required, and none of the per-message others;
// the spans end with all of them, each once.
func TestSpansStartWithSamplingAttributes(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	sampler := newStartSampler(sdktrace.AlwaysSample())
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(rec))
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp), middleware.WithHeaderAllowList("tenant"), middleware.WithBodySize(true))
	f := &fakePull{d: kafkaDest, msgs: []*middleware.Message{kafkaMessage(producerContext())}}
	if err := tr.Subscriber(f).Subscribe(context.Background(), "t", middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })); err != nil {
		t.Fatal(err)
	}

	partition := propagation.PartitionID("3")
	perMessage := []attribute.KeyValue{propagation.KafkaOffset(42), propagation.MessageID("t/3/42")}

	sameAttributes(t, "process start", sampler.only(t, "process t"), append(operation(propagation.Process, "process"), partition))
	sameAttributes(t, "process span", oneSpan(t, rec, "process t").Attributes(), slices.Concat(
		operation(propagation.Process, "process"), []attribute.KeyValue{partition}, perMessage,
		[]attribute.KeyValue{
			propagation.BodySize(5), middleware.DeliveryCountKey.Int(2),
			attribute.String(middleware.HeaderAttributePrefix+"tenant", "acme"),
		}))

	sameAttributes(t, "receive start", sampler.only(t, "receive t"), append(operation(propagation.Receive, "receive"), propagation.BatchMessageCount(1)))
	sameAttributes(t, "receive span", oneSpan(t, rec, "receive t").Attributes(), append(operation(propagation.Receive, "receive"), propagation.BatchMessageCount(1)))

	sameAttributes(t, "ack start", sampler.only(t, "ack t"), append(operation(propagation.Settle, "ack"), partition))
	sameAttributes(t, "ack span", oneSpan(t, rec, "ack t").Attributes(), slices.Concat(
		operation(propagation.Settle, "ack"), []attribute.KeyValue{partition}, perMessage))

	// A batch publish: the send span starts with the batch size, each create
	// span without its message ID, which it records afterwards.
	m1, m2 := middleware.NewMessage(nil), middleware.NewMessage(nil)
	m1.ID, m2.ID = "m1", "m2"
	if err := tr.Publisher(f).Publish(context.Background(), "t", m1, m2); err != nil {
		t.Fatal(err)
	}
	sameAttributes(t, "send start", sampler.only(t, "send t"), append(operation(propagation.Send, "send"), propagation.BatchMessageCount(2)))
	sampler.mu.Lock()
	creates := sampler.starts["create t"]
	sampler.mu.Unlock()
	if len(creates) != 2 {
		t.Fatalf("%d create spans sampled, want 2", len(creates))
	}
	for _, c := range creates {
		sameAttributes(t, "create start", c, operation(propagation.Create, "create"))
	}
	var ids []string
	for _, s := range rec.Ended() {
		if s.Name() == "create t" {
			attrs := asMap(t, "create span", s.Attributes())
			ids = append(ids, attrs[propagation.MessageID("").Key].AsString())
			delete(attrs, propagation.MessageID("").Key)
			if want := asMap(t, "create", operation(propagation.Create, "create")); !maps.Equal(attrs, want) {
				t.Errorf("create span attributes %v, want %v and the message ID", s.Attributes(), want)
			}
		}
	}
	if slices.Sort(ids); !slices.Equal(ids, []string{"m1", "m2"}) {
		t.Errorf("create spans record message IDs %v, want m1 and m2", ids)
	}
}

// TestDroppedSpansBuildNoMessageAttributes counts the redactor's calls: it
// sees every attribute a recorded process span gets once, the message's
// broker attributes once more on its settle span, the attributes each span
// starts with once per span (the destination's on the receive, process and
// ack spans, the partition on the process and ack spans; the consumer
// group the message repeats is not counted again), and for a span the
// sampler drops only the ones it starts with.
func TestDroppedSpansBuildNoMessageAttributes(t *testing.T) {
	onSettleToo := []attribute.Key{propagation.KafkaOffset(0).Key, propagation.MessageID("").Key}
	perMessage := append([]attribute.Key{
		propagation.BodySize(0).Key, middleware.DeliveryCountKey, middleware.HeaderAttributePrefix + "tenant",
	}, onSettleToo...)
	atStart := map[attribute.Key]int{
		propagation.ServerAddressKey: 3, propagation.ConsumerGroupKey: 3, propagation.PartitionID("").Key: 2,
	}
	for _, sample := range []bool{true, false} {
		t.Run(fmt.Sprintf("sampled=%v", sample), func(t *testing.T) {
			var mu sync.Mutex
			calls := map[attribute.Key]int{}
			redact := func(kv attribute.KeyValue) attribute.KeyValue {
				mu.Lock()
				calls[kv.Key]++
				mu.Unlock()
				if kv.Key == propagation.ServerAddressKey || kv.Key == middleware.HeaderAttributePrefix+"tenant" {
					return attribute.String(string(kv.Key), "REDACTED")
				}
				return kv
			}
			sampler := sdktrace.NeverSample()
			if sample {
				sampler = sdktrace.AlwaysSample()
			}
			starts := newStartSampler(sampler)
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(starts), sdktrace.WithSpanProcessor(rec))
			tr := middleware.NewTracing(middleware.WithTracerProvider(tp),
				middleware.WithHeaderAllowList("tenant"), middleware.WithRedactor(redact), middleware.WithBodySize(true))
			f := &fakePull{d: kafkaDest, msgs: []*middleware.Message{kafkaMessage(producerContext())}}
			if err := tr.Subscriber(f).Subscribe(context.Background(), "t", middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })); err != nil {
				t.Fatal(err)
			}
			for k, want := range atStart {
				if calls[k] != want {
					t.Errorf("redactor called %d times for %s, want %d", calls[k], k, want)
				}
			}
			// What the sampler saw was redacted too.
			if v, _ := asMap(t, "process start", starts.only(t, "process t"))[propagation.ServerAddressKey]; v.AsString() != "REDACTED" {
				t.Errorf("process span started with server.address %q, want it redacted", v.AsString())
			}
			want := 0
			if sample {
				want = 1
			}
			for _, k := range perMessage {
				want := want
				if sample && slices.Contains(onSettleToo, k) {
					want = 2 // process and ack spans
				}
				if calls[k] != want {
					t.Errorf("redactor called %d times for %s, want %d", calls[k], k, want)
				}
			}
			if !sample {
				return
			}
			p := asMap(t, "process span", oneSpan(t, rec, "process t").Attributes())
			for _, k := range []attribute.Key{propagation.ServerAddressKey, middleware.HeaderAttributePrefix + "tenant"} {
				if p[k].AsString() != "REDACTED" {
					t.Errorf("process span %s = %q, want it redacted", k, p[k].AsString())
				}
			}
		})
	}
}

// rawProvider wraps a TracerProvider to record the attributes each span is
// given, at start and with SetAttributes, before the SDK de-duplicates them.
type rawProvider struct {
	embedded.TracerProvider
	tp  trace.TracerProvider
	mu  sync.Mutex
	raw map[string][]attribute.KeyValue
}

func (p *rawProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return &rawTracer{t: p.tp.Tracer(name, opts...), p: p}
}

func (p *rawProvider) add(name string, kvs ...attribute.KeyValue) {
	p.mu.Lock()
	p.raw[name] = append(p.raw[name], kvs...)
	p.mu.Unlock()
}

type rawTracer struct {
	embedded.Tracer
	t trace.Tracer
	p *rawProvider
}

func (t *rawTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	cfg := trace.NewSpanStartConfig(opts...)
	t.p.add(name, cfg.Attributes()...)
	ctx, s := t.t.Start(ctx, name, opts...)
	span := &rawSpan{Span: s, name: name, p: t.p}
	return trace.ContextWithSpan(ctx, span), span
}

type rawSpan struct {
	trace.Span
	name string
	p    *rawProvider
}

func (s *rawSpan) SetAttributes(kvs ...attribute.KeyValue) {
	s.p.add(s.name, kvs...)
	s.Span.SetAttributes(kvs...)
}

// TestNoAttributeGivenTwice: a message attribute that repeats one of the
// destination's (the Kafka consumer group) or the partition the span
// started with is not given to the span again, which would make it larger
// and its de-duplication costlier.
func TestNoAttributeGivenTwice(t *testing.T) {
	raw := &rawProvider{tp: sdktrace.NewTracerProvider(), raw: map[string][]attribute.KeyValue{}}
	tr := middleware.NewTracing(middleware.WithTracerProvider(raw), middleware.WithHeaderAllowList("tenant"))
	f := &fakePull{d: kafkaDest, msgs: []*middleware.Message{kafkaMessage(producerContext())}}
	if err := tr.Subscriber(f).Subscribe(context.Background(), "t", middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"process t", "ack t", "receive t"} {
		if len(raw.raw[name]) == 0 {
			t.Errorf("no %q span", name)
		}
		asMap(t, name, raw.raw[name]) // reports any key given twice
	}
}

// TestDroppedSpansCostNoAttributeAllocations: for a span the sampler drops,
// per-message attributes cost nothing: starting it with many costs what
// starting it with none does, the partition (a sampling attribute) included.
func TestDroppedSpansCostNoAttributeAllocations(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp))
	creation := producerContext()
	ctx := context.Background()
	none := []attribute.KeyValue(nil)
	few := []attribute.KeyValue{propagation.PartitionID("3")}
	many := []attribute.KeyValue{
		propagation.PartitionID("3"), propagation.KafkaOffset(42), propagation.KafkaKey([]byte("key")),
		propagation.ConsumerGroup("g"), propagation.MessageID("t/3/42"), propagation.BodySize(5),
	}
	ops := map[string]func(attrs []attribute.KeyValue){
		"process": func(attrs []attribute.KeyValue) {
			_, span := tr.StartProcessFrom(ctx, kafkaDest, creation, baggage.Baggage{}, attrs...)
			span.End()
		},
		"send": func(attrs []attribute.KeyValue) {
			_, span := tr.StartSend(ctx, kafkaDest, 1, attrs...)
			span.End()
		},
		"settle": func(attrs []attribute.KeyValue) {
			_, span := tr.StartSettle(ctx, kafkaDest, "ack", []trace.SpanContext{creation}, attrs...)
			span.End()
		},
		"receive": func(attrs []attribute.KeyValue) {
			_ = tr.StartReceive(ctx, kafkaDest, time.Now(), []trace.SpanContext{creation, creation}, attrs...)
		},
	}
	// A process span costs one allocation less than the SDK alone costs
	// to start a dropped span with the same parent and start options,
	// built beforehand: remoteparent.Context puts the parent in
	// ctx in one allocation where the trace package makes two.
	tracer := tp.Tracer("test")
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(append(operation(propagation.Process, "process"), propagation.PartitionID("3"))...),
	}
	floor := testing.AllocsPerRun(100, func() {
		_, span := tracer.Start(trace.ContextWithRemoteSpanContext(ctx, creation), "process t", opts...)
		span.End()
	})
	if n := testing.AllocsPerRun(100, func() { ops["process"](many) }); n != floor-1 {
		t.Errorf("process: a dropped span with %d attributes costs %v allocations, the SDK alone %v", len(many), n, floor)
	}
	for name, op := range ops {
		base := testing.AllocsPerRun(100, func() { op(none) })
		for _, attrs := range [][]attribute.KeyValue{few, many} {
			if n := testing.AllocsPerRun(100, func() { op(attrs) }); n != base {
				t.Errorf("%s: a dropped span with %d attributes costs %v allocations, with none %v", name, len(attrs), n, base)
			}
		}
	}
}

// TestStartProcessFrom: a process span from an already-extracted creation
// context and baggage is the one StartProcess starts from the headers
// holding them, with the baggage filtered by WithInboundBaggage.
func TestStartProcessFrom(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp), middleware.WithInboundBaggage("region"))
	m1, _ := baggage.NewMember("region", "eu")
	m2, _ := baggage.NewMember("user", "alice")
	bg, _ := baggage.New(m1, m2)
	creation := producerContext()

	rctx, receive := tp.Tracer("test").Start(context.Background(), "poll")
	ctx, span := tr.StartProcessFrom(rctx, kafkaDest, creation, bg, propagation.PartitionID("3"), propagation.KafkaOffset(42))
	got := baggage.FromContext(ctx)
	middleware.End(span, nil)
	receive.End()

	p := oneSpan(t, rec, "process t")
	if p.Parent().SpanID() != creation.SpanID() || p.SpanContext().TraceID() != creation.TraceID() {
		t.Errorf("process parent %v, want the creation context %v", p.Parent(), creation)
	}
	if p.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("process kind %v", p.SpanKind())
	}
	if len(p.Links()) != 0 {
		t.Errorf("process links %v, want none under ParentMessage", p.Links())
	}
	if got.Member("region").Value() != "eu" || got.Member("user").Value() != "" {
		t.Errorf("baggage %s, want region only", got)
	}
	sameAttributes(t, "process span", p.Attributes(), append(operation(propagation.Process, "process"),
		propagation.PartitionID("3"), propagation.KafkaOffset(42)))

	// ParentMessageLinkReceive: the same parent, and a link to the span
	// in ctx (the poll's receive span).
	rec = tracetest.NewSpanRecorder()
	tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr = middleware.NewTracing(middleware.WithTracerProvider(tp), middleware.WithProcessParent(middleware.ParentMessageLinkReceive))
	rctx, receive = tp.Tracer("test").Start(context.Background(), "poll")
	_, span = tr.StartProcessFrom(rctx, kafkaDest, creation, bg)
	middleware.End(span, nil)
	receive.End()
	p = oneSpan(t, rec, "process t")
	if p.Parent().SpanID() != creation.SpanID() {
		t.Errorf("ParentMessageLinkReceive: process parent %v, want the creation context %v", p.Parent(), creation)
	}
	if len(p.Links()) != 1 || p.Links()[0].SpanContext.SpanID() != receive.SpanContext().SpanID() {
		t.Errorf("ParentMessageLinkReceive: process links %v, want the receive span", p.Links())
	}
}

// TestBodySizeIsOptIn: messaging.message.body.size is opt-in in the semantic
// conventions, so a process span records it only under WithBodySize(true).
func TestBodySizeIsOptIn(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("WithBodySize(%v)", on), func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			opts := []middleware.Option{middleware.WithTracerProvider(tp)}
			if on {
				opts = append(opts, middleware.WithBodySize(true))
			}
			msg := kafkaMessage(producerContext())
			f := &fakePull{d: kafkaDest, msgs: []*middleware.Message{msg}}
			if err := middleware.NewTracing(opts...).Subscriber(f).Subscribe(context.Background(), "t", middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })); err != nil {
				t.Fatal(err)
			}
			var got []attribute.KeyValue
			for _, kv := range oneSpan(t, rec, "process t").Attributes() {
				if kv.Key == propagation.BodySize(0).Key {
					got = append(got, kv)
				}
			}
			var want []attribute.KeyValue
			if on {
				want = []attribute.KeyValue{propagation.BodySize(len(msg.Body))}
			}
			if !slices.Equal(got, want) {
				t.Errorf("body size attributes %v, want %v", got, want)
			}
		})
	}
}

// TestProcessSpansOfAPollLinkItsReceive: under ParentMessageLinkReceive the
// process spans of a poll of several messages on several partitions share
// one cached link option; each must still link to exactly its own poll's
// receive span, parent on its own message's creation context, and carry its
// own partition, over two polls.
func TestProcessSpansOfAPollLinkItsReceive(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp), middleware.WithProcessParent(middleware.ParentMessageLinkReceive))
	poll := func(n int) []*middleware.Message {
		msgs := make([]*middleware.Message, n)
		for i := range msgs {
			creation := trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: trace.TraceID{byte(n), byte(i + 1)}, SpanID: trace.SpanID{byte(i + 1)}, TraceFlags: trace.FlagsSampled, Remote: true,
			})
			msg := &middleware.Message{ID: fmt.Sprint(i), Headers: map[string]string{}}
			propagation.Inject(trace.ContextWithSpanContext(context.Background(), creation), propagation.MapCarrier(msg.Headers))
			msg.SetAttributes(propagation.PartitionID(fmt.Sprint(i % 2)))
			msgs[i] = msg
		}
		return msgs
	}
	for _, n := range []int{4, 3} {
		f := &fakePull{d: kafkaDest, msgs: poll(n)}
		if err := tr.Subscriber(f).Subscribe(context.Background(), "t", middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })); err != nil {
			t.Fatal(err)
		}
	}
	receives := map[trace.SpanID]int{} // receive span -> its batch size
	for _, s := range rec.Ended() {
		if s.Name() == "receive t" {
			v, _ := attrOf(s, propagation.BatchMessageCount(0).Key)
			receives[s.SpanContext().SpanID()] = int(v.AsInt64())
		}
	}
	if len(receives) != 2 {
		t.Fatalf("%d receive spans, want 2", len(receives))
	}
	perReceive := map[trace.SpanID]int{}
	for _, s := range rec.Ended() {
		if s.Name() != "process t" {
			continue
		}
		if len(s.Links()) != 1 {
			t.Fatalf("process span has %d links, want 1", len(s.Links()))
		}
		r := s.Links()[0].SpanContext.SpanID()
		if _, ok := receives[r]; !ok {
			t.Fatalf("process span links %v, not a receive span", r)
		}
		perReceive[r]++
		// Each message's trace: TraceID{n, i+1}, parent SpanID{i+1}.
		if tid := s.SpanContext().TraceID(); tid[0] != byte(receives[r]) || s.Parent().SpanID() != (trace.SpanID{tid[1]}) {
			t.Errorf("process span in trace %v with parent %v: not its own message's, or linked to the other poll", tid, s.Parent().SpanID())
		}
		p, _ := attrOf(s, propagation.PartitionID("").Key)
		if want := fmt.Sprint(int(s.SpanContext().TraceID()[1]-1) % 2); p.AsString() != want {
			t.Errorf("process span partition %q, want %q", p.AsString(), want)
		}
	}
	for r, n := range receives {
		if perReceive[r] != n {
			t.Errorf("receive of %d messages has %d process spans linking it", n, perReceive[r])
		}
	}
}

func attrOf(s sdktrace.ReadOnlySpan, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// TestLinkLimit: a receive or settle span of a batch links at most the
// first WithLinkLimit creation contexts; the default is the SDK's own limit
// (128, or OTEL_SPAN_LINK_COUNT_LIMIT), past which the SDK drops them anyway.
func TestLinkLimit(t *testing.T) {
	creations := make([]trace.SpanContext, 200)
	for i := range creations {
		creations[i] = trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{1, byte(i), byte(i >> 8)}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled, Remote: true,
		})
	}
	cases := []struct {
		name string
		env  string
		opts []middleware.Option
		want int
	}{
		{"default", "", nil, 128},
		{"env", "7", nil, 7},
		{"option", "", []middleware.Option{middleware.WithLinkLimit(5)}, 5},
		{"none", "", []middleware.Option{middleware.WithLinkLimit(-1)}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("OTEL_SPAN_LINK_COUNT_LIMIT", tc.env)
			}
			rec := tracetest.NewSpanRecorder()
			// The SDK keeps every link, so what is seen is what otelmq sent.
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
				sdktrace.WithRawSpanLimits(sdktrace.SpanLimits{LinkCountLimit: -1, AttributeCountLimit: -1,
					EventCountLimit: -1, AttributePerEventCountLimit: -1, AttributePerLinkCountLimit: -1, AttributeValueLengthLimit: -1}))
			tr := middleware.NewTracing(append([]middleware.Option{middleware.WithTracerProvider(tp)}, tc.opts...)...)
			ctx := tr.StartReceive(context.Background(), kafkaDest, time.Now(), creations)
			_, settle := tr.StartSettle(context.Background(), kafkaDest, "commit", creations)
			settle.End()
			for _, name := range []string{"receive t", "commit t"} {
				links := oneSpan(t, rec, name).Links()
				if len(links) != tc.want {
					t.Fatalf("%s: %d links, want %d", name, len(links), tc.want)
				}
				for i, l := range links {
					if l.SpanContext.TraceID() != creations[i].TraceID() {
						t.Fatalf("%s: link %d is to %v, want the first messages' in order", name, i, l.SpanContext.TraceID())
					}
				}
			}
			_ = ctx
		})
	}
}

// parallelPull is fakePull handing one poll's messages to handlers on
// several goroutines at once, as the Kafka Subscriber does per partition.
type parallelPull struct{ fakePull }

func (f *parallelPull) Subscribe(ctx context.Context, _ string, h middleware.Handler) error {
	obs := middleware.ObserverFrom(ctx)
	hctx := obs.Received(ctx, f.d, time.Now(), f.msgs)
	var wg sync.WaitGroup
	for _, m := range f.msgs {
		wg.Go(func() {
			err := middleware.Call(hctx, h, m)
			obs.Settled(hctx, f.d, "ack", time.Now(), []*middleware.Message{m}, err)
		})
	}
	wg.Wait()
	return nil
}

// TestProcessSpansOfAPollInParallel: the poll's shared link options
// (ParentMessageLinkReceive) are
// built and read by handlers running at once (go test -race checks the
// locking); every process span still links its receive and keeps its
// partition.
func TestProcessSpansOfAPollInParallel(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp), middleware.WithProcessParent(middleware.ParentMessageLinkReceive))
	msgs := make([]*middleware.Message, 64)
	for i := range msgs {
		msg := &middleware.Message{ID: fmt.Sprint(i), Headers: map[string]string{}}
		creation := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, byte(i)}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled, Remote: true})
		propagation.Inject(trace.ContextWithSpanContext(context.Background(), creation), propagation.MapCarrier(msg.Headers))
		msg.SetAttributes(propagation.PartitionID(fmt.Sprint(i % 4)))
		msgs[i] = msg
	}
	f := &parallelPull{fakePull{d: kafkaDest, msgs: msgs}}
	if err := tr.Subscriber(f).Subscribe(context.Background(), "t", middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })); err != nil {
		t.Fatal(err)
	}
	receive := oneSpan(t, rec, "receive t").SpanContext()
	n := 0
	for _, s := range rec.Ended() {
		if s.Name() != "process t" {
			continue
		}
		n++
		if len(s.Links()) != 1 || !s.Links()[0].SpanContext.Equal(receive) {
			t.Fatalf("process span links %v, want the receive span alone", s.Links())
		}
		p, _ := attrOf(s, propagation.PartitionID("").Key)
		if want := fmt.Sprint(int(s.SpanContext().TraceID()[1]) % 4); p.AsString() != want {
			t.Errorf("process span partition %q, want %q", p.AsString(), want)
		}
	}
	if n != len(msgs) {
		t.Fatalf("%d process spans, want %d", n, len(msgs))
	}
}
