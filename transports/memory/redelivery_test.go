package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/memory"
)

// A message taken in a batch but never handed to a handler (the
// Subscribe context ended first) goes back uncounted: its first real
// delivery says DeliveryCount 1, as the package documents, so in-place
// Retry and WithMaxDeliveries count right after a restart.
func TestUndeliveredMessagesGoBackUncounted(t *testing.T) {
	b := memory.New()
	_ = b.Publish(context.Background(), "q", middleware.NewMessage([]byte("1")), middleware.NewMessage([]byte("2")))
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- b.Subscribe(ctx, "q", middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
			close(started)
			time.Sleep(50 * time.Millisecond) // msg 2 waits for the worker
			return nil
		}))
	}()
	<-started
	cancel()
	<-done
	var got *middleware.Message
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	_ = b.Subscribe(ctx2, "q", middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
		got = m
		cancel2()
		return nil
	}))
	if got == nil {
		t.Fatal("message 2 was not delivered again")
	}
	if string(got.Body) != "2" || got.DeliveryCount != 1 {
		t.Fatalf("message %q first handled with DeliveryCount %d, want 1", got.Body, got.DeliveryCount)
	}
}
