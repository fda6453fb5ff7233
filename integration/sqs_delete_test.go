package integration

import (
	"fmt"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/awssqs"
)

// TestSQSBatchDeleteSpans: the SQS Subscriber deletes the successes of a
// poll with one DeleteMessageBatch, which the tracing middleware records as
// one settle span per batch: a child of the receive span linking each
// message's creation context (a batch of one is a child of its process
// span). Every message is covered exactly once, by fewer settle spans than
// messages.
func TestSQSBatchDeleteSpans(t *testing.T) {
	h := sqsHarness
	h.Setup = func(t *testing.T) Env {
		client := brokers.SQS(t)
		url := brokers.SQSQueue(t, client, "deletes", map[string]string{"VisibilityTimeout": "5"})
		// A linger that never passes: each poll's successes are one batch,
		// sent when its handlers have returned.
		return Env{
			Publisher:   awssqs.NewPublisher(client),
			Subscriber:  awssqs.NewSubscriber(client, awssqs.WithWaitTime(time.Second), awssqs.WithDeleteLinger(time.Hour)),
			Destination: url,
			Source:      url,
		}
	}
	r := newRig(t, h)
	const n = 25
	var msgs []*middleware.Message
	var bodies []string
	for i := range n {
		bodies = append(bodies, fmt.Sprintf("batch-delete-%02d", i))
		msgs = append(msgs, middleware.NewMessage([]byte(bodies[i])))
	}
	for lo := 0; lo < n; lo += 10 {
		if err := r.pub.Publish(t.Context(), r.Destination, msgs[lo:min(lo+10, n)]...); err != nil {
			t.Fatal(err)
		}
	}
	c := r.consume(r.sub, nil)
	c.waitFor(20*time.Second, bodies...)
	c.stop()

	// The creation context and process span of every delivery.
	creation := map[trace.SpanID]string{}
	process := map[trace.SpanID]string{}
	for _, d := range c.deliveries() {
		creation[d.msg.CreationContext().SpanID()] = string(d.msg.Body)
		process[d.span.SpanID()] = string(d.msg.Body)
	}
	settled := func() (spans []sdktrace.ReadOnlySpan, receives map[trace.SpanID]bool) {
		receives = map[trace.SpanID]bool{}
		for _, s := range r.rec.Ended() {
			switch v, _ := attrOf(s, "messaging.operation.type"); v.AsString() {
			case "settle":
				spans = append(spans, s)
			case "receive":
				receives[s.SpanContext().SpanID()] = true
			}
		}
		return spans, receives
	}
	var settles []sdktrace.ReadOnlySpan
	var receives map[trace.SpanID]bool
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		settles, receives = settled()
		covered := 0
		for _, s := range settles {
			covered += max(len(s.Links()), 1)
		}
		if covered >= n || time.Now().After(deadline) {
			break
		}
	}

	seen := map[string]int{}
	for _, s := range settles {
		if v, _ := attrOf(s, "messaging.operation.name"); v.AsString() != "delete" {
			t.Errorf("settle span %q: operation %q, want delete", s.Name(), v.AsString())
		}
		if len(s.Links()) <= 1 {
			body, ok := process[s.Parent().SpanID()]
			if !ok {
				t.Errorf("settle span %q of one message is not a child of a process span", s.Name())
			}
			seen[body]++
			continue
		}
		if !receives[s.Parent().SpanID()] {
			t.Errorf("settle span %q of %d messages is not a child of a receive span", s.Name(), len(s.Links()))
		}
		if v, _ := attrOf(s, "messaging.batch.message_count"); v.AsInt64() != int64(len(s.Links())) {
			t.Errorf("settle span %q: messaging.batch.message_count %d, %d links", s.Name(), v.AsInt64(), len(s.Links()))
		}
		for _, l := range s.Links() {
			body, ok := creation[l.SpanContext.SpanID()]
			if !ok {
				t.Errorf("settle span %q links %v, no message's creation context", s.Name(), l.SpanContext.SpanID())
			}
			seen[body]++
		}
	}
	for _, b := range bodies {
		if seen[b] != 1 {
			t.Errorf("%s: in %d settle spans, want 1", b, seen[b])
		}
	}
	if len(settles) >= n {
		t.Errorf("%d settle spans for %d messages, want one per batch", len(settles), n)
	}
}
