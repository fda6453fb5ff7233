package kafka_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/kafka"
)

func TestPublishNilMessage(t *testing.T) {
	seeds, topic := cluster(t)
	good := middleware.NewMessage([]byte("ok"))
	err := kafka.NewPublisher(newProducer(t, seeds)).Publish(t.Context(), topic, nil, good, nil)
	if err == nil || !strings.Contains(err.Error(), "message 0") || !strings.Contains(err.Error(), "message 2") ||
		strings.Contains(err.Error(), "message 1") {
		t.Fatalf("Publish = %v, want errors for messages 0 and 2 only", err)
	}
	if good.ID == "" {
		t.Error("the non-nil message was not published")
	}
}

func TestPublishClosedClient(t *testing.T) {
	seeds, topic := cluster(t)
	cl := newProducer(t, seeds)
	cl.Close()
	msgs := []*middleware.Message{middleware.NewMessage([]byte("a")), middleware.NewMessage([]byte("b"))}
	msgs[1].ID = "mine"
	err := kafka.NewPublisher(cl).Publish(t.Context(), topic, msgs...)
	if !errors.Is(err, kgo.ErrClientClosed) {
		t.Fatalf("Publish = %v, want ErrClientClosed", err)
	}
	for _, want := range []string{"2 message(s)", "message 0", `message 1 (id "mine")`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestPublisherDescribe(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("broker.example:9093", "other:9092"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	d := kafka.NewPublisher(cl).Describe("orders")
	if d.System != propagation.SystemKafka || d.Name != "orders" ||
		!hasAttr(d.Attributes, propagation.ServerAddress("broker.example")) || !hasAttr(d.Attributes, propagation.ServerPort(9093)) {
		t.Errorf("Describe = %+v", d)
	}
	d = kafka.NewPublisher(cl, kafka.WithServer("kafka.internal", 19092)).Describe("orders")
	if !hasAttr(d.Attributes, propagation.ServerAddress("kafka.internal")) || !hasAttr(d.Attributes, propagation.ServerPort(19092)) {
		t.Errorf("Describe with WithServer = %+v", d)
	}
	if err := kafka.NewPublisher(nil).Publish(t.Context(), "orders", middleware.NewMessage(nil)); err == nil {
		t.Error("Publish with a nil client = nil")
	}
}
