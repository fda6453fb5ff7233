package kafka_test

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/kafka"
)

// benchBatch is the messages per Publish (and per ProduceSync in the hooks
// mode), as in examples/bench.
const benchBatch = 100

var benchBody = make([]byte, 64)

// BenchmarkRoundTrip produces b.N records and consumes them in a group
// through the Publisher and Subscriber: without middleware (transport),
// with the tracing middleware over a no-op provider (noop) and over the SDK
// sampling everything into a discarding exporter (sdk). The hooks case is
// a plain kgo loop traced with Hooks on the same SDK pipeline, and raw the
// same loop untraced. kfake runs in process, so its work counts too;
// cpu-ns/op is the process's CPU time per record, steadier than ns/op on a
// shared machine; publish-ns/op is the producer's share of the wall time
// (the consumer runs meanwhile and finishes after it).
//
//	go test -run X -bench RoundTrip -benchmem -benchtime 20000x ./transports/kafka/
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("raw", func(b *testing.B) { benchHooks(b, nil) })
	b.Run("transport", func(b *testing.B) { benchSubscriber(b, nil) })
	b.Run("noop", func(b *testing.B) { benchSubscriber(b, noop.NewTracerProvider()) })
	b.Run("sdk", func(b *testing.B) {
		tp := benchSDK(b)
		benchSubscriber(b, tp)
	})
	b.Run("hooks", func(b *testing.B) { benchHooks(b, benchSDK(b)) })
}

// benchSDK is an SDK provider exporting to nowhere, shut down at b's end.
func benchSDK(b *testing.B) *sdktrace.TracerProvider {
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(tracetest.NewNoopExporter(),
			sdktrace.WithMaxQueueSize(1<<16),
			sdktrace.WithMaxExportBatchSize(2048),
			sdktrace.WithBlocking()),
	)
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

// benchClients returns a producer and a consumer built as the Subscriber
// needs, on a fresh topic of a fresh cluster.
func benchClients(b *testing.B, hooks ...kgo.Hook) (prod, cons *kgo.Client, topic string) {
	b.Helper()
	topic = unsafeName.ReplaceAllString(b.Name(), "-") + "-" + time.Now().Format("150405.000000000")
	seeds := brokers.Kafka(b, topic)
	common := []kgo.Opt{kgo.SeedBrokers(seeds...)}
	if len(hooks) > 0 {
		common = append(common, kgo.WithHooks(hooks...))
	}
	prod, err := kgo.NewClient(append(common, kgo.DefaultProduceTopic(topic))...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(prod.Close)
	cons, err = kgo.NewClient(append(common,
		kgo.ConsumerGroup("g-"+topic),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
	)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cons.Close)
	return prod, cons, topic
}

// waitCount waits until n reaches want, or fails b after a minute.
func waitCount(b *testing.B, n *atomic.Int64, want int64) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for n.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("consumed %d of %d records", n.Load(), want)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func benchSubscriber(b *testing.B, tp trace.TracerProvider) {
	prod, cons, topic := benchClients(b)
	var pub middleware.Publisher = kafka.NewPublisher(prod)
	var sub middleware.Subscriber = kafka.NewSubscriber(cons)
	if tp != nil {
		t := middleware.NewTracing(middleware.WithTracerProvider(tp))
		pub, sub = t.Publisher(pub), t.Subscriber(sub)
	}
	var consumed atomic.Int64
	ctx, cancel := context.WithCancel(b.Context())
	polls := &pollCounter{}
	done := make(chan error, 1)
	go func() {
		done <- sub.Subscribe(middleware.WithObserver(ctx, polls), topic, middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
			consumed.Add(1)
			return nil
		}))
	}()
	publish := func(n int) {
		for sent := 0; sent < n; {
			k := min(benchBatch, n-sent)
			msgs := make([]*middleware.Message, k)
			for i := range msgs {
				msgs[i] = &middleware.Message{Body: benchBody}
			}
			if err := pub.Publish(ctx, topic, msgs...); err != nil {
				b.Fatal(err)
			}
			sent += k
		}
	}
	// Warm up: the group join and the first fetch are not timed.
	publish(1)
	waitCount(b, &consumed, 1)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, polls0, t0 := cpuTime(), polls.n.Load(), time.Now()
	publish(b.N)
	b.ReportMetric(float64(time.Since(t0).Nanoseconds())/float64(b.N), "publish-ns/op")
	waitCount(b, &consumed, int64(b.N)+1)
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(b.N)/float64(polls.n.Load()-polls0), "records/poll")
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// benchHooks runs a kgo poll loop, traced with Hooks when tp is not nil.
func benchHooks(b *testing.B, tp trace.TracerProvider) {
	var (
		hooks *kafka.Hooks
		kh    []kgo.Hook
	)
	if tp != nil {
		hooks = kafka.NewHooksWithTracing(middleware.NewTracing(middleware.WithTracerProvider(tp))) // tracing alone, as the other modes
		kh = append(kh, hooks)
	}
	prod, cons, _ := benchClients(b, kh...)
	var consumed, polls atomic.Int64
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cons.AllowRebalance()
		for {
			fs := cons.PollRecords(ctx, 500)
			if fs.IsClientClosed() || ctx.Err() != nil {
				return
			}
			recs := fs.Records()
			if len(recs) == 0 {
				continue
			}
			polls.Add(1)
			if hooks != nil {
				rctx := hooks.ReceiveContext(ctx, fs)
				for _, r := range recs {
					_, span := hooks.StartProcess(rctx, r)
					span.End()
				}
			}
			if err := cons.CommitRecords(ctx, recs...); err != nil && ctx.Err() == nil {
				b.Error(err)
				return
			}
			consumed.Add(int64(len(recs)))
			cons.AllowRebalance()
		}
	}()
	publish := func(n int) {
		for sent := 0; sent < n; {
			k := min(benchBatch, n-sent)
			recs := make([]*kgo.Record, k)
			for i := range recs {
				recs[i] = &kgo.Record{Value: benchBody}
			}
			if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				b.Fatal(err)
			}
			sent += k
		}
	}
	publish(1)
	waitCount(b, &consumed, 1)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, polls0, t0 := cpuTime(), polls.Load(), time.Now()
	publish(b.N)
	b.ReportMetric(float64(time.Since(t0).Nanoseconds())/float64(b.N), "publish-ns/op")
	waitCount(b, &consumed, int64(b.N)+1)
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(b.N)/float64(polls.Load()-polls0), "records/poll")
	cancel()
	<-done
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pollCounter is an Observer counting the Subscriber's polls.
type pollCounter struct{ n atomic.Int64 }

func (c *pollCounter) Received(ctx context.Context, _ middleware.Destination, _ time.Time, _ []*middleware.Message) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *pollCounter) Settled(context.Context, middleware.Destination, string, time.Time, []*middleware.Message, error) {
}
