package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Dialer opens AMQP channels. *amqp.Connection satisfies it.
type Dialer interface {
	Channel() (*amqp.Channel, error)
}

var _ Dialer = (*amqp.Connection)(nil)

// contextDialer is a Dialer whose Channel can wait (to redial) and so takes
// a context; *Connection is one.
type contextDialer interface {
	ChannelContext(ctx context.Context) (*amqp.Channel, error)
}

// openChannel opens a channel on conn; a nil conn is an error, not a panic.
// ctx bounds the wait when conn redials.
func openChannel(ctx context.Context, conn Dialer) (*amqp.Channel, error) {
	if isNil(conn) {
		return nil, errors.New("rabbitmq: no connection")
	}
	var ch *amqp.Channel
	var err error
	if cd, ok := conn.(contextDialer); ok {
		ch, err = cd.ChannelContext(ctx)
	} else {
		ch, err = channelOf(ctx, conn.Channel)
	}
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: opening a channel: %w", err)
	}
	return ch, nil
}

// isNil reports whether conn is nil or a typed nil of the Dialers this
// package knows, whose methods would panic.
func isNil(conn Dialer) bool {
	switch c := conn.(type) {
	case nil:
		return true
	case *amqp.Connection:
		return c == nil
	case *Connection:
		return c == nil
	}
	return false
}

// canReconnect reports whether conn comes back after its connection closes.
func canReconnect(conn Dialer) bool {
	r, ok := conn.(interface{ canReconnect() bool })
	return ok && !isNil(conn) && r.canReconnect()
}

type config struct {
	exchange    string
	confirms    bool
	prefetch    int
	concurrency int
	consumerTag string
	requeue     bool
	transient   bool  // publish with amqp.Transient instead of amqp.Persistent
	millis      bool  // write TimestampHeader on messages with a header table
	reconnect   *bool // nil: on when the Dialer can reconnect
	host        string
	port        int
}

func newConfig(conn Dialer, opts []Option) config {
	c := config{prefetch: 64, concurrency: 1, requeue: true}
	// *amqp.Connection and *Connection both know the broker address.
	if ra, ok := conn.(interface{ RemoteAddr() net.Addr }); ok && !isNil(conn) {
		c.host, c.port = splitAddr(ra.RemoteAddr())
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

func splitAddr(a net.Addr) (string, int) {
	if a == nil {
		return "", 0
	}
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "", 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

// Option configures a Publisher or a Subscriber; each ignores the options
// that only concern the other.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithExchange sets the exchange a Publisher publishes to; the default is
// "", the default exchange, which routes a message to the queue named by its
// routing key.
func WithExchange(name string) Option {
	return optionFunc(func(c *config) { c.exchange = name })
}

// WithConfirms turns publisher confirms on: Publish waits until the broker
// has confirmed every message of the call and reports the nacked ones, and
// publishes with the mandatory flag, so a message the broker cannot route
// (nothing bound to the routing key: a misspelled or deleted dead-letter
// queue) comes back and fails instead of being confirmed and dropped.
// Without confirms (the default), Publish returns before the broker took
// the messages and cannot know whether it kept them. The exception is a
// call whose context is marked with middleware.RequireConfirm, as Relay
// and DeadLetter mark theirs before they settle the source message: it
// goes through a second channel, in confirm mode, with the guarantees
// above, while the unmarked calls stay unconfirmed and cheaper.
func WithConfirms(on bool) Option {
	return optionFunc(func(c *config) { c.confirms = on })
}

// WithPrefetch sets the Subscriber's prefetch count (basic.qos); the default
// is 64. Values below 1 are ignored.
func WithPrefetch(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.prefetch = n
		}
	})
}

// WithConcurrency sets how many handlers a Subscriber runs at once; the
// default 1 handles messages in queue order. Values below 1 are ignored.
func WithConcurrency(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.concurrency = n
		}
	})
}

// WithConsumerTag sets the Subscriber's consumer tag; by default the client
// generates a unique one.
func WithConsumerTag(tag string) Option {
	return optionFunc(func(c *config) { c.consumerTag = tag })
}

// WithRequeue chooses what a handler error does: requeue the message (the
// default) or, with false, reject it so the broker dead-letters it to the
// queue's x-dead-letter-exchange (or drops it when there is none).
func WithRequeue(on bool) Option {
	return optionFunc(func(c *config) { c.requeue = on })
}

// WithTransient makes a Publisher publish with the transient delivery mode
// (1) instead of the default persistent one (2). A transient message is not
// written to disk, so publishing is cheaper, but it is lost when the broker
// restarts, even from a durable queue. Use it for messages that are worthless
// after a restart (live metrics, cache invalidations).
func WithTransient() Option {
	return optionFunc(func(c *config) { c.transient = true })
}

// WithTimestampHeader makes a Publisher also write Message.Time in
// milliseconds (TimestampHeader) on each message that has a header table
// anyway (trace context, application headers, a key), so consumers get Time,
// and otelmq.message.queue_time, to the millisecond instead of the timestamp
// property's whole seconds (which make the queue time half a second too
// long on average). Off by default: it costs about 6 allocations a message
// between client and consumer (+8% in a traced round trip), and a broker
// that stamps timestamp_in_ms itself (RabbitMQ's set_header_timestamp
// interceptor without overwrite) would keep the producer's clock instead.
// Subscribers read the header whenever it is there.
func WithTimestampHeader(on bool) Option {
	return optionFunc(func(c *config) { c.millis = on })
}

// deliveryMode is the AMQP delivery mode the Publisher stamps on every
// message.
func (c config) deliveryMode() uint8 {
	if c.transient {
		return amqp.Transient
	}
	return amqp.Persistent
}

// WithReconnect chooses what Subscribe does when its channel or connection
// closes under it: with true it opens a new channel (waiting with backoff)
// and resumes consuming until its context ends; with false it returns an
// error. The default is true when the Dialer is a *Connection, which redials,
// and false otherwise, because a closed *amqp.Connection never comes back.
//
// A refusal that a new channel cannot cure (the queue does not exist,
// access refused, an exclusive consumer holds the queue, a precondition)
// ends Subscribe either way when basic.consume gets it. A channel the
// broker closes while consuming is opened again first: a 406 for a
// delivery acked twice or a handler past consumer_timeout passes, a
// deleted queue is refused again and ends Subscribe.
func WithReconnect(on bool) Option {
	return optionFunc(func(c *config) { c.reconnect = &on })
}

// WithServer sets server.address and server.port. By default they are read
// from the connection when it is an *amqp.Connection.
func WithServer(host string, port int) Option {
	return optionFunc(func(c *config) { c.host, c.port = host, port })
}
