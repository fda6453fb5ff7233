package rabbitmq

import (
	"context"
	"testing"
	"time"

	"github.com/otelmq/otelmq/middleware"
)

// TestStopLeavesConnectionOpen: Subscribe cancels its consumer when its
// ctx ends; that basic.cancel must reach the broker before the channel's
// close, never after, when the broker closes the whole connection (504
// "expected 'channel.open'"), with every other channel on it. Stopped right
// after it started, many times over, the shared connection stays open.
func TestStopLeavesConnectionOpen(t *testing.T) {
	conn, q := setup(t, nil)
	for i := range 60 {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- NewSubscriber(conn, WithReconnect(false)).Subscribe(ctx, q,
				middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil }))
		}()
		// Stopped at various points of its start (opening, basic.consume,
		// consuming).
		time.Sleep(time.Duration(i%5) * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("round %d: Subscribe = %v", i, err)
		}
		if conn.IsClosed() {
			t.Fatalf("round %d: the connection was closed by stopping a Subscribe", i)
		}
	}
}
