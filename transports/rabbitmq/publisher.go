package rabbitmq

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// Publisher publishes Messages to an exchange; the destination of Publish is
// the routing key. It is safe for concurrent use: calls share one channel and
// are serialized, because an AMQP channel in confirm mode pairs confirms
// with publishes by order.
type Publisher struct {
	conn Dialer
	cfg  config

	mu sync.Mutex
	ch *amqp.Channel // nil until the first Publish and after it closed
}

var (
	_ middleware.Publisher = (*Publisher)(nil)
	_ middleware.Describer = (*Publisher)(nil)
)

// NewPublisher returns a Publisher that opens its channel on conn at the
// first Publish and opens a new one when that channel closes.
func NewPublisher(conn Dialer, opts ...Option) *Publisher {
	return &Publisher{conn: conn, cfg: newConfig(conn, opts)}
}

// Describe names the send destination "{exchange}:{routing key}".
func (p *Publisher) Describe(routingKey string) middleware.Destination {
	return middleware.Destination{
		System:     propagation.SystemRabbitMQ,
		Name:       propagation.RabbitMQDestination(p.cfg.exchange, routingKey, ""),
		Attributes: append([]attribute.KeyValue{propagation.RabbitMQRouting(routingKey)}, p.cfg.serverAttributes()...),
	}
}

// Publish sends msgs with routing key routingKey. With confirms on it
// returns after the broker confirmed every message. The error names every
// message that was not published or was nacked, by index and message ID.
// A message with an empty ID gets a random one, written to its ID field
// before it is sent; so msgs must not be read or written concurrently.
func (p *Publisher) Publish(ctx context.Context, routingKey string, msgs ...*middleware.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()

	var errs []error
	fail := func(i int, msg *middleware.Message, err error) {
		id := ""
		if msg != nil {
			id = msg.ID
		}
		errs = append(errs, fmt.Errorf("message %d (id %q): %w", i, id, err))
	}
	ch, err := p.channel(ctx)
	if err != nil {
		for i, msg := range msgs {
			fail(i, msg, err)
		}
		return p.publishError(routingKey, errs)
	}

	confirms := make([]*amqp.DeferredConfirmation, len(msgs))
	now := time.Now()
	for i, msg := range msgs {
		if msg == nil {
			fail(i, msg, errors.New("nil message"))
			continue
		}
		if msg.ID == "" {
			// AMQP brokers assign no message ID. Inventing one here (and
			// keeping it on msg) lets a caller that publishes a failed
			// batch again send the same IDs, so consumers can deduplicate.
			msg.ID = rand.Text()
		}
		pub := publishing(msg, now)
		// Persistent by default: a durable queue keeps a message across a
		// broker restart only if the message is persistent too, and losing
		// queued work silently is the worse surprise (WithTransient opts out).
		pub.DeliveryMode = p.cfg.deliveryMode()
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, p.cfg.exchange, routingKey, false, false, pub)
		if err != nil {
			fail(i, msg, err)
			continue
		}
		confirms[i] = dc
	}
	for i, dc := range confirms {
		if dc == nil {
			continue
		}
		acked, err := dc.WaitContext(ctx)
		switch {
		case err != nil:
			fail(i, msgs[i], fmt.Errorf("waiting for the confirm: %w", err))
		case !acked && ch.IsClosed():
			// amqp091 resolves outstanding confirms as nacks when the
			// channel closes; say so, because the broker may well have the
			// message (publish again and expect a duplicate).
			fail(i, msgs[i], errors.New("channel closed before the broker confirmed"))
		case !acked:
			fail(i, msgs[i], errors.New("nacked by the broker"))
		}
	}
	if ch.IsClosed() {
		p.ch = nil
	}
	return p.publishError(routingKey, errs)
}

func (p *Publisher) publishError(routingKey string, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("rabbitmq: publish to %s: %d message(s) failed: %w",
		propagation.RabbitMQDestination(p.cfg.exchange, routingKey, ""), len(errs), errors.Join(errs...))
}

// channel returns the open channel, opening one (in confirm mode when
// confirms are on) if there is none. p.mu is held.
func (p *Publisher) channel(ctx context.Context) (*amqp.Channel, error) {
	if p.ch != nil && !p.ch.IsClosed() {
		return p.ch, nil
	}
	p.ch = nil
	ch, err := openChannel(ctx, p.conn)
	if err != nil {
		return nil, err
	}
	if p.cfg.confirms {
		if err := ch.Confirm(false); err != nil {
			_ = ch.Close()
			return nil, fmt.Errorf("enabling confirms: %w", err)
		}
	}
	p.ch = ch
	return ch, nil
}

// Close closes the Publisher's channel, not the connection.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch == nil {
		return nil
	}
	err := p.ch.Close()
	p.ch = nil
	if errors.Is(err, amqp.ErrClosed) {
		return nil
	}
	return err
}
