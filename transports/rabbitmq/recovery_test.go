package rabbitmq

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
)

// amqp091's own recovery reopens a channel in place with delivery tags
// starting again at 1, under handlers still settling the old channel's
// deliveries: Subscribe refuses such a connection, and Dial turns
// recovery off in the connections it makes.
func TestAMQPRecovery(t *testing.T) {
	url := brokers.RabbitMQURL(t)
	raw, err := amqp.DialConfig(url, amqp.Config{Recovery: &amqp.Recovery{}})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if !raw.IsRecoveryEnabled() {
		t.Fatal("amqp091 did not enable recovery: the test proves nothing")
	}
	err = NewSubscriber(raw).Subscribe(t.Context(), "any", middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil }))
	if !errors.Is(err, ErrAMQPRecovery) {
		t.Fatalf("Subscribe on a recovering connection returned %v, want ErrAMQPRecovery", err)
	}

	conn, err := Dial(url, WithAMQPConfig(amqp.Config{Recovery: &amqp.Recovery{}}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.mu.Lock()
	on := conn.conn.IsRecoveryEnabled()
	conn.mu.Unlock()
	if on {
		t.Fatal("Dial kept amqp091's recovery on")
	}
}

// ownDialer is a Dialer of the user's own over an *amqp.Connection: the
// type checks for *amqp.Connection do not see through it.
type ownDialer struct{ conn *amqp.Connection }

func (d ownDialer) Channel() (*amqp.Channel, error) { return d.conn.Channel() }

// dialRecovering dials the test broker with amqp091's recovery on, as
// amqp.Recovery{} configures it; closed at cleanup.
func dialRecovering(t *testing.T) *amqp.Connection {
	t.Helper()
	raw, err := amqp.DialConfig(brokers.RabbitMQURL(t), amqp.Config{
		Properties: amqp.Table{"connection_name": "test " + t.Name()},
		Recovery:   &amqp.Recovery{},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	if !raw.IsRecoveryEnabled() {
		t.Fatal("amqp091 did not enable recovery: the test proves nothing")
	}
	return raw
}

// A recovering *amqp.Connection behind a Dialer of the user's own is found
// on the channel Subscribe opens (amqp091 tracks its prefetch for
// recovery), and refused for good, also when reconnecting is on; the same
// Dialer over a plain connection consumes.
func TestAMQPRecoveryBehindDialer(t *testing.T) {
	plain, q := setup(t, nil)
	raw := dialRecovering(t)
	nop := middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })
	for _, reconnect := range []bool{false, true} {
		// Without the check Subscribe would consume until this ends.
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err := NewSubscriber(ownDialer{raw}, WithReconnect(reconnect)).Subscribe(ctx, q, nop)
		cancel()
		if !errors.Is(err, ErrAMQPRecovery) {
			t.Fatalf("Subscribe (reconnect %v) through a Dialer over a recovering connection returned %v, want ErrAMQPRecovery", reconnect, err)
		}
	}

	got := make(chan *middleware.Message, 1)
	subscribe(t, t.Context(), NewSubscriber(ownDialer{plain}), q, func(_ context.Context, m *middleware.Message) error {
		got <- m
		return nil
	})
	if err := rawChannel(t, plain).Publish("", q, false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	receive(t, got, 1, 5*time.Second)
}

// Publish refuses a recovering connection, bare or behind a Dialer of the
// user's own, with confirms or without, before sending anything: amqp091
// would reopen the channel in place and restart the confirm tags under
// unconfirmed messages. The same Dialer over a plain connection publishes.
func TestPublisherRefusesAMQPRecovery(t *testing.T) {
	plain, q := setup(t, nil)
	raw := dialRecovering(t)
	for _, conn := range []Dialer{raw, ownDialer{raw}} {
		for _, confirms := range []bool{false, true} {
			pub := NewPublisher(conn, WithConfirms(confirms))
			defer pub.Close()
			ctxs := map[string]context.Context{"": t.Context(), " with RequireConfirm": middleware.RequireConfirm(t.Context())}
			for name, ctx := range ctxs {
				err := pub.Publish(ctx, q, middleware.NewMessage([]byte("x")))
				if !errors.Is(err, ErrAMQPRecovery) {
					t.Errorf("%T, confirms %v%s: Publish returned %v, want ErrAMQPRecovery", conn, confirms, name, err)
				}
			}
		}
	}
	if n := queueDepth(t, plain, q); n != 0 {
		t.Fatalf("%d message(s) published through a recovering connection", n)
	}

	pub := NewPublisher(ownDialer{plain}, WithConfirms(true))
	defer pub.Close()
	if err := pub.Publish(t.Context(), q, middleware.NewMessage([]byte("x"))); err != nil {
		t.Fatalf("Publish through a Dialer over a plain connection: %v", err)
	}
	eventually(t, 5*time.Second, "the message in the queue", func() bool { return queueDepth(t, plain, q) == 1 })
}
