package rabbitmq

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/internal/destcache"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// Publisher publishes Messages to an exchange; the destination of Publish is
// the routing key. It is safe for concurrent use: calls share one channel and
// are serialized, because an AMQP channel in confirm mode pairs confirms
// with publishes by order. With confirms off, the calls whose context is
// marked with middleware.RequireConfirm share a second channel, in confirm
// mode, serialized apart from the others; so the order of messages
// published with and without the mark is not kept.
type Publisher struct {
	conn Dialer
	cfg  config

	// pubChannel carries every publish, in confirm mode with confirms on.
	// Embedded: p.ch, p.returns and p.headers are this channel's.
	pubChannel
	// confirmed carries, with confirms off, the publishes whose context
	// requires confirms (middleware.ConfirmRequired); it is in confirm
	// mode and opened at the first of them. Its own lock keeps the
	// unconfirmed publishes from waiting behind its confirms.
	confirmed pubChannel

	// dests memoizes Describe, which the middleware calls on every Publish.
	dests destcache.Cache
}

// pubChannel is a channel the Publisher publishes on and what goes with it.
type pubChannel struct {
	// confirms puts ch in confirm mode: publishes are mandatory and
	// Publish waits for their confirms. Set by NewPublisher.
	confirms bool

	mu sync.Mutex
	ch *amqp.Channel // nil until the first Publish and after it closed
	// closed hears why the broker closed ch (amqp091 sends the reason,
	// then closes it); reason keeps what it said. Guarded by mu.
	closed chan *amqp.Error
	reason *amqp.Error
	// returns reads the messages the broker could not route (basic.return)
	// on ch, in confirm mode, when Publish sets mandatory; nil otherwise.
	returns *returnReader
	// headers is the header table reused by every publish (see
	// publishing); guarded by mu.
	headers amqp.Table
	// ids makes the IDs of messages published without one; guarded by mu.
	ids idSource
	// shut is set by Close: no channel is opened again. Guarded by mu.
	shut bool
}

// ErrPublisherClosed is why a Publish after Close fails.
var ErrPublisherClosed = errors.New("rabbitmq: publisher closed")

// maxReusedHeaders bounds the header table a Publisher keeps for the next
// message: a table that held more entries is left to the garbage collector.
const maxReusedHeaders = 64

var (
	_ middleware.Publisher = (*Publisher)(nil)
	_ middleware.Describer = (*Publisher)(nil)
)

// NewPublisher returns a Publisher that opens its channel on conn at the
// first Publish and opens a new one when that channel closes. Publish
// refuses a connection with amqp091's automatic recovery on
// (ErrAMQPRecovery): it would reopen the channel in place, restarting the
// confirm tags under unconfirmed messages.
func NewPublisher(conn Dialer, opts ...Option) *Publisher {
	p := &Publisher{conn: conn, cfg: newConfig(conn, opts)}
	p.pubChannel.confirms = p.cfg.confirms
	p.confirmed.confirms = true
	p.dests.Build = p.describe
	return p
}

// Describe names the send destination "{exchange}:{routing key}". The
// Attributes of the result are shared between calls: do not modify them
// (appending is fine).
func (p *Publisher) Describe(routingKey string) middleware.Destination {
	return p.dests.Get(routingKey)
}

func (p *Publisher) describe(routingKey string) middleware.Destination {
	attrs := append(appendRoutingKey(nil, routingKey), p.cfg.serverAttributes()...)
	if p.cfg.exchange == "" && serverNamed(routingKey) {
		// The default exchange routes to the queue of that name.
		attrs = append(attrs, propagation.DestinationAnonymous(true))
	}
	return middleware.Destination{
		System: propagation.SystemRabbitMQ,
		Name:   propagation.RabbitMQDestination(p.cfg.exchange, routingKey, ""),
		// Clipped: the slice is shared, so an append must copy it.
		Attributes: attrs[:len(attrs):len(attrs)],
	}
}

// Publish sends msgs with routing key routingKey. With confirms on, or
// when ctx is marked with middleware.RequireConfirm, it returns after the
// broker confirmed every message, and a message the broker could not route
// fails. The error names every message that was not published, was nacked
// or was returned, by index and message ID.
// A message with an empty ID gets a random one, written to its ID field
// before it is sent; so msgs must not be read or written concurrently.
func (p *Publisher) Publish(ctx context.Context, routingKey string, msgs ...*middleware.Message) error {
	c := &p.pubChannel
	if !c.confirms && middleware.ConfirmRequired(ctx) {
		c = &p.confirmed
	}
	return p.publish(ctx, c, routingKey, msgs)
}

// publish is Publish on c.
func (p *Publisher) publish(ctx context.Context, c *pubChannel, routingKey string, msgs []*middleware.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()

	var errs []error
	fail := func(i int, msg *middleware.Message, err error) {
		id := ""
		if msg != nil {
			id = msg.ID
		}
		errs = append(errs, fmt.Errorf("message %d (id %q): %w", i, id, named(err)))
	}
	ch, err := c.channel(ctx, p.conn)
	if err != nil {
		for i, msg := range msgs {
			fail(i, msg, err)
		}
		return p.publishError(routingKey, errs)
	}

	rr := c.returns // nil without confirms
	if rr != nil {
		rr.expect()
	}
	var confirms []*amqp.DeferredConfirmation // nil without confirms: nothing to wait for
	if c.confirms {
		confirms = make([]*amqp.DeferredConfirmation, len(msgs))
	}
	var now time.Time // read once, when a message needs stamping
	mode := p.cfg.deliveryMode()
	frameSize := frameSizeOf(p.conn)
	for i, msg := range msgs {
		if msg == nil {
			fail(i, msg, middleware.Permanent(errors.New("nil message")))
			continue
		}
		if err := checkPublishing(msg, frameSize); err != nil {
			fail(i, msg, middleware.Permanent(err))
			continue
		}
		if msg.ID == "" {
			// AMQP brokers assign no message ID. Inventing one here (and
			// keeping it on msg) lets a caller that publishes a failed
			// batch again send the same IDs, so consumers can deduplicate.
			msg.ID = c.ids.next()
		}
		if msg.Time.IsZero() && now.IsZero() {
			now = time.Now()
		}
		pub := publishing(msg, now, c.headers, p.cfg.millis)
		switch {
		case len(pub.Headers) > maxReusedHeaders:
			// An outlier: its table must not make every later clear slow.
			c.headers = nil
		case pub.Headers != nil:
			c.headers = pub.Headers
		}
		// Persistent by default: a durable queue keeps a message across a
		// broker restart only if the message is persistent too, and losing
		// queued work silently is the worse surprise (WithTransient opts out).
		pub.DeliveryMode = mode
		// Mandatory with confirms: an unroutable message comes back
		// (basic.return) before its confirm, and fails, where the broker
		// would confirm it and drop it.
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, p.cfg.exchange, routingKey, c.confirms, false, pub)
		if err != nil {
			fail(i, msg, err)
			continue
		}
		if confirms != nil {
			confirms[i] = dc
		}
	}
	acked := make([]bool, len(confirms))
	for i, dc := range confirms {
		if dc == nil {
			continue
		}
		ok, err := waitConfirm(ctx, dc)
		switch {
		case err != nil:
			fail(i, msgs[i], fmt.Errorf("waiting for the confirm: %w", err))
		case !ok && ch.IsClosed():
			// amqp091 resolves outstanding confirms as nacks when the
			// channel closes; say so, and why the broker closed it (a
			// missing exchange: 404 NOT_FOUND), because otherwise the
			// broker may well have the message (publish again and expect
			// a duplicate).
			fail(i, msgs[i], closedError(c.closeReason()))
		case !ok:
			fail(i, msgs[i], middleware.NamedError(errors.New("nacked by the broker"), "nacked"))
		default:
			acked[i] = true // unless it was returned
		}
	}
	if rr != nil {
		returned := rr.collect()
		for i, ok := range acked {
			if !ok {
				continue
			}
			if r, returnedToo := returned[msgs[i].ID]; returnedToo {
				fail(i, msgs[i], returnedError(r, routingKey))
			}
		}
	}
	if ch.IsClosed() {
		c.ch = nil
	}
	clear(c.headers) // hold on to no caller's strings
	return p.publishError(routingKey, errs)
}

// waitConfirm waits for dc or the end of ctx.
func waitConfirm(ctx context.Context, dc *amqp.DeferredConfirmation) (bool, error) {
	select {
	case <-dc.Done():
		return dc.Acked(), nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// returnReader reads the basic.returns of one channel in its own goroutine,
// from the channel's opening until amqp091 closes the returns channel (the
// AMQP channel closed) or the Publisher stops it. amqp091's dispatcher
// delivers a return synchronously, waiting up to 5 s for room before
// dropping it, and every channel of the connection waits meanwhile. Read
// only inside Publish, the returns of a call that gave up waiting (its ctx
// ended) would fill the buffer and stall the connection, consumers on it
// included, until some later Publish.
//
// Publish finds its returns without racing the goroutine: the broker sends
// a message's return before its confirm and amqp091 dispatches them in
// that order, so once a confirm is done its return, if any, was put in the
// returns channel. After the last confirm, collect asks the goroutine to
// empty the returns channel and waits for its answer: the goroutine
// handles one thing at a time, so a return it took earlier is recorded by
// then, and the rest are still in the buffer.
type returnReader struct {
	returns <-chan amqp.Return
	flush   chan struct{} // collect's request: record every delivered return
	flushed chan struct{} // the answer: done
	stop    chan struct{} // closed by stopReading
	done    chan struct{} // closed when the goroutine ends

	mu sync.Mutex
	// waiting is set while a Publish call waits for returns. Between calls
	// returns are dropped: they belong to a call that gave up waiting, and
	// no later call can use them, so keeping them would only grow.
	waiting  bool
	returned returnedSet // this call's returns by message ID; nil until one
}

func newReturnReader(ch *amqp.Channel) *returnReader {
	r := &returnReader{
		returns: ch.NotifyReturn(make(chan amqp.Return, returnsBuffer)),
		flush:   make(chan struct{}),
		flushed: make(chan struct{}),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go r.run()
	return r
}

func (r *returnReader) run() {
	defer close(r.done)
	for {
		select {
		case ret, ok := <-r.returns:
			if !ok {
				return
			}
			r.record(ret)
		case <-r.flush:
			open := r.drain()
			r.flushed <- struct{}{}
			if !open {
				return
			}
		case <-r.stop:
			return
		}
	}
}

// drain records the returns already in the buffer; false when the returns
// channel closed.
func (r *returnReader) drain() bool {
	for {
		select {
		case ret, ok := <-r.returns:
			if !ok {
				return false
			}
			r.record(ret)
		default:
			return true
		}
	}
}

func (r *returnReader) record(ret amqp.Return) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.waiting {
		return // an earlier call's, which gave up waiting
	}
	if r.returned == nil {
		r.returned = returnedSet{}
	}
	r.returned[ret.MessageId] = ret
}

// expect starts recording returns, before Publish publishes.
func (r *returnReader) expect() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waiting = true
	r.returned = nil
}

// collect returns the returns recorded since expect, including every one
// amqp091 delivered before the confirms Publish has seen, and stops
// recording. Besides the call's own, the set may hold returns of an earlier
// call that gave up waiting, which arrived meanwhile: a message published
// again with the same ID may then fail although routed (as before this
// reader), and the rest are dropped with the set.
func (r *returnReader) collect() returnedSet {
	select {
	case r.flush <- struct{}{}:
		<-r.flushed
	case <-r.done: // the returns channel closed: everything was recorded
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	returned := r.returned
	r.waiting, r.returned = false, nil
	return returned
}

// stopReading ends the goroutine, for a channel the Publisher no longer
// uses: amqp091 does not close the returns channel of a channel that its
// automatic recovery may reopen.
func (r *returnReader) stopReading() {
	close(r.stop)
	<-r.done
}

// returnedSet is returns by message ID.
type returnedSet map[string]amqp.Return

// returnsBuffer is how many returns amqp091 can hand over before the
// reader takes them.
const returnsBuffer = 256

func (p *Publisher) publishError(routingKey string, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("rabbitmq: publish to %s: %d message(s) failed: %w",
		propagation.RabbitMQDestination(p.cfg.exchange, routingKey, ""), len(errs), errors.Join(errs...))
}

// channel returns the open channel, opening one on conn (in confirm mode
// when c confirms) if there is none. c.mu is held.
func (c *pubChannel) channel(ctx context.Context, conn Dialer) (*amqp.Channel, error) {
	if c.shut {
		return nil, ErrPublisherClosed
	}
	if c.ch != nil && !c.ch.IsClosed() {
		return c.ch, nil
	}
	c.ch = nil
	c.dropReturns()
	if recoveryEnabled(conn) {
		return nil, ErrAMQPRecovery
	}
	ch, err := openChannel(ctx, conn)
	if err != nil {
		return nil, err
	}
	if err := checkRecovery(ctx, conn, ch); err != nil {
		return nil, err
	}
	c.closed, c.reason = ch.NotifyClose(make(chan *amqp.Error, 1)), nil
	if c.confirms {
		if err := setupChannel(ctx, ch, func() error { return ch.Confirm(false) }); err != nil {
			return nil, fmt.Errorf("enabling confirms: %w", err)
		}
		c.returns = newReturnReader(ch)
	}
	c.ch = ch
	return ch, nil
}

// closeReason is why the broker closed c's channel, nil when it did not
// say (or has not). c.mu is held.
func (c *pubChannel) closeReason() *amqp.Error {
	if c.reason == nil && c.closed != nil {
		select {
		case e := <-c.closed:
			c.reason = e
		default:
		}
	}
	return c.reason
}

// closedError is the error of a message whose confirm the channel's close
// cut short, with the broker's reason when it gave one.
func closedError(reason *amqp.Error) error {
	if reason == nil {
		return errors.New("channel closed before the broker confirmed")
	}
	return fmt.Errorf("channel closed before the broker confirmed: %w", reason)
}

// dropReturns stops the returns reader of a channel the Publisher no longer
// uses. c.mu is held.
func (c *pubChannel) dropReturns() {
	if c.returns != nil {
		c.returns.stopReading()
		c.returns = nil
	}
}

// Close closes the Publisher's channels, not the connection; a Publish
// after it fails with ErrPublisherClosed rather than open a channel that
// nothing would close.
func (p *Publisher) Close() error {
	return errors.Join(p.pubChannel.close(), p.confirmed.close())
}

// close closes the channel and stops its returns reader.
func (c *pubChannel) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.shut = true
	var err error
	if c.ch != nil {
		err = c.ch.Close()
		c.ch = nil
	}
	c.dropReturns() // after closing ch, which then sends no more returns
	if errors.Is(err, amqp.ErrClosed) {
		return nil
	}
	return err
}

// idSource makes random message IDs shaped like crypto/rand.Text's: 26
// characters of the base32 alphabet, 130 random bits. It draws them from a
// ChaCha8 stream (a cryptographically strong generator) seeded from
// crypto/rand on first use, so an ID costs no system call. The zero
// idSource is ready to use; it is not safe for concurrent use.
type idSource struct {
	r *mrand.ChaCha8
}

const base32Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

func (s *idSource) next() string {
	if s.r == nil {
		var seed [32]byte
		_, _ = rand.Read(seed[:]) // never fails (crypto/rand.Read's doc)
		s.r = mrand.NewChaCha8(seed)
	}
	var b [26]byte
	_, _ = s.r.Read(b[:]) // ChaCha8.Read never fails
	for i := range b {
		b[i] = base32Alphabet[b[i]%32]
	}
	return string(b[:])
}

// returnedError is the error of a message the broker returned (basic.return)
// instead of routing it, named by the return's reply code (312: no-route).
func returnedError(r amqp.Return, routingKey string) error {
	err := fmt.Errorf("returned by the broker: %d %s (nothing bound to routing key %q)", r.ReplyCode, r.ReplyText, routingKey)
	if name, ok := replyNames[int(r.ReplyCode)]; ok {
		return middleware.NamedError(err, name)
	}
	return err
}
