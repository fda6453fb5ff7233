package middleware_test

import (
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelmq/otelmq/internal/benchkit"
	"github.com/otelmq/otelmq/middleware"
)

// BenchmarkMiddlewarePath is the per-message cost of publish + consume
// through the tracing middleware, with two references beside it: "carrier"
// is what propagation alone costs (inject into a header map and extract from
// it), the floor any instrumentation pays; "baseline" is the same loopback
// transport and messages as the middleware runs, with that inject and
// extract done by hand, so "noop" minus "baseline" is what the middleware
// adds (target: at most 300 ns and 4 allocations).
func BenchmarkMiddlewarePath(b *testing.B) {
	path := func(tp trace.TracerProvider) func(*testing.B) {
		return func(b *testing.B) { benchkit.Path(b, &benchkit.Loopback{}, tp) }
	}
	b.Run("carrier", benchkit.Carrier)
	b.Run("baseline", benchkit.Baseline)
	b.Run("noop", path(noop.NewTracerProvider()))
	b.Run("sdk-never-sample", path(sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))))
	b.Run("sdk-always-sample", path(sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))))
}

// kafkaLoopback is a loopback that delivers messages as the Kafka
// Subscriber does: from a destination with server and consumer group, with
// partition, offset, key, group and ID.
func kafkaLoopback() *benchkit.Loopback {
	return &benchkit.Loopback{
		Dest: &middleware.Destination{System: "kafka", Name: "q", Attributes: []attribute.KeyValue{
			semconv.ServerAddress("broker"), semconv.ServerPort(9092), semconv.MessagingConsumerGroupName("g"),
		}},
		Attrs: []attribute.KeyValue{
			semconv.MessagingDestinationPartitionID("3"), attribute.Int64("messaging.kafka.offset", 42),
			semconv.MessagingKafkaMessageKey("key"), semconv.MessagingConsumerGroupName("g"), semconv.MessagingMessageID("q/3/42"),
		},
	}
}

// BenchmarkMiddlewarePathKafka is BenchmarkMiddlewarePath with messages as
// the Kafka Subscriber delivers them: a destination with server and
// consumer group, and per-message partition, offset, key, group and ID.
// A span the sampler drops should cost nothing for the per-message ones.
func BenchmarkMiddlewarePathKafka(b *testing.B) {
	run := func(tp trace.TracerProvider) func(*testing.B) {
		return func(b *testing.B) { benchkit.Path(b, kafkaLoopback(), tp) }
	}
	b.Run("noop", run(noop.NewTracerProvider()))
	b.Run("sdk-never-sample", run(sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))))
	b.Run("sdk-always-sample", run(sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))))
}

// BenchmarkSampledOut is a message whose trace was sampled out before it
// was published (an unsampled parent), through the Kafka-shaped loopback
// on an SDK whose sampler keeps the parent's decision and drops roots,
// ParentBased(NeverSample): every span is dropped. "default" asks the SDK
// for each span (send, receive, process, settle) and pays for each dropped
// one; "parent-based" (WithParentBasedSampling) starts none whose parent is
// unsampled, leaving only the receive span, a root, to the sampler. "noop"
// is the no-op provider, the floor.
func BenchmarkSampledOut(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	run := func(opts ...middleware.Option) func(*testing.B) {
		return func(b *testing.B) {
			benchkit.ThroughFrom(b, benchkit.UnsampledContext(), kafkaLoopback(), middleware.NewTracing(opts...))
		}
	}
	b.Run("noop", run(middleware.WithTracerProvider(noop.NewTracerProvider())))
	b.Run("default", run(middleware.WithTracerProvider(tp)))
	b.Run("parent-based", run(middleware.WithTracerProvider(tp), middleware.WithParentBasedSampling(true)))
}
