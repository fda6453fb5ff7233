package kafka_test

import (
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/kafka"
)

// recordAttrs are the per-record attributes a send or create span may
// carry; the rest describe the destination.
var recordAttrs = []attribute.Key{
	propagation.KafkaKey(nil).Key, propagation.KafkaTombstone(true).Key,
	propagation.PartitionID("").Key, propagation.KafkaOffset(0).Key, propagation.MessageID("").Key,
}

func recordAttrsOf(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, a := range s.Attributes() {
		for _, k := range recordAttrs {
			if a.Key == k {
				out[k] = a.Value
			}
		}
	}
	return out
}

// TestPublisherSpansDescribeTheRecord: the unified Publisher's send span
// of one message describes the record as the kgo Hooks' send span does
// (semconv's Kafka attributes): key, tombstone flag, and once produced its
// partition, offset and ID; a failed produce records what the message
// said. In a batch each message's create span carries its key, the send
// span none.
func TestPublisherSpansDescribeTheRecord(t *testing.T) {
	seeds, topic := cluster(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	tracing := middleware.NewTracing(middleware.WithTracerProvider(tp))
	pub := tracing.Publisher(kafka.NewPublisher(newProducer(t, seeds)))

	keyed := &middleware.Message{Key: []byte("user-1"), Body: []byte("v")}
	tombstone := &middleware.Message{Key: []byte("user-2")}
	for _, m := range []*middleware.Message{keyed, tombstone} {
		if err := pub.Publish(t.Context(), topic, m); err != nil {
			t.Fatal(err)
		}
	}
	sends := spansNamed(rec, "send "+topic)
	if len(sends) != 2 {
		t.Fatalf("%d send spans, want 2", len(sends))
	}
	for i, m := range []*middleware.Message{keyed, tombstone} {
		parts := strings.Split(m.ID, "/")
		if len(parts) != 3 {
			t.Fatalf("message ID %q", m.ID)
		}
		got := recordAttrsOf(sends[i])
		if got[propagation.KafkaKey(nil).Key].AsString() != string(m.Key) ||
			got[propagation.PartitionID("").Key].AsString() != parts[1] ||
			got[propagation.KafkaOffset(0).Key].Emit() != parts[2] ||
			got[propagation.MessageID("").Key].AsString() != m.ID {
			t.Errorf("send span of %s records %v", m.ID, got)
		}
		if _, ok := got[propagation.KafkaTombstone(true).Key]; ok != (m.Body == nil) {
			t.Errorf("send span of %s: tombstone recorded %v, want %v", m.ID, ok, m.Body == nil)
		}
	}

	rec.Reset()
	a, b := &middleware.Message{Key: []byte("a"), Body: []byte("1")}, &middleware.Message{Key: []byte("b"), Body: []byte("2")}
	if err := pub.Publish(t.Context(), topic, a, b); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, c := range spansNamed(rec, "create "+topic) {
		got := recordAttrsOf(c)
		if _, ok := got[propagation.KafkaOffset(0).Key]; ok {
			t.Errorf("create span records an offset before the produce: %v", got)
		}
		keys[got[propagation.KafkaKey(nil).Key].AsString()] = true
	}
	if !keys["a"] || !keys["b"] || len(keys) != 2 {
		t.Errorf("create spans record keys %v, want a and b", keys)
	}
	if got := recordAttrsOf(oneSpan(t, rec, "send "+topic)); len(got) != 0 {
		t.Errorf("a batch's send span records one record's attributes: %v", got)
	}

	rec.Reset()
	closed := newProducer(t, seeds)
	closed.Close()
	failed := &middleware.Message{Key: []byte("user-3"), Body: []byte("v")}
	if err := tracing.Publisher(kafka.NewPublisher(closed)).Publish(t.Context(), topic, failed); err == nil {
		t.Fatal("Publish on a closed client succeeded")
	}
	got := recordAttrsOf(oneSpan(t, rec, "send "+topic))
	if got[propagation.KafkaKey(nil).Key].AsString() != "user-3" {
		t.Errorf("failed send span records %v, want its key", got)
	}
	if _, ok := got[propagation.KafkaOffset(0).Key]; ok {
		t.Errorf("failed send span records an offset: %v", got)
	}
}
