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

// TestAbandonedPublishLeavesConnectionOpen: a Publish whose ctx ends while
// its channel is being set up (channel.open, confirm.select) gives up at
// once and closes that channel later. The close must follow the
// confirm.select it abandoned, never overtake it: a frame on a channel the
// broker has just closed makes it close the whole connection (504
// "expected 'channel.open'"). Abandoned at various points of the setup,
// many times over, the shared connection stays open and a later Publish
// on a fresh Publisher works.
func TestAbandonedPublishLeavesConnectionOpen(t *testing.T) {
	conn, q := setup(t, nil)
	for i := range 100 {
		p := NewPublisher(conn, WithConfirms(true))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Publish(ctx, q, middleware.NewMessage([]byte("x"))) }()
		time.Sleep(time.Duration(i%10) * 100 * time.Microsecond)
		cancel()
		<-done // either error: sent before the cancel, or abandoned
		_ = p.Close()
		if conn.IsClosed() {
			t.Fatalf("round %d: the connection was closed by abandoning a Publish", i)
		}
	}
	// The broker reports a 504 on its own schedule: give it a moment, then
	// prove the connection still carries a confirmed publish.
	time.Sleep(50 * time.Millisecond)
	p := NewPublisher(conn, WithConfirms(true))
	defer p.Close()
	if err := p.Publish(t.Context(), q, middleware.NewMessage([]byte("after"))); err != nil {
		t.Fatalf("Publish after the abandoned ones: %v", err)
	}
}
