package rabbitmq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestRoundTrip(t *testing.T) {
	conn, q := setup(t, nil)
	ctx := t.Context()
	pub := NewPublisher(conn, WithConfirms(true), WithTimestampHeader(true))
	defer pub.Close()

	// Milliseconds survive (TimestampHeader, with WithTimestampHeader),
	// finer than the timestamp property's seconds, on a message with a
	// header table.
	stamped := time.UnixMilli(1700000000123)
	sent := &middleware.Message{
		ID:      "id-1",
		Key:     []byte("order-42"),
		Body:    []byte(`{"n":1}`),
		Headers: map[string]string{"traceparent": traceparent, "tenant": "acme", "empty": ""},
		Time:    stamped,
	}
	before := time.Now().Truncate(time.Second)
	unstamped := &middleware.Message{Body: []byte("unstamped")}
	// Other headers than sent's, after it in the same Publish: the
	// Publisher reuses its header table, and none of sent's may stay.
	other := &middleware.Message{Body: []byte("other"), Headers: map[string]string{"tenant": "globex"}}
	if err := pub.Publish(ctx, q, sent, unstamped, other); err != nil {
		t.Fatal(err)
	}
	after := time.Now()

	got := make(chan *middleware.Message, 3)
	subscribe(t, ctx, NewSubscriber(conn), q, func(_ context.Context, m *middleware.Message) error {
		got <- m
		return nil
	})
	msgs := receive(t, got, 3, 10*time.Second)
	m := msgs[0]
	if m.ID != sent.ID || !bytes.Equal(m.Key, sent.Key) || !bytes.Equal(m.Body, sent.Body) || m.Destination != q || m.DeliveryCount != 1 {
		t.Errorf("received %+v, sent %+v", m, sent)
	}
	if !m.Time.Equal(stamped) {
		t.Errorf("Time = %v, want %v", m.Time, stamped)
	}
	if len(m.Headers) != 3 || m.Headers["traceparent"] != traceparent || m.Headers["tenant"] != "acme" {
		t.Errorf("Headers = %v, want %v", m.Headers, sent.Headers)
	}
	var d *amqp.Delivery
	if !m.As(&d) || d.RoutingKey != q || d.Exchange != "" {
		t.Errorf("As: %v %+v", d != nil, d)
	}
	if u := msgs[1]; u.Time.Before(before) || u.Time.After(after) || u.ID == "" || u.ID != unstamped.ID || u.Key != nil || len(u.Headers) != 0 {
		t.Errorf("unstamped message: %+v (time should be in [%v, %v], ID the one Publish assigned: %q)", u, before, after, unstamped.ID)
	}
	if o := msgs[2]; string(o.Body) != "other" || o.Key != nil || len(o.Headers) != 1 || o.Headers["tenant"] != "globex" {
		t.Errorf("third message: Key %q, Headers %v; want no key and only tenant=globex", o.Key, o.Headers)
	}
	var od *amqp.Delivery
	if o := msgs[2]; !o.As(&od) || len(od.Headers) != 2 || !o.Time.Equal(time.UnixMilli(od.Headers[TimestampHeader].(int64))) ||
		o.Time.Before(before) || o.Time.After(after) {
		t.Errorf("third message's table: %v (want tenant and %s), Time %v", od.Headers, TimestampHeader, o.Time)
	}
	if desc := NewSubscriber(conn).Describe(q); desc.Name != q || desc.System != propagation.SystemRabbitMQ {
		t.Errorf("Describe = %+v", desc)
	}
}

// Other clients (Java, Python pika, the management UI) send AMQP long
// strings, which amqp091 decodes as []byte.
func TestRawBytesHeader(t *testing.T) {
	conn, q := setup(t, nil)
	raw := rawChannel(t, conn)
	err := raw.PublishWithContext(t.Context(), "", q, false, false, amqp.Publishing{
		Body: []byte("raw"),
		Headers: amqp.Table{
			"traceparent": []byte(traceparent),
			"tracestate":  "k=v",
			"count":       3,
			"nested":      amqp.Table{"a": "b"},
			KeyHeader:     "k",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *middleware.Message, 1)
	subscribe(t, t.Context(), NewSubscriber(conn), q, func(_ context.Context, m *middleware.Message) error {
		got <- m
		return nil
	})
	m := receive(t, got, 1, 10*time.Second)[0]
	if m.Headers["traceparent"] != traceparent || m.Headers["tracestate"] != "k=v" || string(m.Key) != "k" || len(m.Headers) != 2 {
		t.Errorf("Headers = %v, Key = %q", m.Headers, m.Key)
	}
	var d amqp.Delivery
	if !m.As(&d) {
		t.Fatal("As failed")
	}
	// Not text, so not in Headers, but still on the delivery.
	if d.Headers["count"] != int32(3) {
		t.Errorf("count header = %#v", d.Headers["count"])
	}
	if _, ok := d.Headers["nested"].(amqp.Table); !ok {
		t.Errorf("nested header = %#v", d.Headers["nested"])
	}
}

func TestBatchPublishConfirms(t *testing.T) {
	conn, q := setup(t, nil)
	pub := NewPublisher(conn, WithConfirms(true))
	defer pub.Close()
	const n = 100
	batch := make([]*middleware.Message, n)
	for i := range batch {
		batch[i] = &middleware.Message{ID: fmt.Sprint(i), Body: []byte("m"), Headers: map[string]string{"i": fmt.Sprint(i)}}
	}
	if err := pub.Publish(t.Context(), q, batch...); err != nil {
		t.Fatal(err)
	}
	// Confirmed means enqueued: count without consuming.
	if depth := queueDepth(t, conn, q); depth != n {
		t.Fatalf("queue holds %d messages after a confirmed publish of %d", depth, n)
	}
	got := make(chan *middleware.Message, n)
	subscribe(t, t.Context(), NewSubscriber(conn), q, func(_ context.Context, m *middleware.Message) error {
		got <- m
		return nil
	})
	seen := map[string]bool{}
	for i, m := range receive(t, got, n, 20*time.Second) {
		if m.Headers["i"] != m.ID {
			t.Errorf("message %s has header i=%q", m.ID, m.Headers["i"])
		}
		// One channel, one consumer, concurrency 1: queue order.
		if m.ID != fmt.Sprint(i) {
			t.Errorf("message %d is %s: order lost", i, m.ID)
		}
		seen[m.ID] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages of %d", len(seen), n)
	}
}

func TestPublishErrors(t *testing.T) {
	t.Run("closed connection", func(t *testing.T) {
		conn, err := amqp.Dial(brokers.RabbitMQURL(t))
		if err != nil {
			t.Fatal(err)
		}
		pub := NewPublisher(conn, WithConfirms(true))
		// Once with a channel open, once without. Opening it: a message
		// no queue is bound for comes back, and fails, rather than being
		// confirmed and dropped.
		if err := pub.Publish(t.Context(), "nowhere-"+t.Name(), &middleware.Message{ID: "warm"}); err == nil || !strings.Contains(err.Error(), "returned by the broker: 312 NO_ROUTE") {
			t.Fatalf("publish to an unbound routing key: %v, want it returned", err)
		}
		_ = conn.Close()
		for range 2 {
			err := pub.Publish(t.Context(), "orders", &middleware.Message{ID: "a"}, &middleware.Message{ID: "b"})
			if err == nil {
				t.Fatal("publish on a closed connection succeeded")
			}
			for _, want := range []string{`message 0 (id "a")`, `message 1 (id "b")`, "2 message(s) failed", "publish to orders:"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if !errors.Is(err, amqp.ErrClosed) {
				t.Errorf("error %v does not wrap amqp.ErrClosed", err)
			}
		}
	})
	t.Run("nil connection and message", func(t *testing.T) {
		err := NewPublisher(nil).Publish(t.Context(), "q", &middleware.Message{ID: "x"})
		if err == nil || !strings.Contains(err.Error(), `id "x"`) {
			t.Fatalf("err = %v", err)
		}
		var typedNil *amqp.Connection
		if err := NewPublisher(typedNil).Publish(t.Context(), "q", nil); err == nil {
			t.Fatal("typed nil connection: no error")
		}
		var typedNilConn *Connection
		if err := NewSubscriber(typedNilConn).Subscribe(t.Context(), "q", middleware.HandlerFunc(nil)); err == nil {
			t.Fatal("nil handler: no error")
		}
		if err := NewSubscriber(typedNilConn).Subscribe(t.Context(), "q", middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })); err == nil {
			t.Fatal("typed nil *Connection: no error")
		}
	})
	t.Run("nil message in a batch", func(t *testing.T) {
		conn, q := setup(t, nil)
		pub := NewPublisher(conn, WithConfirms(true))
		defer pub.Close()
		err := pub.Publish(t.Context(), q, &middleware.Message{ID: "ok"}, nil)
		if err == nil || !strings.Contains(err.Error(), "message 1") || strings.Contains(err.Error(), "message 0") {
			t.Fatalf("err = %v", err)
		}
		if d := queueDepth(t, conn, q); d != 1 {
			t.Fatalf("depth %d, want the one good message", d)
		}
	})
	t.Run("missing exchange with confirms", func(t *testing.T) {
		conn, q := setup(t, nil)
		pub := NewPublisher(conn, WithConfirms(true), WithExchange("otelmq-no-such-exchange"))
		defer pub.Close()
		err := pub.Publish(t.Context(), q, &middleware.Message{ID: "lost"})
		if err == nil || !strings.Contains(err.Error(), `id "lost"`) {
			t.Fatalf("err = %v", err)
		}
		// The channel died with a 404; the next Publish opens a new one.
		pub.cfg.exchange = ""
		if err := pub.Publish(t.Context(), q, &middleware.Message{ID: "ok"}); err != nil {
			t.Fatalf("publish after a channel error: %v", err)
		}
	})
}

func TestSubscribeMissingQueue(t *testing.T) {
	conn := brokers.RabbitMQ(t)
	c, err := Dial(brokers.RabbitMQURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })
	for name, sub := range map[string]*Subscriber{
		"amqp.Connection":      NewSubscriber(conn),
		"Connection reconnect": NewSubscriber(c),
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := sub.Subscribe(ctx, "otelmq-no-such-queue", h)
		cancel()
		// Reconnecting does not retry what a new channel cannot cure.
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Code != amqp.NotFound {
			t.Errorf("%s: err = %v, want a 404", name, err)
		}
	}
}

func TestHandlerErrorRequeues(t *testing.T) {
	conn, q := setup(t, nil)
	pub := NewPublisher(conn)
	if err := pub.Publish(t.Context(), q, &middleware.Message{ID: "retry", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	got := make(chan *middleware.Message, 4)
	var calls atomic.Int32
	subscribe(t, t.Context(), NewSubscriber(conn), q, func(_ context.Context, m *middleware.Message) error {
		got <- m
		if calls.Add(1) == 1 {
			return errors.New("transient")
		}
		return nil
	})
	msgs := receive(t, got, 2, 10*time.Second)
	if msgs[0].DeliveryCount != 1 || msgs[1].DeliveryCount < 2 || msgs[1].ID != "retry" {
		t.Fatalf("delivery counts %d then %d (id %q)", msgs[0].DeliveryCount, msgs[1].DeliveryCount, msgs[1].ID)
	}
	quiet(t, got, 300*time.Millisecond) // acked the second time
}

func TestPanicRecoveredAndRedelivered(t *testing.T) {
	conn, q := setup(t, nil)
	if err := NewPublisher(conn).Publish(t.Context(), q, &middleware.Message{ID: "boom"}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	ctx := middleware.WithObserver(t.Context(), rec)
	got := make(chan *middleware.Message, 4)
	var calls atomic.Int32
	subscribe(t, ctx, NewSubscriber(conn), q, func(_ context.Context, m *middleware.Message) error {
		got <- m
		if calls.Add(1) == 1 {
			panic("handler bug")
		}
		return nil
	})
	msgs := receive(t, got, 2, 10*time.Second)
	if msgs[1].DeliveryCount < 2 {
		t.Fatalf("redelivery has DeliveryCount %d", msgs[1].DeliveryCount)
	}
	eventually(t, 5*time.Second, "two settles", func() bool { return len(rec.snapshot()) >= 4 })
	var ops []string
	for _, e := range rec.snapshot() {
		if e.kind == "settled" {
			ops = append(ops, e.op)
			if e.err != nil {
				t.Errorf("settle %s failed: %v", e.op, e.err)
			}
		}
	}
	if fmt.Sprint(ops) != fmt.Sprint([]string{propagation.OpNack, propagation.OpAck}) {
		t.Fatalf("settles = %v", ops)
	}
}

func TestDeadLetter(t *testing.T) {
	conn := brokers.RabbitMQ(t)
	dlq := brokers.RabbitMQQueue(t, conn, nil)
	q := brokers.RabbitMQQueue(t, conn, amqp.Table{
		"x-dead-letter-exchange":    "", // the default exchange routes to dlq by name
		"x-dead-letter-routing-key": dlq,
	})
	sent := &middleware.Message{ID: "poison", Key: []byte("k"), Body: []byte("bad"), Headers: map[string]string{"traceparent": traceparent, "tenant": "acme"}}
	if err := NewPublisher(conn, WithConfirms(true)).Publish(t.Context(), q, sent); err != nil {
		t.Fatal(err)
	}
	var rejected atomic.Int32
	subscribe(t, t.Context(), NewSubscriber(conn, WithRequeue(false)), q, func(context.Context, *middleware.Message) error {
		rejected.Add(1)
		return errors.New("poison")
	})
	got := make(chan *middleware.Message, 2)
	subscribe(t, t.Context(), NewSubscriber(conn), dlq, func(_ context.Context, m *middleware.Message) error {
		got <- m
		return nil
	})
	m := receive(t, got, 1, 10*time.Second)[0]
	if n := rejected.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1: WithRequeue(false) must not requeue", n)
	}
	if m.ID != "poison" || string(m.Body) != "bad" || string(m.Key) != "k" || m.Headers["traceparent"] != traceparent || m.Headers["tenant"] != "acme" {
		t.Errorf("dead-lettered message %+v", m)
	}
	if m.DeliveryCount != 2 {
		t.Errorf("DeliveryCount = %d, want 2 (one x-death + this delivery)", m.DeliveryCount)
	}
	var d *amqp.Delivery
	if !m.As(&d) {
		t.Fatal("As failed")
	}
	deaths, ok := d.Headers["x-death"].([]any)
	if !ok || len(deaths) != 1 {
		t.Fatalf("x-death = %#v", d.Headers["x-death"])
	}
	death, _ := deaths[0].(amqp.Table)
	if death["reason"] != "rejected" || death["queue"] != q || death["count"] != int64(1) {
		t.Errorf("x-death[0] = %#v", death)
	}
	if _, leaked := m.Headers["x-death"]; leaked {
		t.Error("x-death leaked into Headers")
	}
	quiet(t, got, 200*time.Millisecond)
}

func TestConcurrency(t *testing.T) {
	conn, q := setup(t, nil)
	const n = 40
	batch := make([]*middleware.Message, n)
	for i := range batch {
		batch[i] = &middleware.Message{ID: fmt.Sprint(i)}
	}
	if err := NewPublisher(conn, WithConfirms(true)).Publish(t.Context(), q, batch...); err != nil {
		t.Fatal(err)
	}
	var inFlight, peak atomic.Int32
	var mu sync.Mutex
	seen := map[string]int{}
	subscribe(t, t.Context(), NewSubscriber(conn, WithConcurrency(4)), q, func(_ context.Context, m *middleware.Message) error {
		cur := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		seen[m.ID]++
		mu.Unlock()
		return nil
	})
	eventually(t, 15*time.Second, "all messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == n
	})
	if p := peak.Load(); p < 2 || p > 4 {
		t.Errorf("peak concurrency %d, want 2..4", p)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, c := range seen {
		if c != 1 {
			t.Errorf("message %s handled %d times", id, c)
		}
	}
}

func TestGracefulShutdown(t *testing.T) {
	conn, q := setup(t, nil)
	const n = 10
	batch := make([]*middleware.Message, n)
	for i := range batch {
		batch[i] = &middleware.Message{ID: fmt.Sprint(i)}
	}
	if err := NewPublisher(conn, WithConfirms(true)).Publish(t.Context(), q, batch...); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	started := make(chan struct{})
	release := make(chan struct{})
	var handled []string
	var handlerCtxErr error
	r := subscribe(t, middleware.WithObserver(t.Context(), rec), NewSubscriber(conn, WithPrefetch(n)), q, func(ctx context.Context, m *middleware.Message) error {
		handled = append(handled, m.ID)
		if len(handled) == 1 {
			close(started)
			<-release
			handlerCtxErr = ctx.Err()
		}
		return nil
	})
	<-started
	// All ten are prefetched to this consumer, one is being handled.
	eventually(t, 5*time.Second, "prefetch", func() bool { return queueDepth(t, conn, q) == 0 })
	stopped := make(chan error, 1)
	go func() { stopped <- r.stop(t) }()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-stopped:
		t.Fatalf("Subscribe returned (%v) while its handler was running", err)
	default:
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("Subscribe after cancel: %v", err)
	}
	if handlerCtxErr != nil {
		t.Errorf("the running handler's context ended with the subscription: %v", handlerCtxErr)
	}
	if len(handled) != 1 || handled[0] != "0" {
		t.Fatalf("handled %v after cancel, want only [0]", handled)
	}
	var settles []event
	for _, e := range rec.snapshot() {
		if e.kind == "settled" {
			settles = append(settles, e)
		}
	}
	if len(settles) != 1 || settles[0].op != propagation.OpAck || settles[0].err != nil || settles[0].id != "0" {
		t.Fatalf("settles = %+v, want one successful ack of 0", settles)
	}

	// The nine prefetched messages went back to the queue; a second
	// subscriber gets them and not the acked one.
	got := make(chan *middleware.Message, n)
	subscribe(t, t.Context(), NewSubscriber(conn), q, func(_ context.Context, m *middleware.Message) error {
		got <- m
		return nil
	})
	seen := map[string]bool{}
	for _, m := range receive(t, got, n-1, 10*time.Second) {
		seen[m.ID] = true
	}
	quiet(t, got, 200*time.Millisecond)
	for i := 1; i < n; i++ {
		if !seen[fmt.Sprint(i)] {
			t.Errorf("message %d lost", i)
		}
	}
}

func TestObserver(t *testing.T) {
	conn, q := setup(t, nil)
	if err := NewPublisher(conn, WithConfirms(true)).Publish(t.Context(), q, &middleware.Message{ID: "ok"}, &middleware.Message{ID: "fail"}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	ctx := middleware.WithObserver(t.Context(), rec)
	var failed atomic.Bool
	subscribe(t, ctx, NewSubscriber(conn, WithRequeue(false)), q, func(ctx context.Context, m *middleware.Message) error {
		if ctx.Value(ctxKey{}) != "from observer" {
			t.Errorf("handler of %s did not get the context Received returned", m.ID)
		}
		rec.add(event{kind: "handled", id: m.ID})
		if m.ID == "fail" {
			failed.Store(true)
			return errors.New("no")
		}
		return nil
	})
	eventually(t, 10*time.Second, "six events", func() bool { return len(rec.snapshot()) >= 6 })
	var got []string
	for _, e := range rec.snapshot() {
		got = append(got, strings.Join(strings.Fields(e.kind+" "+e.op+" "+e.id), " "))
		if e.kind != "handled" && (e.dest.Name != q || e.dest.System != propagation.SystemRabbitMQ) {
			t.Errorf("%s: destination %+v", e.kind, e.dest)
		}
		if e.err != nil {
			t.Errorf("%s %s: %v", e.kind, e.id, e.err)
		}
	}
	// Each message in its order; the acker settles a message while the
	// next one is handled, so the two may interleave.
	for _, want := range [][]string{{"received ok", "handled ok", "settled ack ok"}, {"received fail", "handled fail", "settled nack fail"}} {
		var mine []string
		for _, e := range got {
			if strings.HasSuffix(e, " "+strings.Fields(want[0])[1]) {
				mine = append(mine, e)
			}
		}
		if fmt.Sprint(mine) != fmt.Sprint(want) {
			t.Errorf("events %q\n of one message: %q, want %q", got, mine, want)
		}
	}
}

// A queue deleted under a consumer cancels it (basic.cancel). Without
// reconnecting Subscribe reports that; with it, Subscribe tries a new
// channel, finds the queue gone (404) and reports that instead of retrying
// forever.
func TestQueueDeletedWhileConsuming(t *testing.T) {
	for _, reconnect := range []bool{false, true} {
		t.Run(fmt.Sprint("reconnect=", reconnect), func(t *testing.T) {
			conn, q := setup(t, nil)
			r := subscribe(t, t.Context(), NewSubscriber(conn, WithReconnect(reconnect)), q, func(context.Context, *middleware.Message) error { return nil })
			ch := rawChannel(t, conn)
			eventually(t, 10*time.Second, "basic.consume to land", func() bool {
				info, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
				return err == nil && info.Consumers == 1
			})
			if _, err := rawChannel(t, conn).QueueDelete(q, false, false, false); err != nil {
				t.Fatal(err)
			}
			var err error
			eventually(t, 10*time.Second, "Subscribe to return", func() bool {
				var done bool
				done, err = r.returned()
				return done
			})
			var ae *amqp.Error
			switch {
			case err == nil:
				t.Fatal("Subscribe returned nil")
			case reconnect && (!errors.As(err, &ae) || ae.Code != amqp.NotFound):
				t.Fatalf("err = %v, want a 404 from the new channel", err)
			case !reconnect && !strings.Contains(err.Error(), "consumer closed"):
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// TestPublishUnencodableMessages: a message AMQP cannot carry (a header name
// past 255 bytes, a header table past the connection's frame, a message ID
// past 255 bytes) fails alone, with an error that says why; amqp091 or the
// broker would have closed the whole connection. The other messages of the
// call are published, the connection stays open, and a consumer on it keeps
// receiving, as later publishes keep working.
func TestPublishUnencodableMessages(t *testing.T) {
	conn, queue := setup(t, nil)
	got := make(chan *middleware.Message, 4)
	r := subscribe(t, t.Context(), NewSubscriber(conn), queue, func(_ context.Context, m *middleware.Message) error {
		got <- m
		return nil
	})
	longName := &middleware.Message{Body: []byte("long name"), Headers: map[string]string{strings.Repeat("k", 256): "v"}}
	bigTable := &middleware.Message{Body: []byte("big table"), Headers: map[string]string{"big": strings.Repeat("x", 200<<10)}}
	longID := &middleware.Message{Body: []byte("long id"), ID: strings.Repeat("i", 256)}
	ok := &middleware.Message{Body: []byte("ok"), Headers: map[string]string{"tenant": "acme"}}
	pub := NewPublisher(conn, WithConfirms(true))
	err := pub.Publish(t.Context(), queue, longName, bigTable, longID, ok)
	if err == nil {
		t.Fatal("the unencodable messages were published")
	}
	for _, want := range []string{"message 0 ", "field names hold at most 255", "message 1 ", "a frame of this connection", "message 2 ", "message-id holds at most 255", "3 message(s) failed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// Publishing them again fails again: DeadLetter takes such a failure
	// at once (a relay from a broker that allowed them must not loop).
	if perr := pub.Publish(t.Context(), queue, longName); !middleware.IsPermanent(perr) {
		t.Errorf("a header name AMQP cannot carry: %v, not marked permanent", perr)
	}
	if conn.IsClosed() {
		t.Fatal("the connection was closed")
	}
	if m := receive(t, got, 1, 10*time.Second)[0]; string(m.Body) != "ok" || m.Headers["tenant"] != "acme" {
		t.Errorf("received %q %v, want the valid message", m.Body, m.Headers)
	}
	if err := pub.Publish(t.Context(), queue, &middleware.Message{Body: []byte("after")}); err != nil {
		t.Fatalf("a later publish: %v", err)
	}
	if m := receive(t, got, 1, 10*time.Second)[0]; string(m.Body) != "after" {
		t.Errorf("received %q, want the later message", m.Body)
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Subscribe = %v, want nil after cancel", err)
	}
}
