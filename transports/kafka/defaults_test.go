package kafka_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/kafka"
)

// TestSubscriberDefaults: a Subscriber without options takes at most 500
// records per poll, and after a handler failed pauses the record's
// partition for 100 ms, so the failed record comes back no sooner: the
// defaults the README's table of knobs gives.
func TestSubscriberDefaults(t *testing.T) {
	seeds, topic := cluster(t)
	msgs := publishN(t, seeds, topic, 1200, 1) // one partition: the fetch holds them all
	failID := msgs[0].ID

	var log eventLog
	var h handled
	var mu sync.Mutex
	var failedAt, redeliveredAt time.Time
	ctx := middleware.WithObserver(t.Context(), &log)
	subscribe(t, ctx, kafka.NewSubscriber(newConsumer(t, seeds, topic, "g")), topic, func(_ context.Context, msg *middleware.Message) error {
		if msg.ID == failID {
			mu.Lock()
			defer mu.Unlock()
			if failedAt.IsZero() {
				failedAt = time.Now()
				h.add(msg, false)
				return errors.New("declined")
			}
			if redeliveredAt.IsZero() {
				redeliveredAt = time.Now()
			}
		}
		h.add(msg, true)
		return nil
	})
	h.waitAll(t, msgs)

	mu.Lock()
	if gap := redeliveredAt.Sub(failedAt); gap < 100*time.Millisecond {
		t.Errorf("the failed record came back %v after its failure, want 100 ms at least (the default retry backoff)", gap)
	}
	mu.Unlock()
	log.mu.Lock()
	defer log.mu.Unlock()
	largest := 0
	for _, p := range log.polls {
		largest = max(largest, len(p))
	}
	if largest != 500 {
		t.Errorf("the largest of %d polls took %d records, want 500", len(log.polls), largest)
	}
}
