package brokers

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestNoDockerFallsBack: without a Docker engine every container path fails
// fast with an error (localstack.Run's panic recovered), and the fixtures
// fall back to in-process or local brokers even when containers are asked for.
func TestNoDockerFallsBack(t *testing.T) {
	start := time.Now()
	if err := Docker(); err == nil {
		t.Skip("a Docker engine answers here, so fixtures take the container path; this test covers machines without one")
	} else {
		t.Logf("Docker probe: %v (%s)", err, time.Since(start).Round(time.Millisecond))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the Docker probe took %s", d)
	}
	for name, run := range map[string]func() error{
		"kafka":      func() error { _, err := kafkaContainer(t); return err },
		"rabbitmq":   func() error { _, err := startRabbitMQContainer(); return err },
		"localstack": func() error { _, err := startLocalstack(); return err },
	} {
		began := time.Now()
		err := run() // a panic here fails the test
		if err == nil {
			t.Fatalf("%s: a container started without Docker", name)
		}
		if d := time.Since(began); d > 30*time.Second {
			t.Errorf("%s: took %s to fail", name, d)
		}
		t.Logf("%s: %v", name, err)
	}

	t.Setenv("OTELMQ_TESTCONTAINERS", "1")
	if use, err := UseContainers(); use || err == nil {
		t.Fatalf("UseContainers() = %v, %v without Docker", use, err)
	}
	seeds := Kafka(t, "fallback-topic")
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "fallback-topic", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("the Kafka fallback does not work: %v", err)
	}
	if SQS(t) == nil {
		t.Fatal("no SQS fallback")
	}
}
