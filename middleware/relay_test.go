package middleware_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/otelmq/otelmq/middleware"
)

// hangingPublisher stands for a destination that stops answering (a
// RabbitMQ connection blocked by a resource alarm): Publish returns only
// when its ctx ends. No broker can be made to hang at this exact point.
type hangingPublisher struct{ deadline chan bool }

func (p hangingPublisher) Publish(ctx context.Context, _ string, _ ...*middleware.Message) error {
	_, ok := ctx.Deadline()
	p.deadline <- ok
	<-ctx.Done()
	return ctx.Err()
}

// TestRelayTimeout: a relay publish to a destination that hangs fails after
// WithRelayTimeout, so the handler returns (the source redelivers) instead
// of holding its worker and Subscribe's shutdown; without the option the
// default bounds it too.
func TestRelayTimeout(t *testing.T) {
	pub := hangingPublisher{deadline: make(chan bool, 2)}
	h := middleware.RelayHandler(pub, "dst", middleware.WithRelayTimeout(20*time.Millisecond))
	done := make(chan error, 1)
	go func() { done <- h.Handle(context.Background(), &middleware.Message{ID: "m"}) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("relay to a hanging destination: %v, want a deadline error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the relay handler still blocks after its timeout")
	}
	if !<-pub.deadline {
		t.Error("the relay publish had no deadline")
	}

	// The default bounds the publish too (30 s: only the deadline is
	// checked here).
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = middleware.RelayHandler(pub, "dst").Handle(ctx, &middleware.Message{ID: "m"}) }()
	if !<-pub.deadline {
		t.Error("without WithRelayTimeout the relay publish had no deadline")
	}
	cancel()
}

// TestRelayErrorNamesDestination: a failed relay names the message and the
// destination; through DualPublish, which takes no destination of its own
// in Publish, the primary's.
func TestRelayErrorNamesDestination(t *testing.T) {
	refuse := middleware.PublisherFunc(func(context.Context, string, ...*middleware.Message) error {
		return errors.New("refused")
	})
	err := middleware.RelayHandler(refuse, "orders").Handle(context.Background(), &middleware.Message{ID: "m-1"})
	if want := `otelmq: relaying message "m-1" to "orders": refused`; err == nil || err.Error() != want {
		t.Errorf("relay error %v, want %q", err, want)
	}
	dual := middleware.DualPublish(refuse, "orders-v1", refuse, "orders-v2")
	err = middleware.RelayHandler(dual, "").Handle(context.Background(), &middleware.Message{ID: "m-2"})
	if want := `otelmq: relaying message "m-2" to "orders-v1": refused`; err == nil || err.Error() != want {
		t.Errorf("relay error through DualPublish %v, want %q", err, want)
	}
}
