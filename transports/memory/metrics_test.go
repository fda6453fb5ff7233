package memory_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/memory"
)

// consumed sums messaging.client.consumed.messages over its data points.
func consumed(t *testing.T, reader *sdkmetric.ManualReader) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != middleware.MetricConsumedMessages {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				n += dp.Value
			}
		}
	}
	return n
}

// TestConsumedCountsDispatchedMessagesOnly: the broker pushes, so a message
// counts as consumed when it is handed to the handler, once per delivery.
// The messages a Subscribe took in a batch but gave back when its context
// ended were never delivered: they count when a later Subscribe delivers
// them, not twice.
func TestConsumedCountsDispatchedMessagesOnly(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	b := memory.New() // one handler at a time, batches of 10
	sub := middleware.NewMetrics(middleware.WithMeterProvider(mp)).Subscriber(b)
	// The first handler ends the Subscribe and waits until the two messages
	// of its batch that no handler took are back on the queue.
	stopAtFirstOfThree(t, b, sub)
	if n := consumed(t, reader); n != 1 {
		t.Errorf("after the first Subscribe: %d consumed, want 1 (one message was delivered)", n)
	}

	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	handled := 0
	err := sub.Subscribe(ctx2, "q", middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
		if handled++; handled == 2 {
			cancel2()
		}
		return nil
	}))
	if err != nil || handled != 2 {
		t.Fatalf("second Subscribe: %v, %d handled, want 2", err, handled)
	}
	if n := consumed(t, reader); n != 3 {
		t.Errorf("%d consumed, want 3: three messages, each delivered once", n)
	}
}
