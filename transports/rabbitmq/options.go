package rabbitmq

import (
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

// openChannel opens a channel on conn; a nil conn is an error, not a panic.
func openChannel(conn Dialer) (*amqp.Channel, error) {
	if c, ok := conn.(*amqp.Connection); conn == nil || ok && c == nil {
		return nil, errors.New("rabbitmq: no connection")
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: opening a channel: %w", err)
	}
	return ch, nil
}

type config struct {
	exchange    string
	confirms    bool
	prefetch    int
	concurrency int
	consumerTag string
	requeue     bool
	host        string
	port        int
}

func newConfig(conn Dialer, opts []Option) config {
	c := config{prefetch: 64, concurrency: 1, requeue: true}
	if ac, ok := conn.(*amqp.Connection); ok && ac != nil {
		c.host, c.port = splitAddr(ac.RemoteAddr())
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
// has confirmed every message of the call and reports the nacked ones.
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

// WithServer sets server.address and server.port. By default they are read
// from the connection when it is an *amqp.Connection.
func WithServer(host string, port int) Option {
	return optionFunc(func(c *config) { c.host, c.port = host, port })
}
