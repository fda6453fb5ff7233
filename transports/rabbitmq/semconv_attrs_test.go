package rabbitmq

import (
	"fmt"
	amqp "github.com/rabbitmq/amqp091-go"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/internal/testtel"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// TestEmptyRoutingKeyIsNotRecorded: semconv requires
// messaging.rabbitmq.destination.routing_key only when it is not empty. A
// fanout exchange routes without one: a message published to it with an
// empty key gets no such attribute on its send or process span (nor an
// empty string one), while one published with a key, which the fanout
// ignores, records it on both.
func TestEmptyRoutingKeyIsNotRecorded(t *testing.T) {
	conn, q := setup(t, nil)
	ch := rawChannel(t, conn)
	ex := fmt.Sprintf("otelmq-fanout-%d", time.Now().UnixNano())
	if err := ch.ExchangeDeclare(ex, "fanout", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q, "", ex, false, nil); err != nil {
		t.Fatal(err)
	}
	tel := testtel.New(t)
	pub := tel.Publisher(NewPublisher(conn, WithExchange(ex)))
	got, _ := collect(t, tel.Subscriber(NewSubscriber(conn)), q, 2)
	for _, key := range []string{"", "ignored-by-fanout"} {
		if err := pub.Publish(t.Context(), key, middleware.NewMessage([]byte(key))); err != nil {
			t.Fatal(err)
		}
	}
	receive(t, got, 2, 10*time.Second)
	routingKey := func(s sdktrace.ReadOnlySpan) (attribute.Value, bool) {
		for _, a := range s.Attributes() {
			if a.Key == propagation.RabbitMQRouting("").Key {
				return a.Value, true
			}
		}
		return attribute.Value{}, false
	}
	eventually(t, 5*time.Second, "two send and two process spans", func() bool {
		var sends, processes int
		for _, s := range tel.Spans.Ended() {
			switch s.Name() {
			case "send " + ex, "send " + ex + ":ignored-by-fanout":
				sends++
			case "process " + q:
				processes++
			}
		}
		return sends == 2 && processes == 2
	})
	keyed := map[string]int{}
	for _, s := range tel.Spans.Ended() {
		v, ok := routingKey(s)
		if s.Name() == "send "+ex && ok {
			t.Fatalf("the send span of the message without a key records routing key %q", v.AsString())
		}
		if ok {
			if v.AsString() != "ignored-by-fanout" {
				t.Fatalf("%s records routing key %q", s.Name(), v.AsString())
			}
			keyed[s.Name()]++
		}
	}
	// The keyed message's spans must record it: a test that passed with no
	// routing key recorded at all would prove nothing.
	if keyed["send "+ex+":ignored-by-fanout"] != 1 || keyed["process "+q] != 1 {
		t.Fatalf("spans recording the routing key: %v, want the keyed message's send and process span", keyed)
	}
}

// TestCorrelationIDIsConversationID: semconv maps RabbitMQ's correlation-id
// property to messaging.message.conversation_id. A Publishing with one
// records it on its send span (native Channel) and the Subscriber's
// process span of its delivery records it too; a message without one
// records none.
func TestCorrelationIDIsConversationID(t *testing.T) {
	conn, q := setup(t, nil)
	sr, tp := channelRecorder(t)
	ch := WrapChannel(rawChannel(t, conn), middleware.WithTracerProvider(tp))
	for _, corr := range []string{"req-42", ""} {
		if err := ch.PublishWithContext(t.Context(), "", q, false, false, amqp.Publishing{CorrelationId: corr, Body: []byte(corr)}); err != nil {
			t.Fatal(err)
		}
	}
	tracing := middleware.NewTracing(middleware.WithTracerProvider(tp))
	got, _ := collect(t, tracing.Subscriber(NewSubscriber(conn)), q, 2)
	receive(t, got, 2, 10*time.Second)
	key := propagation.ConversationID("").Key
	eventually(t, 5*time.Second, "two process spans", func() bool { return len(endedNamed(sr, "process "+q)) == 2 })
	for _, name := range []string{"send " + q, "process " + q} {
		spans := endedNamed(sr, name)
		var with []string
		for _, s := range spans {
			if v, ok := spanAttr(s, key); ok {
				with = append(with, v.AsString())
			}
		}
		if len(spans) != 2 || len(with) != 1 || with[0] != "req-42" {
			t.Errorf("%d %q spans, conversation IDs %q; want 2, one of them req-42", len(spans), name, with)
		}
	}
}

// TestChannelSendKind: the Channel's send span is a PRODUCER when its
// context becomes the message's creation context, and a CLIENT linking the
// creation context a message already carries (a relay), as the
// Publisher's.
func TestChannelSendKind(t *testing.T) {
	conn, q := setup(t, nil)
	sr, tp := channelRecorder(t)
	ch := WrapChannel(rawChannel(t, conn), middleware.WithTracerProvider(tp))
	const carried = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if err := ch.PublishWithContext(t.Context(), "", q, false, false, amqp.Publishing{Body: []byte("fresh")}); err != nil {
		t.Fatal(err)
	}
	if err := ch.PublishWithContext(t.Context(), "", q, false, false,
		amqp.Publishing{Headers: amqp.Table{"traceparent": carried}, Body: []byte("relayed")}); err != nil {
		t.Fatal(err)
	}
	sends := endedNamed(sr, "send "+q)
	if len(sends) != 2 {
		t.Fatalf("%d send spans, want 2", len(sends))
	}
	if sends[0].SpanKind() != trace.SpanKindProducer || len(sends[0].Links()) != 0 {
		t.Errorf("fresh message: send span %v with %d links, want a producer without links", sends[0].SpanKind(), len(sends[0].Links()))
	}
	if sends[1].SpanKind() != trace.SpanKindClient || len(sends[1].Links()) != 1 ||
		sends[1].Links()[0].SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("relayed message: send span %v with links %v, want a client linking the carried context", sends[1].SpanKind(), sends[1].Links())
	}
}
