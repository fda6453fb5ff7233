package integration

import (
	"sync"
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
	Setup:            func(t *testing.T) Env { return kafkaEnvWith(t) },
}

// kafkaEnvWith is a fresh topic and group on the fixture's Kafka, with
// subscriber options (the soak and leak runs turn the retry backoff off: at
// 10% failures the default 100 ms pause of each failing partition would
// keep most partitions paused most of the time).
func kafkaEnvWith(t *testing.T, opts ...kafka.Option) Env {
	env, _ := kafkaEnvClosable(t, opts...)
	return env
}

// kafkaEnvClosable is kafkaEnvWith plus a function that closes its
// clients, the subscribers' and the producer's (idempotent; cleanup closes
// them too), for tests that count goroutines: a client's connections keep
// goroutines on both ends (kfake serves each connection with its own)
// until it is closed, and the producer opens its connections lazily, as
// it first produces, so after the count taken before the run.
func kafkaEnvClosable(t *testing.T, opts ...kafka.Option) (Env, func()) {
	var (
		mu      sync.Mutex
		clients []*kgo.Client
	)
	topic := unique(t, "orders")
	seeds := brokers.Kafka(t, topic)
	group := unique(t, "billing")
	producer, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	closeAll := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, cl := range clients {
			cl.Close()
		}
		clients = nil
		producer.Close()
	}
	newSub := func(t *testing.T) middleware.Subscriber {
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
			kgo.ConsumerGroup(group), kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		mu.Lock()
		clients = append(clients, cl)
		mu.Unlock()
		return kafka.NewSubscriber(cl, opts...)
	}
	return Env{
		Publisher:     kafka.NewPublisher(producer),
		Subscriber:    newSub(t),
		Destination:   topic,
		Source:        topic,
		NewSubscriber: newSub,
	}, closeAll
}
