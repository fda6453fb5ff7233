package rabbitmq

import (
	"context"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
)

// TestServerNamedQueueNotAMetricAttribute: a queue the broker named
// (declared with an empty name: amq.gen-..., one per declaration, as the
// exclusive queue of each consumer of a fanout or an RPC client's reply
// queue) must not become a metric attribute, on the consuming side (the
// queue) or the publishing side (the default exchange's routing key):
// metrics would get a series per declaration. Its messages are still
// counted and measured.
func TestServerNamedQueueNotAMetricAttribute(t *testing.T) {
	conn := brokers.RabbitMQ(t)
	ch := rawChannel(t, conn)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(q.Name, "amq.gen-") {
		t.Fatalf("server-named queue %q", q.Name)
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	m := middleware.NewMetrics(middleware.WithMeterProvider(mp))

	ctx := t.Context()
	pub := NewPublisher(conn, WithConfirms(true))
	defer pub.Close()
	if err := m.Publisher(pub).Publish(ctx, q.Name, middleware.NewMessage([]byte("reply"))); err != nil {
		t.Fatal(err)
	}
	got := make(chan *middleware.Message, 1)
	// The exclusive queue belongs to this connection: consume on it.
	r := subscribe(t, ctx, m.Subscriber(NewSubscriber(conn)), q.Name, func(_ context.Context, msg *middleware.Message) error {
		got <- msg
		return nil
	})
	receive(t, got, 1, 10*time.Second)
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			switch data := mt.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					counts[mt.Name] += dp.Value
					for _, kv := range dp.Attributes.ToSlice() {
						if strings.Contains(kv.Value.Emit(), "amq.gen-") {
							t.Errorf("%s: %s=%s", mt.Name, kv.Key, kv.Value.Emit())
						}
					}
				}
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					counts[mt.Name] += int64(dp.Count)
					for _, kv := range dp.Attributes.ToSlice() {
						if strings.Contains(kv.Value.Emit(), "amq.gen-") {
							t.Errorf("%s: %s=%s", mt.Name, kv.Key, kv.Value.Emit())
						}
					}
				}
			}
		}
	}
	for _, name := range []string{middleware.MetricSentMessages, middleware.MetricConsumedMessages, middleware.MetricProcessDuration} {
		if counts[name] != 1 {
			t.Errorf("%s: %d, want 1", name, counts[name])
		}
	}
	if counts[middleware.MetricOperationDuration] != 2 { // the send and the ack
		t.Errorf("%s: %d, want 2", middleware.MetricOperationDuration, counts[middleware.MetricOperationDuration])
	}
}
