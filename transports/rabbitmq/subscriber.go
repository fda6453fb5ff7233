package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// Subscriber consumes a queue with manual acknowledgements: a handler's nil
// acks the message, an error or panic nacks it (requeued, or dead-lettered
// with WithRequeue(false)).
type Subscriber struct {
	conn Dialer
	cfg  config
}

var (
	_ middleware.Subscriber = (*Subscriber)(nil)
	_ middleware.Describer  = (*Subscriber)(nil)
)

// NewSubscriber returns a Subscriber that opens one channel on conn per
// Subscribe call.
func NewSubscriber(conn Dialer, opts ...Option) *Subscriber {
	return &Subscriber{conn: conn, cfg: newConfig(conn, opts)}
}

// Describe names the destination by the queue alone. The exchange and
// routing key each delivery came through are per-message attributes, so span
// names stay low-cardinality ("process orders").
func (s *Subscriber) Describe(queue string) middleware.Destination {
	return middleware.Destination{
		System:     propagation.SystemRabbitMQ,
		Name:       queue,
		Attributes: s.cfg.serverAttributes(),
	}
}

// Subscribe consumes queue until ctx ends or the channel or consumer is
// closed by the broker or the connection.
//
// Each delivery is its own receive: AMQP pushes messages, so there is no
// poll to group them by, and the receive starts when the delivery is taken
// from the prefetch buffer. Up to WithConcurrency handlers run at once.
//
// When ctx ends Subscribe stops taking deliveries, waits for the running
// handlers, settles them as usual (ack on success, nack on error), closes
// its channel, which returns the prefetched but unhandled messages to the
// queue, and returns nil. When the channel or the consumer is closed for any
// other reason it returns an error; it does not reconnect.
func (s *Subscriber) Subscribe(ctx context.Context, queue string, h middleware.Handler) error {
	if h == nil {
		return errors.New("rabbitmq: subscribe: nil handler")
	}
	ch, err := openChannel(s.conn)
	if err != nil {
		return err
	}
	defer ch.Close()
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Qos(s.cfg.prefetch, 0, false); err != nil {
		return fmt.Errorf("rabbitmq: setting prefetch on %q: %w", queue, err)
	}
	deliveries, err := ch.Consume(queue, s.cfg.consumerTag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("rabbitmq: consuming %q: %w", queue, err)
	}

	obs := middleware.ObserverFrom(ctx)
	dest := s.Describe(queue)
	var wg sync.WaitGroup
	for range s.cfg.concurrency {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case d, ok := <-deliveries:
					if !ok {
						return
					}
					if ctx.Err() != nil {
						return // unacked: requeued when the channel closes
					}
					s.handle(ctx, obs, dest, h, &d, queue)
				}
			}
		})
	}
	wg.Wait()

	if ctx.Err() != nil {
		return nil
	}
	select {
	case e, ok := <-closed:
		if ok && e != nil {
			return fmt.Errorf("rabbitmq: consuming %q: channel closed: %w", queue, e)
		}
	default:
	}
	return fmt.Errorf("rabbitmq: consuming %q: consumer closed by the broker or the connection", queue)
}

// handle runs h on one delivery and settles it. The handler's context does
// not end with ctx, so a shutdown lets running handlers finish.
func (s *Subscriber) handle(ctx context.Context, obs middleware.Observer, dest middleware.Destination, h middleware.Handler, d *amqp.Delivery, queue string) {
	start := time.Now()
	msg := message(d, queue)
	msgs := []*middleware.Message{msg}
	hctx := context.WithoutCancel(obs.Received(ctx, dest, start, msgs))

	err := middleware.Call(hctx, h, msg)

	op := propagation.OpAck
	st := time.Now()
	if err == nil {
		err = d.Ack(false)
	} else {
		op = propagation.OpNack
		err = d.Nack(false, s.cfg.requeue)
	}
	obs.Settled(hctx, dest, op, st, msgs, err)
}
