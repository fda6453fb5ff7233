package rabbitmq

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
)

// doneAfter is a context that ends at the (n+1)th call of Done. amqp091
// checks the context once per message before publishing it, so a Publish
// of n messages publishes them all and then gives up at its first wait for
// a confirm.
type doneAfter struct {
	context.Context // for Deadline and Value

	mu    sync.Mutex
	n     int
	ended bool
	done  chan struct{}
}

func newDoneAfter(parent context.Context, n int) *doneAfter {
	return &doneAfter{Context: parent, n: n, done: make(chan struct{})}
}

func (c *doneAfter) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 && !c.ended {
		c.ended = true
		close(c.done)
	}
	c.n--
	return c.done
}

func (c *doneAfter) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return context.Canceled
	}
	return nil
}

// readGate holds up the reads of the connections dialed through it, as a
// slow network would: what the broker sends meanwhile waits in the socket.
// A read already waiting when the gate closes still gets the next data.
type readGate struct {
	mu   sync.Mutex
	open chan struct{} // closed while reads may go ahead
}

func newReadGate() *readGate {
	g := &readGate{open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *readGate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = make(chan struct{})
}

func (g *readGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.open)
}

func (g *readGate) dial(network, addr string) (net.Conn, error) {
	c, err := amqp.DefaultDial(5*time.Second)(network, addr)
	if err != nil {
		return nil, err
	}
	return gatedConn{Conn: c, gate: g}, nil
}

type gatedConn struct {
	net.Conn
	gate *readGate
}

func (c gatedConn) Read(b []byte) (int, error) {
	c.gate.mu.Lock()
	open := c.gate.open
	c.gate.mu.Unlock()
	<-open
	return c.Conn.Read(b)
}

// TestPublishReturnsNeverStallConnection: the basic.returns of a Publish
// call that gave up waiting are read all the same. amqp091 hands a return
// over synchronously, waiting up to 5 s for room in the Publisher's
// buffer, and the whole connection waits with it: unread, the returns of
// 1,000 unroutable messages would stop a consumer on the same connection
// for about an hour, until the Publisher's next Publish.
func TestPublishReturnsNeverStallConnection(t *testing.T) {
	gate := newReadGate()
	conn, err := amqp.DialConfig(brokers.RabbitMQURL(t), amqp.Config{Dial: gate.dial})
	if err != nil {
		brokers.Unavailable(t, "RabbitMQ", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	// The queue and the publishes that feed it go over another connection,
	// which a stalled conn cannot hold up.
	other := brokers.RabbitMQ(t)
	q := brokers.RabbitMQQueue(t, other, nil)
	got := make(chan *middleware.Message, 8)
	subscribe(t, t.Context(), NewSubscriber(conn), q, func(_ context.Context, m *middleware.Message) error {
		got <- m
		return nil
	})
	pub := NewPublisher(conn, WithConfirms(true))
	defer pub.Close()
	unroutable := "nowhere-" + t.Name()

	// Opens the channel, so that the call below spends its context on
	// publishing and waiting alone.
	if err := pub.Publish(t.Context(), q, &middleware.Message{ID: "warm"}); err != nil {
		t.Fatalf("publish to a bound queue: %v", err)
	}
	receive(t, got, 1, 10*time.Second)

	const n = 1000 // far more than the returns buffer holds
	batch := make([]*middleware.Message, n)
	for i := range batch {
		batch[i] = &middleware.Message{ID: fmt.Sprintf("lost-%d", i)}
	}
	// With the connection's reads held, the call gives up before the
	// broker's returns and confirms come in: they all arrive after it.
	gate.hold()
	err = pub.Publish(newDoneAfter(t.Context(), n), unroutable, batch...)
	gate.release()
	if err == nil || !strings.Contains(err.Error(), "waiting for the confirm: context canceled") {
		t.Fatalf("publish that gives up waiting: %.300v, want it to fail waiting for confirms", err)
	}
	if strings.Contains(err.Error(), "): context canceled") {
		t.Fatalf("publish that gives up waiting: %.300v, want every message published first", err)
	}

	ch := rawChannel(t, other)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := ch.PublishWithContext(ctx, "", q, false, false, amqp.Publishing{Body: []byte("through")}); err != nil {
		t.Fatalf("publish on the other connection: %v", err)
	}
	select {
	case m := <-got:
		if string(m.Body) != "through" {
			t.Errorf("received %q, want %q", m.Body, "through")
		}
	case <-time.After(10 * time.Second):
		// Before the fix only Publish read returns: one lets the
		// connection go, so that the cleanup does not wait out 5 s per
		// return. ctx is spent by now.
		unstick, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		_ = pub.Publish(unstick, q, &middleware.Message{ID: "unstick"})
		t.Fatal("a consumer on the Publisher's connection received nothing within 10s: unread returns stalled the connection")
	}

	err = pub.Publish(ctx, unroutable, &middleware.Message{ID: "lost-again"})
	if err == nil || !strings.Contains(err.Error(), "returned by the broker: 312 NO_ROUTE") || !strings.Contains(err.Error(), `id "lost-again"`) {
		t.Fatalf("later publish to an unbound routing key: %.300v, want it returned", err)
	}
	if err := pub.Publish(ctx, q, &middleware.Message{ID: "kept", Body: []byte("kept")}); err != nil {
		t.Fatalf("later publish to a bound queue: %v", err)
	}
	if m := receive(t, got, 1, 10*time.Second)[0]; string(m.Body) != "kept" {
		t.Errorf("received %q, want %q", m.Body, "kept")
	}
}

// TestReturnReaderEnds: the goroutine that reads a channel's returns ends
// when the broker closes the channel and when the Publisher is closed.
func TestReturnReaderEnds(t *testing.T) {
	conn, q := setup(t, nil)
	pub := NewPublisher(conn, WithConfirms(true), WithExchange("otelmq-no-such-exchange"))
	defer pub.Close()
	if err := pub.Publish(t.Context(), q, &middleware.Message{ID: "lost"}); err == nil {
		t.Fatal("publish to a missing exchange succeeded")
	}
	ended := func(r *returnReader) func() bool {
		return func() bool {
			select {
			case <-r.done:
				return true
			default:
				return false
			}
		}
	}
	// The 404 closed the channel; amqp091 closes its returns channel.
	eventually(t, 10*time.Second, "the returns reader of a closed channel to end", ended(pub.returns))

	pub.cfg.exchange = ""
	if err := pub.Publish(t.Context(), q, &middleware.Message{ID: "ok"}); err != nil {
		t.Fatalf("publish on a new channel: %v", err)
	}
	r := pub.returns
	if ended(r)() {
		t.Fatal("the returns reader of the open channel ended")
	}
	if err := pub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !ended(r)() {
		t.Fatal("the returns reader is running after Close")
	}
}
