package rabbitmq

import (
	"context"
	"errors"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
)

// silentProxy forwards loopback TCP to the broker until silence makes it
// stop forwarding while keeping both sockets open: a network partition or
// a dead host, which no RST announces.
type silentProxy struct {
	ln     net.Listener
	target string
	silent atomic.Bool
	done   chan struct{}

	mu    sync.Mutex
	conns []net.Conn
}

func newSilentProxy(t *testing.T, target string) *silentProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &silentProxy{ln: ln, target: target, done: make(chan struct{})}
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		close(p.done)
		p.cut()
	})
	return p
}

// cut closes the proxied connections: the client then sees its connection
// die at once.
func (p *silentProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *silentProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, b)
		p.mu.Unlock()
		go p.pipe(c, b)
		go p.pipe(b, c)
	}
}

func (p *silentProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.silent.Load() {
				<-p.done // swallow everything from now on
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			_ = dst.Close()
			return
		}
	}
}

// dialSilenceable dials a *Connection through a silentProxy, with a 2 s
// heartbeat: amqp091 then gives up on a silent broker after about 3 s.
func dialSilenceable(t *testing.T) (*Connection, *silentProxy) {
	t.Helper()
	u, err := url.Parse(brokers.RabbitMQURL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := newSilentProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	c, err := Dial(u.String(), WithAMQPConfig(amqp.Config{Heartbeat: 2 * time.Second}),
		WithBackoff(50*time.Millisecond, 500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cut() // a silent broker would hold Close for its 5 s
		_ = c.Close()
	})
	return c, p
}

// Over a silent network the AMQP calls that wait for the broker's reply
// (channel.open, confirm.select, channel.close) waited for the heartbeat
// timeout, 15 s by default, past the caller's context. Each case must
// return within about its 300 ms context (2 s allowed).
func TestSilentOutageHonoursContexts(t *testing.T) {
	q := brokers.RabbitMQQueue(t, brokers.RabbitMQ(t), nil)
	within := func(t *testing.T, what string, f func()) {
		t.Helper()
		start := time.Now()
		f()
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%s returned after %v", what, took)
		}
	}
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}

	t.Run("first publish opens a channel", func(t *testing.T) {
		conn, p := dialSilenceable(t)
		pub := NewPublisher(conn)
		p.silent.Store(true)
		within(t, "Publish", func() {
			if err := pub.Publish(short(), q, middleware.NewMessage([]byte("x"))); err == nil {
				t.Error("Publish over a silent network succeeded")
			}
		})
	})
	t.Run("RequireConfirm opens a confirm channel", func(t *testing.T) {
		conn, p := dialSilenceable(t)
		pub := NewPublisher(conn)
		if err := pub.Publish(t.Context(), q, middleware.NewMessage([]byte("warm"))); err != nil {
			t.Fatal(err)
		}
		p.silent.Store(true)
		within(t, "Publish", func() {
			if err := pub.Publish(middleware.RequireConfirm(short()), q, middleware.NewMessage([]byte("x"))); err == nil {
				t.Error("a confirmed Publish over a silent network succeeded")
			}
		})
	})
	t.Run("Subscribe shuts down", func(t *testing.T) {
		conn, p := dialSilenceable(t)
		r := subscribe(t, t.Context(), NewSubscriber(conn), q, func(context.Context, *middleware.Message) error { return nil })
		time.Sleep(300 * time.Millisecond) // consuming
		p.silent.Store(true)
		within(t, "Subscribe after cancel", func() {
			if err := r.stop(t); err != nil {
				t.Error(err)
			}
		})
	})
	t.Run("Subscribe stopped during its setup", func(t *testing.T) {
		conn, p := dialSilenceable(t)
		// The channel opens; then silence: basic.qos waits for an answer
		// that does not come until amqp091 gives up on the connection.
		d := silenceAfterChannel{conn: conn, p: p}
		r := subscribe(t, t.Context(), NewSubscriber(d), q, func(context.Context, *middleware.Message) error { return nil })
		select {
		case <-d.opened():
		case <-time.After(5 * time.Second):
			t.Fatal("no channel opened")
		}
		time.Sleep(100 * time.Millisecond) // basic.qos sent into the silence
		within(t, "Subscribe stopped during its setup", func() {
			if err := r.stop(t); err != nil {
				t.Error(err)
			}
		})
	})
	t.Run("Connection.Close does not hold up Publish", func(t *testing.T) {
		conn, p := dialSilenceable(t)
		pub := NewPublisher(conn)
		if err := pub.Publish(t.Context(), q, middleware.NewMessage([]byte("warm"))); err != nil {
			t.Fatal(err)
		}
		p.silent.Store(true)
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			_ = conn.Close() // waits for the heartbeat timeout
		}()
		time.Sleep(100 * time.Millisecond)
		within(t, "Publish during Close", func() { _ = pub.Publish(short(), q, middleware.NewMessage([]byte("x"))) })
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Error("Connection.Close over a silent network did not return within 10 s")
		}
	})
}

// A Publish after Close used to open a channel (and, with confirms, a
// returns reader) that nothing would close.
func TestPublishAfterClose(t *testing.T) {
	conn, _ := dialSilenceable(t)
	q := brokers.RabbitMQQueue(t, brokers.RabbitMQ(t), nil)
	pub := NewPublisher(conn, WithConfirms(true))
	if err := pub.Publish(t.Context(), q, middleware.NewMessage([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	err := pub.Publish(t.Context(), q, middleware.NewMessage([]byte("after close")))
	if !errors.Is(err, ErrPublisherClosed) || pub.ch != nil {
		t.Errorf("Publish after Close = %v (channel reopened: %v), want ErrPublisherClosed", err, pub.ch != nil)
	}
	if err := pub.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// A connection that goes silent right after its handshake, before the
// broker sent any frame, had no read deadline at all (amqp091 sets one
// only after reading a frame): it was read from for ever and never closed,
// so a Subscriber on it waited for ever too. Every read now has one.
func TestSilentRightAfterHandshakeCloses(t *testing.T) {
	u, err := url.Parse(brokers.RabbitMQURL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := newSilentProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	c, err := Dial(u.String(), WithAMQPConfig(amqp.Config{Heartbeat: time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cut()
		_ = c.Close()
	})
	p.silent.Store(true)
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	select {
	case <-closed:
	case <-time.After(10 * time.Second): // 3 heartbeats of 1 s, with room
		t.Fatal("a connection silent since its handshake was still open after 10 s")
	}
}

// silenceAfterChannel is a Dialer that silences its proxy once it opened a
// channel: the next call on that channel waits for the heartbeat timeout.
type silenceAfterChannel struct {
	conn *Connection
	p    *silentProxy
}

func (d silenceAfterChannel) Channel() (*amqp.Channel, error) {
	ch, err := d.conn.Channel()
	d.p.silent.Store(true)
	return ch, err
}

// opened is closed once the proxy went silent, polled: the test only waits
// for it.
func (d silenceAfterChannel) opened() <-chan struct{} {
	c := make(chan struct{})
	go func() {
		for !d.p.silent.Load() {
			time.Sleep(5 * time.Millisecond)
		}
		close(c)
	}()
	return c
}
