package middleware_test

import (
	"context"
	"fmt"
	"slices"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/memory"
)

func Example() {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tel := middleware.NewTelemetry(middleware.WithTracerProvider(tp))

	broker := memory.New() // or an SQS, RabbitMQ or Kafka transport
	pub, sub := tel.Publisher(broker), tel.Subscriber(broker)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	stopped := make(chan error)
	go func() {
		stopped <- sub.Subscribe(ctx, "orders", middleware.HandlerFunc(func(ctx context.Context, msg *middleware.Message) error {
			fmt.Printf("processing %s\n", msg.Body)
			close(done)
			return nil // settle; an error would redeliver
		}))
	}()
	_ = pub.Publish(context.Background(), "orders", middleware.NewMessage([]byte("order 42")))
	<-done
	cancel()
	<-stopped // Subscribe returns after settling what it handled
	var spans []string
	for _, s := range rec.Ended() {
		if s.Name() != "receive orders" {
			spans = append(spans, fmt.Sprint(s.Name(), " ", s.SpanKind()))
		}
	}
	slices.Sort(spans) // the consumer can finish before the producer's span ends
	fmt.Println(strings.Join(spans, "\n"))
	// Output:
	// processing order 42
	// ack orders client
	// process orders consumer
	// send orders producer
}
