package rabbitmq

import (
	"context"
	"errors"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
)

// amqp091's own recovery reopens a channel in place with delivery tags
// starting again at 1, under handlers still settling the old channel's
// deliveries: Subscribe refuses such a connection, and Dial turns
// recovery off in the connections it makes.
func TestAMQPRecovery(t *testing.T) {
	url := brokers.RabbitMQURL(t)
	raw, err := amqp.DialConfig(url, amqp.Config{Recovery: &amqp.Recovery{}})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if !raw.IsRecoveryEnabled() {
		t.Fatal("amqp091 did not enable recovery: the test proves nothing")
	}
	err = NewSubscriber(raw).Subscribe(t.Context(), "any", middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil }))
	if !errors.Is(err, ErrAMQPRecovery) {
		t.Fatalf("Subscribe on a recovering connection returned %v, want ErrAMQPRecovery", err)
	}

	conn, err := Dial(url, WithAMQPConfig(amqp.Config{Recovery: &amqp.Recovery{}}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.mu.Lock()
	on := conn.conn.IsRecoveryEnabled()
	conn.mu.Unlock()
	if on {
		t.Fatal("Dial kept amqp091's recovery on")
	}
}
