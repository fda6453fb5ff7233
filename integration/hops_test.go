package integration

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
)

// TestThreeHops: baggage and tracestate set at the first producer arrive at
// a consumer three hops later (SQS -> RabbitMQ -> Kafka) in the same trace,
// with every hop's spans in it.
func TestThreeHops(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tel := middleware.NewTelemetry(middleware.WithTracerProvider(tp))
	sqs, rabbit, kafka := sqsHarness.Setup(t), rabbitmqHarness.Setup(t), kafkaHarness.Setup(t)

	type arrival struct {
		bg baggage.Baggage
		sc trace.SpanContext
	}
	final := make(chan arrival, 4)
	forward := func(next Env) middleware.HandlerFunc {
		pub := tel.Publisher(next.Publisher)
		return func(ctx context.Context, msg *middleware.Message) error {
			return pub.Publish(ctx, next.Destination, middleware.NewMessage(msg.Body))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, 3)
	go func() { errs <- tel.Subscriber(sqs.Subscriber).Subscribe(ctx, sqs.Source, forward(rabbit)) }()
	go func() { errs <- tel.Subscriber(rabbit.Subscriber).Subscribe(ctx, rabbit.Source, forward(kafka)) }()
	go func() {
		errs <- tel.Subscriber(kafka.Subscriber).Subscribe(ctx, kafka.Source, middleware.HandlerFunc(
			func(ctx context.Context, _ *middleware.Message) error {
				final <- arrival{baggage.FromContext(ctx), trace.SpanContextFromContext(ctx)}
				return nil
			}))
	}()

	tenant, _ := baggage.NewMember("tenant", "acme")
	bg, _ := baggage.New(tenant)
	ts, _ := trace.ParseTraceState("vendor=abc")
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0xab, 1}, SpanID: trace.SpanID{0xcd, 1}, TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true,
	})
	pctx := baggage.ContextWithBaggage(trace.ContextWithRemoteSpanContext(context.Background(), parent), bg)
	pctx, root := tp.Tracer("test").Start(pctx, "checkout")
	if err := tel.Publisher(sqs.Publisher).Publish(pctx, sqs.Destination, middleware.NewMessage([]byte("hop"))); err != nil {
		t.Fatal(err)
	}
	root.End()

	var got arrival
	select {
	case got = <-final:
	case err := <-errs:
		t.Fatalf("a subscriber returned: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the message did not arrive three hops later")
	}
	if got.bg.Member("tenant").Value() != "acme" {
		t.Errorf("baggage at hop 3: %q", got.bg)
	}
	if got.sc.TraceID() != parent.TraceID() || !got.sc.IsSampled() || got.sc.TraceState().Get("vendor") != "abc" {
		t.Errorf("span context at hop 3: %v (tracestate %q)", got.sc, got.sc.TraceState())
	}
	// A hop's process span ends after its handler returned, which can be
	// after the next hop already delivered: wait for all three.
	systems := map[string]bool{}
	for deadline := time.Now().Add(10 * time.Second); len(systems) < 3 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, s := range rec.Ended() {
			if s.SpanContext().TraceID() != parent.TraceID() {
				continue
			}
			if v, ok := attrOf(s, "messaging.system"); ok && s.SpanKind() == trace.SpanKindConsumer {
				systems[v.AsString()] = true
			}
		}
	}
	for _, sys := range []string{"aws_sqs", "rabbitmq", "kafka"} {
		if !systems[sys] {
			t.Errorf("no %s process span in the trace", sys)
		}
	}
}
