package integration

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/awssqs"
	"github.com/otelmq/otelmq/transports/rabbitmq"
)

// TestRabbitMQDeadLetterToSQSAfterFailedPublish: a dead-letter queue on
// another broker (SQS) that fails the first dead-letter publish. The
// RabbitMQ source message is then not settled; its redelivery on a classic
// queue (a saturated count of 2) runs Retry's attempts again, counted on
// from the first delivery's, and is dead-lettered once, with the
// attempts of both deliveries, the source's headers and its trace context.
func TestRabbitMQDeadLetterToSQSAfterFailedPublish(t *testing.T) {
	conn := brokers.RabbitMQ(t)
	q := brokers.RabbitMQQueue(t, conn, nil)
	client := brokers.SQS(t)
	dlq := brokers.SQSQueue(t, client, "dlq", nil)
	tr := newRMQTracing(t)
	raw := rabbitmq.NewPublisher(conn, rabbitmq.WithConfirms(true))
	t.Cleanup(func() { _ = raw.Close() })

	ctx, root := tr.tp.Tracer("test").Start(context.Background(), "POST /orders")
	sent := middleware.NewMessage([]byte("order-13"))
	sent.Headers["tenant"] = "acme"
	if err := tr.Publisher(raw).Publish(ctx, q, sent); err != nil {
		t.Fatal(err)
	}
	root.End()

	sqsPub := tr.Publisher(awssqs.NewPublisher(client))
	var dlqCalls atomic.Int32
	flaky := middleware.PublisherFunc(func(ctx context.Context, dest string, msgs ...*middleware.Message) error {
		if dlqCalls.Add(1) == 1 {
			return errors.New("sqs unavailable")
		}
		return sqsPub.Publish(ctx, dest, msgs...)
	})
	var mu sync.Mutex
	var seen []string // delivery count/attempt of each call
	handler := middleware.ChainHandler(
		middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
			mu.Lock()
			seen = append(seen, fmt.Sprintf("%d/%d", m.DeliveryCount, m.Attempts()))
			mu.Unlock()
			return errors.New("declined")
		}),
		middleware.DeadLetter(flaky, dlq, middleware.WithErrorText()),
		middleware.Retry(middleware.WithAttempts(3), middleware.WithBackoff(func(int) time.Duration { return time.Millisecond })),
	)
	rmqSubscribe(t, tr.Subscriber(rabbitmq.NewSubscriber(conn)), q, handler.Handle)
	dead := rmqSubscribe(t, tr.Subscriber(awssqs.NewSubscriber(client, awssqs.WithWaitTime(time.Second))), dlq, nil)

	got := next(t, dead, "DLQ")
	// Once the source is acked no handler runs for it any more: the count
	// of dead-letter publishes is final.
	tr.waitSpan("ack of the source", named("ack "+q))
	mu.Lock()
	calls := append([]string(nil), seen...)
	mu.Unlock()
	if want := []string{"1/1", "1/2", "1/3", "2/4", "2/5", "2/6"}; !reflect.DeepEqual(calls, want) {
		t.Errorf("handler calls (delivery count/attempt) %v, want %v", calls, want)
	}
	if n := dlqCalls.Load(); n != 2 {
		t.Errorf("%d dead-letter publishes, want 2: the failed one, then one for the redelivery", n)
	}
	for k, want := range map[string]string{
		middleware.HeaderDLQAttempts:  "6",
		middleware.HeaderDLQSource:    q,
		middleware.HeaderDLQError:     "declined",
		middleware.HeaderDLQErrorType: "_OTHER",
		"tenant":                      "acme",
		"traceparent":                 sent.Headers["traceparent"],
	} {
		if got.msg.Headers[k] != want {
			t.Errorf("dead-lettered %s = %q, want %q", k, got.msg.Headers[k], want)
		}
	}
	if string(got.msg.Body) != "order-13" {
		t.Errorf("dead-lettered body %q", got.msg.Body)
	}
	if got.span.TraceID() != root.SpanContext().TraceID() {
		t.Errorf("DLQ handler in trace %s, want the producer's %s", got.span.TraceID(), root.SpanContext().TraceID())
	}
}
