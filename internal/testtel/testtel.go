// Package testtel gives tests tracing and metrics middleware that record
// into memory, with what they recorded at hand.
package testtel

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
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
	// MeterProvider is the provider the metrics record with, for code
	// that takes options rather than a Telemetry.
	MeterProvider *sdkmetric.MeterProvider
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
	return &Recorded{Telemetry: middleware.NewTelemetry(opts...), Metrics: reader, Spans: rec, TracerProvider: tp, MeterProvider: mp}
}

// OperationPoints returns the messaging.client.operation.duration points
// of operation op (messaging.operation.name) recorded so far.
func (r *Recorded) OperationPoints(t testing.TB, op string) []metricdata.HistogramDataPoint[float64] {
	t.Helper()
	var out []metricdata.HistogramDataPoint[float64]
	for _, dp := range r.HistogramPoints(t, middleware.MetricOperationDuration) {
		if v, _ := dp.Attributes.Value("messaging.operation.name"); v.AsString() == op {
			out = append(out, dp)
		}
	}
	return out
}

// HistogramPoints returns the points of the float64 histogram named name
// (messaging.process.duration, otelmq.message.queue_time) recorded so far.
func (r *Recorded) HistogramPoints(t testing.TB, name string) []metricdata.HistogramDataPoint[float64] {
	t.Helper()
	var out []metricdata.HistogramDataPoint[float64]
	for _, sm := range r.collect(t).ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == name {
				out = append(out, h.DataPoints...)
			}
		}
	}
	return out
}

// CounterPoints returns the points of the int64 counter named name
// (messaging.client.sent.messages, consumed.messages) recorded so far.
func (r *Recorded) CounterPoints(t testing.TB, name string) []metricdata.DataPoint[int64] {
	t.Helper()
	var out []metricdata.DataPoint[int64]
	for _, sm := range r.collect(t).ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == name {
				out = append(out, sum.DataPoints...)
			}
		}
	}
	return out
}

// collect reads what has been recorded so far.
func (r *Recorded) collect(t testing.TB) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}
