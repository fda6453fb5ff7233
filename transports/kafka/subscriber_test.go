package kafka_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/kafka"
)

func hasAttr(attrs []attribute.KeyValue, want attribute.KeyValue) bool {
	for _, a := range attrs {
		if a.Key == want.Key && a.Value == want.Value {
			return true
		}
	}
	return false
}

func TestRoundTrip(t *testing.T) {
	seeds, topic := cluster(t)
	sent := middleware.NewMessage([]byte("hello"))
	sent.Key = []byte("order-1")
	sent.Headers = map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "b": "2", "a": "1"}
	sent.Time = time.UnixMilli(1_700_000_000_123)
	if err := kafka.NewPublisher(newProducer(t, seeds)).Publish(t.Context(), topic, sent); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sent.ID, topic+"/") {
		t.Fatalf("ID after Publish = %q, want %s/partition/offset", sent.ID, topic)
	}

	got := make(chan *middleware.Message, 1)
	s := kafka.NewSubscriber(newConsumer(t, seeds, topic, "g"))
	sub := subscribe(t, t.Context(), s, topic, func(ctx context.Context, msg *middleware.Message) error {
		got <- msg
		return nil
	})
	var msg *middleware.Message
	select {
	case msg = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("no message")
	}
	if err := sub.stop(t); err != nil {
		t.Fatalf("Subscribe = %v, want nil after cancel", err)
	}

	if msg.ID != sent.ID || string(msg.Body) != "hello" || string(msg.Key) != "order-1" ||
		!msg.Time.Equal(sent.Time) || msg.DeliveryCount != 1 || msg.Destination != topic {
		t.Errorf("received %+v, sent %+v", msg, sent)
	}
	for k, v := range sent.Headers {
		if msg.Headers[k] != v {
			t.Errorf("header %q = %q, want %q", k, msg.Headers[k], v)
		}
	}
	var rec *kgo.Record
	if !msg.As(&rec) || rec.Topic != topic || string(rec.Value) != "hello" {
		t.Errorf("As(**kgo.Record) = %v, %+v", msg.As(&rec), rec)
	}
	// Headers go out in sorted key order.
	var keys []string
	for _, h := range rec.Headers {
		keys = append(keys, h.Key)
	}
	if !slices.IsSorted(keys) {
		t.Errorf("header order %q, want sorted", keys)
	}
	var copied kgo.Record
	if !msg.As(&copied) || copied.Offset != rec.Offset {
		t.Error("As(*kgo.Record) did not copy the record")
	}
	if msg.As(new(string)) {
		t.Error("As(*string) = true")
	}
	attrs := msg.Attributes()
	for _, want := range []attribute.KeyValue{
		propagation.Partition(rec.Partition), propagation.KafkaOffset(rec.Offset),
		propagation.KafkaKey([]byte("order-1")), propagation.ConsumerGroup("g"), propagation.MessageID(sent.ID),
	} {
		if !hasAttr(attrs, want) {
			t.Errorf("attributes %v miss %v", attrs, want)
		}
	}
	if hasAttr(attrs, propagation.KafkaTombstone(true)) {
		t.Error("a record with a value is marked a tombstone")
	}
	d := s.Describe(topic)
	if d.System != propagation.SystemKafka || d.Name != topic || !hasAttr(d.Attributes, propagation.ConsumerGroup("g")) {
		t.Errorf("Describe = %+v", d)
	}
}

func TestBatchOverPartitions(t *testing.T) {
	seeds, topic := cluster(t)
	msgs := publishN(t, seeds, topic, 100, 20)
	partitions := map[string]bool{}
	ids := map[string]bool{}
	for _, m := range msgs {
		if ids[m.ID] {
			t.Fatalf("ID %q given twice", m.ID)
		}
		ids[m.ID] = true
		partitions[partitionOf(m.ID)] = true
		if m.Time.IsZero() {
			t.Errorf("message %s has no time after Publish", m.ID)
		}
	}
	if len(partitions) < 2 {
		t.Fatalf("100 messages over 20 keys used partitions %v", partitions)
	}

	var h handled
	s := kafka.NewSubscriber(newConsumer(t, seeds, topic, "g"), kafka.WithMaxPollRecords(17))
	subscribe(t, t.Context(), s, topic, func(ctx context.Context, msg *middleware.Message) error {
		h.add(msg, true)
		return nil
	})
	h.waitAll(t, msgs)
}

func TestPartitionOrder(t *testing.T) {
	seeds, topic := cluster(t)
	msgs := publishN(t, seeds, topic, 300, 8)

	var mu sync.Mutex
	lastOffset := map[int32]int64{}
	var errs []string
	var h handled
	s := kafka.NewSubscriber(newConsumer(t, seeds, topic, "g"), kafka.WithMaxPollRecords(25), kafka.WithConcurrency(2))
	subscribe(t, t.Context(), s, topic, func(ctx context.Context, msg *middleware.Message) error {
		var r *kgo.Record
		msg.As(&r)
		mu.Lock()
		if last, ok := lastOffset[r.Partition]; ok && r.Offset != last+1 {
			errs = append(errs, fmt.Sprintf("partition %d: offset %d after %d", r.Partition, r.Offset, last))
		}
		lastOffset[r.Partition] = r.Offset
		mu.Unlock()
		h.add(msg, true)
		return nil
	})
	h.waitAll(t, msgs)
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Errorf("out of order: %q", errs)
	}
}

// settleLog records the observer's Settled calls.
type settleLog struct {
	mu      sync.Mutex
	settles [][]*middleware.Message
	ops     []string
	errs    []error
}

func (l *settleLog) Received(ctx context.Context, _ middleware.Destination, _ time.Time, _ []*middleware.Message) context.Context {
	return ctx
}

func (l *settleLog) Settled(_ context.Context, _ middleware.Destination, op string, _ time.Time, msgs []*middleware.Message, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.settles = append(l.settles, msgs)
	l.ops = append(l.ops, op)
	l.errs = append(l.errs, err)
}

// TestHandlerErrorRedelivered fails one record once: it comes back with
// DeliveryCount 2, the records after it in its partition are handled only
// after it, and none of them is committed before it.
func TestHandlerErrorRedelivered(t *testing.T) {
	testRedelivered(t, func(msg *middleware.Message) error { return errors.New("transient") })
}

func TestHandlerPanicRedelivered(t *testing.T) {
	testRedelivered(t, func(msg *middleware.Message) error { panic("boom") })
}

func testRedelivered(t *testing.T, fail func(*middleware.Message) error) {
	seeds, topic := cluster(t)
	msgs := publishN(t, seeds, topic, 10, 1) // one key: one partition
	failID := msgs[3].ID

	var h handled
	var log settleLog
	cl := newConsumer(t, seeds, topic, "g")
	s := kafka.NewSubscriber(cl, kafka.WithRetryBackoff(10*time.Millisecond))
	var failedOnce sync.Once
	ctx := middleware.WithObserver(t.Context(), &log)
	subscribe(t, ctx, s, topic, func(ctx context.Context, msg *middleware.Message) (err error) {
		failing := false
		if msg.ID == failID {
			failedOnce.Do(func() { failing = true })
		}
		defer func() { h.add(msg, err == nil && !failing) }()
		if failing {
			return fail(msg)
		}
		return nil
	})
	h.waitAll(t, msgs)

	seen, ids := h.snapshot()
	var order []string
	for _, m := range seen {
		order = append(order, fmt.Sprintf("%s#%d", m.ID, m.DeliveryCount))
	}
	want := []string{}
	for i, m := range msgs {
		want = append(want, m.ID+"#1")
		if i == 3 {
			want = append(want, m.ID+"#2")
		}
	}
	if !slices.Equal(order, want) {
		t.Errorf("handled %q,\nwant    %q", order, want)
	}
	if ids[failID] != 1 {
		t.Errorf("failed message succeeded %d times, want 1", ids[failID])
	}

	waitFor(t, "all to be committed", func() bool {
		return committed(t, cl, "g", topic)[partitionNumber(t, failID)] == 10
	})
	log.mu.Lock()
	defer log.mu.Unlock()
	committedFail := false
	for i, settled := range log.settles {
		if log.ops[i] != propagation.OpCommit || log.errs[i] != nil {
			t.Errorf("settle %d: op %q err %v, want a commit", i, log.ops[i], log.errs[i])
		}
		for _, m := range settled {
			if m.ID == failID {
				committedFail = true
			}
			if offsetOf(t, m.ID) > offsetOf(t, failID) && !committedFail {
				t.Errorf("%s committed before the failed %s", m.ID, failID)
			}
		}
	}
}

func partitionNumber(t *testing.T, id string) int32 {
	var p int32
	if _, err := fmt.Sscan(partitionOf(id), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func offsetOf(t *testing.T, id string) int64 {
	var o int64
	if _, err := fmt.Sscan(id[strings.LastIndex(id, "/")+1:], &o); err != nil {
		t.Fatal(err)
	}
	return o
}

// TestRestart stops a subscriber mid-stream and starts another client in the
// same group: every message is handled at least once.
//
// The first client is not closed: Subscribe must leave the group when it
// returns, or the idle client would keep its share of the partitions.
func TestRestart(t *testing.T) {
	seeds, topic := cluster(t)
	msgs := publishN(t, seeds, topic, 200, 16)

	var h handled
	handler := func(ctx context.Context, msg *middleware.Message) error {
		time.Sleep(time.Millisecond)
		h.add(msg, true)
		return nil
	}
	first := newConsumer(t, seeds, topic, "g")
	sub := subscribe(t, t.Context(), kafka.NewSubscriber(first, kafka.WithMaxPollRecords(10)), topic, handler)
	waitFor(t, "50 messages", func() bool { _, ids := h.snapshot(); return len(ids) >= 50 })
	if err := sub.stop(t); err != nil {
		t.Fatalf("Subscribe = %v, want nil after cancel", err)
	}
	_, before := h.snapshot()
	if len(before) == len(msgs) {
		t.Fatal("the first subscriber handled everything; nothing to restart")
	}

	if err := kafka.NewSubscriber(first).Subscribe(t.Context(), topic, middleware.HandlerFunc(handler)); err == nil ||
		!strings.Contains(err.Error(), "new client") {
		t.Errorf("Subscribe on a client that left its group = %v, want an error", err)
	}

	second := newConsumer(t, seeds, topic, "g")
	subscribe(t, t.Context(), kafka.NewSubscriber(second, kafka.WithMaxPollRecords(10)), topic, handler)
	h.waitAll(t, msgs)

	_, ids := h.snapshot()
	want := map[string]bool{}
	for _, m := range msgs {
		want[m.ID] = true
	}
	for id := range ids {
		if !want[id] {
			t.Errorf("handled %q, which was not published", id)
		}
	}
	if len(ids) != len(want) {
		t.Errorf("handled %d distinct messages, published %d", len(ids), len(want))
	}
}

// TestShutdownCommitsRunningHandler ends ctx while a handler runs: the
// handler finishes, its record is committed and Subscribe returns nil.
func TestShutdownCommitsRunningHandler(t *testing.T) {
	seeds, topic := cluster(t)
	msgs := publishN(t, seeds, topic, 1, 1)
	cl := newConsumer(t, seeds, topic, "g")
	started, release := make(chan struct{}), make(chan struct{})
	var handlerCtxErr error
	sub := subscribe(t, t.Context(), kafka.NewSubscriber(cl), topic, func(ctx context.Context, msg *middleware.Message) error {
		close(started)
		<-release
		handlerCtxErr = ctx.Err()
		return nil
	})
	<-started
	sub.cancel()
	time.Sleep(50 * time.Millisecond)
	close(release)
	if err := sub.stop(t); err != nil {
		t.Fatalf("Subscribe = %v, want nil", err)
	}
	if handlerCtxErr != nil {
		t.Errorf("handler context ended with the subscription: %v", handlerCtxErr)
	}
	p := partitionNumber(t, msgs[0].ID)
	if got := committed(t, cl, "g", topic)[p]; got != 1 {
		t.Errorf("committed offset %d, want 1", got)
	}
}

func TestSubscribeRejectsClients(t *testing.T) {
	seeds, topic := cluster(t)
	h := middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })
	newClient := func(opts ...kgo.Opt) *kgo.Client {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	tests := []struct {
		name string
		cl   *kgo.Client
		h    middleware.Handler
		want string
	}{
		{"no group", newClient(kgo.ConsumeTopics(topic)), h, "consumer group"},
		{"auto-commit", newClient(kgo.ConsumeTopics(topic), kgo.ConsumerGroup("g")), h, "DisableAutoCommit"},
		{"other topic", newClient(kgo.ConsumeTopics("other"), kgo.ConsumerGroup("g"), kgo.DisableAutoCommit()), h, "does not consume"},
		{"more topics", newClient(kgo.ConsumeTopics(topic, "other"), kgo.ConsumerGroup("g"), kgo.DisableAutoCommit()), h, "other topics"},
		{"regex", newClient(kgo.ConsumeTopics(".*"), kgo.ConsumeRegex(), kgo.ConsumerGroup("g"), kgo.DisableAutoCommit()), h, "regex"},
		{"nil client", nil, h, "no client"},
		{"nil handler", newClient(kgo.ConsumeTopics(topic), kgo.ConsumerGroup("g"), kgo.DisableAutoCommit()), nil, "nil handler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := kafka.NewSubscriber(tt.cl).Subscribe(t.Context(), topic, tt.h)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Subscribe = %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestSubscribeClosedClient(t *testing.T) {
	seeds, topic := cluster(t)
	publishN(t, seeds, topic, 1, 1)
	cl := newConsumer(t, seeds, topic, "g")
	done := make(chan error, 1)
	polling := make(chan struct{})
	var once sync.Once
	go func() {
		done <- kafka.NewSubscriber(cl).Subscribe(t.Context(), topic, middleware.HandlerFunc(
			func(context.Context, *middleware.Message) error { once.Do(func() { close(polling) }); return nil }))
	}()
	// The first Subscribe is polling once it handled a record (a sleep
	// let the second start first on a loaded machine).
	select {
	case <-polling:
	case <-time.After(20 * time.Second):
		t.Fatal("the first Subscribe handled nothing")
	}
	err := kafka.NewSubscriber(cl).Subscribe(t.Context(), topic, middleware.HandlerFunc(
		func(context.Context, *middleware.Message) error { return nil }))
	if err == nil || !strings.Contains(err.Error(), "already polling") {
		t.Errorf("second Subscribe on a polled client = %v, want an error", err)
	}
	cl.Close()
	select {
	case err := <-done:
		if !errors.Is(err, kgo.ErrClientClosed) {
			t.Errorf("Subscribe = %v, want ErrClientClosed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Subscribe did not return after the client closed")
	}
}

type ctxKey struct{}

// eventLog is an observer that logs its calls and the handler's in one
// sequence.
type eventLog struct {
	mu     sync.Mutex
	events []string
	polls  [][]*middleware.Message
}

func (l *eventLog) add(e string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) Received(ctx context.Context, d middleware.Destination, start time.Time, msgs []*middleware.Message) context.Context {
	l.mu.Lock()
	l.polls = append(l.polls, msgs)
	n := len(l.polls)
	l.mu.Unlock()
	for _, m := range msgs {
		l.add("received " + m.ID)
	}
	return context.WithValue(ctx, ctxKey{}, n)
}

func (l *eventLog) Settled(ctx context.Context, d middleware.Destination, op string, start time.Time, msgs []*middleware.Message, err error) {
	if ctx.Value(ctxKey{}) == nil {
		l.add("settled without the Received context")
	}
	for _, m := range msgs {
		l.add(op + " " + m.ID)
	}
}

func TestObserver(t *testing.T) {
	seeds, topic := cluster(t)
	msgs := publishN(t, seeds, topic, 40, 8)
	var log eventLog
	var h handled
	ctx := middleware.WithObserver(t.Context(), &log)
	sub := subscribe(t, ctx, kafka.NewSubscriber(newConsumer(t, seeds, topic, "g"), kafka.WithMaxPollRecords(7)), topic,
		func(ctx context.Context, msg *middleware.Message) error {
			if ctx.Value(ctxKey{}) == nil {
				log.add("handled without the Received context")
			}
			log.add("handled " + msg.ID)
			h.add(msg, true)
			return nil
		})
	h.waitAll(t, msgs)
	waitFor(t, "every commit", func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		n := 0
		for _, e := range log.events {
			if strings.HasPrefix(e, "commit ") {
				n++
			}
		}
		return n >= len(msgs)
	})
	sub.stop(t)

	log.mu.Lock()
	defer log.mu.Unlock()
	state := map[string]string{}
	for _, e := range log.events {
		what, id, _ := strings.Cut(e, " ")
		switch what {
		case "received":
			if state[id] != "" {
				t.Errorf("%s received again after %s", id, state[id])
			}
		case "handled":
			if state[id] != "received" {
				t.Errorf("%s handled after %q, want after received", id, state[id])
			}
		case propagation.OpCommit:
			if state[id] != "handled" {
				t.Errorf("%s committed after %q, want after handled", id, state[id])
			}
		default:
			t.Errorf("event %q", e)
		}
		state[id] = what
	}
	total := 0
	for _, p := range log.polls {
		if len(p) == 0 || len(p) > 7 {
			t.Errorf("poll of %d messages", len(p))
		}
		total += len(p)
	}
	if total != len(msgs) {
		t.Errorf("Received saw %d messages, published %d", total, len(msgs))
	}
}

func TestNilHeaderAndTombstone(t *testing.T) {
	seeds, topic := cluster(t)
	rec := &kgo.Record{
		Topic:   topic,
		Key:     []byte("gone"),
		Headers: []kgo.RecordHeader{{Key: "empty"}, {Key: "dup", Value: []byte("1")}, {Key: "dup", Value: []byte("2")}},
	}
	if err := newProducer(t, seeds).ProduceSync(t.Context(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := make(chan *middleware.Message, 1)
	subscribe(t, t.Context(), kafka.NewSubscriber(newConsumer(t, seeds, topic, "g")), topic,
		func(ctx context.Context, msg *middleware.Message) error {
			got <- msg
			return nil
		})
	select {
	case msg := <-got:
		if msg.Body != nil {
			t.Errorf("Body = %q, want nil", msg.Body)
		}
		if v, ok := msg.Headers["empty"]; !ok || v != "" {
			t.Errorf("nil header = %q, %v; want present and empty", v, ok)
		}
		if msg.Headers["dup"] != "2" {
			t.Errorf("duplicate header = %q, want the last, 2", msg.Headers["dup"])
		}
		if !hasAttr(msg.Attributes(), propagation.KafkaTombstone(true)) {
			t.Errorf("attributes %v miss the tombstone flag", msg.Attributes())
		}
		if !bytes.Equal(msg.Key, []byte("gone")) {
			t.Errorf("Key = %q", msg.Key)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no message")
	}
}

// A coordinator that keeps refusing commits with a retriable error made
// shutdown wait out kgo's whole retry budget (27 s measured), past the
// grace period of a pod: after ctx ends, the commit gets 5 s, and its
// failure is reported to Settled.
func TestShutdownCommitBounded(t *testing.T) {
	topic := "commitfail"
	c := faultCluster(t, topic, 1)
	seeds := c.ListenAddrs()
	publishN(t, seeds, topic, 1, 1)
	var refusing atomic.Bool
	brokers.RefuseCommits(c, kerr.CoordinatorLoadInProgress.Code, refusing.Load)

	cl := newConsumer(t, seeds, topic, "g")
	var log settleLog
	ctx, cancel := context.WithCancel(middleware.WithObserver(t.Context(), &log))
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- kafka.NewSubscriber(cl).Subscribe(ctx, topic, middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
			refusing.Store(true)
			close(started)
			time.Sleep(100 * time.Millisecond) // ctx ends meanwhile
			return nil
		}))
	}()
	<-started
	cancel()
	start := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Subscribe = %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Subscribe still running 60 s after its ctx ended")
	}
	// 5 s of commit and a leave; kgo alone retried for 27 s.
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("Subscribe returned %v after its ctx ended", d)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.errs) == 0 || log.errs[len(log.errs)-1] == nil {
		t.Errorf("the refused commit was not reported as failed: %v", log.errs)
	}
}
