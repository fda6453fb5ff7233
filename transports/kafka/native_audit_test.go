package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/kafka"
)

// TestHooksHeaderAllowList: Hooks.StartProcess records the
// WithHeaderAllowList headers, as the Subscriber does, both for a record
// the fetch hook saw (StartProcessFrom) and for one it did not
// (Tracing.StartProcess); a header off the list is not recorded, and a
// value that is not UTF-8 is made valid.
func TestHooksHeaderAllowList(t *testing.T) {
	seeds, topic := cluster(t)
	producer := newProducer(t, seeds)
	r := &kgo.Record{Topic: topic, Value: []byte("v"), Headers: []kgo.RecordHeader{
		{Key: "order-id", Value: []byte("42")},
		{Key: "tenant", Value: []byte("a\xffb")},
		{Key: "secret", Value: []byte("s")},
	}}
	if err := producer.ProduceSync(t.Context(), r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	opts := func() (func() []attribute.KeyValue, *kafka.Hooks) {
		rec, tp := newTracer(t)
		h := kafka.NewHooks(middleware.WithTracerProvider(tp), middleware.WithHeaderAllowList("order-id", "tenant", "absent"))
		return func() []attribute.KeyValue { return oneSpan(t, rec, "process "+topic).Attributes() }, h
	}
	check := func(name string, attrs []attribute.KeyValue) {
		t.Helper()
		want := map[attribute.Key]string{
			"messaging.header.order-id": "42",
			"messaging.header.tenant":   "a\uFFFDb",
		}
		for k, v := range want {
			if got, ok := attrValue(attrs, k); !ok || got.AsString() != v {
				t.Errorf("%s: %s = %q (present %v), want %q", name, k, got.AsString(), ok, v)
			}
		}
		for _, k := range []attribute.Key{"messaging.header.secret", "messaging.header.absent"} {
			if _, ok := attrValue(attrs, k); ok {
				t.Errorf("%s: %s recorded", name, k)
			}
		}
	}

	t.Run("fetch hook", func(t *testing.T) {
		spans, h := opts()
		consumer := hookedClient(t, seeds, h, kgo.ConsumeTopics(topic), kgo.ConsumerGroup("g-hooked"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
		pollOne(t, consumer, h, func(ctx context.Context, r *kgo.Record) {
			_, span := h.StartProcess(ctx, r)
			h.Tracing().End(span, nil)
		})
		check("fetch hook", spans())
	})
	t.Run("no fetch hook", func(t *testing.T) {
		spans, h := opts()
		// A consumer without the hooks: StartProcess reads the headers.
		consumer, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumerGroup("g-plain"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(consumer.Close)
		pollOne(t, consumer, h, func(ctx context.Context, r *kgo.Record) {
			_, span := h.StartProcess(ctx, r)
			h.Tracing().End(span, nil)
		})
		check("no fetch hook", spans())
	})
}

// TestHooksForwardFetchedRecord checks what Hooks.StartProcess documents
// about producing a fetched record again from inside its process span:
// as it is, the send span is a child of the record's creation context;
// with r.Context = nil first, a child of the process span.
func TestHooksForwardFetchedRecord(t *testing.T) {
	seeds, topic := cluster(t)
	rec, tp := newTracer(t)
	h := kafka.NewHooks(middleware.WithTracerProvider(tp))
	producer := hookedClient(t, seeds, h)
	if err := producer.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	creation := oneSpan(t, rec, "send "+topic).SpanContext()
	consumer := hookedClient(t, seeds, h, kgo.ConsumeTopics(topic), kgo.ConsumerGroup("g"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	var process trace.SpanContext
	pollOne(t, consumer, h, func(ctx context.Context, r *kgo.Record) {
		pctx, span := h.StartProcess(ctx, r)
		defer h.Tracing().End(span, nil)
		process = span.SpanContext()
		if err := producer.ProduceSync(pctx, r).FirstErr(); err != nil {
			t.Error(err)
		}
		r.Context = nil
		if err := producer.ProduceSync(pctx, r).FirstErr(); err != nil {
			t.Error(err)
		}
	})
	sends := spansNamed(rec, "send "+topic)
	if len(sends) != 3 {
		t.Fatalf("%d send spans, want 3", len(sends))
	}
	if p := sends[1].Parent(); p.SpanID() != creation.SpanID() {
		t.Errorf("forward as fetched: send parent %v, want the creation context %v", p.SpanID(), creation.SpanID())
	}
	if p := sends[2].Parent(); p.SpanID() != process.SpanID() {
		t.Errorf("forward with r.Context = nil: send parent %v, want the process span %v", p.SpanID(), process.SpanID())
	}
	for i, s := range sends[1:] {
		if !hasLink(s, creation) {
			t.Errorf("forward %d does not link the record's creation context (kept in its headers)", i)
		}
	}
}
