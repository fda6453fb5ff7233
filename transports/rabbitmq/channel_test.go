package rabbitmq

import (
	"context"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelmq/otelmq/middleware"
)

// consumeOne reads one delivery from queue with a plain amqp091 consumer.
func consumeOne(t *testing.T, ch *amqp.Channel, queue string) amqp.Delivery {
	t.Helper()
	ds, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-ds:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
	}
	panic("unreachable")
}

// NEEDS THE TRACING MIDDLEWARE: this test fails until middleware/tracing.go
// (StartSend, InjectCreate) is implemented; Channel only delegates to it.
func TestChannelInjectsTraceparent(t *testing.T) {
	conn, q := setup(t, nil)
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	defer tp.Shutdown(context.Background())

	ch := WrapChannel(rawChannel(t, conn), middleware.WithTracerProvider(tp))
	ctx, span := tp.Tracer("test").Start(t.Context(), "parent")
	err := ch.PublishWithContext(ctx, "", q, false, false, amqp.Publishing{Body: []byte("traced")})
	span.End()
	if err != nil {
		t.Fatal(err)
	}
	d := consumeOne(t, rawChannel(t, conn), q)
	tp1, _ := d.Headers["traceparent"].(string)
	if tp1 == "" {
		t.Fatalf("no traceparent header on the delivery: %v (needs middleware/tracing.go)", d.Headers)
	}
	if want := span.SpanContext().TraceID().String(); !strings.Contains(tp1, want) {
		t.Errorf("traceparent %q is not in trace %s", tp1, want)
	}
}

// The wrapper's own behaviour, which holds with or without tracing.
func TestChannelWrapper(t *testing.T) {
	conn, q := setup(t, nil)
	raw := rawChannel(t, conn)
	if err := raw.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ch := WrapChannel(raw)

	// A caller's table may be shared between publishes: never written to.
	shared := amqp.Table{"tenant": "acme", "traceparent": traceparent}
	dc, err := ch.PublishWithDeferredConfirmWithContext(t.Context(), "", q, false, false, amqp.Publishing{Headers: shared, Body: []byte("1")})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(t.Context()); !ok || err != nil {
		t.Fatalf("confirm: %v %v", ok, err)
	}
	if err := ch.PublishWithContext(t.Context(), "", q, false, false, amqp.Publishing{Body: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	if len(shared) != 2 || shared["traceparent"] != traceparent {
		t.Fatalf("caller's headers modified: %v", shared)
	}

	ds, err := ch.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	next := func() amqp.Delivery {
		select {
		case d := <-ds:
			return d
		case <-time.After(10 * time.Second):
			t.Fatal("no delivery within 10s")
		}
		panic("unreachable")
	}
	d := next()
	if !strings.HasPrefix(d.ConsumerTag, "ctag-otelmq-") {
		t.Errorf("consumer tag %q", d.ConsumerTag)
	}
	if dest := ch.destination(&d); dest.Name != q {
		t.Errorf("destination %q, want the queue %q", dest.Name, q)
	}
	// A creation context already in the headers is kept.
	if d.Headers["traceparent"] != traceparent || d.Headers["tenant"] != "acme" {
		t.Errorf("headers %v", d.Headers)
	}
	pctx, span := ch.StartProcess(t.Context(), d)
	middleware.End(span, nil)
	if err := ch.Nack(pctx, d, false, true); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		d := next()
		if err := ch.Ack(t.Context(), d, false); err != nil {
			t.Fatal(err)
		}
	}
	// Everything settled: nothing ready, nothing unacked.
	eventually(t, 5*time.Second, "empty queue", func() bool {
		q, err := rawChannel(t, conn).QueueDeclarePassive(q, true, false, false, false, nil)
		return err == nil && q.Messages == 0
	})
}
