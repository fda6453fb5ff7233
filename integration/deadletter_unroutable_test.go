package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/memory"
	"github.com/otelmq/otelmq/transports/rabbitmq"
)

// TestDeadLetterToUnroutableRabbitMQ: DeadLetter to a RabbitMQ queue that
// does not exist (a typo, a deleted DLQ) fails the dead-letter publish, so
// the source message is not settled: the broker would have confirmed the
// unroutable message and dropped it, and the message would be gone.
func TestDeadLetterToUnroutableRabbitMQ(t *testing.T) {
	conn := brokers.RabbitMQ(t)
	src := memory.New()
	if err := src.Publish(context.Background(), "in", middleware.NewMessage([]byte("poison"))); err != nil {
		t.Fatal(err)
	}
	pub := rabbitmq.NewPublisher(conn, rabbitmq.WithConfirms(true))
	defer pub.Close()
	var dlqErr error
	failing := middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return errors.New("bad payload") })
	h := middleware.ChainHandler(failing, middleware.DeadLetter(pub, "otelmq-no-such-queue-"+t.Name()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- src.Subscribe(ctx, "in", middleware.HandlerFunc(func(ctx context.Context, m *middleware.Message) error {
			err := h.Handle(ctx, m)
			if dlqErr == nil {
				dlqErr = err
				cancel()
			}
			return err
		}))
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("the handler never ran")
	}
	if dlqErr == nil {
		t.Fatal("the dead-letter publish to a missing queue succeeded")
	}
	if ready, inFlight := src.Len("in"); ready+inFlight != 1 {
		t.Errorf("source holds %d ready, %d in flight: want the message kept", ready, inFlight)
	}
}
