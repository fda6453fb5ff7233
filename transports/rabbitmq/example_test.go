package rabbitmq_test

import (
	"context"
	"errors"
	"log"
	"os"
	"os/signal"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/rabbitmq"
)

// A publisher and a subscriber on a Connection that redials after the
// broker closes it. The handler's error requeues the message; a panic is
// recovered and does the same.
func Example() {
	conn, err := rabbitmq.Dial("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	pub := rabbitmq.NewPublisher(conn, rabbitmq.WithConfirms(true))
	defer pub.Close()
	msg := middleware.NewMessage([]byte(`{"order":42}`))
	msg.Key = []byte("customer-7")
	if err := pub.Publish(ctx, "orders", msg); err != nil {
		log.Print(err) // names each message that was not confirmed
	}

	sub := rabbitmq.NewSubscriber(conn, rabbitmq.WithConcurrency(4), rabbitmq.WithPrefetch(32))
	err = sub.Subscribe(ctx, "orders", middleware.HandlerFunc(func(ctx context.Context, m *middleware.Message) error {
		if len(m.Body) == 0 {
			return errors.New("empty order") // nacked and requeued
		}
		log.Printf("order %s (delivery %d)", m.Body, m.DeliveryCount)
		return nil // acked
	}))
	if err != nil {
		log.Print(err) // the queue is missing, access refused, ...
	}
}
