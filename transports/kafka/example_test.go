package kafka_test

import (
	"context"
	"log"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/kafka"
)

// Example publishes an order and consumes the topic as the "billing" group.
// It needs a broker on localhost:9092, so it is compiled, not run.
func Example() {
	ctx := context.Background()

	producer, err := kgo.NewClient(kgo.SeedBrokers("localhost:9092"))
	if err != nil {
		log.Fatal(err)
	}
	defer producer.Close()
	msg := middleware.NewMessage([]byte(`{"order":42}`))
	msg.Key = []byte("customer-7") // orders of one customer stay in order
	if err := kafka.NewPublisher(producer).Publish(ctx, "orders", msg); err != nil {
		log.Fatal(err)
	}
	log.Printf("published %s", msg.ID) // orders/{partition}/{offset}

	consumer, err := kgo.NewClient(
		kgo.SeedBrokers("localhost:9092"),
		kgo.ConsumeTopics("orders"),
		kgo.ConsumerGroup("billing"),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer consumer.Close()
	sub := kafka.NewSubscriber(consumer, kafka.WithMaxPollRecords(100))
	err = sub.Subscribe(ctx, "orders", middleware.HandlerFunc(func(ctx context.Context, msg *middleware.Message) error {
		var rec *kgo.Record
		if msg.As(&rec) {
			log.Printf("partition %d offset %d: %s", rec.Partition, rec.Offset, msg.Body)
		}
		return nil // commits the record; an error redelivers it
	}))
	if err != nil {
		log.Fatal(err)
	}
}

// ExampleHooks traces a hand-written produce call and poll loop. It needs a
// broker on localhost:9092, so it is compiled, not run.
func ExampleHooks() {
	ctx := context.Background()
	hooks := kafka.NewHooks(middleware.WithTracerProvider(otel.GetTracerProvider()))

	producer, err := kgo.NewClient(kgo.SeedBrokers("localhost:9092"), kgo.WithHooks(hooks))
	if err != nil {
		log.Fatal(err)
	}
	defer producer.Close()
	// The send span is a child of the span in ctx; the record leaves with
	// a traceparent header naming it.
	if err := producer.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte(`{"order":42}`)}).FirstErr(); err != nil {
		log.Fatal(err)
	}

	consumer, err := kgo.NewClient(
		kgo.SeedBrokers("localhost:9092"),
		kgo.ConsumeTopics("orders"),
		kgo.ConsumerGroup("billing"), // recorded on receive and process spans
		kgo.WithHooks(hooks),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer consumer.Close()
	for {
		fetches := consumer.PollFetches(ctx)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return
		}
		rctx := hooks.ReceiveContext(ctx, fetches)
		fetches.EachRecord(func(r *kgo.Record) {
			// A child of the producer's send span, linking the poll.
			pctx, span := hooks.StartProcess(rctx, r)
			err := process(pctx, r)
			hooks.Tracing().End(span, err)
		})
	}
}

func process(context.Context, *kgo.Record) error { return nil }

// One Telemetry for the hooks of a hand-written loop and the Publisher of
// another topic: the same tracer and meter providers, sampling and
// redaction, and the hooks record the semconv messaging metrics (sends,
// consumed messages, process durations of spans ended through
// Tracing.End). Compiled, not run: it needs a broker.
func ExampleNewHooksWithTelemetry() {
	tel := middleware.NewTelemetry(
		middleware.WithTracerProvider(otel.GetTracerProvider()),
		middleware.WithMeterProvider(otel.GetMeterProvider()),
	)
	hooks := kafka.NewHooksWithTelemetry(tel)
	cl, err := kgo.NewClient(kgo.SeedBrokers("localhost:9092"), kgo.WithHooks(hooks))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	pub := tel.Publisher(kafka.NewPublisher(cl))
	_ = pub
}
