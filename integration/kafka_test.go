package integration

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/kafka"
)

func TestConformanceKafka(t *testing.T) { RunConformance(t, kafkaHarness) }

var kafkaHarness = Harness{
	System:           propagation.SystemKafka,
	KeepsKey:         true,
	CountsDeliveries: true,
	OrderedByKey:     true,
	Setup: func(t *testing.T) Env {
		topic := unique(t, "orders")
		seeds := brokers.Kafka(t, topic)
		group := unique(t, "billing")
		producer, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(producer.Close)
		newSub := func(t *testing.T) middleware.Subscriber {
			cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
				kgo.ConsumerGroup(group), kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cl.Close)
			return kafka.NewSubscriber(cl)
		}
		return Env{
			Publisher:     kafka.NewPublisher(producer),
			Subscriber:    newSub(t),
			Destination:   topic,
			Source:        topic,
			NewSubscriber: newSub,
		}
	},
}
