package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Connection is a Dialer that survives its AMQP connection being closed by
// the broker or the network: it keeps one *amqp.Connection and, when that is
// closed, dials a new one (with exponential backoff between failed attempts)
// the next time a channel is asked for. amqp091-go reconnects by itself
// only with amqp.Config.Recovery, which a Connection turns off (see
// WithAMQPConfig).
//
// Publisher already reopens its channel when it finds it closed, and
// Subscriber reopens its channel and resumes consuming when its Dialer is a
// *Connection (see WithReconnect), so both carry on after a broker restart
// or a forced close. With publisher confirms, messages in flight at that
// moment are not lost but may be handled twice: unconfirmed publishes fail
// and should be retried, and unacknowledged deliveries are redelivered by
// the broker. Without confirms a publish the close cut off may be lost
// unreported (see the package doc).
//
// A Connection is safe for concurrent use.
type Connection struct {
	url     string
	cfg     amqp.Config
	min     time.Duration
	max     time.Duration
	timeout time.Duration

	// sem serializes dialing; it is a channel rather than a mutex so that a
	// caller waiting for another caller's redial can give up when its
	// context ends.
	sem chan struct{}

	mu      sync.Mutex
	conn    *amqp.Connection
	closed  bool
	redials int
}

var _ Dialer = (*Connection)(nil)

// DialOption configures Dial.
type DialOption func(*Connection)

// WithAMQPConfig sets the amqp091 configuration used for every dial (TLS,
// heartbeat, connection properties such as "connection_name"). Its
// Recovery is ignored: a Connection redials by itself, and amqp091's
// recovery reopens a channel in place, where delivery tags start again at
// 1 under a Subscriber that is still settling the old channel's.
func WithAMQPConfig(cfg amqp.Config) DialOption {
	return func(c *Connection) { c.cfg = cfg }
}

// WithBackoff sets the wait after the first failed dial and its upper bound;
// the wait doubles after each consecutive failure, with jitter. The defaults
// are 100ms and 5s. Non-positive values keep the default.
func WithBackoff(initial, maximum time.Duration) DialOption {
	return func(c *Connection) {
		if initial > 0 {
			c.min = initial
		}
		if maximum > 0 {
			c.max = maximum
		}
		if c.max < c.min {
			c.max = c.min
		}
	}
}

// WithRedialTimeout bounds how long Channel keeps redialing before it
// returns an error; the default is 30s. ChannelContext is bounded by its
// context as well, the channel.open included.
func WithRedialTimeout(d time.Duration) DialOption {
	return func(c *Connection) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// Dial connects to url and returns a Connection that redials when its
// connection is closed. The first dial is not retried, so a wrong URL or
// credentials fail at once.
func Dial(url string, opts ...DialOption) (*Connection, error) {
	c := &Connection{
		url:     url,
		min:     100 * time.Millisecond,
		max:     5 * time.Second,
		timeout: 30 * time.Second,
		sem:     make(chan struct{}, 1),
	}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	conn, err := c.dial()
	if err != nil {
		return nil, err
	}
	c.conn = conn
	return c, nil
}

func (c *Connection) dial() (*amqp.Connection, error) {
	cfg := c.cfg
	cfg.Recovery = nil // see WithAMQPConfig
	dial := cfg.Dial
	if dial == nil {
		dial = amqp.DefaultDial(dialTimeout)
	}
	var dc *deadlineConn
	cfg.Dial = func(network, addr string) (net.Conn, error) {
		conn, err := dial(network, addr)
		if err != nil {
			return nil, err
		}
		dc = &deadlineConn{Conn: conn}
		return dc, nil
	}
	conn, err := amqp.DialConfig(c.url, cfg)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: dial: %w", err)
	}
	if hb := conn.Config.Heartbeat; dc != nil && hb > 0 {
		dc.arm(missedHeartbeats * hb)
	}
	return conn, nil
}

// dialTimeout is amqp091's own default for the TCP connect and handshake.
const dialTimeout = 30 * time.Second

// missedHeartbeats is how many heartbeat intervals without a frame from
// the broker make a read fail, as amqp091 counts them.
const missedHeartbeats = 3

// deadlineConn gives every read of an AMQP connection a deadline once
// armed. amqp091 sets one only after it reads a frame, through a send that
// its heartbeat goroutine may miss, and clears the handshake's: a
// connection that goes silent right after its handshake (a partition, a
// dead host, no RST) was read from for ever, Subscribe waiting on it with
// it. The broker sends a heartbeat every interval when it has nothing else
// to send, so a healthy connection never waits that long.
type deadlineConn struct {
	net.Conn
	timeout atomic.Int64 // nanoseconds; 0 until armed
}

// arm starts the deadlines, the one of the read already waiting included.
func (c *deadlineConn) arm(timeout time.Duration) {
	c.timeout.Store(int64(timeout))
	_ = c.Conn.SetReadDeadline(time.Now().Add(timeout))
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	if t := time.Duration(c.timeout.Load()); t > 0 {
		if err := c.Conn.SetReadDeadline(time.Now().Add(t)); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(b)
}

// Channel opens a channel, redialing first when the connection is closed;
// it gives up after the redial timeout (WithRedialTimeout).
func (c *Connection) Channel() (*amqp.Channel, error) {
	return c.ChannelContext(context.Background())
}

// ChannelContext is Channel that also gives up when ctx ends.
func (c *Connection) ChannelContext(ctx context.Context) (*amqp.Channel, error) {
	if c == nil {
		return nil, errors.New("rabbitmq: no connection")
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var last error
	for attempt := 0; ; attempt++ {
		conn, err := c.connection(ctx)
		if err == nil {
			ch, cerr := channelOf(ctx, conn.Channel)
			if cerr == nil {
				return ch, nil
			}
			// The connection may have died between the check and the
			// channel.open; anything else (channel_max reached) is not
			// cured by redialing, but retrying it is harmless.
			err = cerr
		}
		if errors.Is(err, errConnectionClosed) {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("rabbitmq: no channel: %w (last error: %w)", ctx.Err(), err)
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("rabbitmq: no channel: %w (last error: %w)", ctx.Err(), last)
		case <-time.After(c.backoff(attempt)):
		}
	}
}

var errConnectionClosed = errors.New("rabbitmq: Connection closed by Close")

// frameSize is the frame size the current connection negotiated, 0 before
// the first dial.
func (c *Connection) frameSize() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return 0
	}
	return c.conn.Config.FrameSize
}

// connection returns the open connection, dialing once if it is closed.
func (c *Connection) connection(ctx context.Context) (*amqp.Connection, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.sem }()

	c.mu.Lock()
	conn, closed := c.conn, c.closed
	c.mu.Unlock()
	if closed {
		return nil, errConnectionClosed
	}
	if conn != nil && !conn.IsClosed() {
		return conn, nil
	}
	conn, err := c.dial()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed { // Close ran while we dialed
		_ = conn.Close()
		return nil, errConnectionClosed
	}
	c.conn = conn
	c.redials++
	return conn, nil
}

// backoff is the wait after the attempt-th consecutive failure: exponential
// from the initial wait up to the maximum, with up to 50% jitter so that
// many clients cut off together do not redial in lockstep.
func (c *Connection) backoff(attempt int) time.Duration {
	d := c.min
	for range min(attempt, 30) {
		d *= 2
		if d >= c.max {
			d = c.max
			break
		}
	}
	return d/2 + rand.N(d/2+1)
}

// Redials returns how many times the connection was redialed after Dial.
func (c *Connection) Redials() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.redials
}

// RemoteAddr is the broker address of the current connection, nil when
// there is none; it lets Publisher and Subscriber fill server.address.
func (c *Connection) RemoteAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	return c.conn.RemoteAddr()
}

// canReconnect marks Dialers that come back after their connection closes;
// Subscriber resumes consuming by default on them.
func (c *Connection) canReconnect() bool { return true }

// closeTimeout bounds how long Close waits for the broker to answer: over a
// silent network amqp091 may never notice the broker is gone (it resets its
// read deadline on a best-effort basis), and Close would wait for ever.
const closeTimeout = 5 * time.Second

// Close closes the connection and stops redialing; channels opened on it
// close too. It waits up to 5 s for the broker to confirm the close.
func (c *Connection) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conn := c.conn
	// Unlocked: closing waits for the broker's close-ok, for the heartbeat
	// timeout over a silent network, and Publish reads the frame size
	// under mu meanwhile.
	c.mu.Unlock()
	if conn == nil {
		return nil
	}
	err := conn.CloseDeadline(time.Now().Add(closeTimeout))
	if errors.Is(err, amqp.ErrClosed) {
		return nil
	}
	return err
}
