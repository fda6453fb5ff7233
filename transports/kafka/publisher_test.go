package kafka_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
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

// ProduceSync returns results in the order records finish, not the order
// given: each message's ID must name the record that holds that message,
// over several partitions, and a failure must name its own message.
func TestPublishIDsMatchMessages(t *testing.T) {
	seeds, topic := cluster(t)
	p := kafka.NewPublisher(newProducer(t, seeds))
	msgs := make([]*middleware.Message, 40)
	for i := range msgs {
		msgs[i] = middleware.NewMessage(fmt.Appendf(nil, "v%02d", i))
		msgs[i].Key = []byte{byte(i)}
	}
	if err := p.Publish(t.Context(), topic, msgs...); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	byID := map[string]string{}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for len(byID) < len(msgs) && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			byID[fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)] = string(r.Value)
		})
	}
	wrong := 0
	for i, m := range msgs {
		if got := byID[m.ID]; got != string(m.Body) {
			wrong++
			t.Logf("message %d (%q) has ID %s, which holds %q", i, m.Body, m.ID, got)
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d messages got another message's ID", wrong, len(msgs))
	}

	// One message too large between two good ones: the error names it
	// alone, and the good ones have their IDs.
	mixed := []*middleware.Message{
		middleware.NewMessage([]byte("a")),
		middleware.NewMessage(bytes.Repeat([]byte("x"), 2<<20)),
		middleware.NewMessage([]byte("c")),
	}
	err = p.Publish(t.Context(), topic, mixed...)
	if err == nil || !strings.Contains(err.Error(), "message 1 ") || strings.Contains(err.Error(), "message 0 ") || strings.Contains(err.Error(), "message 2 ") {
		t.Errorf("Publish = %v, want message 1 alone failed", err)
	}
	if mixed[0].ID == "" || mixed[1].ID != "" || mixed[2].ID == "" {
		t.Errorf("IDs %q %q %q, want the good messages' only", mixed[0].ID, mixed[1].ID, mixed[2].ID)
	}
}

// The broker checks its message.max.bytes against a whole batch: two
// records that each fit, batched together, both fail MESSAGE_TOO_LARGE,
// yet each alone would go through, so their errors are not permanent
// (DeadLetter would dead-letter them at once). One record alone too
// large is.
func TestTooLargeIsPermanentOnlyAlone(t *testing.T) {
	c := faultCluster(t, "t", 1, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "2000"}))
	p := kafka.NewPublisher(newProducer(t, c.ListenAddrs()))
	one := func(n int) *middleware.Message {
		b := make([]byte, n)
		_, _ = rand.Read(b) // incompressible: the producer compresses
		return middleware.NewMessage(b)
	}
	if err := p.Publish(t.Context(), "t", one(1200)); err != nil {
		t.Fatalf("one record alone: %v", err)
	}
	if err := p.Publish(t.Context(), "t", one(1200), one(1200)); err == nil || middleware.IsPermanent(err) {
		t.Errorf("two records that each fit, in one call: %v, want an error that is not permanent", err)
	}
	if err := p.Publish(t.Context(), "t", one(4000)); !middleware.IsPermanent(err) {
		t.Errorf("one record too large alone: %v, want a permanent error", err)
	}
}
