package memory

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// Broker is an in-memory message broker of named queues. The zero value is
// not usable; call New. It is safe for concurrent use.
type Broker struct {
	cfg config
	seq atomic.Uint64

	mu     sync.Mutex
	queues map[string]*queue
}

var (
	_ middleware.Publisher  = (*Broker)(nil)
	_ middleware.Subscriber = (*Broker)(nil)
	_ middleware.Describer  = (*Broker)(nil)
)

type queue struct {
	ready []*envelope
	// wake is closed and replaced whenever messages become ready, so any
	// number of waiting subscribers can select on it together with ctx.
	wake     chan struct{}
	inFlight int
}

// envelope is a message as the broker stores it: a private copy, so what
// handlers do to a Message never changes a redelivery.
type envelope struct {
	id         string
	key, body  []byte
	headers    map[string]string
	time       time.Time
	deliveries int
}

// New returns an empty Broker.
func New(opts ...Option) *Broker {
	return &Broker{cfg: newConfig(opts), queues: map[string]*queue{}}
}

// queue returns the named queue, creating it. b.mu is held.
func (b *Broker) queue(name string) *queue {
	q := b.queues[name]
	if q == nil {
		q = &queue{wake: make(chan struct{})}
		b.queues[name] = q
	}
	return q
}

// push makes envs ready on q. b.mu is held.
func (q *queue) push(envs ...*envelope) {
	q.ready = append(q.ready, envs...)
	close(q.wake)
	q.wake = make(chan struct{})
}

// Describe names the queue. It serves publishing and subscribing alike;
// Push is set because the broker hands ready messages to a waiting
// subscriber as a push broker does (RabbitMQ), so a delivery gets a process
// span and no receive span. Publishers ignore Push.
func (b *Broker) Describe(name string) middleware.Destination {
	return middleware.Destination{System: propagation.SystemMemory, Name: name, Push: true}
}

// Publish enqueues copies of msgs on the named queue, assigning IDs and
// publish times where missing (written back to msgs). A nil message is
// reported by index; the others are still published.
func (b *Broker) Publish(ctx context.Context, name string, msgs ...*middleware.Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: publish to %s: %w", name, err)
	}
	now := time.Now()
	envs := make([]*envelope, 0, len(msgs))
	var errs []error
	for i, msg := range msgs {
		if msg == nil {
			errs = append(errs, fmt.Errorf("message %d: %w", i, middleware.Permanent(errors.New("nil message"))))
			continue
		}
		if msg.ID == "" {
			msg.ID = "mem-" + strconv.FormatUint(b.seq.Add(1), 10)
		}
		if msg.Time.IsZero() {
			msg.Time = now
		}
		env := &envelope{id: msg.ID, key: clone(msg.Key), body: clone(msg.Body), time: msg.Time,
			headers: make(map[string]string, len(msg.Headers))}
		for k, v := range msg.Headers {
			env.headers[k] = v
		}
		envs = append(envs, env)
	}
	if len(envs) > 0 {
		b.mu.Lock()
		b.queue(name).push(envs...)
		b.mu.Unlock()
	}
	if len(errs) > 0 {
		return fmt.Errorf("memory: publish to %s: %d message(s) failed: %w", name, len(errs), errors.Join(errs...))
	}
	return nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// Len reports how many messages of the named queue are ready and how many
// are being handled (delivered, not yet settled).
func (b *Broker) Len(name string) (ready, inFlight int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queue(name)
	return len(q.ready), q.inFlight
}

// Subscribe delivers the named queue's messages to h until ctx ends. A nil
// handler result acks (removes) the message; an error or panic requeues it
// at the back after WithRedeliveryDelay. When ctx ends Subscribe stops
// taking messages, lets running handlers finish and settles them, requeues
// what it had taken but not started, and returns nil.
func (b *Broker) Subscribe(ctx context.Context, name string, h middleware.Handler) error {
	if h == nil {
		return errors.New("memory: subscribe: nil handler")
	}
	// With no observer installed, the observer calls, their clock reads and
	// the slices they take are for nobody.
	var obs middleware.Observer
	if middleware.Observed(ctx) {
		obs = middleware.ObserverFrom(ctx)
	}
	dest := b.Describe(name)
	// Long-lived workers rather than a goroutine per message: a handler under
	// tracing runs deep enough to grow a fresh goroutine's stack, and copying
	// that stack for every message cost more than the rest of the delivery.
	jobs := make(chan delivery)
	// Handlers' context: ctx's values without its cancellation, so that a
	// shutdown lets running handlers finish.
	hctx := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for range b.cfg.concurrency {
		wg.Go(func() {
			for d := range jobs {
				b.handle(hctx, obs, dest, name, h, d)
			}
		})
	}
	defer func() {
		close(jobs)
		wg.Wait()
	}()
	for {
		var start time.Time
		if obs != nil {
			start = time.Now()
		}
		envs, err := b.take(ctx, name)
		if err != nil {
			return nil // ctx ended
		}
		msgs := make([]*middleware.Message, len(envs))
		for i, env := range envs {
			msgs[i] = message(env, name)
		}
		for i := range msgs {
			select {
			case jobs <- delivery{start: start, env: envs[i], msgs: msgs[i : i+1 : i+1]}:
			case <-ctx.Done():
				// Taken but never delivered: they go back uncounted.
				for _, env := range envs[i:] {
					env.deliveries--
				}
				b.requeue(name, envs[i:]...)
				return nil
			}
		}
	}
}

// delivery is one message handed to a worker: msgs holds it alone (a
// slice of its batch's, for the observers), start is when its batch's take
// began.
type delivery struct {
	start time.Time
	env   *envelope
	msgs  []*middleware.Message
}

// handle reports d to obs as received, runs h on it and settles it. The
// report is made here, once a worker has the message, and not for the
// whole batch when it is taken: a push broker's consumed messages are those
// dispatched to the application, and the messages of a batch that the end
// of Subscribe sends back to the queue never were.
func (b *Broker) handle(ctx context.Context, obs middleware.Observer, dest middleware.Destination, name string, h middleware.Handler, d delivery) {
	env, msg := d.env, d.msgs[0]
	if obs != nil {
		ctx = obs.Received(ctx, dest, d.start, d.msgs)
	}
	err := middleware.Call(ctx, h, msg)
	var start time.Time
	if obs != nil {
		start = time.Now()
	}
	if err == nil {
		b.settle(name)
		if obs != nil {
			obs.Settled(ctx, dest, propagation.OpAck, start, d.msgs, nil)
		}
		return
	}
	if obs != nil {
		obs.Settled(ctx, dest, propagation.OpNack, start, d.msgs, nil)
	}
	if d := b.cfg.redeliveryDelay; d > 0 {
		time.AfterFunc(d, func() { b.requeue(name, env) })
		return
	}
	b.requeue(name, env)
}

// take waits for ready messages and takes up to the batch size of them.
func (b *Broker) take(ctx context.Context, name string) ([]*envelope, error) {
	for {
		b.mu.Lock()
		q := b.queue(name)
		if n := min(len(q.ready), b.cfg.batchSize); n > 0 {
			envs := make([]*envelope, n)
			copy(envs, q.ready)
			clear(q.ready[:n])
			q.ready = q.ready[n:]
			q.inFlight += n
			b.mu.Unlock()
			for _, env := range envs {
				env.deliveries++
			}
			return envs, nil
		}
		wake := q.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (b *Broker) settle(name string) {
	b.mu.Lock()
	b.queue(name).inFlight--
	b.mu.Unlock()
}

func (b *Broker) requeue(name string, envs ...*envelope) {
	b.mu.Lock()
	q := b.queue(name)
	q.inFlight -= len(envs)
	q.push(envs...)
	b.mu.Unlock()
}

// received is what a handler's Message is allocated in, with its one
// attribute, so a delivery costs one allocation rather than two.
type received struct {
	msg   middleware.Message
	attrs [1]attribute.KeyValue
}

// message is the Message a handler sees for env: its own copies of the key
// and body (one allocation for both) and of the header map, so a handler's
// changes stay out of redeliveries.
func message(env *envelope, name string) *middleware.Message {
	r := &received{}
	msg := &r.msg
	msg.ID = env.id
	if env.key != nil || env.body != nil {
		buf := make([]byte, len(env.key)+len(env.body))
		n := copy(buf, env.key)
		copy(buf[n:], env.body)
		if env.key != nil {
			msg.Key = buf[:n:n]
		}
		if env.body != nil {
			msg.Body = buf[n:]
		}
	}
	msg.Time = env.time
	msg.DeliveryCount = env.deliveries
	msg.Destination = name
	if len(env.headers) > 0 {
		msg.Headers = make(map[string]string, len(env.headers))
	}
	for k, v := range env.headers {
		msg.Headers[k] = v
	}
	r.attrs[0] = propagation.MessageID(env.id)
	msg.SetAttributes(r.attrs[:]...)
	return msg
}

type config struct {
	batchSize       int
	concurrency     int
	redeliveryDelay time.Duration
}

func newConfig(opts []Option) config {
	c := config{batchSize: 10, concurrency: 1}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// Option configures a Broker.
type Option func(*config)

// WithBatchSize sets how many ready messages one poll takes (default 10).
// Values below 1 are ignored.
func WithBatchSize(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.batchSize = n
		}
	}
}

// WithConcurrency sets how many handlers one Subscribe runs at once
// (default 1, in queue order). Values below 1 are ignored.
func WithConcurrency(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.concurrency = n
		}
	}
}

// WithRedeliveryDelay delays the requeue of a failed message (default 0).
func WithRedeliveryDelay(d time.Duration) Option {
	return func(c *config) { c.redeliveryDelay = d }
}
