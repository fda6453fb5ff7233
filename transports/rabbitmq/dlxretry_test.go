package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
)

// TestDeliveryCountDelayedRetry: the common delayed-retry topology, a
// rejected message dead-lettered to a queue whose TTL dead-letters it back,
// records two x-death entries per attempt, one "rejected" and one
// "expired". Only the rejection was a delivery: DeliveryCount must count
// attempts (1, 2, 3), not dead-letterings (1, 3, 5), or DeadLetter's
// maximum is reached after half the attempts it allows.
func TestDeliveryCountDelayedRetry(t *testing.T) {
	conn := brokers.RabbitMQ(t)
	// The two queues name each other: the delay queue is declared here,
	// under a name chosen first, and deleted at cleanup.
	delay := fmt.Sprintf("otelmq-test-delay-%d", time.Now().UnixNano())
	work := brokers.RabbitMQQueue(t, conn, amqp.Table{
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": delay,
	})
	ch := rawChannel(t, conn)
	if _, err := ch.QueueDeclare(delay, false, true, false, false, amqp.Table{
		"x-message-ttl":             int32(10),
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": work,
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(delay, false, false, false)
			_ = ch.Close()
		}
	})
	if err := NewPublisher(conn, WithConfirms(true)).Publish(t.Context(), work, &middleware.Message{ID: "m"}); err != nil {
		t.Fatal(err)
	}
	counts := make(chan int, 8)
	attempts := 0 // one handler at a time
	subscribe(t, t.Context(), NewSubscriber(conn, WithRequeue(false)), work, func(_ context.Context, m *middleware.Message) error {
		counts <- m.DeliveryCount
		if attempts++; attempts < 3 {
			return errors.New("try later")
		}
		return nil
	})
	for want := 1; want <= 3; want++ {
		select {
		case got := <-counts:
			if got != want {
				t.Fatalf("attempt %d: DeliveryCount = %d", want, got)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("attempt %d did not come back", want)
		}
	}
}

// TestDeliveryCountOnRequeue: a handler failing with requeueing on, as
// the package doc maps it. A quorum queue counts every requeue
// (x-delivery-count); a classic queue only sets the redelivered flag, so
// its count stops at 2, which the Subscriber marks saturated, so that
// Retry and DeadLetter do not wait for a count that never comes.
func TestDeliveryCountOnRequeue(t *testing.T) {
	for _, tc := range []struct {
		queueType string
		counts    []int
		saturated []bool
	}{
		{"classic", []int{1, 2, 2, 2}, []bool{false, true, true, true}},
		{"quorum", []int{1, 2, 3, 4}, []bool{false, false, false, false}},
	} {
		t.Run(tc.queueType, func(t *testing.T) {
			conn, q := setup(t, amqp.Table{"x-queue-type": tc.queueType})
			if err := NewPublisher(conn, WithConfirms(true)).Publish(t.Context(), q, &middleware.Message{ID: "m"}); err != nil {
				t.Fatal(err)
			}
			type delivery struct {
				count     int
				saturated bool
			}
			got := make(chan delivery, len(tc.counts))
			attempts := 0 // one handler at a time
			subscribe(t, t.Context(), NewSubscriber(conn), q, func(_ context.Context, m *middleware.Message) error {
				got <- delivery{m.DeliveryCount, m.DeliveryCountSaturated()}
				if attempts++; attempts < len(tc.counts) {
					return errors.New("again")
				}
				return nil
			})
			for i := range tc.counts {
				select {
				case d := <-got:
					if d.count != tc.counts[i] || d.saturated != tc.saturated[i] {
						t.Errorf("delivery %d: DeliveryCount %d, saturated %v; want %d, %v", i+1, d.count, d.saturated, tc.counts[i], tc.saturated[i])
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("delivery %d did not come", i+1)
				}
			}
		})
	}
}
