package integration

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	otelprop "go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/integration/brokers"
	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/memory"
	"github.com/otelmq/otelmq/transports/rabbitmq"
)

// These tests follow a message past the happy path over a real RabbitMQ:
// the broker's own dead-lettering, otelmq's DeadLetter to another broker,
// clients that are not otelmq on either end, and headers otelmq did not
// write. Each asserts on the recorded spans, because "the trace survives"
// means span parentage, not just a header that was copied.

const (
	foreignTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	foreignSpanID  = "00f067aa0ba902b7"
	foreignTP      = "00-" + foreignTraceID + "-" + foreignSpanID + "-01"
)

// rmqTracing is a Tracing over a span recorder.
type rmqTracing struct {
	t   *testing.T
	rec *tracetest.SpanRecorder
	tp  *sdktrace.TracerProvider
	*middleware.Tracing
}

func newRMQTracing(t *testing.T) *rmqTracing {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return &rmqTracing{t: t, rec: rec, tp: tp, Tracing: middleware.NewTracing(middleware.WithTracerProvider(tp))}
}

// waitSpan waits for an ended span matching ok.
func (r *rmqTracing) waitSpan(what string, ok func(sdktrace.ReadOnlySpan) bool) sdktrace.ReadOnlySpan {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, s := range r.rec.Ended() {
			if ok(s) {
				return s
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no span %s ended within 10s; ended: %v", what, spanNames(r.rec.Ended()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// bySpanID finds the ended span with id.
func (r *rmqTracing) bySpanID(id trace.SpanID) sdktrace.ReadOnlySpan {
	for _, s := range r.rec.Ended() {
		if s.SpanContext().SpanID() == id {
			return s
		}
	}
	return nil
}

func named(name string) func(sdktrace.ReadOnlySpan) bool {
	return func(s sdktrace.ReadOnlySpan) bool { return s.Name() == name }
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name() + "@" + s.SpanContext().TraceID().String()[:8]
	}
	return out
}

// handled is what a handler saw: the message and its span context.
type handled struct {
	msg  *middleware.Message
	span trace.SpanContext
}

// rmqSubscribe runs sub.Subscribe in the background until the test ends and
// sends every delivery the handler saw on the returned channel. The
// subscriber returning before the test ends fails the test: none of these
// tests closes anything under it.
func rmqSubscribe(t *testing.T, sub middleware.Subscriber, queue string, handle func(context.Context, *middleware.Message) error) <-chan handled {
	t.Helper()
	out := make(chan handled, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- sub.Subscribe(ctx, queue, middleware.HandlerFunc(func(ctx context.Context, m *middleware.Message) error {
			out <- handled{msg: m, span: trace.SpanContextFromContext(ctx)}
			if handle == nil {
				return nil
			}
			return handle(ctx, m)
		}))
	}()
	t.Cleanup(func() {
		select {
		case err := <-done:
			t.Errorf("Subscribe(%s) returned before the test ended: %v", queue, err)
			return
		default:
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Subscribe(%s) returned %v after cancel", queue, err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Subscribe(%s) did not return within 20s of cancel", queue)
		}
	})
	return out
}

func next(t *testing.T, c <-chan handled, what string) handled {
	t.Helper()
	select {
	case h := <-c:
		return h
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: nothing handled within 15s", what)
		return handled{}
	}
}

// TestRabbitMQNativeDeadLetterKeepsTrace: a handler error with
// WithRequeue(false) makes RabbitMQ itself dead-letter the message (the
// queue's x-dead-letter-exchange). The broker copies the headers, so the
// DLQ consumer's process span joins the producer's trace.
func TestRabbitMQNativeDeadLetterKeepsTrace(t *testing.T) {
	conn := brokers.RabbitMQ(t)
	dlq := brokers.RabbitMQQueue(t, conn, nil)
	q := brokers.RabbitMQQueue(t, conn, amqp.Table{
		"x-dead-letter-exchange":    "", // the default exchange routes to dlq by name
		"x-dead-letter-routing-key": dlq,
	})
	tr := newRMQTracing(t)
	raw := rabbitmq.NewPublisher(conn, rabbitmq.WithConfirms(true))
	t.Cleanup(func() { _ = raw.Close() })
	pub := tr.Publisher(raw)

	ctx, root := tr.tp.Tracer("test").Start(context.Background(), "POST /orders")
	sent := middleware.NewMessage([]byte("poison"))
	sent.Key = []byte("order-7")
	sent.Headers["tenant"] = "acme"
	if err := pub.Publish(ctx, q, sent); err != nil {
		t.Fatal(err)
	}
	root.End()
	traceID := root.SpanContext().TraceID()

	failed := rmqSubscribe(t, tr.Subscriber(rabbitmq.NewSubscriber(conn, rabbitmq.WithRequeue(false))), q,
		func(context.Context, *middleware.Message) error { return errors.New("declined") })
	dead := rmqSubscribe(t, tr.Subscriber(rabbitmq.NewSubscriber(conn)), dlq, nil)

	first := next(t, failed, "source queue")
	got := next(t, dead, "DLQ")

	if first.span.TraceID() != traceID {
		t.Errorf("failed process span in trace %s, want the root's %s", first.span.TraceID(), traceID)
	}
	if got.span.TraceID() != traceID {
		t.Fatalf("DLQ process span in trace %s, want the root's %s", got.span.TraceID(), traceID)
	}
	send := tr.waitSpan("send", func(s sdktrace.ReadOnlySpan) bool { return s.SpanKind() == trace.SpanKindProducer })
	p := tr.waitSpan("DLQ process", func(s sdktrace.ReadOnlySpan) bool { return s.SpanContext().SpanID() == got.span.SpanID() })
	if p.Parent().SpanID() != send.SpanContext().SpanID() {
		t.Errorf("DLQ process span's parent is %s, want the send span %s", p.Parent().SpanID(), send.SpanContext().SpanID())
	}
	tr.waitSpan("nack of the source", named("nack "+q))

	m := got.msg
	var d *amqp.Delivery
	if !m.As(&d) {
		t.Fatal("As(**amqp.Delivery) failed")
	}
	deaths, ok := d.Headers["x-death"].([]any)
	if !ok || len(deaths) == 0 {
		t.Fatalf("no x-death on the dead-lettered delivery: %#v", d.Headers["x-death"])
	}
	if death, _ := deaths[0].(amqp.Table); death["reason"] != "rejected" || death["queue"] != q {
		t.Errorf("x-death[0] = %#v, want reason rejected from %s", death, q)
	}
	if m.DeliveryCount < 2 {
		t.Errorf("DeliveryCount = %d, want >= 2 (dead-lettered once, delivered again)", m.DeliveryCount)
	}
	for k, v := range sent.Headers {
		if m.Headers[k] != v {
			t.Errorf("header %s = %q after dead-lettering, want %q", k, m.Headers[k], v)
		}
	}
	if string(m.Body) != "poison" || string(m.Key) != "order-7" || m.ID != sent.ID {
		t.Errorf("dead-lettered message %q key %q id %q, sent %q key %q id %q", m.Body, m.Key, m.ID, sent.Body, sent.Key, sent.ID)
	}
}

// TestRabbitMQDeadLetterMiddlewareToMemory: Retry tries a message three
// times inside one RabbitMQ delivery, then DeadLetter publishes it to a DLQ
// on another broker (the in-memory one). Producer, every attempt, the
// dead-letter publish and the DLQ handler are one trace.
func TestRabbitMQDeadLetterMiddlewareToMemory(t *testing.T) {
	conn := brokers.RabbitMQ(t)
	q := brokers.RabbitMQQueue(t, conn, nil)
	tr := newRMQTracing(t)
	raw := rabbitmq.NewPublisher(conn, rabbitmq.WithConfirms(true))
	t.Cleanup(func() { _ = raw.Close() })
	mem := memory.New()
	const dlq = "orders-dlq"

	ctx, root := tr.tp.Tracer("test").Start(context.Background(), "POST /orders")
	sent := middleware.NewMessage([]byte("order-13"))
	sent.Headers["tenant"] = "acme"
	if err := tr.Publisher(raw).Publish(ctx, q, sent); err != nil {
		t.Fatal(err)
	}
	root.End()
	traceID := root.SpanContext().TraceID()

	var mu sync.Mutex
	attempts := 0
	handler := middleware.ChainHandler(
		middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
			mu.Lock()
			attempts++
			mu.Unlock()
			return errors.New("declined")
		}),
		middleware.DeadLetter(tr.Publisher(mem), dlq),
		middleware.Retry(middleware.WithAttempts(3), middleware.WithBackoff(func(int) time.Duration { return time.Millisecond })),
	)
	src := rmqSubscribe(t, tr.Subscriber(rabbitmq.NewSubscriber(conn)), q, handler.Handle)
	dead := rmqSubscribe(t, tr.Subscriber(mem), dlq, nil)

	process := next(t, src, "source queue")
	got := next(t, dead, "DLQ")
	tr.waitSpan("ack of the source", named("ack "+q))

	mu.Lock()
	n := attempts
	mu.Unlock()
	if n != 3 {
		t.Errorf("handler ran %d times, want 3", n)
	}
	if got.msg.Headers[middleware.HeaderDLQAttempts] != "3" || got.msg.Headers[middleware.HeaderDLQSource] != q ||
		got.msg.Headers["tenant"] != "acme" || got.msg.Headers["traceparent"] != sent.Headers["traceparent"] {
		t.Errorf("dead-lettered headers %v", got.msg.Headers)
	}
	if got.span.TraceID() != traceID {
		t.Fatalf("DLQ handler in trace %s, want the root's %s", got.span.TraceID(), traceID)
	}
	for _, name := range []string{"attempt 2", "attempt 3"} {
		s := tr.waitSpan(name, named(name))
		if s.SpanContext().TraceID() != traceID || s.Parent().SpanID() != process.span.SpanID() {
			t.Errorf("%s is not a child of the process span in the root's trace", name)
		}
	}
	// Every span this message caused, on both brokers, is in the root's
	// trace: a second trace ID would mean a broken hop.
	tr.waitSpan("DLQ process", named("process "+dlq))
	for _, s := range tr.rec.Ended() {
		if strings.HasPrefix(s.Name(), "receive ") {
			continue // a receive is a root of its own that links the message
		}
		if s.SpanContext().TraceID() != traceID {
			t.Errorf("span %q is in trace %s, want %s", s.Name(), s.SpanContext().TraceID(), traceID)
		}
	}
	if ready, inFlight := mem.Len(dlq); ready != 0 || inFlight != 0 {
		t.Errorf("DLQ still holds %d ready, %d in flight", ready, inFlight)
	}
}

// TestRabbitMQForeignProducer: an amqp091 producer that is not otelmq sets
// traceparent as a byte array (as Java and pika clients send long strings)
// and tracestate as a string; the otelmq consumer joins that trace.
func TestRabbitMQForeignProducer(t *testing.T) {
	conn := brokers.RabbitMQ(t)
	q := brokers.RabbitMQQueue(t, conn, nil)
	tr := newRMQTracing(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	err = ch.PublishWithContext(context.Background(), "", q, false, false, amqp.Publishing{
		Body:    []byte("foreign"),
		Headers: amqp.Table{"traceparent": []byte(foreignTP), "tracestate": "vendor=abc"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := next(t, rmqSubscribe(t, tr.Subscriber(rabbitmq.NewSubscriber(conn)), q, nil), "foreign message")
	if got.span.TraceID().String() != foreignTraceID {
		t.Fatalf("processed in trace %s, want the foreign producer's %s", got.span.TraceID(), foreignTraceID)
	}
	p := tr.waitSpan("process", func(s sdktrace.ReadOnlySpan) bool { return s.SpanContext().SpanID() == got.span.SpanID() })
	if p.Parent().SpanID().String() != foreignSpanID || !p.Parent().IsRemote() {
		t.Errorf("process span's parent %s (remote %v), want the foreign span %s", p.Parent().SpanID(), p.Parent().IsRemote(), foreignSpanID)
	}
	if v := p.SpanContext().TraceState().Get("vendor"); v != "abc" {
		t.Errorf("tracestate vendor = %q, want abc", v)
	}
}

// TestRabbitMQForeignConsumer: an amqp091 consumer that is not otelmq reads
// what otelmq wrote. The trace headers must be plain AMQP strings under the
// W3C names, so any W3C propagator can read them.
func TestRabbitMQForeignConsumer(t *testing.T) {
	conn := brokers.RabbitMQ(t)
	q := brokers.RabbitMQQueue(t, conn, nil)
	tr := newRMQTracing(t)
	raw := rabbitmq.NewPublisher(conn, rabbitmq.WithConfirms(true))
	t.Cleanup(func() { _ = raw.Close() })

	// A remote parent with a tracestate, so the root inherits one and
	// otelmq has a tracestate to write.
	ts, _ := trace.ParseTraceState("vendor=abc")
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: mustTraceID(t, foreignTraceID), SpanID: mustSpanID(t, foreignSpanID),
		TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true,
	})
	member, _ := baggage.NewMember("tenant", "acme")
	bg, _ := baggage.New(member)
	ctx := baggage.ContextWithBaggage(trace.ContextWithRemoteSpanContext(context.Background(), parent), bg)
	ctx, root := tr.tp.Tracer("test").Start(ctx, "POST /orders")
	if err := tr.Publisher(raw).Publish(ctx, q, middleware.NewMessage([]byte("to a foreign consumer"))); err != nil {
		t.Fatal(err)
	}
	root.End()

	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	var d amqp.Delivery
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ok bool
		if d, ok, err = ch.Get(q, true); err != nil {
			t.Fatal(err)
		} else if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing to get within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	carrier := otelprop.MapCarrier{}
	for _, k := range []string{"traceparent", "tracestate", "baggage"} {
		s, ok := d.Headers[k].(string)
		if !ok {
			t.Fatalf("header %q is %T, want a plain AMQP string", k, d.Headers[k])
		}
		carrier[k] = s
	}
	sc := trace.SpanContextFromContext(otelprop.TraceContext{}.Extract(context.Background(), carrier))
	if !sc.IsValid() || sc.TraceID().String() != foreignTraceID {
		t.Fatalf("traceparent %q does not parse to trace %s", carrier["traceparent"], foreignTraceID)
	}
	send := tr.waitSpan("send", func(s sdktrace.ReadOnlySpan) bool { return s.SpanKind() == trace.SpanKindProducer })
	if sc.SpanID() != send.SpanContext().SpanID() {
		t.Errorf("traceparent names span %s, want the send span %s", sc.SpanID(), send.SpanContext().SpanID())
	}
	if sc.TraceState().Get("vendor") != "abc" {
		t.Errorf("tracestate %q lost vendor=abc", carrier["tracestate"])
	}
	if got := baggage.FromContext(otelprop.Baggage{}.Extract(context.Background(), carrier)).Member("tenant").Value(); got != "acme" {
		t.Errorf("baggage %q: tenant = %q, want acme", carrier["baggage"], got)
	}
}

func mustTraceID(t *testing.T, s string) trace.TraceID {
	id, err := trace.TraceIDFromHex(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustSpanID(t *testing.T, s string) trace.SpanID {
	id, err := trace.SpanIDFromHex(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestRabbitMQHostileHeaders: header tables otelmq did not write, with
// values of every AMQP type where text is expected and sizes no
// propagator should keep, reach the handler exactly once each, settle with
// an ack, and never panic. A traceparent that cannot be read starts a fresh
// trace; a readable one survives the junk around it.
func TestRabbitMQHostileHeaders(t *testing.T) {
	conn := brokers.RabbitMQ(t)
	q := brokers.RabbitMQQueue(t, conn, nil)
	tr := newRMQTracing(t)
	type hostile struct {
		headers amqp.Table
		joins   bool // the process span joins foreignTraceID
	}
	cases := map[string]hostile{
		"nested-table-traceparent": {headers: amqp.Table{
			"traceparent": amqp.Table{"traceparent": foreignTP, "deeper": amqp.Table{"n": int32(1)}},
		}},
		"array-traceparent": {headers: amqp.Table{
			"traceparent": []any{foreignTP, int32(2), []any{"x"}},
		}},
		"int-traceparent": {headers: amqp.Table{
			"traceparent": int64(42), "tracestate": int32(7), "baggage": float64(1.5),
		}},
		"invalid-traceparent": {headers: amqp.Table{"traceparent": "00-xyz-not-hex-99"}},
		"invalid-bytes-traceparent": {headers: amqp.Table{
			"traceparent": []byte{0x00, 0xff, 0xfe, '-', '-'},
		}},
		"junk-around-valid": {joins: true, headers: amqp.Table{
			"traceparent": foreignTP,
			"tracestate":  amqp.Table{"vendor": "abc"},
			"baggage":     []any{"k=v"},
			"x-nested":    amqp.Table{"a": amqp.Table{"b": []any{int8(1), int16(2), int64(3), true, nil}}},
			"x-int":       int32(-1),
		}},
		"huge-tracestate": {joins: true, headers: amqp.Table{
			"traceparent": foreignTP, "tracestate": strings.Repeat("k=v,", (10<<10)/4),
		}},
		"huge-baggage": {joins: true, headers: amqp.Table{
			"traceparent": foreignTP, "baggage": strings.Repeat("k=v,", (100<<10)/4),
		}},
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	for body, c := range cases {
		err := ch.PublishWithContext(context.Background(), "", q, false, false, amqp.Publishing{Body: []byte(body), Headers: c.headers})
		if err != nil {
			t.Fatalf("%s: publish: %v", body, err)
		}
	}

	got := rmqSubscribe(t, tr.Subscriber(rabbitmq.NewSubscriber(conn)), q, nil)
	seen := map[string][]handled{}
	for range cases {
		h := next(t, got, "hostile messages")
		seen[string(h.msg.Body)] = append(seen[string(h.msg.Body)], h)
	}
	// A panic or a failed settle would redeliver: give it time to show.
	select {
	case h := <-got:
		t.Fatalf("%q handled again (delivery %d)", h.msg.Body, h.msg.DeliveryCount)
	case <-time.After(300 * time.Millisecond):
	}
	tr.waitSpan("the last ack", func(sdktrace.ReadOnlySpan) bool {
		// An ack of several deliveries at once is one span that links
		// them and counts them.
		n := 0
		for _, s := range tr.rec.Ended() {
			if s.Name() == "ack "+q {
				n++
				if c, ok := attrOf(s, "messaging.batch.message_count"); ok {
					n += int(c.AsInt64()) - 1
				}
			}
		}
		return n == len(cases)
	})

	fresh := map[trace.TraceID]string{}
	for body, c := range cases {
		hs := seen[body]
		if len(hs) != 1 {
			t.Errorf("%s handled %d times, want once", body, len(hs))
			continue
		}
		p := tr.bySpanID(hs[0].span.SpanID())
		if p == nil {
			t.Errorf("%s: no process span", body)
			continue
		}
		joined := p.SpanContext().TraceID().String() == foreignTraceID
		switch {
		case c.joins && !joined:
			t.Errorf("%s: processed in trace %s, want %s", body, p.SpanContext().TraceID(), foreignTraceID)
		case c.joins && p.SpanContext().TraceState().Len() > propagation.MaxTraceStateMembers:
			t.Errorf("%s: tracestate kept %d members", body, p.SpanContext().TraceState().Len())
		case !c.joins && (joined || p.Parent().IsRemote()):
			t.Errorf("%s: an unreadable traceparent became a remote parent", body)
		case !c.joins:
			if other, dup := fresh[p.SpanContext().TraceID()]; dup {
				t.Errorf("%s and %s share trace %s: each should start its own", body, other, p.SpanContext().TraceID())
			}
			fresh[p.SpanContext().TraceID()] = body
		}
		if p.Status().Code != codes.Unset {
			t.Errorf("%s: process span status %v %q", body, p.Status().Code, p.Status().Description)
		}
	}
}

// TestRabbitMQClassicQueueRedeliveryEnds: a classic queue reports a
// requeued message's delivery count as 1, then 2 on every redelivery, so
// middleware waiting for the broker's count to reach 3 or 4 would have a
// poison message redelivered forever. The Subscriber marks the count
// saturated; Retry then runs the attempts left in place, and DeadLetter
// takes the message at its second delivery.
func TestRabbitMQClassicQueueRedeliveryEnds(t *testing.T) {
	cases := []struct {
		name      string
		chain     func(dlq middleware.Publisher) []middleware.HandlerMiddleware
		wantCalls int
	}{
		{"retry with broker redelivery", func(dlq middleware.Publisher) []middleware.HandlerMiddleware {
			return []middleware.HandlerMiddleware{
				middleware.DeadLetter(dlq, "dlq"),
				middleware.Retry(middleware.WithAttempts(3), middleware.WithBrokerRedelivery(),
					middleware.WithBackoff(func(int) time.Duration { return time.Millisecond })),
			}
		}, 3},
		{"dead letter after 4 deliveries", func(dlq middleware.Publisher) []middleware.HandlerMiddleware {
			return []middleware.HandlerMiddleware{middleware.DeadLetter(dlq, "dlq", middleware.WithMaxDeliveries(4))}
		}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := brokers.RabbitMQ(t)
			q := brokers.RabbitMQQueue(t, conn, nil)
			pub := rabbitmq.NewPublisher(conn, rabbitmq.WithConfirms(true))
			t.Cleanup(func() { _ = pub.Close() })
			if err := pub.Publish(context.Background(), q, middleware.NewMessage([]byte("poison"))); err != nil {
				t.Fatal(err)
			}
			mem := memory.New()
			var mu sync.Mutex
			var counts []int
			failing := middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
				mu.Lock()
				counts = append(counts, m.DeliveryCount)
				mu.Unlock()
				return errors.New("poison")
			})
			h := middleware.ChainHandler(failing, tc.chain(mem)...)
			rmqSubscribe(t, rabbitmq.NewSubscriber(conn), q, h.Handle)
			dead := rmqSubscribe(t, mem, "dlq", nil)

			got := next(t, dead, "DLQ (a saturated delivery count must end the redeliveries)")
			time.Sleep(200 * time.Millisecond) // a loop would keep calling
			mu.Lock()
			calls := append([]int(nil), counts...)
			mu.Unlock()
			if len(calls) != tc.wantCalls {
				t.Errorf("handler ran %d times (delivery counts %v), want %d", len(calls), calls, tc.wantCalls)
			}
			if want := strconv.Itoa(tc.wantCalls); got.msg.Headers[middleware.HeaderDLQAttempts] != want {
				t.Errorf("%s = %q, want %s", middleware.HeaderDLQAttempts, got.msg.Headers[middleware.HeaderDLQAttempts], want)
			}
			if calls[len(calls)-1] != 2 {
				t.Errorf("the last call saw delivery count %d, want 2 (the second delivery)", calls[len(calls)-1])
			}
		})
	}
}
