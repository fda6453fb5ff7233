package integration

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/rabbitmq"
)

// TestRabbitMQDestinationTemplate: routing keys that carry personal data
// (here an e-mail address) name RabbitMQ send spans, where no redactor
// reaches. WithDestinationTemplate names the spans after a template
// instead; with a redactor dropping the name and the routing key, the
// address is in no span, and the message still arrives in the producer's
// trace. (Metrics: TestDestinationTemplateAndRedactor.)
func TestRabbitMQDestinationTemplate(t *testing.T) {
	const (
		secret   = "alice@example.com"
		template = "amq.topic:orders.{customer}"
	)
	conn := brokers.RabbitMQ(t)
	q := brokers.RabbitMQQueue(t, conn, nil)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q, "orders.#", "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	_ = ch.Close()

	tr := newRMQTracing(t)
	tel := middleware.NewTracing(
		middleware.WithTracerProvider(tr.tp),
		middleware.WithDestinationTemplate(func(d middleware.Destination) string {
			if strings.HasPrefix(d.Name, "amq.topic:orders.") {
				return template
			}
			return ""
		}),
		middleware.WithRedactor(func(kv attribute.KeyValue) attribute.KeyValue {
			switch kv.Key {
			case semconv.MessagingDestinationNameKey, semconv.MessagingRabbitMQDestinationRoutingKeyKey:
				return attribute.KeyValue{}
			}
			return kv
		}),
	)
	pub := rabbitmq.NewPublisher(conn, rabbitmq.WithExchange("amq.topic"), rabbitmq.WithConfirms(true))
	t.Cleanup(func() { _ = pub.Close() })

	ctx, root := tr.tp.Tracer("test").Start(context.Background(), "signup")
	if err := tel.Publisher(pub).Publish(ctx, "orders."+secret, middleware.NewMessage([]byte("{}"))); err != nil {
		t.Fatal(err)
	}
	root.End()
	got := next(t, rmqSubscribe(t, tel.Subscriber(rabbitmq.NewSubscriber(conn)), q, nil), "the queue bound to orders.#")
	if got.span.TraceID() != root.SpanContext().TraceID() {
		t.Errorf("the consumer is in trace %s, want the producer's %s", got.span.TraceID(), root.SpanContext().TraceID())
	}

	send := tr.waitSpan("send", named("send "+template))
	if v, _ := attrOf(send, string(semconv.MessagingDestinationTemplateKey)); v.AsString() != template {
		t.Errorf("send span %s = %q, want %q", semconv.MessagingDestinationTemplateKey, v.Emit(), template)
	}
	tr.waitSpan("process", named("process "+q))
	for _, s := range tr.rec.Ended() {
		if strings.Contains(s.Name(), secret) {
			t.Errorf("span name %q holds the routing key", s.Name())
		}
		for _, kv := range s.Attributes() {
			if strings.Contains(kv.Value.Emit(), secret) {
				t.Errorf("span %q attribute %s = %q holds the routing key", s.Name(), kv.Key, kv.Value.Emit())
			}
		}
	}
}
