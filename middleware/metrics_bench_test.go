package middleware_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/otelmq/otelmq/internal/benchkit"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// meterLoopback is the loopback with the server attributes a real
// transport reports, so the metrics middleware has the same attributes to
// turn into a set, and stamped messages, so it records a queue time.
func meterLoopback() *benchkit.Loopback {
	return &benchkit.Loopback{Stamp: true, Dest: &middleware.Destination{System: "bench", Name: "q", Attributes: []attribute.KeyValue{
		propagation.ServerAddress("broker.example"),
		propagation.ServerPort(5672),
	}}}
}

// benchMetered publishes and consumes one message per iteration through mw
// over a meterLoopback: one send, one receive, one process and one ack
// recorded per message.
func benchMetered(b *testing.B, mw benchkit.Wrapper) { benchkit.Through(b, meterLoopback(), mw) }

// unwrapped is a benchkit.Wrapper that wraps nothing: the loopback's own cost.
type unwrapped struct{}

func (unwrapped) Publisher(p middleware.Publisher) middleware.Publisher    { return p }
func (unwrapped) Subscriber(s middleware.Subscriber) middleware.Subscriber { return s }

func sdkMeterProvider(b *testing.B) metric.MeterProvider {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp
}

// BenchmarkMetricsPath is the per-message cost of publish + consume through
// the metrics middleware alone ("noop", "sdk": the no-op MeterProvider and
// an SDK one with a ManualReader) and through NewTelemetry with no-op
// tracing and the SDK meter. "loopback" is the transport without
// middleware, what every other case pays too: the rest is the middleware's.
func BenchmarkMetricsPath(b *testing.B) {
	b.Run("loopback", func(b *testing.B) { benchMetered(b, unwrapped{}) })
	b.Run("noop", func(b *testing.B) {
		benchMetered(b, middleware.NewMetrics(middleware.WithMeterProvider(metricnoop.NewMeterProvider())))
	})
	b.Run("sdk", func(b *testing.B) {
		benchMetered(b, middleware.NewMetrics(middleware.WithMeterProvider(sdkMeterProvider(b))))
	})
	b.Run("telemetry-sdk", func(b *testing.B) {
		benchMetered(b, middleware.NewTelemetry(
			middleware.WithTracerProvider(tracenoop.NewTracerProvider()),
			middleware.WithMeterProvider(sdkMeterProvider(b))))
	})
}
