package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/memory"
)

// TestProcessAttributesBothPaths: a process span, and the ack span of its
// message, record the same attributes whether the middleware passes the
// transport's attributes as they are (the common case: one run to keep, a
// first delivery) or builds a slice (a gap in what it keeps, a redelivery,
// an allow-listed header, a redactor), and the common case costs fewer
// allocations.
func TestProcessAttributesBothPaths(t *testing.T) {
	partition, group := propagation.PartitionID("3"), propagation.ConsumerGroup("g")
	offset, id := propagation.KafkaOffset(42), propagation.MessageID("t/3/42")
	oneRun := []attribute.KeyValue{partition, group, offset, id} // as the Kafka transport orders them
	gap := []attribute.KeyValue{partition, offset, group, id}    // group, the destination's, between the others
	upper := func(kv attribute.KeyValue) attribute.KeyValue {
		if kv.Key == id.Key {
			return id.Key.String("REDACTED")
		}
		return kv
	}
	for _, tc := range []struct {
		name    string
		attrs   []attribute.KeyValue
		count   int
		headers map[string]string
		opts    []middleware.Option
		want    []attribute.KeyValue // beyond operation(process) and the partition
	}{
		{"one run, first delivery", oneRun, 1, nil, nil, []attribute.KeyValue{offset, id, middleware.DeliveryCountKey.Int(1)}},
		{"one run, count unknown", oneRun, 0, nil, nil, []attribute.KeyValue{offset, id}},
		{"a gap", gap, 1, nil, nil, []attribute.KeyValue{offset, id, middleware.DeliveryCountKey.Int(1)}},
		{"redelivery", oneRun, 3, nil, nil, []attribute.KeyValue{offset, id, middleware.DeliveryCountKey.Int(3)}},
		{"allow-listed header", oneRun, 1, map[string]string{"tenant": "acme"}, []middleware.Option{middleware.WithHeaderAllowList("tenant")},
			[]attribute.KeyValue{offset, id, middleware.DeliveryCountKey.Int(1), attribute.String("messaging.header.tenant", "acme")}},
		{"allow-listed header absent", oneRun, 1, map[string]string{"other": "x"}, []middleware.Option{middleware.WithHeaderAllowList("tenant")},
			[]attribute.KeyValue{offset, id, middleware.DeliveryCountKey.Int(1)}},
		{"redactor", oneRun, 1, nil, []middleware.Option{middleware.WithRedactor(upper)},
			[]attribute.KeyValue{offset, id.Key.String("REDACTED"), middleware.DeliveryCountKey.Int(1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			tr := middleware.NewTracing(append([]middleware.Option{middleware.WithTracerProvider(tp)}, tc.opts...)...)
			newMsg := func() *middleware.Message {
				msg := &middleware.Message{ID: "t/3/42", DeliveryCount: tc.count, Destination: "t", Headers: tc.headers}
				msg.SetAttributes(tc.attrs...)
				return msg
			}
			consume := func() {
				f := &fakePull{d: kafkaDest, msgs: []*middleware.Message{newMsg()}}
				if err := tr.Subscriber(f).Subscribe(context.Background(), "t", middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })); err != nil {
					t.Fatal(err)
				}
			}
			consume()
			p := oneSpan(t, rec, "process t")
			sameAttributes(t, "process span", p.Attributes(), append(append(operation(propagation.Process, "process"), partition), tc.want...))
			// The ack span of the one message has its attributes but not
			// what the message says of itself (delivery count, headers).
			settle := append(operation(propagation.Settle, "ack"), partition)
			for _, kv := range tc.want {
				if kv.Key != middleware.DeliveryCountKey && kv.Key != "messaging.header.tenant" {
					settle = append(settle, kv)
				}
			}
			sameAttributes(t, "ack span", oneSpan(t, rec, "ack t").Attributes(), settle)
		})
	}

	// The allocations of one message through Subscribe, on the two paths
	// that differ only in the order of the transport's attributes.
	allocs := func(attrs []attribute.KeyValue, settleSpans bool) float64 {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
		tr := middleware.NewTracing(middleware.WithTracerProvider(tp), middleware.WithSettleSpans(settleSpans))
		msg := &middleware.Message{ID: "t/3/42", DeliveryCount: 1, Destination: "t"}
		msg.SetAttributes(attrs...)
		f := &fakePull{d: kafkaDest, msgs: []*middleware.Message{msg}}
		sub := tr.Subscriber(f)
		h := middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })
		return testing.AllocsPerRun(200, func() { _ = sub.Subscribe(context.Background(), "t", h) })
	}
	if run, copied := allocs(oneRun, false), allocs(gap, false); run >= copied {
		t.Errorf("one run of attributes costs %v allocations, a copied slice %v: want fewer", run, copied)
	}
	// With the ack span, which takes the message's attributes too: one
	// fewer for each span.
	if run, copied := allocs(oneRun, true), allocs(gap, true); run+2 > copied {
		t.Errorf("with ack spans, one run of attributes costs %v allocations, a copied slice %v: want 2 fewer", run, copied)
	}
}

// TestRedactorOnSendSpanID: the ID a broker assigns to a single published
// message is recorded on the send span after the publish, through the
// redactor like every message attribute.
func TestRedactorOnSendSpanID(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	id := propagation.MessageID("").Key
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp), masking(id))
	msg := middleware.NewMessage([]byte("x"))
	if err := tr.Publisher(memory.New()).Publish(context.Background(), "q", msg); err != nil {
		t.Fatal(err)
	}
	if msg.ID == "" {
		t.Fatal("the memory broker assigned no ID")
	}
	checkMasked(t, rec.Ended()[0], id)
}

// TestExtractFiltersInboundBaggage: Tracing.Extract, for native
// instrumentation, keeps of a message's baggage only what
// WithInboundBaggage allows, as the middleware does on every consumed
// message, and leaves the caller's own baggage when the message's is
// filtered away or absent.
func TestExtractFiltersInboundBaggage(t *testing.T) {
	tr := middleware.NewTracing(middleware.WithTracerProvider(sdktrace.NewTracerProvider()), middleware.WithInboundBaggage("region"))
	local, _ := baggage.Parse("local=1")
	ctx := baggage.ContextWithBaggage(context.Background(), local)
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct{ header, want string }{
		{"region=eu,isAdmin=true", "region=eu"},
		{"isAdmin=true,tenant=evil", "local=1"},
		{"", "local=1"},
	} {
		c := propagation.MapCarrier{"traceparent": traceparent}
		if tc.header != "" {
			c["baggage"] = tc.header
		}
		out := tr.Extract(ctx, c)
		if got := baggage.FromContext(out).String(); got != tc.want {
			t.Errorf("baggage %q: extracted %q, want %q", tc.header, got, tc.want)
		}
		if sc := trace.SpanContextFromContext(out); sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || !sc.IsRemote() {
			t.Errorf("baggage %q: span context %v, want the message's", tc.header, sc)
		}
	}
}

// TestErrorTextOnlyInStatus: a span ended with an error has the error's
// text as its status description and error.type, and no event repeating
// the text (where no redactor would see it).
func TestErrorTextOnlyInStatus(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	_, span := tp.Tracer("test").Start(context.Background(), "process q")
	middleware.End(span, errors.New("order alice@example.com rejected"))
	s := rec.Ended()[0]
	if s.Status().Code != codes.Error || s.Status().Description != "order alice@example.com rejected" {
		t.Errorf("status %+v", s.Status())
	}
	if len(s.Events()) != 0 {
		t.Errorf("events %v, want none", s.Events())
	}
}

// TestRedactorOnStartAttributes: the redactor rewrites the attributes every
// kind of span starts with, the destination's included (a RabbitMQ send
// destination holds the routing key), not only a process span's.
func TestRedactorOnStartAttributes(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	dest := propagation.DestinationName("").Key
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp), masking(dest))
	f := &fakePull{d: kafkaDest}
	for i := range 2 {
		msg := &middleware.Message{Headers: map[string]string{}, DeliveryCount: 1}
		msg.SetAttributes(propagation.PartitionID(fmt.Sprint(i)))
		f.msgs = append(f.msgs, msg)
	}
	if err := tr.Publisher(f).Publish(context.Background(), "t", middleware.NewMessage(nil), middleware.NewMessage(nil)); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publisher(f).Publish(context.Background(), "t", middleware.NewMessage(nil)); err != nil {
		t.Fatal(err)
	}
	if err := tr.Subscriber(f).Subscribe(context.Background(), "t", middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, s := range rec.Ended() {
		kinds[s.Name()]++
		checkMasked(t, s, dest)
	}
	if kinds["send t"] != 2 || kinds["create t"] != 2 || kinds["receive t"] != 1 || kinds["process t"] != 2 || kinds["ack t"] != 2 {
		t.Errorf("spans %v, want 2 send, 2 create, 1 receive, 2 process, 2 ack", kinds)
	}
}

// masking is a redactor that masks the value of key with "***".
func masking(key attribute.Key) middleware.Option {
	return middleware.WithRedactor(func(kv attribute.KeyValue) attribute.KeyValue {
		if kv.Key == key {
			return key.String("***")
		}
		return kv
	})
}

// checkMasked fails t unless s has key, masked by masking.
func checkMasked(t *testing.T, s sdktrace.ReadOnlySpan, key attribute.Key) {
	t.Helper()
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			if kv.Value.AsString() != "***" {
				t.Errorf("%s: %s = %q, not redacted", s.Name(), key, kv.Value.AsString())
			}
			return
		}
	}
	t.Errorf("%s: no %s attribute at all", s.Name(), key)
}

// TestHeaderValueNotUTF8: an allow-listed header value that is not UTF-8 is
// recorded with the invalid bytes replaced: such a string would make the
// OTLP exporter refuse the whole batch of spans.
func TestHeaderValueNotUTF8(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp), middleware.WithHeaderAllowList("tenant"))
	msg := &middleware.Message{Headers: map[string]string{"tenant": "ac\xffme"}, DeliveryCount: 1}
	f := &fakePull{d: kafkaDest, msgs: []*middleware.Message{msg}}
	if err := tr.Subscriber(f).Subscribe(context.Background(), "t", middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })); err != nil {
		t.Fatal(err)
	}
	v, ok := attrOf(oneSpan(t, rec, "process t"), middleware.HeaderAttributePrefix+"tenant")
	if !ok || v.AsString() != "ac\uFFFDme" {
		t.Errorf("header attribute %q, want the invalid byte replaced", v.AsString())
	}
}

// TestInboundBaggageWithNoKeysDropsAll: WithInboundBaggage() with no keys
// keeps none of a message's baggage; the consumer's own stays.
func TestInboundBaggageWithNoKeysDropsAll(t *testing.T) {
	tr := middleware.NewTracing(middleware.WithTracerProvider(sdktrace.NewTracerProvider()), middleware.WithInboundBaggage())
	local, _ := baggage.Parse("local=1")
	c := propagation.MapCarrier{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"baggage":     "region=eu,isAdmin=true",
	}
	out := tr.Extract(baggage.ContextWithBaggage(context.Background(), local), c)
	if got := baggage.FromContext(out).String(); got != "local=1" {
		t.Errorf("extracted baggage %q, want the consumer's own alone", got)
	}
	if sc := trace.SpanContextFromContext(out); !sc.IsRemote() || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("span context %v, want the message's", sc)
	}
}
