package memory_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/memory"
)

// TestPublishCopiesKeyAndBody: the broker keeps its own copy of a
// message's key and body, so a publisher that reuses its buffers after
// Publish, or a handler that writes into a Message's body before failing,
// changes neither the delivery nor the redelivery.
func TestPublishCopiesKeyAndBody(t *testing.T) {
	b := memory.New()
	key, body := []byte("key"), []byte("body")
	if err := b.Publish(context.Background(), "q", &middleware.Message{Key: key, Body: body}); err != nil {
		t.Fatal(err)
	}
	copy(key, "KEY")
	copy(body, "BODY")

	var got []string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := b.Subscribe(ctx, "q", middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
		got = append(got, string(m.Key)+"/"+string(m.Body))
		if m.DeliveryCount == 1 {
			copy(m.Key, "xxx")
			copy(m.Body, "xxxx")
			return errors.New("declined")
		}
		cancel()
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "key/body" || got[1] != "key/body" {
		t.Errorf("delivered %q, want key/body twice: the published bytes, untouched by the publisher's buffers or the handler", got)
	}
}

// TestPublishNilMessage: a nil message fails alone, by index, marked
// middleware.Permanent (publishing it again cannot succeed, so DeadLetter
// must not retry it); the other messages of the call are published.
func TestPublishNilMessage(t *testing.T) {
	b := memory.New()
	err := b.Publish(context.Background(), "q", middleware.NewMessage([]byte("a")), nil, middleware.NewMessage([]byte("b")))
	if err == nil || !middleware.IsPermanent(err) {
		t.Fatalf("Publish with a nil message: %v, want a permanent error", err)
	}
	if ready, _ := b.Len("q"); ready != 2 {
		t.Errorf("%d messages ready, want the 2 that were not nil", ready)
	}
}

// TestDescribe: a queue is named by its name, in the memory system, and is
// a push destination (no receive span).
func TestDescribe(t *testing.T) {
	d := memory.New().Describe("orders")
	if d.System != propagation.SystemMemory || d.Name != "orders" || !d.Push || len(d.Attributes) != 0 {
		t.Errorf("Describe(orders) = %+v, want system %q, name orders, Push", d, propagation.SystemMemory)
	}
}

// ops records the operation of every Settled.
type ops struct {
	mu  sync.Mutex
	ops []string
}

func (o *ops) Received(ctx context.Context, _ middleware.Destination, _ time.Time, _ []*middleware.Message) context.Context {
	return ctx
}

func (o *ops) Settled(_ context.Context, _ middleware.Destination, op string, _ time.Time, msgs []*middleware.Message, _ error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range msgs {
		o.ops = append(o.ops, string(m.Body)+":"+op)
	}
}

// TestSettleOperations: the observers hear of a handled message as acked
// and of a failed one as nacked.
func TestSettleOperations(t *testing.T) {
	b := memory.New()
	if err := b.Publish(context.Background(), "q", middleware.NewMessage([]byte("ok")), middleware.NewMessage([]byte("fail"))); err != nil {
		t.Fatal(err)
	}
	obs := &ops{}
	ctx, cancel := context.WithTimeout(middleware.WithObserver(context.Background(), obs), 10*time.Second)
	defer cancel()
	err := b.Subscribe(ctx, "q", middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
		if string(m.Body) == "fail" {
			cancel()
			return errors.New("declined")
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	// The failed message may be redelivered, and fail again, before
	// Subscribe sees ctx end: each of its settles is a nack.
	ok := len(obs.ops) >= 2 && obs.ops[0] == "ok:"+propagation.OpAck
	for _, op := range obs.ops[min(1, len(obs.ops)):] {
		ok = ok && op == "fail:"+propagation.OpNack
	}
	if !ok {
		t.Errorf("settled %v, want ok:%s then one or more fail:%s", obs.ops, propagation.OpAck, propagation.OpNack)
	}
}

// TestStoppedSubscriberLeavesNothingInFlight: when a Subscribe ends with
// messages it took but never handed to a handler, they all go back to the
// queue and none stays counted in flight.
func TestStoppedSubscriberLeavesNothingInFlight(t *testing.T) {
	b := memory.New()
	stopAtFirstOfThree(t, b, b)
	if ready, inFlight := b.Len("q"); ready != 2 || inFlight != 0 {
		t.Errorf("after Subscribe: %d ready, %d in flight; want 2 and 0", ready, inFlight)
	}
}

// stopAtFirstOfThree publishes three messages to queue "q" of b and
// subscribes to it through sub (b, or b wrapped) with one handler at a
// time: the first handler ends the Subscribe and holds the one worker until
// the two messages of its batch that no handler took are back on the
// queue, so neither reaches a handler.
func stopAtFirstOfThree(t *testing.T, b *memory.Broker, sub middleware.Subscriber) {
	t.Helper()
	for _, body := range []string{"1", "2", "3"} {
		if err := b.Publish(context.Background(), "q", middleware.NewMessage([]byte(body))); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	err := sub.Subscribe(ctx, "q", middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
		cancel()
		deadline := time.Now().Add(10 * time.Second)
		for ready, _ := b.Len("q"); ready != 2; ready, _ = b.Len("q") {
			if time.Now().After(deadline) {
				t.Error("the undelivered messages were not requeued")
				break
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
}
