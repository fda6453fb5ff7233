// Command migrate moves a RabbitMQ consumer to Kafka without breaking a
// trace. The consumer's business logic, handleOrder, is one function,
// subscribed on both paths:
//
//   - old path: RabbitMQ queue "orders" -> handleOrder;
//   - new path: Kafka topic "orders"     -> handleOrder.
//
// During the migration two things feed the new path:
//
//   - middleware.RelayHandler moves what legacy producers still publish to
//     the RabbitMQ queue "orders-legacy" onto the Kafka topic, keeping each
//     message's trace context, so the Kafka consumer's work is in the
//     legacy producer's trace; composed with Retry and DeadLetter, a
//     message Kafka refuses for good (middleware.Permanent: a record too
//     large), or one that still fails after the retries, is parked on
//     "orders-legacy-parked" instead of coming back for ever;
//   - middleware.DualPublish lets an updated producer publish to both
//     brokers at cut-over, so both consumers see every message, in one
//     trace, until the old path is switched off.
//
// RabbitMQ is AMQP_URL or 127.0.0.1:5672 (or a container); Kafka is kfake
// in this process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/examples/internal/embedded"
	"github.com/otelmq/otelmq/examples/internal/show"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/kafka"
	"github.com/otelmq/otelmq/transports/rabbitmq"
)

func main() {
	flag.Parse() // takes no flags; -h says so instead of running
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := run(ctx, os.Stdout)
	var no *embedded.NoBrokerError
	if errors.As(err, &no) {
		fmt.Println("skipped:", no.Which)
		return
	}
	if err != nil {
		log.Fatal(err)
	}
}

// handleOrder is the consumer's business logic, the same on both paths: it
// sees a context with the process span and the message, never the broker.
func handleOrder(ctx context.Context, tracer trace.Tracer, msg *middleware.Message) {
	_, span := tracer.Start(ctx, "handle order")
	defer span.End()
	time.Sleep(time.Millisecond)
}

// handled is one handleOrder call: which path, which order, in which trace.
type handled struct {
	path, order string
	trace       trace.TraceID
}

// report is what run saw, for the test.
type report struct {
	spans   []sdktrace.ReadOnlySpan
	handled []handled
	// traces are the producers' trace IDs: "relayed" (published to the
	// legacy RabbitMQ queue) and "dual" (published with DualPublish).
	traces map[string]trace.TraceID
}

func run(ctx context.Context, w io.Writer) (*report, error) {
	conn, which, err := embedded.RabbitMQ()
	if conn == nil {
		return nil, &embedded.NoBrokerError{Which: which, Err: err}
	}
	defer conn.Close()
	seeds, closeKafka, err := embedded.StartKafka("orders")
	if err != nil {
		return nil, err
	}
	defer closeKafka()
	fmt.Fprintf(w, "old path: %s\nnew path: Kafka: kfake in process, %v\n", which, seeds)

	ordersQueue, err := embedded.DeclareQueue(conn, "orders")
	if err != nil {
		return nil, err
	}
	legacyQueue, err := embedded.DeclareQueue(conn, "orders-legacy")
	if err != nil {
		return nil, err
	}
	parkedQueue, err := embedded.DeclareQueue(conn, "orders-legacy-parked")
	if err != nil {
		return nil, err
	}
	const topic = "orders"

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	tel := middleware.NewTelemetry(middleware.WithTracerProvider(tp))
	tracer := tp.Tracer("migrate")

	rabbitPub := rabbitmq.NewPublisher(conn, rabbitmq.WithConfirms(true))
	defer rabbitPub.Close()
	producer, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return nil, err
	}
	defer producer.Close()
	consumer, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.ConsumerGroup("orders"), kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll())
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	kafkaPub := tel.Publisher(kafka.NewPublisher(producer))

	seen := make(chan handled, 8)
	on := func(path string) middleware.Handler {
		return middleware.HandlerFunc(func(ctx context.Context, msg *middleware.Message) error {
			handleOrder(ctx, tracer, msg)
			seen <- handled{path, string(msg.Body), trace.SpanContextFromContext(ctx).TraceID()}
			return nil
		})
	}

	subCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	goSub := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errs <- err
			}
		}()
	}
	goSub(func() error {
		return tel.Subscriber(rabbitmq.NewSubscriber(conn)).Subscribe(subCtx, ordersQueue, on("rabbitmq"))
	})
	goSub(func() error {
		return tel.Subscriber(kafka.NewSubscriber(consumer)).Subscribe(subCtx, topic, on("kafka"))
	})
	goSub(func() error {
		// Retry rides out a short Kafka outage in place; what still fails,
		// and at once what Kafka refuses for good, is parked.
		relay := middleware.ChainHandler(middleware.RelayHandler(kafkaPub, topic),
			middleware.DeadLetter(tel.Publisher(rabbitPub), parkedQueue),
			middleware.Retry(middleware.WithAttempts(5), middleware.WithBackoff(middleware.ExponentialBackoff(200*time.Millisecond, 5*time.Second))))
		return tel.Subscriber(rabbitmq.NewSubscriber(conn)).Subscribe(subCtx, legacyQueue, relay)
	})

	rep := &report{traces: map[string]trace.TraceID{}}
	// A legacy producer, not yet changed, publishes to RabbitMQ.
	{
		pctx, span := tracer.Start(ctx, "legacy producer")
		err := tel.Publisher(rabbitPub).Publish(pctx, legacyQueue, middleware.NewMessage([]byte("relayed")))
		span.End()
		if err != nil {
			return nil, err
		}
		rep.traces["relayed"] = span.SpanContext().TraceID()
	}
	// An updated producer publishes to both during the cut-over.
	{
		pctx, span := tracer.Start(ctx, "cut-over producer")
		dual := middleware.DualPublish(tel.Publisher(rabbitPub), ordersQueue, kafkaPub, topic)
		err := dual.Publish(pctx, "", middleware.NewMessage([]byte("dual")))
		span.End()
		if err != nil {
			return nil, err
		}
		rep.traces["dual"] = span.SpanContext().TraceID()
	}

	// relayed: once, on Kafka; dual: on both paths.
	want := map[handled]bool{}
	timeout := time.After(30 * time.Second)
	for len(want) < 3 {
		select {
		case h := <-seen:
			want[handled{path: h.path, order: h.order}] = true
			rep.handled = append(rep.handled, h)
			fmt.Fprintf(w, "handleOrder via %-8s order %-7s trace %s\n", h.path, h.order, h.trace)
		case err := <-errs:
			return nil, err
		case <-timeout:
			return nil, fmt.Errorf("handled %v within 30s, want relayed on kafka and dual on both", rep.handled)
		}
	}
	stop()
	wg.Wait()
	rep.spans = rec.Ended()
	for _, name := range []string{"relayed", "dual"} {
		var spans []sdktrace.ReadOnlySpan
		for _, s := range rep.spans {
			if s.SpanContext().TraceID() == rep.traces[name] {
				spans = append(spans, s)
			}
		}
		show.Spans(w, "\ntrace of the "+name+" order", spans)
	}
	for _, h := range rep.handled {
		if h.trace != rep.traces[h.order] {
			return rep, fmt.Errorf("order %s handled via %s in trace %s, not its producer's %s", h.order, h.path, h.trace, rep.traces[h.order])
		}
	}
	return rep, nil
}
