package rabbitmq

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelmq/otelmq/internal/testtel"
	"github.com/otelmq/otelmq/middleware"
)

// consumeOne reads one delivery from queue with a plain amqp091 consumer.
func consumeOne(t *testing.T, ch *amqp.Channel, queue string) amqp.Delivery {
	t.Helper()
	ds, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-ds:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
	}
	panic("unreachable")
}

// NEEDS THE TRACING MIDDLEWARE: this test fails until middleware/tracing.go
// (StartSend, InjectCreate) is implemented; Channel only delegates to it.
func TestChannelInjectsTraceparent(t *testing.T) {
	conn, q := setup(t, nil)
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	defer tp.Shutdown(context.Background())

	ch := WrapChannel(rawChannel(t, conn), middleware.WithTracerProvider(tp))
	ctx, span := tp.Tracer("test").Start(t.Context(), "parent")
	err := ch.PublishWithContext(ctx, "", q, false, false, amqp.Publishing{Body: []byte("traced")})
	span.End()
	if err != nil {
		t.Fatal(err)
	}
	d := consumeOne(t, rawChannel(t, conn), q)
	tp1, _ := d.Headers["traceparent"].(string)
	if tp1 == "" {
		t.Fatalf("no traceparent header on the delivery: %v (needs middleware/tracing.go)", d.Headers)
	}
	if want := span.SpanContext().TraceID().String(); !strings.Contains(tp1, want) {
		t.Errorf("traceparent %q is not in trace %s", tp1, want)
	}
}

// The wrapper's own behaviour, which holds with or without tracing.
func TestChannelWrapper(t *testing.T) {
	conn, q := setup(t, nil)
	raw := rawChannel(t, conn)
	if err := raw.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ch := WrapChannel(raw)

	// A caller's table may be shared between publishes: never written to.
	shared := amqp.Table{"tenant": "acme", "traceparent": traceparent}
	dc, err := ch.PublishWithDeferredConfirmWithContext(t.Context(), "", q, false, false, amqp.Publishing{Headers: shared, Body: []byte("1")})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(t.Context()); !ok || err != nil {
		t.Fatalf("confirm: %v %v", ok, err)
	}
	if err := ch.PublishWithContext(t.Context(), "", q, false, false, amqp.Publishing{Body: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	if len(shared) != 2 || shared["traceparent"] != traceparent {
		t.Fatalf("caller's headers modified: %v", shared)
	}

	ds, err := ch.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	next := func() amqp.Delivery {
		select {
		case d := <-ds:
			return d
		case <-time.After(10 * time.Second):
			t.Fatal("no delivery within 10s")
		}
		panic("unreachable")
	}
	d := next()
	if !strings.HasPrefix(d.ConsumerTag, "ctag-otelmq-") {
		t.Errorf("consumer tag %q", d.ConsumerTag)
	}
	if dest := ch.destination(&d); dest.Name != q {
		t.Errorf("destination %q, want the queue %q", dest.Name, q)
	}
	// A creation context already in the headers is kept.
	if d.Headers["traceparent"] != traceparent || d.Headers["tenant"] != "acme" {
		t.Errorf("headers %v", d.Headers)
	}
	pctx, span := ch.StartProcess(t.Context(), d)
	middleware.End(span, nil)
	if err := ch.Nack(pctx, d, false, true); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		d := next()
		if err := ch.Ack(t.Context(), d, false); err != nil {
			t.Fatal(err)
		}
	}
	// Everything settled: nothing ready, nothing unacked.
	eventually(t, 5*time.Second, "empty queue", func() bool {
		q, err := rawChannel(t, conn).QueueDeclarePassive(q, true, false, false, false, nil)
		return err == nil && q.Messages == 0
	})
}

// TestChannelMetrics: a wrapped channel records the metrics a Publisher and
// Subscriber wrapped in the middleware would: each publish a send, each
// delivery given to StartProcess a consumed message (no receive duration:
// a push delivery), its process duration with the error its span ended
// with, the queue time, and each Ack and Nack a settle duration.
func TestChannelMetrics(t *testing.T) {
	conn, q := setup(t, nil)
	tel := testtel.New(t)
	ch := WrapChannel(rawChannel(t, conn), middleware.WithTracerProvider(tel.TracerProvider), middleware.WithMeterProvider(tel.MeterProvider))
	for i := range 2 {
		if err := ch.PublishWithContext(t.Context(), "", q, false, false, amqp.Publishing{Body: []byte{byte(i)}, Timestamp: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := ch.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		var d amqp.Delivery
		select {
		case d = <-ds:
		case <-time.After(10 * time.Second):
			t.Fatal("no delivery within 10s")
		}
		pctx, span := ch.StartProcess(t.Context(), d)
		if i == 0 {
			ch.Tracing().End(span, errors.New("handler failed"))
			err = ch.Nack(pctx, d, false, false)
		} else {
			ch.Tracing().End(span, nil)
			err = ch.Ack(pctx, d, false)
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	sum := func(points []metricdata.DataPoint[int64]) (n int64) {
		for _, p := range points {
			n += p.Value
		}
		return n
	}
	if n := sum(tel.CounterPoints(t, middleware.MetricSentMessages)); n != 2 {
		t.Errorf("sent.messages %d, want 2", n)
	}
	if n := sum(tel.CounterPoints(t, middleware.MetricConsumedMessages)); n != 2 {
		t.Errorf("consumed.messages %d, want 2", n)
	}
	count := func(points []metricdata.HistogramDataPoint[float64]) map[string]uint64 {
		out := map[string]uint64{}
		for _, p := range points {
			v, _ := p.Attributes.Value("error.type")
			out[v.AsString()] += p.Count
		}
		return out
	}
	if got := count(tel.OperationPoints(t, "send")); got[""] != 2 {
		t.Errorf("send durations by error.type %v, want 2 without", got)
	}
	if got := count(tel.OperationPoints(t, "receive")); len(got) != 0 {
		t.Errorf("receive durations %v for push deliveries", got)
	}
	if got := count(tel.HistogramPoints(t, middleware.MetricProcessDuration)); got[""] != 1 || got["_OTHER"] != 1 {
		t.Errorf("process durations by error.type %v, want one without and one _OTHER", got)
	}
	if got := count(tel.HistogramPoints(t, middleware.MetricQueueTime)); got[""] != 2 {
		t.Errorf("queue times %v, want 2", got)
	}
	if got := count(tel.OperationPoints(t, "ack")); got[""] != 1 {
		t.Errorf("ack durations %v, want 1", got)
	}
	if got := count(tel.OperationPoints(t, "nack")); got[""] != 1 {
		t.Errorf("nack durations %v, want 1", got)
	}
}

// TestChannelErrorType: a publish on a closed channel is recorded with the
// AMQP name of amqp091's error (channel-error), not as *amqp.Error, which
// every AMQP failure is; the caller still gets amqp091's error.
func TestChannelErrorType(t *testing.T) {
	conn, q := setup(t, nil)
	tel := testtel.New(t)
	raw := rawChannel(t, conn)
	ch := WrapChannel(raw, middleware.WithTracerProvider(tel.TracerProvider), middleware.WithMeterProvider(tel.MeterProvider))
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	err := ch.PublishWithContext(t.Context(), "", q, false, false, amqp.Publishing{Body: []byte("x")})
	if !errors.Is(err, amqp.ErrClosed) {
		t.Fatalf("publish on a closed channel: %v, want amqp.ErrClosed", err)
	}
	points := tel.OperationPoints(t, "send")
	if len(points) != 1 {
		t.Fatalf("%d send duration points, want 1", len(points))
	}
	if v, _ := points[0].Attributes.Value("error.type"); v.AsString() != "channel-error" {
		t.Errorf("error.type %q, want channel-error", v.AsString())
	}
}
