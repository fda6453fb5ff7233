package kafka

import (
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelmq/otelmq/propagation"
)

// defaultPort is the port kgo dials when a seed broker names none.
const defaultPort = 9092

type config struct {
	concurrency    int // 0: one goroutine per partition in the poll
	maxPollRecords int
	retryBackoff   time.Duration
	host           string
	port           int
}

func newConfig(cl *kgo.Client, opts []Option) config {
	c := config{maxPollRecords: 500, retryBackoff: 100 * time.Millisecond}
	if cl != nil {
		if seeds, ok := cl.OptValue(kgo.SeedBrokers).([]string); ok && len(seeds) > 0 {
			c.host, c.port = splitSeed(seeds[0])
		}
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// splitSeed splits a seed broker address the way kgo reads it: a missing
// port is 9092.
func splitSeed(seed string) (string, int) {
	host, port, err := net.SplitHostPort(seed)
	if err != nil {
		return seed, defaultPort
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return host, 0
	}
	return host, p
}

// serverAttributes are server.address and server.port when known.
func (c config) serverAttributes() []attribute.KeyValue {
	var attrs []attribute.KeyValue
	if c.host != "" {
		attrs = append(attrs, propagation.ServerAddress(c.host))
	}
	if c.port > 0 {
		attrs = append(attrs, propagation.ServerPort(c.port))
	}
	return attrs
}

// Option configures a Publisher or a Subscriber; each ignores the options
// that only concern the other.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithConcurrency bounds how many partitions of one poll a Subscriber
// handles at once; records of one partition are always handled one at a
// time, in offset order. The default is one goroutine per partition in the
// poll. Values below 1 are ignored.
func WithConcurrency(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.concurrency = n
		}
	})
}

// WithMaxPollRecords bounds how many records a Subscriber takes per poll,
// and so how much work a shutdown or a rebalance waits for; the default is
// 500. Values below 1 are ignored.
func WithMaxPollRecords(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxPollRecords = n
		}
	})
}

// WithRetryBackoff sets how long a Subscriber leaves a partition paused
// after a handler failed on one of its records before it delivers that
// record again, so a record that keeps failing is not retried in a tight
// loop. The backoff is per partition: the other partitions of the client
// are polled and handled meanwhile. The default is 100ms; 0 retries at
// once, without pausing. Negative values are ignored.
func WithRetryBackoff(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d >= 0 {
			c.retryBackoff = d
		}
	})
}

// WithServer sets server.address and server.port. By default they come from
// the client's first seed broker.
func WithServer(host string, port int) Option {
	return optionFunc(func(c *config) { c.host, c.port = host, port })
}
