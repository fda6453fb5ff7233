package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
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

func ExampleWithLinkLimit() {
	// A receive span links the creation context of each message of its
	// poll, the first 128 by default: the SDK's own limit. With a provider
	// that keeps more links, raise both.
	rec := tracetest.NewSpanRecorder()
	limits := sdktrace.NewSpanLimits()
	limits.LinkCountLimit = 1000
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSpanLimits(limits))
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp), middleware.WithLinkLimit(1000))

	creations := make([]trace.SpanContext, 300) // a poll of 300 records
	for i := range creations {
		creations[i] = trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, byte(i)}, SpanID: trace.SpanID{1}, Remote: true})
	}
	tr.StartReceive(context.Background(), middleware.Destination{System: "kafka", Name: "orders"}, time.Now(), creations)
	fmt.Println(len(rec.Ended()[0].Links()))
	// Output: 300
}

func ExampleWithParentBasedSampling() {
	// The SDK's sampler is ParentBased: a message whose trace was sampled
	// out upstream gets no span from it. WithParentBasedSampling skips
	// asking it, so such a message costs no dropped spans.
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))))
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp), middleware.WithParentBasedSampling(true))

	msg := middleware.NewMessage([]byte("order 42"))
	msg.Headers["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00" // not sampled
	ctx, span := tr.StartProcess(context.Background(), middleware.Destination{System: "kafka", Name: "orders"}, propagation.MapCarrier(msg.Headers))
	defer span.End()
	// The handler runs in the producer's trace, and its spans are dropped.
	sc := trace.SpanContextFromContext(ctx)
	fmt.Println(sc.TraceID(), sc.SpanID(), sc.IsSampled())
	// Output: 4bf92f3577b34da6a3ce929d0e0e4736 00f067aa0ba902b7 false
}

func ExampleWithSettleSpans() {
	// Without settle spans a message on an acknowledging broker has two
	// spans, send and process; the ack's duration stays in the metrics.
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp), middleware.WithSettleSpans(false))

	broker := memory.New()
	pub, sub := tr.Publisher(broker), tr.Subscriber(broker)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() {
		stopped <- sub.Subscribe(ctx, "orders", middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
			cancel()
			return nil
		}))
	}()
	_ = pub.Publish(context.Background(), "orders", middleware.NewMessage([]byte("order 42")))
	<-stopped
	var spans []string
	for _, s := range rec.Ended() {
		spans = append(spans, s.Name())
	}
	slices.Sort(spans)
	fmt.Println(strings.Join(spans, ", "))
	// Output: process orders, send orders
}

func ExampleTracing_RecordAttributes() {
	// Native instrumentation learns some of a message's attributes only
	// after its span started, such as the ID a broker assigns on send.
	// RecordAttributes sets them through the redactor, as the middleware
	// does its own.
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp), middleware.WithRedactor(func(kv attribute.KeyValue) attribute.KeyValue {
		if kv.Key == propagation.MessageID("").Key {
			return kv.Key.String("masked")
		}
		return kv
	}))
	_, span := tr.StartSend(context.Background(), middleware.Destination{System: "aws_sqs", Name: "orders"}, 1)
	id := "5fea7756-0ea4-451a-a703-a558b933e274" // from the broker's reply
	tr.RecordAttributes(span, propagation.MessageID(id))
	span.End()
	for _, kv := range rec.Ended()[0].Attributes() {
		if kv.Key == propagation.MessageID("").Key {
			fmt.Println(kv.Key, "=", kv.Value.AsString())
		}
	}
	// Output: messaging.message.id = masked
}

func ExampleWithDestinationTemplate() {
	// One queue per customer: a span name per customer would name the
	// customer and make span names unbounded. The template names the spans
	// (and the metrics) instead; the redactor drops the name itself.
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp),
		middleware.WithDestinationTemplate(func(d middleware.Destination) string {
			if strings.HasPrefix(d.Name, "invoices.") {
				return "invoices.{customer}"
			}
			return ""
		}),
		middleware.WithRedactor(func(kv attribute.KeyValue) attribute.KeyValue {
			if kv.Key == propagation.DestinationName("").Key {
				return attribute.KeyValue{}
			}
			return kv
		}))
	_ = tr.Publisher(memory.New()).Publish(context.Background(), "invoices.jane.doe", middleware.NewMessage(nil))
	send := rec.Ended()[0]
	fmt.Println(send.Name())
	for _, kv := range send.Attributes() {
		if strings.HasPrefix(string(kv.Key), "messaging.destination") {
			fmt.Println(kv.Key, "=", kv.Value.Emit())
		}
	}
	// Output:
	// send invoices.{customer}
	// messaging.destination.template = invoices.{customer}
}

// A handler's failure recorded under a name of its own: error.type is
// "fraud_rejected" on the process span and the process duration metric,
// where an errors.New value would be "_OTHER".
func ExampleNamedError() {
	errFraud := errors.New("order rejected by the fraud check")
	handler := middleware.HandlerFunc(func(ctx context.Context, msg *middleware.Message) error {
		return middleware.NamedError(fmt.Errorf("order %s: %w", msg.ID, errFraud), "fraud_rejected")
	})
	err := handler.Handle(context.Background(), &middleware.Message{ID: "o-1"})
	fmt.Println(middleware.ErrorType(err), errors.Is(err, errFraud))
	// Output: fraud_rejected true
}
