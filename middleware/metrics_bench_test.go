package middleware_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// meterLoopback is bench_test.go's loopback (a transport that hands each
// published message straight to the subscriber's handler, reporting the
// poll and the settlement like a real transport) with a Describe that
// returns the server attributes a real transport reports, so the metrics
// middleware has the same attributes to turn into a set.
type meterLoopback struct {
	h   middleware.Handler
	obs middleware.Observer
	ctx context.Context
}

var meterLoopbackAttrs = []attribute.KeyValue{
	propagation.ServerAddress("broker.example"),
	propagation.ServerPort(5672),
}

func (l *meterLoopback) Describe(dest string) middleware.Destination {
	return middleware.Destination{System: "bench", Name: dest, Attributes: meterLoopbackAttrs}
}

func (l *meterLoopback) Publish(ctx context.Context, dest string, msgs ...*middleware.Message) error {
	for _, m := range msgs {
		in := &middleware.Message{ID: "id", Body: m.Body, Headers: m.Headers, Destination: dest, DeliveryCount: 1, Time: m.Time}
		batch := []*middleware.Message{in}
		start := time.Now()
		hctx := l.obs.Received(l.ctx, l.Describe(dest), start, batch)
		err := middleware.Call(hctx, l.h, in)
		l.obs.Settled(hctx, l.Describe(dest), "ack", start, batch, err)
	}
	return nil
}

func (l *meterLoopback) Subscribe(ctx context.Context, _ string, h middleware.Handler) error {
	l.h, l.obs, l.ctx = h, middleware.ObserverFrom(ctx), ctx
	return nil
}

type pubSubWrapper interface {
	Publisher(middleware.Publisher) middleware.Publisher
	Subscriber(middleware.Subscriber) middleware.Subscriber
}

// benchMetered publishes and consumes one message per iteration through mw
// over a meterLoopback: one send, one receive, one process and one ack
// recorded per message.
func benchMetered(b *testing.B, mw pubSubWrapper) {
	lb := &meterLoopback{}
	pub, sub := mw.Publisher(lb), mw.Subscriber(lb)
	handled := 0
	_ = sub.Subscribe(context.Background(), "q", middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
		handled++
		return nil
	}))
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), parent)
	body := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		msg := &middleware.Message{Body: body, Headers: make(map[string]string, 3)}
		msg.Time = time.Now()
		if err := pub.Publish(ctx, "q", msg); err != nil {
			b.Fatal(err)
		}
	}
	if handled == 0 {
		b.Fatal("nothing handled")
	}
}

// unwrapped is a pubSubWrapper that wraps nothing: the loopback's own cost.
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
