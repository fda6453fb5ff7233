package middleware_test

import (
	"context"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otelmq/otelmq/middleware"
)

// TestMetricInstruments pins what a dashboard or alert is written against:
// each metric's name (the semantic conventions' for messaging, written out
// here rather than read from the package's constants), unit, instrument
// kind and, for the semconv durations, the advised bucket boundaries.
func TestMetricInstruments(t *testing.T) {
	for constant, want := range map[string]string{
		middleware.MetricOperationDuration: "messaging.client.operation.duration",
		middleware.MetricSentMessages:      "messaging.client.sent.messages",
		middleware.MetricConsumedMessages:  "messaging.client.consumed.messages",
		middleware.MetricProcessDuration:   "messaging.process.duration",
		middleware.MetricQueueTime:         "otelmq.message.queue_time",
	} {
		if constant != want {
			t.Errorf("metric name %q, want %q", constant, want)
		}
	}

	h := newHarnessOn(t, newPolled()) // a pull transport: receive durations too
	if err := h.pub.Publish(context.Background(), "q", middleware.NewMessage(nil)); err != nil {
		t.Fatal(err)
	}
	h.consume("q", 1, func(context.Context, *middleware.Message) error { return nil })
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = m
		}
	}
	semconvBuckets := []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
	for _, want := range []struct {
		name, unit string
		histogram  bool
		buckets    []float64
	}{
		{"messaging.client.operation.duration", "s", true, semconvBuckets},
		{"messaging.client.sent.messages", "{message}", false, nil},
		{"messaging.client.consumed.messages", "{message}", false, nil},
		{"messaging.process.duration", "s", true, semconvBuckets},
		{"otelmq.message.queue_time", "s", true, nil},
	} {
		m, ok := got[want.name]
		if !ok {
			t.Errorf("no %s recorded", want.name)
			continue
		}
		if m.Unit != want.unit {
			t.Errorf("%s unit %q, want %q", want.name, m.Unit, want.unit)
		}
		switch data := m.Data.(type) {
		case metricdata.Histogram[float64]:
			if !want.histogram {
				t.Errorf("%s is a histogram, want a counter", want.name)
				continue
			}
			for _, dp := range data.DataPoints {
				if want.buckets != nil && !slices.Equal(dp.Bounds, want.buckets) {
					t.Errorf("%s buckets %v, want %v", want.name, dp.Bounds, want.buckets)
				}
			}
		case metricdata.Sum[int64]:
			if want.histogram || !data.IsMonotonic {
				t.Errorf("%s is a counter (monotonic %v), want a histogram", want.name, data.IsMonotonic)
			}
		default:
			t.Errorf("%s is a %T", want.name, m.Data)
		}
	}
}
