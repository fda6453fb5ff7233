package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otelmq/otelmq/internal/testtel"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/kafka"
)

// pointsBy sums counter points by the value of attribute key.
func pointsBy(points []metricdata.DataPoint[int64], key string) map[string]int64 {
	out := map[string]int64{}
	for _, p := range points {
		v, _ := p.Attributes.Value(attribute.Key(key))
		out[v.Emit()] += p.Value
	}
	return out
}

// TestHooksMetrics: the hooks record semconv's required messaging metrics
// for code that drives kgo itself: each produced record is a send (its
// duration and sent.messages, with error.type when it failed), and each
// record handed to the loop through ReceiveContext is a consumed message.
func TestHooksMetrics(t *testing.T) {
	seeds, topic := cluster(t)
	tel := testtel.New(t)
	h := kafka.NewHooksWithTelemetry(tel.Telemetry)
	producer := hookedClient(t, seeds, h, kgo.RecordDeliveryTimeout(time.Second), kgo.UnknownTopicRetries(1))
	consumer := hookedClient(t, seeds, h, kgo.ConsumeTopics(topic), kgo.ConsumerGroup("g"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))

	const n = 3
	for i := range n {
		if err := producer.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := producer.ProduceSync(ctx, &kgo.Record{Topic: "no-such-topic", Value: []byte("v")}).FirstErr(); err == nil {
		t.Fatal("produce to a missing topic succeeded")
	}

	sent := tel.CounterPoints(t, middleware.MetricSentMessages)
	if got := pointsBy(sent, "messaging.destination.name"); got[topic] != n || got["no-such-topic"] != 1 {
		t.Errorf("sent.messages by destination %v, want %d to %s and 1 to no-such-topic", got, n, topic)
	}
	if got := pointsBy(sent, "error.type"); got[""] != n || sumExcept(got, "") != 1 {
		t.Errorf("sent.messages by error.type %v, want %d without and 1 with", got, n)
	}
	var sends uint64
	for _, p := range tel.OperationPoints(t, "send") {
		sends += p.Count
	}
	if sends != n+1 {
		t.Errorf("%d send operation.duration measurements, want %d", sends, n+1)
	}

	// The loop ends the first record's process span with an error, the
	// second's through Tracing.End without one, the rest with span.End,
	// which the process duration cannot see.
	consumed := 0
	for consumed < n {
		pollOne(t, consumer, h, func(ctx context.Context, r *kgo.Record) {
			_, span := h.StartProcess(ctx, r)
			switch consumed {
			case 0:
				h.Tracing().End(span, errors.New("handler failed"))
			case 1:
				h.Tracing().End(span, nil)
			default:
				span.End()
			}
			consumed++
		})
	}
	var ok, failed uint64
	for _, p := range processPoints(t, tel) {
		if v, _ := p.Attributes.Value("error.type"); v.AsString() == "_OTHER" {
			failed += p.Count
		} else {
			ok += p.Count
		}
	}
	if failed != 1 || ok != n-1 {
		t.Errorf("process durations: %d failed (want 1), %d ok (want %d)", failed, ok, n-1)
	}
	var queued uint64
	for _, p := range tel.HistogramPoints(t, middleware.MetricQueueTime) {
		queued += p.Count
	}
	if queued != n {
		t.Errorf("%d queue times, want %d (one per record, from its timestamp)", queued, n)
	}
	got := pointsBy(tel.CounterPoints(t, middleware.MetricConsumedMessages), "messaging.destination.name")
	if got[topic] != n {
		t.Errorf("consumed.messages by destination %v, want %d from %s", got, n, topic)
	}
	if p := tel.OperationPoints(t, "receive"); len(p) != 0 {
		t.Errorf("%d receive duration points: the hooks cannot see when a poll began", len(p))
	}
}

// TestHooksWithTracingRecordNoMetrics: NewHooksWithTracing is spans only.
func TestHooksWithTracingRecordNoMetrics(t *testing.T) {
	seeds, topic := cluster(t)
	tel := testtel.New(t)
	producer := hookedClient(t, seeds, kafka.NewHooksWithTracing(tel.Tracing))
	if err := producer.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if p := tel.CounterPoints(t, middleware.MetricSentMessages); len(p) != 0 {
		t.Errorf("sent.messages recorded without metrics: %v", p)
	}
	if len(tel.Spans.Ended()) != 1 {
		t.Errorf("%d spans, want the send span", len(tel.Spans.Ended()))
	}
}

func sumExcept(m map[string]int64, skip string) int64 {
	var n int64
	for k, v := range m {
		if k != skip {
			n += v
		}
	}
	return n
}

// processPoints returns the messaging.process.duration points recorded.
func processPoints(t *testing.T, tel *testtel.Recorded) []metricdata.HistogramDataPoint[float64] {
	t.Helper()
	return tel.HistogramPoints(t, middleware.MetricProcessDuration)
}
