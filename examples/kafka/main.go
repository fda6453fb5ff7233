// Command kafka shows the three ways to trace Kafka with otelmq, on an
// in-process kfake cluster:
//
//  1. the unified API: kafka.NewPublisher / kafka.NewSubscriber wrapped in
//     middleware.Telemetry;
//  2. native-client instrumentation: otelmq's kgo hooks (kafka.Hooks) on your
//     own producer and consumer clients, with ReceiveContext and StartProcess
//     in your own poll loop (franz-go's kotel interoperates with both, see
//     integration/kafka_interop_test.go);
//  3. manual propagation with kafka.Carrier and propagation.Inject/Extract,
//     for code that produces and polls with a bare *kgo.Client.
//
// Each section prints its spans; each ends in one trace.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/examples/internal/embedded"
	"github.com/otelmq/otelmq/examples/internal/show"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/kafka"
)

func main() {
	flag.Parse() // takes no flags; -h says so instead of running
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, w io.Writer) error {
	topics := []string{"unified", "native", "manual"}
	seeds, closeKafka, err := embedded.StartKafka(topics...)
	if err != nil {
		return err
	}
	defer closeKafka()
	consumer := func(topic string) (*kgo.Client, error) {
		return kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
			kgo.ConsumerGroup("example-"+topic), kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll())
	}
	// consumeOne runs sub on topic until one message was handled.
	consumeOne := func(sub middleware.Subscriber, topic string) error {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		handled := false
		err := sub.Subscribe(ctx, topic, middleware.HandlerFunc(func(ctx context.Context, msg *middleware.Message) error {
			handled = true
			cancel() // one message is enough; Subscribe commits it and returns
			return nil
		}))
		if err == nil && !handled {
			err = fmt.Errorf("no message on %s", topic)
		}
		return err
	}

	if err := show.Section(w, "1. unified API (kafka.Publisher/Subscriber + middleware.Telemetry)", func(tp trace.TracerProvider) error {
		tel := middleware.NewTelemetry(middleware.WithTracerProvider(tp))
		producer, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
		if err != nil {
			return err
		}
		defer producer.Close()
		ctx, span := tp.Tracer("example").Start(ctx, "place order")
		msg := middleware.NewMessage([]byte(`{"order":1}`))
		msg.Key = []byte("customer-7") // orders of one customer stay in order
		err = tel.Publisher(kafka.NewPublisher(producer)).Publish(ctx, "unified", msg)
		span.End()
		if err != nil {
			return err
		}
		cl, err := consumer("unified")
		if err != nil {
			return err
		}
		defer cl.Close()
		return consumeOne(tel.Subscriber(kafka.NewSubscriber(cl)), "unified")
	}); err != nil {
		return err
	}

	if err := show.Section(w, "\n2. native client: otelmq kgo hooks on your own producer and poll loop", func(tp trace.TracerProvider) error {
		hooks := kafka.NewHooks(middleware.WithTracerProvider(tp))
		producer, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.WithHooks(hooks))
		if err != nil {
			return err
		}
		defer producer.Close()
		pctx, span := tp.Tracer("example").Start(ctx, "place order")
		err = producer.ProduceSync(pctx, &kgo.Record{Topic: "native", Value: []byte(`{"order":2}`)}).FirstErr()
		span.End()
		if err != nil {
			return err
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics("native"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.WithHooks(hooks))
		if err != nil {
			return err
		}
		defer cl.Close()
		// Your own loop: one receive span per poll, a process span per record
		// in its producer's trace.
		for {
			fetches := cl.PollFetches(ctx)
			if err := fetches.Err0(); err != nil {
				return err
			}
			rctx := hooks.ReceiveContext(ctx, fetches)
			n := 0
			fetches.EachRecord(func(r *kgo.Record) {
				_, span := hooks.StartProcess(rctx, r)
				span.End()
				n++
			})
			if n > 0 {
				return nil
			}
		}
	}); err != nil {
		return err
	}

	return show.Section(w, "\n3. manual: kafka.Carrier with propagation.Inject/Extract on a bare *kgo.Client", func(tp trace.TracerProvider) error {
		tracer := tp.Tracer("example")
		producer, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
		if err != nil {
			return err
		}
		defer producer.Close()
		pctx, span := tracer.Start(ctx, "send manual", trace.WithSpanKind(trace.SpanKindProducer))
		rec := &kgo.Record{Topic: "manual", Value: []byte(`{"order":3}`)}
		propagation.Inject(pctx, kafka.NewCarrier(rec)) // traceparent (and baggage) as record headers
		err = producer.ProduceSync(pctx, rec).FirstErr()
		span.End()
		if err != nil {
			return err
		}

		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics("manual"))
		if err != nil {
			return err
		}
		defer cl.Close()
		pollCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		for {
			fetches := cl.PollFetches(pollCtx)
			if err := pollCtx.Err(); err != nil {
				return fmt.Errorf("no record on manual: %w", err)
			}
			got := false
			fetches.EachRecord(func(r *kgo.Record) {
				// The producer's span context becomes the parent.
				cctx := propagation.Extract(context.Background(), kafka.NewCarrier(r))
				_, span := tracer.Start(cctx, "process manual", trace.WithSpanKind(trace.SpanKindConsumer))
				span.End()
				got = true
			})
			if got {
				return nil
			}
		}
	})
}
