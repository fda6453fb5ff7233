package rabbitmq

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/otelmq/otelmq/middleware"
)

// TestSubscriberDefaults: a Subscriber without options takes 64 messages
// from the queue (basic.qos prefetch 64) and handles them one at a time, in
// queue order: the defaults the README's table of knobs gives.
func TestSubscriberDefaults(t *testing.T) {
	conn, q := setup(t, nil)
	const n, prefetch = 100, 64
	batch := make([]*middleware.Message, n)
	for i := range batch {
		batch[i] = &middleware.Message{ID: fmt.Sprintf("%03d", i)}
	}
	if err := NewPublisher(conn, WithConfirms(true)).Publish(t.Context(), q, batch...); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	running, peak := 0, 0
	release := make(chan struct{})
	subscribe(t, t.Context(), NewSubscriber(conn), q, func(_ context.Context, m *middleware.Message) error {
		mu.Lock()
		running++
		peak = max(peak, running)
		order = append(order, m.ID)
		first := len(order) == 1
		mu.Unlock()
		if first {
			<-release
		}
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	})
	// While the first handler holds, the broker sends the prefetch and no
	// more: the rest stay ready on the queue.
	eventually(t, 10*time.Second, "the prefetch to leave the queue", func() bool { return queueDepth(t, conn, q) <= n-prefetch })
	time.Sleep(200 * time.Millisecond) // room for a larger prefetch to show
	if d := queueDepth(t, conn, q); d != n-prefetch {
		t.Errorf("%d messages left ready while the first handler ran, want %d (prefetch %d)", d, n-prefetch, prefetch)
	}
	mu.Lock()
	if running != 1 {
		t.Errorf("%d handlers running beside the held one, want it alone", running-1)
	}
	mu.Unlock()
	close(release)
	eventually(t, 20*time.Second, "every message handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) >= n
	})
	mu.Lock()
	defer mu.Unlock()
	if peak != 1 {
		t.Errorf("%d handlers ran at once, want 1", peak)
	}
	if len(order) != n || !slices.IsSorted(order) {
		t.Errorf("handled %d messages, in order %v; want %d in queue order", len(order), order, n)
	}
}
