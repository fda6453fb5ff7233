package integration

import (
	"testing"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/rabbitmq"
)

func TestConformanceRabbitMQ(t *testing.T) { RunConformance(t, rabbitmqHarness) }

var rabbitmqHarness = Harness{
	System:           propagation.SystemRabbitMQ,
	KeepsKey:         true,
	CountsDeliveries: true,
	Setup: func(t *testing.T) Env {
		conn := brokers.RabbitMQ(t)
		q := brokers.RabbitMQQueue(t, conn, nil)
		pub := rabbitmq.NewPublisher(conn, rabbitmq.WithConfirms(true))
		t.Cleanup(func() { _ = pub.Close() })
		return Env{
			Publisher:   pub,
			Subscriber:  rabbitmq.NewSubscriber(conn, rabbitmq.WithConcurrency(4)),
			Destination: q, // routing key on the default exchange
			Source:      q,
		}
	},
}
