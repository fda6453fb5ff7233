package rabbitmq

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
)

// rawChannel opens a plain amqp091 channel on conn, closed at cleanup.
func rawChannel(t testing.TB, conn *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	t.Cleanup(func() { _ = ch.Close() })
	return ch
}

// running is a Subscribe call in a goroutine.
type running struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// subscribe runs sub.Subscribe(queue, h) until stop (or the end of the
// test, which fails if Subscribe does not return in time).
func subscribe(t testing.TB, ctx context.Context, sub middleware.Subscriber, queue string, h middleware.HandlerFunc) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- sub.Subscribe(ctx, queue, h) }()
	t.Cleanup(func() { _ = r.stop(t) })
	return r
}

// collect subscribes sub to queue with a handler that succeeds and sends
// each message to the returned channel, which holds n without a reader.
func collect(t testing.TB, sub middleware.Subscriber, queue string, n int) (<-chan *middleware.Message, *running) {
	t.Helper()
	got := make(chan *middleware.Message, n)
	r := subscribe(t, t.Context(), sub, queue, func(_ context.Context, m *middleware.Message) error {
		got <- m
		return nil
	})
	return got, r
}

// stop cancels the Subscribe context and returns what Subscribe returned.
func (r *running) stop(t testing.TB) error {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(20 * time.Second):
			r.err = fmt.Errorf("Subscribe did not return within 20s of its context ending")
			t.Error(r.err)
		}
	})
	return r.err
}

// returned reports whether Subscribe has returned on its own, and its error.
func (r *running) returned() (bool, error) {
	select {
	case err := <-r.done:
		r.once.Do(func() { r.err = err })
		return true, err
	default:
		return false, nil
	}
}

// receive waits for n messages on c or fails the test after timeout.
func receive(t testing.TB, c <-chan *middleware.Message, n int, timeout time.Duration) []*middleware.Message {
	t.Helper()
	var got []*middleware.Message
	deadline := time.After(timeout)
	for len(got) < n {
		select {
		case m := <-c:
			got = append(got, m)
		case <-deadline:
			t.Fatalf("received %d of %d messages within %v", len(got), n, timeout)
		}
	}
	return got
}

// quiet asserts that nothing arrives on c for d.
func quiet(t testing.TB, c <-chan *middleware.Message, d time.Duration) {
	t.Helper()
	select {
	case m := <-c:
		t.Fatalf("unexpected message %q (delivery %d)", m.Body, m.DeliveryCount)
	case <-time.After(d):
	}
}

// queueDepth is the number of ready messages in queue.
func queueDepth(t testing.TB, conn *amqp.Connection, queue string) int {
	t.Helper()
	ch := rawChannel(t, conn)
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("inspect %s: %v", queue, err)
	}
	return q.Messages
}

// eventually polls cond every 20ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// setup returns a connection to the test broker and a fresh queue on it.
func setup(t testing.TB, args amqp.Table) (*amqp.Connection, string) {
	t.Helper()
	conn := brokers.RabbitMQ(t)
	return conn, brokers.RabbitMQQueue(t, conn, args)
}

// event is one call the recording observer or a handler saw.
type event struct {
	kind string // "received", "handled", "settled"
	op   string
	id   string
	dest middleware.Destination
	err  error
}

// recorder is an Observer that records the order of events.
type recorder struct {
	mu     sync.Mutex
	events []event
}

func (r *recorder) add(e event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) snapshot() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.events...)
}

type ctxKey struct{}

func (r *recorder) Received(ctx context.Context, d middleware.Destination, _ time.Time, msgs []*middleware.Message) context.Context {
	for _, m := range msgs {
		r.add(event{kind: "received", id: m.ID, dest: d})
	}
	// The handler must get the context returned here.
	return context.WithValue(ctx, ctxKey{}, "from observer")
}

func (r *recorder) Settled(ctx context.Context, d middleware.Destination, op string, _ time.Time, msgs []*middleware.Message, err error) {
	for _, m := range msgs {
		r.add(event{kind: "settled", op: op, id: m.ID, dest: d, err: err})
	}
}
