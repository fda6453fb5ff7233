package middleware_test

import (
	"context"
	"testing"
	"time"

	"github.com/otelmq/otelmq/middleware"
)

// TestRetryStopsWhenContextEnded: Retry's wait between attempts ends when
// the handler's ctx ends, and no attempt follows, whatever the backoff: with
// a zero backoff the wait and the end of ctx were both ready, select chose
// between them at random, and a deadline around Retry let a random number
// of further attempts run on the ended ctx (and DeadLetter recorded
// whichever error the last of them returned).
func TestRetryStopsWhenContextEnded(t *testing.T) {
	for _, backoff := range []time.Duration{0, time.Hour} {
		retry := middleware.Retry(middleware.WithAttempts(5), middleware.WithBackoff(func(int) time.Duration { return backoff }))
		for range 50 { // select's choice is random: one run proves little
			ctx, cancel := context.WithCancel(context.Background())
			calls := 0
			err := retry(middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
				calls++
				cancel() // the deadline around Retry runs out during the attempt
				return errDeclined
			})).Handle(ctx, middleware.NewMessage(nil))
			cancel()
			if calls != 1 || err != errDeclined {
				t.Fatalf("backoff %v: %d attempts after ctx ended in the first, returned %v; want 1 and the attempt's error", backoff, calls, err)
			}
		}
	}
}
