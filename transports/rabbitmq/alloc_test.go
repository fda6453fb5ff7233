package rabbitmq

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// fakeAck records what deliveries were settled with: a channel for the
// acker, or a delivery's Acknowledger.
type fakeAck struct {
	mu                   sync.Mutex
	acks, nacks, rejects int
	requeue              bool
	frames               []string // "ack 3", "ack 5 multiple", "reject 4"
	err                  error    // returned by every call
}

func (a *fakeAck) Ack(tag uint64, multiple bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.acks++
	f := fmt.Sprint("ack ", tag)
	if multiple {
		f += " multiple"
	}
	a.frames = append(a.frames, f)
	return a.err
}
func (a *fakeAck) Nack(_ uint64, _, requeue bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nacks++
	a.requeue = requeue
	return a.err
}
func (a *fakeAck) Reject(tag uint64, requeue bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rejects++
	a.requeue = requeue
	a.frames = append(a.frames, fmt.Sprint("reject ", tag))
	return a.err
}

func (a *fakeAck) snapshot() (acks, nacks, rejects int, requeue bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.acks, a.nacks, a.rejects, a.requeue
}

// handleOne runs s.handle on d with an acker of its own over ack, and
// waits for the settle.
func handleOne(ctx context.Context, s *Subscriber, ack *fakeAck, obs middleware.Observer, dest middleware.Destination, h middleware.Handler, d *amqp.Delivery) {
	a := newAcker(ctx, ack, s.cfg.requeue, obs, dest)
	s.handle(ctx, a, obs, dest, h, d, "q")
	a.close()
}

type missingKey struct{}

// Issue 7: the allocations the Subscriber makes per delivery, beyond what
// amqp091 made to decode it. One inbound (Message, delivery copy, msgs
// slice, attributes), the As func and the Headers map, plus the map's slots
// when there are headers. A regression (a per-delivery WithoutCancel, a
// slice per delivery, a delivery that escapes) fails here.
func TestHandleAllocs(t *testing.T) {
	s := NewSubscriber(nil, WithRequeue(false))
	var obs middleware.Observer // none installed: Subscribe passes nil
	dest := middleware.Destination{System: propagation.SystemRabbitMQ, Name: "q", Push: true}
	ctx := handlerContext(context.Background())
	for _, tc := range []struct {
		name    string
		headers amqp.Table
		want    float64
	}{
		{"no headers", nil, 3},
		{"traceparent", amqp.Table{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, 4},
	} {
		ack := &fakeAck{}
		a := newAcker(ctx, ack, s.cfg.requeue, obs, dest)
		d := amqp.Delivery{DeliveryTag: 0, RoutingKey: "q", MessageId: "id", Body: []byte("b"), Headers: tc.headers}
		var seen *middleware.Message
		h := middleware.HandlerFunc(func(ctx context.Context, m *middleware.Message) error {
			// A lookup that misses walks the whole context chain: it
			// must not allocate either.
			if ctx.Value(missingKey{}) != nil {
				return fmt.Errorf("unexpected value")
			}
			seen = m
			return nil
		})
		got := testing.AllocsPerRun(200, func() {
			d.DeliveryTag++
			s.handle(ctx, a, obs, dest, h, &d, "q")
		})
		a.close()
		if got > tc.want {
			t.Errorf("%s: handle makes %.1f allocations per delivery, want at most %.0f", tc.name, got, tc.want)
		}
		if acks, nacks, _, _ := ack.snapshot(); acks == 0 || nacks != 0 {
			t.Errorf("%s: %d acks, %d nacks", tc.name, acks, nacks)
		}
		if seen == nil || seen.ID != "id" || string(seen.Body) != "b" || seen.Destination != "q" || len(seen.Headers) != len(tc.headers) {
			t.Errorf("%s: handler saw %+v", tc.name, seen)
		}
	}

	// An error rejects (basic.reject, which RabbitMQ 4.3 counts as a
	// failed delivery where it does not count a basic.nack), with
	// WithRequeue's choice.
	ack := &fakeAck{requeue: true}
	d := amqp.Delivery{DeliveryTag: 1}
	handleOne(ctx, s, ack, obs, dest, middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
		return fmt.Errorf("no")
	}), &d)
	if acks, nacks, rejects, requeue := ack.snapshot(); acks != 0 || nacks != 0 || rejects != 1 || requeue {
		t.Errorf("error: %d acks, %d nacks, %d rejects, requeue %v", acks, nacks, rejects, requeue)
	}
}

// Each delivery gets its own Message, attributes and msgs slice, though
// they are built in one allocation: a handler may keep a Message.
func TestHandleMessagesIndependent(t *testing.T) {
	s := NewSubscriber(nil)
	rec := &recorder{}
	var kept []*middleware.Message
	h := middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
		kept = append(kept, m)
		return nil
	})
	for i := range 3 {
		d := amqp.Delivery{DeliveryTag: uint64(i + 1), RoutingKey: fmt.Sprint("rk", i), MessageId: fmt.Sprint("id", i),
			Headers: amqp.Table{"n": fmt.Sprint(i)}}
		handleOne(handlerContext(context.Background()), s, &fakeAck{}, rec, middleware.Destination{Name: "q"}, h, &d)
	}
	for i, m := range kept {
		var d *amqp.Delivery
		if m.ID != fmt.Sprint("id", i) || m.Headers["n"] != fmt.Sprint(i) || !m.As(&d) || d.DeliveryTag != uint64(i+1) {
			t.Errorf("message %d changed: %+v", i, m)
		}
		want := []attribute.KeyValue{
			propagation.RabbitMQRouting(fmt.Sprint("rk", i)),
			propagation.RabbitMQDeliveryTag(uint64(i + 1)),
			propagation.MessageID(fmt.Sprint("id", i)),
		}
		if got := m.Attributes(); !slices.Equal(got, want) || cap(got) != len(got) {
			t.Errorf("message %d attributes %v (cap %d), want %v", i, got, cap(got), want)
		}
	}
	// The recorder saw each message once on receive and once on settle.
	if ev := rec.snapshot(); len(ev) != 6 {
		t.Errorf("observer saw %d events, want 6", len(ev))
	}
}

type parentKey struct{}

func TestHandlerContext(t *testing.T) {
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), parentKey{}, "v"))
	hctx := handlerContext(parent)
	cancel()
	if hctx.Err() != nil || hctx.Done() != nil {
		t.Fatalf("handler context ended with Subscribe's: %v", hctx.Err())
	}
	if hctx.Value(parentKey{}) != "v" {
		t.Fatal("handler context lost the parent's values")
	}
	if _, ok := hctx.Deadline(); ok {
		t.Fatal("handler context has a deadline")
	}
	if got := testing.AllocsPerRun(100, func() { _ = hctx.Value(missingKey{}) }); got != 0 {
		t.Errorf("a missed lookup allocates %.0f times", got)
	}
}

func TestPublishingReusesTable(t *testing.T) {
	now := time.Unix(1700000000, 0)
	first := publishing(&middleware.Message{Key: []byte("k"), Headers: map[string]string{"a": "1", "b": "2"}}, now, nil, false)
	table := first.Headers
	second := publishing(&middleware.Message{Headers: map[string]string{"c": "3"}}, now, table, true)
	if len(second.Headers) != 2 || second.Headers["c"] != "3" || second.Headers[TimestampHeader] != now.UnixMilli() {
		t.Fatalf("reused table = %v, want only c=3 and the timestamp", second.Headers)
	}
	second.Headers["probe"] = true
	if table["probe"] != true {
		t.Fatal("publishing did not reuse the table it was given")
	}
	if third := publishing(&middleware.Message{}, now, table, true); third.Headers != nil {
		t.Fatalf("a message without headers got %v", third.Headers)
	}
}

func TestPublisherDescribeCache(t *testing.T) {
	p := NewPublisher(nil, WithExchange("ex"), WithServer("broker", 5672))
	want := p.describe("orders")
	d := p.Describe("orders")
	if d.Name != "ex:orders" || d.System != propagation.SystemRabbitMQ || !slices.Equal(d.Attributes, want.Attributes) {
		t.Fatalf("Describe = %+v, want %+v", d, want)
	}
	if cap(d.Attributes) != len(d.Attributes) {
		t.Fatal("shared Attributes not clipped: an append would write into them")
	}
	if got := testing.AllocsPerRun(100, func() { _ = p.Describe("orders") }); got != 0 {
		t.Errorf("cached Describe allocates %.0f times", got)
	}
}

// timeObserver records the start times handle passes.
type timeObserver struct{ received, settled time.Time }

func (o *timeObserver) Received(ctx context.Context, _ middleware.Destination, start time.Time, _ []*middleware.Message) context.Context {
	o.received = start
	return ctx
}

func (o *timeObserver) Settled(_ context.Context, _ middleware.Destination, _ string, start time.Time, _ []*middleware.Message, _ error) {
	o.settled = start
}

// TestObserverTimes: an observer gets the times; the handler runs between
// them.
func TestObserverTimes(t *testing.T) {
	o := &timeObserver{}
	before := time.Now()
	var during time.Time
	d := amqp.Delivery{DeliveryTag: 1}
	handleOne(handlerContext(context.Background()), NewSubscriber(nil), &fakeAck{}, o, middleware.Destination{}, middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
		during = time.Now()
		return nil
	}), &d)
	if o.received.Before(before) || o.received.After(during) || o.settled.Before(during) {
		t.Errorf("received at %v, handled at %v, settled at %v", o.received, during, o.settled)
	}
}

func TestIDSource(t *testing.T) {
	var a, b idSource
	seen := map[string]bool{}
	for range 10000 {
		id := a.next()
		if len(id) != 26 || strings.Trim(id, base32Alphabet) != "" {
			t.Fatalf("ID %q is not 26 base32 characters", id)
		}
		if seen[id] {
			t.Fatalf("ID %q twice", id)
		}
		seen[id] = true
	}
	if id := b.next(); seen[id] {
		t.Fatalf("a second source repeated %q: not seeded independently", id)
	}
	// Every character of the alphabet turns up in every position.
	for pos := range 26 {
		chars := map[byte]bool{}
		for id := range seen {
			chars[id[pos]] = true
		}
		if len(chars) != 32 {
			t.Fatalf("position %d uses %d of 32 characters", pos, len(chars))
		}
	}
}

// The Publisher keeps one header table between messages, empty between
// Publish calls, and lets an outsized one go.
func TestPublisherHeaderTable(t *testing.T) {
	conn, q := setup(t, nil)
	pub := NewPublisher(conn)
	defer pub.Close()
	small := &middleware.Message{Body: []byte("s"), Headers: map[string]string{"a": "1"}}
	if err := pub.Publish(t.Context(), q, small); err != nil {
		t.Fatal(err)
	}
	kept := pub.headers
	if kept == nil || len(kept) != 0 {
		t.Fatalf("after a Publish the table is %v, want empty and kept", kept)
	}
	big := &middleware.Message{Body: []byte("b"), Headers: map[string]string{}}
	for i := range maxReusedHeaders + 1 {
		big.Headers[fmt.Sprint("h", i)] = "v"
	}
	if err := pub.Publish(t.Context(), q, big); err != nil {
		t.Fatal(err)
	}
	if pub.headers != nil {
		t.Fatalf("a table of %d entries was kept", maxReusedHeaders+1)
	}
	if err := pub.Publish(t.Context(), q, small); err != nil {
		t.Fatal(err)
	}
	if pub.headers == nil {
		t.Fatal("no table kept after a small message")
	}
	got := make(chan *middleware.Message, 3)
	subscribe(t, t.Context(), NewSubscriber(conn), q, func(_ context.Context, m *middleware.Message) error {
		got <- m
		return nil
	})
	for i, m := range receive(t, got, 3, 10*time.Second) {
		want := len(small.Headers)
		if i == 1 {
			want = len(big.Headers)
		}
		if len(m.Headers) != want {
			t.Errorf("message %d has %d headers, want %d", i, len(m.Headers), want)
		}
	}
}
