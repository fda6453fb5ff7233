package rabbitmq

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/otelmq/otelmq/middleware"
)

// TestShutdownStopsDeliveries: once Subscribe's context ends, the broker
// must deliver nothing more to it. The running handlers' acks free prefetch
// slots while they drain; a consumer still registered would be sent a new
// message for each, never handled and put back marked redelivered, so its
// first real delivery would read DeliveryCount 2, saturated on a classic
// queue. Only the deliveries prefetched before the end may come back
// redelivered.
func TestShutdownStopsDeliveries(t *testing.T) {
	conn, q := setup(t, nil)
	const n, prefetch, concurrency = 20, 4, 2
	batch := make([]*middleware.Message, n)
	for i := range batch {
		batch[i] = &middleware.Message{ID: fmt.Sprint(i)}
	}
	if err := NewPublisher(conn, WithConfirms(true)).Publish(t.Context(), q, batch...); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, n)
	release := make(chan struct{})
	r := subscribe(t, t.Context(), NewSubscriber(conn, WithConcurrency(concurrency), WithPrefetch(prefetch)), q,
		func(context.Context, *middleware.Message) error {
			started <- struct{}{}
			<-release
			return nil
		})
	for range concurrency {
		<-started
	}
	eventually(t, 5*time.Second, "the prefetch to fill", func() bool { return queueDepth(t, conn, q) == n-prefetch })
	stopped := make(chan error, 1)
	go func() { stopped <- r.stop(t) }()
	// The consumer is gone before the handlers finish: nothing can be
	// pushed into the slots their acks free.
	ch := rawChannel(t, conn)
	cancelled := false
	for deadline := time.Now().Add(5 * time.Second); !cancelled && time.Now().Before(deadline); {
		info, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
		if cancelled = err == nil && info.Consumers == 0; !cancelled {
			time.Sleep(20 * time.Millisecond)
		}
	}
	close(release)
	if !cancelled {
		t.Error("the consumer was still registered 5s after Subscribe's context ended, its handlers running")
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	redelivered, left := 0, 0
	for {
		d, ok, err := ch.Get(q, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		left++
		if d.Redelivered {
			redelivered++
		}
	}
	if left != n-concurrency || redelivered != prefetch-concurrency {
		t.Fatalf("%d messages left, %d of them redelivered; want %d, %d (the prefetched, unhandled ones)",
			left, redelivered, n-concurrency, prefetch-concurrency)
	}
}
