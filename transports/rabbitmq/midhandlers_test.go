package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// ackLog records, per message ID, the acks that succeeded and that failed.
type ackLog struct {
	mu         sync.Mutex
	ok, failed map[string]int
}

func (l *ackLog) Received(ctx context.Context, _ middleware.Destination, _ time.Time, _ []*middleware.Message) context.Context {
	return ctx
}

func (l *ackLog) Settled(_ context.Context, _ middleware.Destination, op string, _ time.Time, msgs []*middleware.Message, err error) {
	if op != propagation.OpAck {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range msgs {
		if err == nil {
			l.ok[m.ID]++
		} else {
			l.failed[m.ID]++
		}
	}
}

func needRabbitmqctl(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("rabbitmqctl is needed to force-close connections: %v", err)
		}
		t.Skipf("rabbitmqctl not found, cannot force-close connections: %v", err)
	}
}

// TestForcedCloseMidHandlers: the connection is force-closed while four
// handlers run (WithConcurrency(4), WithPrefetch(8)) and more deliveries
// wait in the prefetch. On a *Connection, the handlers' acks fail (they
// belong to the dead channel and must not be sent on the new one, where
// the same tags name other deliveries), those messages and the prefetched
// ones are redelivered, counted as such, every message ends acked once,
// and Subscribe goes on. Without reconnecting, Subscribe returns an error
// once its handlers are done, and every unacked message is back.
func TestForcedCloseMidHandlers(t *testing.T) {
	needRabbitmqctl(t)
	for _, reconnect := range []bool{true, false} {
		t.Run(fmt.Sprint("reconnect=", reconnect), func(t *testing.T) {
			prefix := fmt.Sprintf("otelmq-test-mid-%d-", time.Now().UnixNano())
			conn := dialNamed(t, prefix+"sub")
			raw := brokers.RabbitMQ(t)
			q := brokers.RabbitMQQueue(t, raw, nil)
			const n, running = 40, 4
			batch := make([]*middleware.Message, n)
			for i := range batch {
				batch[i] = &middleware.Message{ID: fmt.Sprint(i)}
			}
			if err := NewPublisher(raw, WithConfirms(true)).Publish(t.Context(), q, batch...); err != nil {
				t.Fatal(err)
			}
			log := &ackLog{ok: map[string]int{}, failed: map[string]int{}}
			release := make(chan struct{})
			var mu sync.Mutex
			var blocked []string
			counts := map[string][]int{}
			r := subscribe(t, middleware.WithObserver(t.Context(), log),
				NewSubscriber(conn, WithConcurrency(running), WithPrefetch(8), WithReconnect(reconnect)), q,
				func(_ context.Context, m *middleware.Message) error {
					mu.Lock()
					counts[m.ID] = append(counts[m.ID], m.DeliveryCount)
					block := len(blocked) < running
					if block {
						blocked = append(blocked, m.ID)
					}
					mu.Unlock()
					if block {
						<-release
					}
					return nil
				})
			eventually(t, 5*time.Second, "four handlers running", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(blocked) == running
			})
			eventually(t, 5*time.Second, "the prefetch to fill", func() bool { return queueDepth(t, raw, q) == n-8 })
			err := killConnections(t, prefix)
			close(release)
			if err != nil {
				t.Fatal(err)
			}

			if !reconnect {
				var serr error
				eventually(t, 10*time.Second, "Subscribe to return", func() bool {
					var done bool
					done, serr = r.returned()
					return done
				})
				var ae *amqp.Error
				if !errors.As(serr, &ae) || ae.Code != amqp.ConnectionForced {
					t.Errorf("Subscribe returned %v, want the 320 CONNECTION_FORCED", serr)
				}
				eventually(t, 5*time.Second, "the unacked messages back", func() bool { return queueDepth(t, raw, q) == n })
				return
			}

			eventually(t, 10*time.Second, "every message acked", func() bool {
				log.mu.Lock()
				defer log.mu.Unlock()
				return len(log.ok) == n
			})
			if done, err := r.returned(); done {
				t.Fatalf("Subscribe returned: %v", err)
			}
			if err := r.stop(t); err != nil {
				t.Fatal(err)
			}
			if d := queueDepth(t, raw, q); d != 0 {
				t.Errorf("%d message(s) back on the queue after every one was acked", d)
			}
			log.mu.Lock()
			defer log.mu.Unlock()
			mu.Lock()
			defer mu.Unlock()
			for id, c := range log.ok {
				if c != 1 {
					t.Errorf("message %s acked %d times", id, c)
				}
			}
			for _, id := range blocked {
				if log.failed[id] != 1 {
					t.Errorf("message %s: %d failed acks, want 1 (its channel died under its handler)", id, log.failed[id])
				}
				if c := counts[id]; len(c) != 2 || c[0] != 1 || c[1] != 2 {
					t.Errorf("message %s handled with DeliveryCounts %v, want [1 2]", id, c)
				}
			}
			if len(log.failed) != running {
				t.Errorf("failed acks %v, want only those of the %d running handlers", log.failed, running)
			}
		})
	}
}
