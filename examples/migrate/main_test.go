package main

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/examples/internal/embedded"
	"github.com/otelmq/otelmq/integration/brokers"
)

// TestMigrate checks, on a real RabbitMQ and kfake, that the same handler
// runs on both paths and that each order is one trace through the old and
// the new path: the relayed order from its legacy RabbitMQ publish through
// the relay to the Kafka consumer, the dual-published one through both.
func TestMigrate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep, err := run(ctx, &out)
	var no *embedded.NoBrokerError
	if errors.As(err, &no) {
		brokers.Unavailable(t, "RabbitMQ", err)
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log(out.String())

	type key struct{ order, path string }
	got := map[key]int{}
	for _, h := range rep.handled {
		got[key{h.order, h.path}]++
		if h.trace != rep.traces[h.order] {
			t.Errorf("order %s via %s: handled in trace %s, producer's is %s", h.order, h.path, h.trace, rep.traces[h.order])
		}
	}
	for _, k := range []key{{"relayed", "kafka"}, {"dual", "rabbitmq"}, {"dual", "kafka"}} {
		if got[k] == 0 {
			t.Errorf("order %s never handled via %s (handled: %v)", k.order, k.path, rep.handled)
		}
	}
	if got[key{"relayed", "rabbitmq"}] != 0 {
		t.Errorf("the relayed order reached the old consumer")
	}

	// The relayed order's trace: RabbitMQ send, the relay's RabbitMQ process
	// and Kafka send, the Kafka process, and the handler under it. The
	// relay's send is a CLIENT span: the message keeps its creation
	// context, the RabbitMQ send span, which semconv's PRODUCER kind marks.
	need := map[string]trace.SpanKind{}
	for _, s := range rep.spans {
		if s.SpanContext().TraceID() != rep.traces["relayed"] {
			continue
		}
		for _, kv := range s.Attributes() {
			if kv.Key == "messaging.system" {
				need[kv.Value.AsString()+" "+s.SpanKind().String()] = s.SpanKind()
			}
		}
	}
	for _, k := range []string{"rabbitmq producer", "rabbitmq consumer", "kafka client", "kafka consumer"} {
		if _, ok := need[k]; !ok {
			t.Errorf("relayed order's trace has no %s span (has %v)", k, need)
		}
	}
}
