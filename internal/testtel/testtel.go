// Package testtel gives tests tracing and metrics middleware that record
// into memory, with what they recorded at hand.
package testtel

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelmq/otelmq/middleware"
)

// Recorded is a Telemetry whose spans and metrics tests can read.
type Recorded struct {
	*middleware.Telemetry
	// Metrics collects what the metrics middleware recorded.
	Metrics *sdkmetric.ManualReader
	// Spans holds the spans the tracing middleware started and ended.
	Spans *tracetest.SpanRecorder
	// TracerProvider is the provider the tracing records with, for a test's
	// own spans (a producer's root, say).
	TracerProvider *sdktrace.TracerProvider
}

// New returns a Recorded configured by opts, shut down when t ends.
func New(t testing.TB, opts ...middleware.Option) *Recorded {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = tp.Shutdown(context.Background())
	})
	opts = append([]middleware.Option{middleware.WithMeterProvider(mp), middleware.WithTracerProvider(tp)}, opts...)
	return &Recorded{Telemetry: middleware.NewTelemetry(opts...), Metrics: reader, Spans: rec, TracerProvider: tp}
}
