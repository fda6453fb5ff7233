package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// Subscriber consumes a queue with manual acknowledgements: a handler's nil
// acks the message, an error or panic rejects it (basic.reject: requeued,
// or dead-lettered with WithRequeue(false)), which RabbitMQ 4.3 and later
// count as a failed delivery.
type Subscriber struct {
	conn Dialer
	cfg  config
}

var (
	_ middleware.Subscriber = (*Subscriber)(nil)
	_ middleware.Describer  = (*Subscriber)(nil)
)

// NewSubscriber returns a Subscriber that opens one channel on conn per
// Subscribe call, and a new one each time it reconnects.
func NewSubscriber(conn Dialer, opts ...Option) *Subscriber {
	return &Subscriber{conn: conn, cfg: newConfig(conn, opts)}
}

// Describe names the destination by the queue alone. The exchange and
// routing key each delivery came through are per-message attributes, so span
// names stay low-cardinality ("process orders").
func (s *Subscriber) Describe(queue string) middleware.Destination {
	attrs := s.cfg.serverAttributes()
	if serverNamed(queue) {
		attrs = append(attrs, propagation.DestinationAnonymous(true))
	}
	return middleware.Destination{
		System:     propagation.SystemRabbitMQ,
		Name:       queue,
		Attributes: attrs,
		Push:       true, // basic.consume: deliveries are pushed, no receive span
	}
}

// serverNamed reports whether queue is a name the broker generated: a
// queue declared without a name (amq.gen-...), or the reply-to of a
// direct reply-to RPC client (amq.rabbitmq.reply-to.<id>), a name per
// declaration or per client. Its destinations are marked
// messaging.destination.anonymous, which metrics record without the name
// and spans leave out of their names.
func serverNamed(queue string) bool {
	return strings.HasPrefix(queue, "amq.gen-") || strings.HasPrefix(queue, "amq.rabbitmq.reply-to.")
}

// Subscribe consumes queue until ctx ends or the channel or consumer is
// closed by the broker or the connection.
//
// Each delivery is reported to the observers on its own (Received with one
// message, starting when the delivery is taken from the prefetch buffer):
// AMQP pushes messages, so there is no poll to group them by, and the
// tracing middleware starts no receive span for them (Destination.Push).
// Up to WithConcurrency handlers run at once.
//
// Acks are written off the handlers' goroutines, several at once when
// handlers finish faster than acks are written (see the package doc).
//
// When ctx ends Subscribe stops taking deliveries and cancels its consumer
// (basic.cancel), so that the broker sends no more, waits for the running
// handlers, settles them as usual (ack on success, nack on error), closes
// its channel, which returns the prefetched but unhandled messages to the
// queue, and returns nil.
//
// When the channel or the consumer is closed for any other reason,
// Subscribe returns an error, unless reconnecting is on (WithReconnect; the
// default for a *Connection): then it waits for the running handlers, opens
// a new channel with backoff and resumes consuming. The handlers that were
// running when the channel died cannot settle their messages: the ack or
// nack fails, the error is reported to the observers' Settled, and the broker
// redelivers those messages, as it does the prefetched ones.
func (s *Subscriber) Subscribe(ctx context.Context, queue string, h middleware.Handler) error {
	if h == nil {
		return errors.New("rabbitmq: subscribe: nil handler")
	}
	if isNil(s.conn) {
		return errors.New("rabbitmq: subscribe: no connection")
	}
	if recoveryEnabled(s.conn) {
		// Recovery reopens the channel in place: delivery tags start again
		// at 1 while the old channel's deliveries are still being settled,
		// and an ack meant for one would settle another.
		return ErrAMQPRecovery
	}
	reconnect := canReconnect(s.conn)
	if s.cfg.reconnect != nil {
		reconnect = *s.cfg.reconnect
	}
	var obs middleware.Observer
	if middleware.Observed(ctx) {
		obs = middleware.ObserverFrom(ctx)
	} // else nobody to tell: handle skips the observer and the clock
	dest := s.Describe(queue)
	for attempt := 0; ; attempt++ {
		consumed, err := s.consume(ctx, queue, h, obs, dest)
		if ctx.Err() != nil {
			return nil
		}
		// A refusal of the queue is final only when basic.consume failed:
		// a channel the broker closes while consuming (406 for an unknown
		// delivery tag or an overrun consumer_timeout, 404 for a deleted
		// queue) is opened again, and basic.consume says whether the
		// refusal stands.
		if !reconnect || permanent(err) && (!consumed || errors.Is(err, errConnectionClosed)) ||
			!canReconnect(s.conn) && connectionClosed(s.conn) {
			return err
		}
		if consumed {
			// The last channel worked: start the backoff over.
			attempt = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.backoff(attempt)):
		}
	}
}

// consume runs one channel's consumer until ctx ends or the channel or the
// consumer closes, and waits for its handlers. consumed reports whether
// basic.consume succeeded, so the caller can tell a channel that worked for
// a while from one that cannot be opened.
func (s *Subscriber) consume(ctx context.Context, queue string, h middleware.Handler, obs middleware.Observer, dest middleware.Destination) (consumed bool, _ error) {
	ch, err := openChannel(ctx, s.conn)
	if err != nil {
		return false, fmt.Errorf("rabbitmq: consuming %q: %w", queue, err)
	}
	// The close returns the prefetched, unhandled messages to the queue;
	// Subscribe does not wait past closeWait for the broker to confirm it.
	// After a setup call given up on (pending, still running), the close
	// must follow the call, never overtake it (see abandonable), so it
	// waits for it in the background: a broker answers in milliseconds, a
	// silent network at the heartbeat timeout, which Subscribe, stopped,
	// does not wait for.
	var pending <-chan struct{}
	defer func() {
		if pending == nil {
			closeChannel(ch)
			return
		}
		go func() {
			<-pending
			closeChannel(ch)
		}()
	}()
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	// setup runs a call that waits for the broker's answer (basic.qos,
	// basic.consume) until it returns or ctx ends.
	setup := func(f func() error) error {
		returned, err := abandonable(ctx, f)
		if returned != nil {
			pending = returned
		}
		return err
	}
	if err := setup(func() error { return ch.Qos(s.cfg.prefetch, 0, false) }); err != nil {
		return false, fmt.Errorf("rabbitmq: setting prefetch on %q: %w", queue, err)
	}
	if tracksTopology(ch) {
		// A Dialer of the user's own over a recovering *amqp.Connection,
		// which the check in Subscribe cannot see.
		return false, fmt.Errorf("rabbitmq: consuming %q: %w", queue, ErrAMQPRecovery)
	}
	tag := s.cfg.consumerTag
	if tag == "" {
		// Named here rather than by amqp091, so that it can be cancelled.
		tag = "ctag-otelmq-" + strconv.FormatUint(consumerTags.Add(1), 10)
	}
	var deliveries <-chan amqp.Delivery
	err = setup(func() (err error) {
		deliveries, err = ch.Consume(queue, tag, false, false, false, false, nil)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("rabbitmq: consuming %q: %w", queue, err)
	}
	// When ctx ends, the broker must stop delivering while the running
	// handlers drain: each ack of theirs frees a prefetch slot, which a
	// registered consumer would be sent a new message for, never handled,
	// returned when the channel closes and marked redelivered (a classic
	// queue's DeliveryCount 2, saturated, before its first real attempt).
	// No wait: the deliveries already on their way are returned with the
	// prefetched ones. The cancel is joined before the deferred close:
	// amqp091 checks that a channel is open and then writes, so a
	// basic.cancel racing the close could reach the broker after
	// channel.close, and the broker then closes the whole connection (504
	// "expected 'channel.open'").
	stopCancel, cancelled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(cancelled)
		select {
		case <-ctx.Done():
			_ = ch.Cancel(tag, true)
		case <-stopCancel:
		}
	}()
	defer func() { close(stopCancel); <-cancelled }()

	hctx := handlerContext(ctx)
	a := newAcker(hctx, ch, s.cfg.requeue, obs, dest)
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
					if ch.IsClosed() {
						// A delivery amqp091 buffered before the channel
						// died: it cannot be acked, and the broker has
						// already put it back on the queue.
						continue
					}
					s.handle(hctx, a, obs, dest, h, &d, queue)
				}
			}
		})
	}
	wg.Wait()
	a.close() // settled before the channel closes, or they would come back

	if ctx.Err() != nil {
		return true, nil
	}
	select {
	case e, ok := <-closed:
		if ok && e != nil {
			return true, fmt.Errorf("rabbitmq: consuming %q: channel closed: %w", queue, e)
		}
	default:
	}
	return true, fmt.Errorf("rabbitmq: consuming %q: consumer closed by the broker or the connection", queue)
}

// permanent reports whether err is one a new channel cannot cure: the
// *Connection was closed by its owner, its connection recovers channels in
// place (ErrAMQPRecovery), or the broker
// refused the queue itself (404 not found, 403 access refused, 405 resource
// locked by an exclusive consumer, 406 precondition failed) when asked to
// consume from it.
func permanent(err error) bool {
	if errors.Is(err, errConnectionClosed) || errors.Is(err, ErrAMQPRecovery) {
		return true
	}
	var e *amqp.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case amqp.NotFound, amqp.AccessRefused, amqp.ResourceLocked, amqp.PreconditionFailed:
		return true
	}
	return false
}

// connectionClosed reports whether conn is an *amqp.Connection that is
// closed for good.
func connectionClosed(conn Dialer) bool {
	c, ok := conn.(*amqp.Connection)
	return ok && c != nil && c.IsClosed()
}

// backoff is the wait before the attempt-th consecutive reopening: from
// 100ms doubling to 5s, with jitter. *Connection paces its own redials; this
// paces channels that fail while the connection is fine.
func (s *Subscriber) backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond
	for range min(attempt, 6) {
		d *= 2
	}
	d = min(d, 5*time.Second)
	return d/2 + rand.N(d/2+1)
}

// handlerContext is the context Subscribe's handlers start from, made once
// per channel rather than per delivery: ctx without its cancellation, so a
// shutdown lets running handlers finish. The value layer on top is there
// for speed: a lookup that starts at a context.WithoutCancel context boxes
// it (an allocation per ctx.Value call that misses), one that starts at a
// context.WithValue context walks past it without allocating.
func handlerContext(ctx context.Context) context.Context {
	return context.WithValue(context.WithoutCancel(ctx), handlerContextKey{}, true)
}

type handlerContextKey struct{}

// handle runs h on one delivery and settles it, telling obs unless it is
// nil. ctx is the handlers' context, which does not end with Subscribe's, so
// a shutdown lets running handlers finish. handle keeps no pointer to d: the
// Message's As reaches a copy.
func (s *Subscriber) handle(ctx context.Context, a *acker, obs middleware.Observer, dest middleware.Destination, h middleware.Handler, d *amqp.Delivery, queue string) {
	var start time.Time
	if obs != nil {
		start = time.Now()
	}
	in := newInbound(d, queue)
	if s.cfg.requeue && countSaturated(d) {
		// A requeue would bring it back with this count again (a
		// dead-lettering, without requeue, adds an x-death count).
		in.msg.SetDeliveryCountSaturated()
	}
	msgs := in.msgs[:]
	hctx := ctx
	if obs != nil {
		hctx = obs.Received(ctx, dest, start, msgs)
	}

	err := middleware.Call(hctx, h, &in.msg)
	a.settle(hctx, in, err != nil)
}
