package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
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
	// consumer's is recorded.
	h := kafka.NewHooks(middleware.WithTracerProvider(tp))
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
