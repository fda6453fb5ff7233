package rabbitmq

import (
	"context"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// TestServerNamedQueueNotInSpanNames: a queue the broker named (amq.gen-...,
// one per declaration) is no more a low-cardinality span name than it is a
// metric attribute. semconv puts the destination in a span name only when
// its cardinality is known to be low (a template, else a name known to be
// low-cardinality); the destination is marked messaging.destination.anonymous
// and its span names are the operation name alone, as for any destination
// without a low-cardinality name. The generated name stays an attribute.
func TestServerNamedQueueNotInSpanNames(t *testing.T) {
	conn := brokers.RabbitMQ(t)
	ch := rawChannel(t, conn)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp))

	ctx := t.Context()
	pub := NewPublisher(conn, WithConfirms(true))
	defer pub.Close()
	if err := tr.Publisher(pub).Publish(ctx, q.Name, middleware.NewMessage([]byte("reply"))); err != nil {
		t.Fatal(err)
	}
	got := make(chan *middleware.Message, 1)
	r := subscribe(t, ctx, tr.Subscriber(NewSubscriber(conn)), q.Name, func(_ context.Context, msg *middleware.Message) error {
		got <- msg
		return nil
	})
	receive(t, got, 1, 10*time.Second)
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}

	names := map[string]bool{}
	for _, s := range sr.Ended() {
		names[s.Name()] = true
		if strings.Contains(s.Name(), "amq.gen-") {
			t.Errorf("span %q is named after the generated queue name", s.Name())
		}
		anonymous, named := false, false
		for _, kv := range s.Attributes() {
			switch kv.Key {
			case propagation.DestinationAnonymousKey:
				anonymous = kv.Value.AsBool()
			case "messaging.destination.name":
				named = strings.Contains(kv.Value.AsString(), q.Name)
			}
		}
		if !anonymous || !named {
			t.Errorf("span %q: anonymous %v, destination name recorded %v; want both", s.Name(), anonymous, named)
		}
	}
	for _, want := range []string{"send", "process", "ack"} {
		if !names[want] {
			t.Errorf("no %q span among %v", want, names)
		}
	}
}
