// Command orders is otelmq's main demo: an order is published, consumed and
// processed, and the resulting trace is printed as a terminal waterfall.
//
// This first version runs on the in-memory transport; the mixed-broker flow
// (SQS -> RabbitMQ -> Kafka with a dead-letter branch) replaces it as the
// transports land.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/memory"
)

func main() {
	orders := flag.Int("orders", 1, "number of orders to place")
	flag.Parse()
	if err := run(context.Background(), *orders, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, orders int, out *os.File) error {
	recorder := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	defer tp.Shutdown(ctx)

	tel := middleware.NewTelemetry(middleware.WithTracerProvider(tp))
	broker := memory.New()
	pub := tel.Publisher(broker)
	sub := tel.Subscriber(broker)

	done := make(chan string, orders)
	subCtx, stop := context.WithCancel(ctx)
	subErr := make(chan error, 1)
	go func() {
		subErr <- sub.Subscribe(subCtx, "orders", middleware.HandlerFunc(func(ctx context.Context, msg *middleware.Message) error {
			_, span := tp.Tracer("orders-worker").Start(ctx, "fulfil order")
			time.Sleep(2 * time.Millisecond) // the work
			span.End()
			done <- string(msg.Body)
			return nil
		}))
	}()

	tracer := tp.Tracer("orders-api")
	var traceIDs []trace.TraceID
	for i := 1; i <= orders; i++ {
		reqCtx, span := tracer.Start(ctx, "POST /orders", trace.WithSpanKind(trace.SpanKindServer))
		msg := middleware.NewMessage([]byte(fmt.Sprintf("order-%d", i)))
		if err := pub.Publish(reqCtx, "orders", msg); err != nil {
			span.End()
			stop()
			return fmt.Errorf("publish order %d: %w", i, err)
		}
		span.End()
		traceIDs = append(traceIDs, span.SpanContext().TraceID())
	}
	for range orders {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			stop()
			return fmt.Errorf("orders were not processed within 10s")
		}
	}
	stop()
	if err := <-subErr; err != nil {
		return err
	}
	// Spans end asynchronously to the handler's return (settle); give them a moment.
	time.Sleep(20 * time.Millisecond)
	spans := recorder.Ended()
	for _, id := range traceIDs {
		printWaterfall(out, id, spans)
	}
	return nil
}
