package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
)

// dialNamed dials a *Connection whose broker-side name starts with name, so
// killConnections can find it; closed at cleanup.
func dialNamed(t *testing.T, name string) *Connection {
	t.Helper()
	c, err := Dial(brokers.RabbitMQURL(t),
		WithAMQPConfig(amqp.Config{Properties: amqp.Table{"connection_name": name}}),
		WithBackoff(50*time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestConnectionRedials(t *testing.T) {
	c := dialNamed(t, "otelmq-test-redial")
	if ra := c.RemoteAddr(); ra == nil {
		t.Fatal("no remote address")
	}
	if cfg := newConfig(c, nil); cfg.host == "" || cfg.port == 0 {
		t.Errorf("server attributes not read from *Connection: %+v", cfg)
	}
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// Kill the connection under it, as a broker restart would.
	c.mu.Lock()
	_ = c.conn.Close()
	c.mu.Unlock()
	if !ch.IsClosed() {
		t.Fatal("channel survived its connection")
	}
	ch, err = c.Channel()
	if err != nil {
		t.Fatalf("Channel after the connection closed: %v", err)
	}
	defer ch.Close()
	if c.Redials() != 1 {
		t.Errorf("Redials = %d, want 1", c.Redials())
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Channel(); !errors.Is(err, errConnectionClosed) {
		t.Fatalf("Channel after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestDialErrors(t *testing.T) {
	if _, err := Dial("amqp://guest:guest@127.0.0.1:1/"); err == nil {
		t.Fatal("Dial to a closed port succeeded")
	}
	if _, err := Dial("not a url"); err == nil {
		t.Fatal("Dial of garbage succeeded")
	}
}

func TestConnectionGivesUp(t *testing.T) {
	// A Connection whose broker went away keeps trying only until the
	// context or the redial timeout ends.
	c := dialNamed(t, "otelmq-test-gives-up")
	c.url = "amqp://guest:guest@127.0.0.1:1/"
	c.mu.Lock()
	_ = c.conn.Close()
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.ChannelContext(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Fatalf("ChannelContext = %v after %v", err, time.Since(start))
	}
	c.timeout = 200 * time.Millisecond
	if _, err := c.Channel(); err == nil {
		t.Fatal("Channel to a dead broker succeeded")
	}
	// A Subscriber on it ends with its context, not before.
	sctx, scancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer scancel()
	err = NewSubscriber(c).Subscribe(sctx, "q", middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil }))
	if err != nil || sctx.Err() == nil {
		t.Fatalf("Subscribe = %v before its context ended", err)
	}
	// Without reconnecting it reports the first failure.
	if err := NewSubscriber(c, WithReconnect(false)).Subscribe(t.Context(), "q", middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })); err == nil {
		t.Fatal("Subscribe WithReconnect(false) on a dead broker returned nil")
	}
}

// killConnections force-closes, on the broker, every connection whose name
// starts with prefix, as `rabbitmqctl close_all_connections` does for all of
// them; only ours are closed so other tests using the broker are unharmed.
func killConnections(t *testing.T, prefix string) error {
	out, err := exec.Command("rabbitmqctl", "list_connections", "-q", "--no-table-headers", "pid", "client_properties").CombinedOutput()
	if err != nil {
		return fmt.Errorf("rabbitmqctl list_connections: %v: %s", err, out)
	}
	killed := 0
	for line := range strings.Lines(string(out)) {
		pid, props, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if !ok || !strings.Contains(props, `{"connection_name","`+prefix) {
			continue
		}
		if out, err := exec.Command("rabbitmqctl", "close_connection", pid, "test").CombinedOutput(); err != nil {
			return fmt.Errorf("rabbitmqctl close_connection %s: %v: %s", pid, err, out)
		}
		killed++
	}
	if killed == 0 {
		return fmt.Errorf("no connection named %s* in:\n%s", prefix, out)
	}
	t.Logf("force-closed %d connection(s) named %s*", killed, prefix)
	return nil
}

func TestReconnectAfterForcedClose(t *testing.T) {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("rabbitmqctl is needed to force-close connections: %v", err)
		}
		t.Skipf("rabbitmqctl not found, cannot force-close connections: %v", err)
	}
	prefix := fmt.Sprintf("otelmq-test-reconnect-%d-", time.Now().UnixNano())
	pubConn := dialNamed(t, prefix+"pub")
	subConn := dialNamed(t, prefix+"sub")
	q := brokers.RabbitMQQueue(t, brokers.RabbitMQ(t), nil)

	const total = 500
	var mu sync.Mutex
	seen := map[string]int{}
	var settleErrs int
	rec := &settleCounter{errs: &settleErrs, mu: &mu}
	r := subscribe(t, middleware.WithObserver(t.Context(), rec), NewSubscriber(subConn, WithConcurrency(4), WithPrefetch(20)), q,
		func(_ context.Context, m *middleware.Message) error {
			time.Sleep(time.Millisecond) // keep deliveries in flight when the kill lands
			mu.Lock()
			seen[m.ID]++
			mu.Unlock()
			return nil
		})

	pub := NewPublisher(pubConn, WithConfirms(true))
	defer pub.Close()
	killed := make(chan error, 1)
	killDone := false
	retries := 0
	const batch = 5
	for i := 0; i < total; i += batch {
		switch {
		case i == 150:
			go func() { killed <- killConnections(t, prefix) }()
		case i == 450 && !killDone:
			// Make sure the kill landed mid-run, not after the last batch.
			if err := <-killed; err != nil {
				t.Fatal(err)
			}
			killDone = true
		case i > 150 && !killDone:
			// Publish slowly while rabbitmqctl (about 2s) works, so the
			// kill lands among publishes and deliveries.
			select {
			case err := <-killed:
				if err != nil {
					t.Fatal(err)
				}
				killDone = true
			case <-time.After(40 * time.Millisecond):
			}
		}
		msgs := make([]*middleware.Message, batch)
		for j := range msgs {
			msgs[j] = &middleware.Message{ID: fmt.Sprint(i + j), Body: []byte("x")}
		}
		// At least once: a batch that failed (unconfirmed) is published
		// again, so some messages may arrive twice.
		for attempt := 0; ; attempt++ {
			err := pub.Publish(t.Context(), q, msgs...)
			if err == nil {
				break
			}
			retries++
			if attempt > 50 {
				t.Fatalf("publish batch %d keeps failing: %v", i, err)
			}
			t.Logf("batch %d attempt %d: %v", i, attempt, err)
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !killDone {
		if err := <-killed; err != nil {
			t.Fatal(err)
		}
	}

	eventually(t, 30*time.Second, "all messages handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == total
	})
	if done, err := r.returned(); done {
		t.Fatalf("Subscribe returned during the run: %v", err)
	}
	mu.Lock()
	dups := 0
	for i := range total {
		switch c := seen[fmt.Sprint(i)]; {
		case c == 0:
			t.Errorf("message %d lost", i)
		case c > 1:
			dups += c - 1
		}
	}
	mu.Unlock()
	t.Logf("%d messages, %d duplicate deliveries, %d publish retries, %d failed settles, redials: publisher %d, subscriber %d",
		total, dups, retries, settleErrs, pubConn.Redials(), subConn.Redials())
	if pubConn.Redials() < 1 || subConn.Redials() < 1 {
		t.Errorf("redials: publisher %d, subscriber %d; the kill did not hit both", pubConn.Redials(), subConn.Redials())
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
}

// settleCounter counts settles that failed: acks of deliveries whose
// channel died.
type settleCounter struct {
	mu   *sync.Mutex
	errs *int
}

func (s *settleCounter) Received(ctx context.Context, _ middleware.Destination, _ time.Time, _ []*middleware.Message) context.Context {
	return ctx
}

func (s *settleCounter) Settled(_ context.Context, _ middleware.Destination, _ string, _ time.Time, _ []*middleware.Message, err error) {
	if err != nil {
		s.mu.Lock()
		*s.errs++
		s.mu.Unlock()
	}
}

// A channel the broker closes with 406 PRECONDITION_FAILED while consuming
// (an unknown delivery tag, as here where the handler acks the delivery
// itself and the Subscriber acks it again; also RabbitMQ's answer to a
// handler that overruns consumer_timeout) is cured by a new channel: one
// such message must not end Subscribe.
func TestPreconditionFailedWhileConsumingReconnects(t *testing.T) {
	conn := dialNamed(t, "otelmq-test-406-"+t.Name())
	q := brokers.RabbitMQQueue(t, brokers.RabbitMQ(t), nil)
	got := make(chan *middleware.Message, 16)
	r := subscribe(t, t.Context(), NewSubscriber(conn, WithConcurrency(2)), q,
		func(_ context.Context, m *middleware.Message) error {
			if string(m.Body) == "settle-myself" && m.DeliveryCount == 1 {
				var d *amqp.Delivery
				if m.As(&d) {
					_ = d.Ack(false)
				}
			}
			got <- m
			return nil
		})
	pub := NewPublisher(conn, WithConfirms(true))
	defer pub.Close()
	if err := pub.Publish(t.Context(), q, middleware.NewMessage([]byte("settle-myself"))); err != nil {
		t.Fatal(err)
	}
	receive(t, got, 1, 5*time.Second)
	// The second ack closes the channel with 406; the Subscriber opens a
	// new one and goes on.
	if err := pub.Publish(t.Context(), q, middleware.NewMessage([]byte("next"))); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if string(m.Body) != "next" {
			t.Fatalf("handled %q, want next", m.Body)
		}
	case <-time.After(10 * time.Second):
		done, err := r.returned()
		t.Fatalf("consumer stopped after one bad ack: Subscribe returned=%v err=%v", done, err)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
}
