package rabbitmq

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	otelprop "go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelmq/otelmq/internal/benchkit"
	"github.com/otelmq/otelmq/middleware"
)

// Issue 7: what does otelmq cost over plain amqp091, and over the tracing
// people write by hand? Every mode publishes and consumes benchMessages
// 64-byte messages per iteration over the real broker, with manual acks and
// prefetch 256, so the numbers include the broker round trip the overhead
// has to be judged against. One op is the whole batch; msgs/s is the
// comparable figure, allocs/op divided by benchMessages is per message.
//
// Messages are transient in every mode: persistence costs the broker disk
// work that is the same with and without tracing and only adds noise.
//
//	go test -run '^$' -bench BenchmarkPublishConsume ./transports/rabbitmq/
const (
	benchMessages = 5000
	benchPrefetch = 256
	benchBody     = 64
)

func BenchmarkPublishConsume(b *testing.B) {
	b.Run("raw-amqp091", func(b *testing.B) { benchRaw(b, nil) })
	b.Run("otelmq-noop", func(b *testing.B) { benchOtelmq(b, noop.NewTracerProvider(), nil) })
	b.Run("otelmq-sdk", func(b *testing.B) {
		tp, spans := benchSDK(b)
		// send and process per message, and an ack span per basic.ack,
		// which the Subscriber coalesces over runs of deliveries (so
		// between none and one per message beyond these): a pushed
		// delivery gets no receive span.
		benchOtelmq(b, tp, func(n int) { spans.check(b, tp, 2*n) })
	})
	b.Run("handwritten-sdk", func(b *testing.B) {
		tp, spans := benchSDK(b)
		// One producer and one consumer span per message.
		benchRaw(b, &handTracer{tracer: tp.Tracer("blog")})
		spans.check(b, tp, 2*benchMessages*b.N)
	})
}

// benchSDK is an SDK provider as production runs it: sample everything,
// batch export. The queue holds a whole iteration's spans, so the batch
// processor never drops and every mode pays for every span; check proves it.
func benchSDK(b *testing.B) (*sdktrace.TracerProvider, spanCounts) {
	tp, c := benchkit.NewSDK(sdktrace.AlwaysSample(), 8*benchMessages)
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, spanCounts{c}
}

type spanCounts struct{ *benchkit.SpanCounter }

// check flushes and fails the benchmark when spans were dropped or fewer
// than want ended. The loop stops when the last handler ran, before its ack
// span ended, so spans may still be ending while check runs: one that ends
// during a flush is counted as ended but reaches the exporter only with the
// next flush. The batch processor blocks rather than drops, so check flushes
// until the two counts meet; counts that never meet mean spans were lost.
func (c spanCounts) check(b *testing.B, tp *sdktrace.TracerProvider, want int) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := tp.ForceFlush(context.Background()); err != nil {
			b.Fatal(err)
		}
		ended, exported := c.Ended(), c.Exported()
		if exported == ended && ended >= int64(want) {
			break
		}
		if time.Now().After(deadline) {
			if exported != ended {
				b.Fatalf("%d spans ended, %d exported: the batch queue dropped spans", ended, exported)
			}
			b.Fatalf("%d spans ended, want at least %d", ended, want)
		}
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(c.Ended())/float64(benchMessages*b.N), "spans/msg")
}

// handTracer is tracing as a blog post writes it: a producer span around
// the publish, the context injected into the header table with the W3C
// propagator, a consumer span around each delivery.
type handTracer struct {
	tracer trace.Tracer
}

// tableCarrier is the carrier such a post defines over amqp.Table.
type tableCarrier amqp.Table

func (c tableCarrier) Get(key string) string {
	s, _ := c[key].(string)
	return s
}
func (c tableCarrier) Set(key, value string) { c[key] = value }
func (c tableCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// benchRaw publishes and consumes with amqp091 alone, traced by ht when it
// is not nil.
func benchRaw(b *testing.B, ht *handTracer) {
	conn, q := setup(b, nil)
	pubCh := rawChannel(b, conn)
	subCh := rawChannel(b, conn)
	if err := subCh.Qos(benchPrefetch, 0, false); err != nil {
		b.Fatal(err)
	}
	deliveries, err := subCh.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	var consumed atomic.Int64
	batchDone := make(chan struct{}, 1)
	go func() {
		for d := range deliveries {
			var span trace.Span
			if ht != nil {
				ctx := otelprop.TraceContext{}.Extract(context.Background(), tableCarrier(d.Headers))
				_, span = ht.tracer.Start(ctx, "consume "+q, trace.WithSpanKind(trace.SpanKindConsumer))
			}
			err := d.Ack(false)
			if span != nil {
				span.End()
			}
			if err != nil {
				b.Error(err)
				return
			}
			if consumed.Add(1)%benchMessages == 0 {
				batchDone <- struct{}{}
			}
		}
	}()
	body := make([]byte, benchBody)
	ctx := context.Background()

	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for range benchMessages {
			pub := amqp.Publishing{Body: body, DeliveryMode: amqp.Transient}
			var span trace.Span
			pctx := ctx
			if ht != nil {
				pctx, span = ht.tracer.Start(ctx, "publish "+q, trace.WithSpanKind(trace.SpanKindProducer))
				pub.Headers = amqp.Table{}
				otelprop.TraceContext{}.Inject(pctx, tableCarrier(pub.Headers))
			}
			err := pubCh.PublishWithContext(pctx, "", q, false, false, pub)
			if span != nil {
				span.End()
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		<-batchDone
	}
	b.StopTimer()
	reportRate(b)
}

// benchOtelmq publishes and consumes through otelmq's Publisher and
// Subscriber wrapped in tracing middleware over tp; after, when not nil,
// runs once the timer stopped with the number of messages sent.
func benchOtelmq(b *testing.B, tp trace.TracerProvider, after func(n int)) {
	conn, q := setup(b, nil)
	tracing := middleware.NewTracing(middleware.WithTracerProvider(tp))
	raw := NewPublisher(conn, WithTransient())
	b.Cleanup(func() { _ = raw.Close() })
	pub := tracing.Publisher(raw)
	sub := tracing.Subscriber(NewSubscriber(conn, WithPrefetch(benchPrefetch)))

	var consumed atomic.Int64
	batchDone := make(chan struct{}, 1)
	subscribe(b, context.Background(), sub, q, func(context.Context, *middleware.Message) error {
		if consumed.Add(1)%benchMessages == 0 {
			batchDone <- struct{}{}
		}
		return nil
	})
	body := make([]byte, benchBody)
	ctx := context.Background()

	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for range benchMessages {
			// A fresh Message each time, as an application builds one per
			// publish; Publish writes its ID and trace headers.
			if err := pub.Publish(ctx, q, &middleware.Message{Body: body}); err != nil {
				b.Fatal(err)
			}
		}
		<-batchDone
	}
	b.StopTimer()
	reportRate(b)
	if after != nil {
		after(benchMessages * b.N)
	}
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(benchMessages*b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(benchMessages*b.N), "ns/msg")
}
