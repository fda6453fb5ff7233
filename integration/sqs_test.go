package integration

import (
	"testing"
	"time"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/awssqs"
)

func TestConformanceSQS(t *testing.T) { RunConformance(t, sqsHarness) }

var sqsHarness = Harness{
	System: propagation.SystemSQS,
	// The emulator always reports ApproximateReceiveCount 1 and drops
	// MessageGroupId on standard queues.
	KeepsKey:         false,
	CountsDeliveries: false,
	AtLeastOnce:      true,
	// SQS caps a message (body and attributes) at 256 KB.
	MaxHeaderBytes: 64 << 10,
	Setup: func(t *testing.T) Env {
		client := brokers.SQS(t)
		url := brokers.SQSQueue(t, client, "orders", map[string]string{"VisibilityTimeout": "1"})
		opts := []awssqs.Option{awssqs.WithWaitTime(time.Second), awssqs.WithRetryVisibility(0)}
		return Env{
			Publisher:   awssqs.NewPublisher(client, opts...),
			Subscriber:  awssqs.NewSubscriber(client, opts...),
			Destination: url,
			Source:      url,
		}
	},
}
