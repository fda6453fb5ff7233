package kafka_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/transports/kafka"
)

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// cluster returns the seeds of a cluster with a topic unique to t.
func cluster(t *testing.T) (seeds []string, topic string) {
	t.Helper()
	topic = unsafeName.ReplaceAllString(t.Name(), "-") + fmt.Sprintf("-%d", time.Now().UnixNano())
	return brokers.Kafka(t, topic), topic
}

// faultCluster starts an in-process kfake cluster with topic in partitions
// partitions, for tests that inject broker errors through its control
// functions (which no other broker offers), closed at cleanup.
func faultCluster(t *testing.T, topic string, partitions int32, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func newProducer(t *testing.T, seeds []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// newConsumer returns a client built as the package documents, closed at
// t's cleanup (closing twice is harmless).
func newConsumer(t *testing.T, seeds []string, topic, group string, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumerGroup(group),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// publishN publishes n messages with keys spread over nkeys keys and
// returns them with their IDs set.
func publishN(t *testing.T, seeds []string, topic string, n, nkeys int) []*middleware.Message {
	t.Helper()
	msgs := make([]*middleware.Message, n)
	for i := range msgs {
		msgs[i] = middleware.NewMessage(fmt.Appendf(nil, "%d", i))
		msgs[i].Key = fmt.Appendf(nil, "key-%d", i%nkeys)
	}
	p := kafka.NewPublisher(newProducer(t, seeds))
	if err := p.Publish(t.Context(), topic, msgs...); err != nil {
		t.Fatal(err)
	}
	return msgs
}

// subscription is a Subscribe running in the background.
type subscription struct {
	cancel context.CancelFunc
	done   chan error
}

func subscribe(t *testing.T, ctx context.Context, s *kafka.Subscriber, topic string, h middleware.HandlerFunc) *subscription {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	sub := &subscription{cancel: cancel, done: make(chan error, 1)}
	go func() { sub.done <- s.Subscribe(ctx, topic, h) }()
	t.Cleanup(func() { sub.stop(t) })
	return sub
}

// stop cancels the subscription and returns Subscribe's error.
func (s *subscription) stop(t *testing.T) error {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		s.done <- err // keep it for a later stop
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Subscribe did not return after its context ended")
		return nil
	}
}

// handled records what handlers saw.
type handled struct {
	mu   sync.Mutex
	msgs []*middleware.Message
	ids  map[string]int // ID -> successful handlings
}

func (h *handled) add(msg *middleware.Message, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, msg)
	if ok {
		if h.ids == nil {
			h.ids = map[string]int{}
		}
		h.ids[msg.ID]++
	}
}

func (h *handled) snapshot() ([]*middleware.Message, map[string]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make(map[string]int, len(h.ids))
	for k, v := range h.ids {
		ids[k] = v
	}
	return append([]*middleware.Message(nil), h.msgs...), ids
}

// waitFor polls cond until it holds or 20s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// allHandled waits until every message of msgs was handled successfully.
func (h *handled) waitAll(t *testing.T, msgs []*middleware.Message) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d messages to be handled", len(msgs)), func() bool {
		_, ids := h.snapshot()
		for _, m := range msgs {
			if ids[m.ID] == 0 {
				return false
			}
		}
		return true
	})
}

// committed returns the group's committed offset per partition of topic.
func committed(t *testing.T, cl *kgo.Client, group, topic string) map[int32]int64 {
	t.Helper()
	resps, err := kadm.NewClient(cl).FetchOffsets(t.Context(), group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, r := range resps.Sorted() {
		if r.Topic == topic && r.Err == nil {
			out[r.Partition] = r.At
		}
	}
	return out
}

// partitionOf parses the partition out of an ID "topic/partition/offset".
func partitionOf(id string) string {
	parts := strings.Split(id, "/")
	return parts[len(parts)-2]
}
