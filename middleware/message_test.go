package middleware_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelmq/otelmq/middleware"
)

// brokerRecord stands for a broker client's message type.
type brokerRecord struct{ offset int64 }

// nativeRecord is how a transport exposes a brokerRecord: a named pointer
// type implementing middleware.Native.
type nativeRecord brokerRecord

func (r *nativeRecord) As(target any) bool {
	switch t := target.(type) {
	case **brokerRecord:
		*t = (*brokerRecord)(r)
	case *brokerRecord:
		*t = brokerRecord(*r)
	default:
		return false
	}
	return true
}

func TestMessageAs(t *testing.T) {
	rec := &brokerRecord{offset: 42}
	var msg middleware.Message
	if msg.As(new(*brokerRecord)) {
		t.Fatal("As succeeded on a message with no native message")
	}
	allocs := testing.AllocsPerRun(100, func() { msg.SetNative((*nativeRecord)(rec)) })
	if allocs != 0 {
		t.Errorf("SetNative with a pointer type allocated %v times, want 0", allocs)
	}
	var ptr *brokerRecord
	if !msg.As(&ptr) || ptr != rec {
		t.Fatalf("As(**brokerRecord) = %p, want %p", ptr, rec)
	}
	var val brokerRecord
	if !msg.As(&val) || val.offset != 42 {
		t.Fatalf("As(*brokerRecord) = %+v", val)
	}
	if msg.As(new(string)) {
		t.Fatal("As succeeded for a type the native message is not")
	}

	msg.SetAs(func(target any) bool {
		p, ok := target.(*int)
		if ok {
			*p = 7
		}
		return ok
	})
	var n int
	if !msg.As(&n) || n != 7 {
		t.Fatalf("As through SetAs = %d", n)
	}
	msg.SetAs(nil)
	if msg.As(&n) {
		t.Fatal("As succeeded after SetAs(nil)")
	}
	var nilMsg *middleware.Message
	if nilMsg.As(&n) {
		t.Fatal("As succeeded on a nil message")
	}
}

// TestPublishMakesHeadersOnlyToInject: a message with nothing to inject (no
// span in ctx) gets no header map; one with a span gets its traceparent.
func TestPublishMakesHeadersOnlyToInject(t *testing.T) {
	var got []*middleware.Message
	next := middleware.PublisherFunc(func(_ context.Context, _ string, msgs ...*middleware.Message) error {
		got = append(got, msgs...)
		return nil
	})
	pub := middleware.NewTracing(middleware.WithTracerProvider(noop.NewTracerProvider())).Publisher(next)
	bare := &middleware.Message{Body: []byte("x")}
	if err := pub.Publish(context.Background(), "q", bare); err != nil {
		t.Fatal(err)
	}
	if bare.Headers != nil {
		t.Errorf("headers %v made for a message with nothing to inject", bare.Headers)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	traced := &middleware.Message{Body: []byte("y")}
	if err := pub.Publish(trace.ContextWithSpanContext(context.Background(), sc), "q", traced); err != nil {
		t.Fatal(err)
	}
	if tp := traced.Headers["traceparent"]; tp != "00-01000000000000000000000000000000-0200000000000000-01" {
		t.Errorf("traceparent = %q", tp)
	}
	if len(got) != 2 {
		t.Fatalf("%d messages reached the transport, want 2", len(got))
	}
}

// TestRedactorOnNativeProcessSpans: a process span started by native
// instrumentation (no Message, only attributes) goes through the redactor
// too.
func TestRedactorOnNativeProcessSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	secret := attribute.Key("messaging.kafka.message.key")
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp), masking(secret))
	d := middleware.Destination{System: "kafka", Name: "orders"}
	_, span := tr.StartProcess(context.Background(), d, propagation.MapCarrier{}, secret.String("card-4242"))
	span.End()
	_, span = tr.StartProcessFrom(context.Background(), d, trace.SpanContext{}, baggage.Baggage{}, secret.String("card-4242"))
	span.End()
	ended := rec.Ended()
	if len(ended) != 2 {
		t.Fatalf("%d spans ended, want 2", len(ended))
	}
	for _, s := range ended {
		checkMasked(t, s, secret)
	}
}
