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
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelmq/otelmq/internal/destcache"
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
	// returns gets the messages the broker could not route (basic.return),
	// with confirms on, when Publish sets mandatory; nil otherwise.
	returns chan amqp.Return
	// headers is the header table reused by every publish (see
	// publishing); guarded by mu.
	headers amqp.Table
	// ids makes the IDs of messages published without one; guarded by mu.
	ids idSource

	// dests memoizes Describe, which the middleware calls on every Publish.
	dests destcache.Cache
}

// maxReusedHeaders bounds the header table a Publisher keeps for the next
// message: a table that held more entries is left to the garbage collector.
const maxReusedHeaders = 64

var (
	_ middleware.Publisher = (*Publisher)(nil)
	_ middleware.Describer = (*Publisher)(nil)
)

// NewPublisher returns a Publisher that opens its channel on conn at the
// first Publish and opens a new one when that channel closes.
func NewPublisher(conn Dialer, opts ...Option) *Publisher {
	p := &Publisher{conn: conn, cfg: newConfig(conn, opts)}
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
	attrs := append([]attribute.KeyValue{propagation.RabbitMQRouting(routingKey)}, p.cfg.serverAttributes()...)
	return middleware.Destination{
		System: propagation.SystemRabbitMQ,
		Name:   propagation.RabbitMQDestination(p.cfg.exchange, routingKey, ""),
		// Clipped: the slice is shared, so an append must copy it.
		Attributes: attrs[:len(attrs):len(attrs)],
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

	p.drainReturns(nil)                       // an earlier call's, which gave up waiting
	var confirms []*amqp.DeferredConfirmation // nil without confirms: nothing to wait for
	if p.cfg.confirms {
		confirms = make([]*amqp.DeferredConfirmation, len(msgs))
	}
	var now time.Time // read once, when a message needs stamping
	mode := p.cfg.deliveryMode()
	frameSize := frameSizeOf(p.conn)
	for i, msg := range msgs {
		if msg == nil {
			fail(i, msg, errors.New("nil message"))
			continue
		}
		if err := checkPublishing(msg, frameSize); err != nil {
			fail(i, msg, err)
			continue
		}
		if msg.ID == "" {
			// AMQP brokers assign no message ID. Inventing one here (and
			// keeping it on msg) lets a caller that publishes a failed
			// batch again send the same IDs, so consumers can deduplicate.
			msg.ID = p.ids.next()
		}
		if msg.Time.IsZero() && now.IsZero() {
			now = time.Now()
		}
		pub := publishing(msg, now, p.headers)
		switch {
		case len(pub.Headers) > maxReusedHeaders:
			// An outlier: its table must not make every later clear slow.
			p.headers = nil
		case pub.Headers != nil:
			p.headers = pub.Headers
		}
		// Persistent by default: a durable queue keeps a message across a
		// broker restart only if the message is persistent too, and losing
		// queued work silently is the worse surprise (WithTransient opts out).
		pub.DeliveryMode = mode
		// Mandatory with confirms: an unroutable message comes back
		// (basic.return) before its confirm, and fails, where the broker
		// would confirm it and drop it.
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, p.cfg.exchange, routingKey, p.cfg.confirms, false, pub)
		if err != nil {
			fail(i, msg, err)
			continue
		}
		if confirms != nil {
			confirms[i] = dc
		}
	}
	// Returns are read while waiting, so amqp091's dispatcher never blocks
	// on a full returns channel, and once more after the last confirm: the
	// broker sends a message's return before its confirm.
	var returned returnedSet
	acked := make([]bool, len(confirms))
	for i, dc := range confirms {
		if dc == nil {
			continue
		}
		ok, err := p.waitConfirm(ctx, dc, &returned)
		switch {
		case err != nil:
			fail(i, msgs[i], fmt.Errorf("waiting for the confirm: %w", err))
		case !ok && ch.IsClosed():
			// amqp091 resolves outstanding confirms as nacks when the
			// channel closes; say so, because the broker may well have the
			// message (publish again and expect a duplicate).
			fail(i, msgs[i], errors.New("channel closed before the broker confirmed"))
		case !ok:
			fail(i, msgs[i], errors.New("nacked by the broker"))
		default:
			acked[i] = true // unless it was returned
		}
	}
	p.drainReturns(&returned)
	for i, ok := range acked {
		if !ok {
			continue
		}
		if r, returnedToo := returned[msgs[i].ID]; returnedToo {
			fail(i, msgs[i], fmt.Errorf("returned by the broker: %d %s (nothing bound to routing key %q)", r.ReplyCode, r.ReplyText, routingKey))
		}
	}
	if ch.IsClosed() {
		p.ch = nil
	}
	clear(p.headers) // hold on to no caller's strings
	return p.publishError(routingKey, errs)
}

// returnedSet is the returns of one Publish call, by message ID; nil until
// the first.
type returnedSet map[string]amqp.Return

func (s *returnedSet) add(r amqp.Return) {
	if s == nil {
		return
	}
	if *s == nil {
		*s = returnedSet{}
	}
	(*s)[r.MessageId] = r
}

// waitConfirm waits for dc, recording in returned the returns that arrive
// meanwhile.
func (p *Publisher) waitConfirm(ctx context.Context, dc *amqp.DeferredConfirmation, returned *returnedSet) (bool, error) {
	for {
		select {
		case <-dc.Done():
			return dc.Acked(), nil
		case r, ok := <-p.returns:
			p.got(r, ok, returned)
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// drainReturns records in returned the returns already delivered; with a
// nil returned it discards them (those of an earlier call that gave up
// waiting).
func (p *Publisher) drainReturns(returned *returnedSet) {
	for p.returns != nil {
		select {
		case r, ok := <-p.returns:
			p.got(r, ok, returned)
		default:
			return
		}
	}
}

// got handles one receive from p.returns: a return is recorded in
// returned; a closed returns channel (the channel closed, and its confirms
// resolve as nacks) ends the reading.
func (p *Publisher) got(r amqp.Return, ok bool, returned *returnedSet) {
	if !ok {
		p.returns = nil
		return
	}
	returned.add(r)
}

// returnsBuffer is how many returns amqp091 can hand over while Publish is
// not reading them (it reads while it waits for confirms).
const returnsBuffer = 256

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
	p.returns = nil
	if p.cfg.confirms {
		if err := ch.Confirm(false); err != nil {
			_ = ch.Close()
			return nil, fmt.Errorf("enabling confirms: %w", err)
		}
		p.returns = ch.NotifyReturn(make(chan amqp.Return, returnsBuffer))
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
