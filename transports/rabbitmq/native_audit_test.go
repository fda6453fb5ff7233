package rabbitmq

import (
	"context"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

func channelRecorder(t *testing.T) (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return sr, tp
}

func spanAttr(s sdktrace.ReadOnlySpan, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func endedNamed(sr *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// TestChannelProcessSpanAttributes: Channel.StartProcess records, as the
// Subscriber does, the WithHeaderAllowList headers and the delivery count
// (1, then 2 once the broker redelivers a nacked message).
func TestChannelProcessSpanAttributes(t *testing.T) {
	conn, q := setup(t, nil)
	sr, tp := channelRecorder(t)
	pub := amqp.Publishing{Headers: amqp.Table{"order-id": "42", "secret": "s"}, MessageId: "m1", Body: []byte("x")}
	if err := rawChannel(t, conn).PublishWithContext(t.Context(), "", q, false, false, pub); err != nil {
		t.Fatal(err)
	}
	ch := WrapChannel(rawChannel(t, conn), middleware.WithTracerProvider(tp), middleware.WithHeaderAllowList("order-id", "absent"))
	ds, err := ch.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		var d amqp.Delivery
		select {
		case d = <-ds:
		case <-time.After(10 * time.Second):
			t.Fatalf("delivery %d: none within 10s", i+1)
		}
		pctx, span := ch.StartProcess(t.Context(), d)
		ch.Tracing().End(span, nil)
		if i == 0 {
			err = ch.Nack(pctx, d, false, true)
		} else {
			err = ch.Ack(pctx, d, false)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	procs := endedNamed(sr, "process "+q)
	if len(procs) != 2 {
		t.Fatalf("%d process spans, want 2", len(procs))
	}
	for i, s := range procs {
		if v, ok := spanAttr(s, "messaging.header.order-id"); !ok || v.AsString() != "42" {
			t.Errorf("process %d: messaging.header.order-id = %q (present %v), want 42", i+1, v.AsString(), ok)
		}
		for _, k := range []attribute.Key{"messaging.header.secret", "messaging.header.absent"} {
			if _, ok := spanAttr(s, k); ok {
				t.Errorf("process %d: %s recorded", i+1, k)
			}
		}
		if v, ok := spanAttr(s, middleware.DeliveryCountKey); !ok || v.AsInt64() != int64(i+1) {
			t.Errorf("process %d: %s = %d (present %v), want %d", i+1, middleware.DeliveryCountKey, v.AsInt64(), ok, i+1)
		}
	}
}

// TestChannelSendMessageID: the send span of a Publishing with a MessageId
// records it as messaging.message.id, as the Publisher records a message's
// ID, through both publish methods; one without records none.
func TestChannelSendMessageID(t *testing.T) {
	conn, q := setup(t, nil)
	sr, tp := channelRecorder(t)
	raw := rawChannel(t, conn)
	if err := raw.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ch := WrapChannel(raw, middleware.WithTracerProvider(tp))
	if err := ch.PublishWithContext(t.Context(), "", q, false, false, amqp.Publishing{MessageId: "m1", Body: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(t.Context(), "", q, false, false, amqp.Publishing{MessageId: "m2", Body: []byte("2")})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(t.Context()); !ok || err != nil {
		t.Fatalf("confirm: %v %v", ok, err)
	}
	if err := ch.PublishWithContext(t.Context(), "", q, false, false, amqp.Publishing{Body: []byte("3")}); err != nil {
		t.Fatal(err)
	}
	// Named by the routing key alone through the default exchange: "send {queue}".
	sends := endedNamed(sr, "send "+propagation.RabbitMQDestination("", q, ""))
	if len(sends) != 3 {
		var names []string
		for _, s := range sr.Ended() {
			names = append(names, s.Name())
		}
		t.Fatalf("%d send spans, want 3; have %q", len(sends), names)
	}
	key := propagation.MessageID("").Key
	for i, want := range []string{"m1", "m2"} {
		if v, ok := spanAttr(sends[i], key); !ok || v.AsString() != want {
			t.Errorf("send %d: %s = %q (present %v), want %q", i+1, key, v.AsString(), ok, want)
		}
	}
	if v, ok := spanAttr(sends[2], key); ok {
		t.Errorf("send 3 (no MessageId): %s = %q", key, v.AsString())
	}
}

// TestChannelCancelForgetsConsumerTag: Cancel forgets the queue Consume
// remembered for the tag, so Consume and Cancel cycles do not grow the
// wrapper's map, and a Consume that fails leaves nothing behind.
func TestChannelCancelForgetsConsumerTag(t *testing.T) {
	conn, q := setup(t, nil)
	ch := WrapChannel(rawChannel(t, conn))
	const n = 50
	for i := range n {
		tag := ""
		if i%2 == 1 {
			tag = "own-tag-" + q + "-" + strconv.Itoa(i)
		}
		if _, err := ch.Consume(q, tag, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	var remembered []string
	ch.queues.Range(func(k, _ any) bool { remembered = append(remembered, k.(string)); return true })
	if len(remembered) != n {
		t.Fatalf("%d consumer tags remembered after %d Consume calls, want %d", len(remembered), n, n)
	}
	for _, tag := range remembered {
		if err := ch.Cancel(tag, false); err != nil {
			t.Fatal(err)
		}
	}
	left := 0
	ch.queues.Range(func(_, _ any) bool { left++; return true })
	if left != 0 {
		t.Errorf("%d consumer tags still remembered after Cancel of all %d", left, n)
	}
	// The channel still works as before: consume again and get a delivery
	// named by its queue.
	if err := ch.PublishWithContext(t.Context(), "", q, false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(q, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-ds:
		if dest := ch.destination(&d); dest.Name != q {
			t.Errorf("destination %q, want %q", dest.Name, q)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
	}

	// A Consume the broker refuses (no such queue) remembers nothing.
	failing := WrapChannel(rawChannel(t, conn))
	if _, err := failing.Consume(q+"-missing", "", true, false, false, false, nil); err == nil {
		t.Fatal("Consume of a missing queue succeeded")
	}
	failing.queues.Range(func(k, _ any) bool {
		t.Errorf("failed Consume left consumer tag %v", k)
		return true
	})
}
