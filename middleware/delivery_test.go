package middleware_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	otelprop "go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/memory"
)

var errDeclined = errors.New("payment declined")

func TestRetryInPlaceThenSucceed(t *testing.T) {
	h := newHarness(t)
	if err := h.pub.Publish(context.Background(), "q", middleware.NewMessage(nil)); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	retry := middleware.Retry(middleware.WithAttempts(3), middleware.WithBackoff(func(int) time.Duration { return time.Millisecond }))
	h.consume("q", 1, retry(middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
		if calls.Add(1) < 3 {
			return errDeclined
		}
		if m.Attempts() != 3 {
			t.Errorf("Attempts() = %d on the third try", m.Attempts())
		}
		return nil
	})).Handle)
	if calls.Load() != 3 {
		t.Fatalf("handler called %d times, want 3", calls.Load())
	}
	p := h.one("process q")
	if len(h.spans("attempt 2")) != 1 || len(h.spans("attempt 3")) != 1 {
		t.Fatalf("attempt spans missing: %v", h.names())
	}
	if h.one("attempt 2").Parent().SpanID() != p.SpanContext().SpanID() {
		t.Fatal("attempt span is not a child of the process span")
	}
	if len(h.spans("nack q")) != 0 {
		t.Fatal("an in-place retry went back to the broker")
	}
}

func TestRetryWithBrokerRedelivery(t *testing.T) {
	h := newHarness(t)
	if err := h.pub.Publish(context.Background(), "q", middleware.NewMessage(nil)); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	retry := middleware.Retry(middleware.WithAttempts(3), middleware.WithBrokerRedelivery())
	h.consume("q", 1, retry(middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
		if calls.Add(1) < 3 {
			return errDeclined
		}
		return nil
	})).Handle)
	if n := len(h.spans("process q")); n != 3 {
		t.Fatalf("%d deliveries, want 3 (broker redelivery)", n)
	}
	if v, _ := attr(h.spans("process q")[0], "error.type"); v.AsString() != "_OTHER" {
		t.Fatalf("error.type of a retryable failure = %q", v.AsString())
	}
}

// TestDeadLetterKeepsTheTrace: producer -> failed attempts -> DLQ handler is
// one trace, and the DLQ lives on another broker.
func TestDeadLetterKeepsTheTrace(t *testing.T) {
	main, dlqBroker := memory.New(), memory.New()
	h := newHarnessOn(t, main)
	ctx, root := h.tp.Tracer("test").Start(context.Background(), "POST /orders")
	msg := middleware.NewMessage([]byte("order-13"))
	msg.Key = []byte("k")
	msg.Headers["x-tenant"] = "acme"
	if err := h.pub.Publish(ctx, "orders", msg); err != nil {
		t.Fatal(err)
	}
	root.End()
	dlqPub := middleware.NewTracing(middleware.WithTracerProvider(h.tp)).Publisher(dlqBroker)
	handler := middleware.ChainHandler(
		middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return errDeclined }),
		middleware.DeadLetter(dlqPub, "orders-dlq", middleware.WithErrorText()),
		middleware.Retry(middleware.WithAttempts(2), middleware.WithBackoff(func(int) time.Duration { return 0 })),
	)
	h.consume("orders", 1, handler.Handle)

	var dead *middleware.Message
	var deadTrace string
	dlqSub := middleware.NewTracing(middleware.WithTracerProvider(h.tp)).Subscriber(dlqBroker)
	dlqH := &harness{t: t, rec: h.rec, tp: h.tp, sub: dlqSub}
	dlqH.consume("orders-dlq", 1, func(ctx context.Context, m *middleware.Message) error {
		dead = m
		deadTrace = traceIDOf(ctx)
		return nil
	})
	if string(dead.Body) != "order-13" || string(dead.Key) != "k" || dead.Headers["x-tenant"] != "acme" {
		t.Fatalf("dead-lettered message lost data: %+v", dead)
	}
	if dead.Headers[middleware.HeaderDLQSource] != "orders" || dead.Headers[middleware.HeaderDLQAttempts] != "2" ||
		dead.Headers[middleware.HeaderDLQErrorType] != "_OTHER" || dead.Headers[middleware.HeaderDLQError] != errDeclined.Error() {
		t.Fatalf("dead-letter headers: %v", dead.Headers)
	}
	if dead.Headers["traceparent"] != msg.Headers["traceparent"] {
		t.Fatal("the trace context changed on the way to the DLQ")
	}
	if deadTrace != root.SpanContext().TraceID().String() {
		t.Fatal("the DLQ handler is not in the original trace")
	}
	if len(h.spans("ack orders")) != 1 {
		t.Fatal("the dead-lettered message was not settled on its source")
	}
}

func TestDeadLetterPublishFailureLosesNothing(t *testing.T) {
	b := memory.New()
	h := newHarnessOn(t, b)
	if err := h.pub.Publish(context.Background(), "q", middleware.NewMessage([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	broken := middleware.PublisherFunc(func(context.Context, string, ...*middleware.Message) error {
		return errors.New("dlq broker down")
	})
	var calls atomic.Int32
	h.consume("q", 1, middleware.DeadLetter(broken, "dlq")(middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
		if calls.Add(1) == 1 {
			return errDeclined
		}
		return nil
	})).Handle)
	if calls.Load() != 2 {
		t.Fatalf("handler called %d times: a failed dead-letter publish must leave the message for redelivery", calls.Load())
	}
	p := h.spans("process q")[0]
	if p.Status().Code != 1 || !strings.Contains(p.Status().Description, "dlq broker down") {
		t.Fatalf("first process span status %v", p.Status())
	}
}

func TestRelayAndDualPublish(t *testing.T) {
	oldB, newB := memory.New(), memory.New()
	h := newHarnessOn(t, oldB)
	tr := middleware.NewTracing(middleware.WithTracerProvider(h.tp))
	ctx, root := h.tp.Tracer("test").Start(context.Background(), "producer")
	msg := middleware.NewMessage([]byte("migrating"))
	msg.Key = []byte("key-1")
	msg.Headers["x-app"] = "a"
	if err := h.pub.Publish(ctx, "old", msg); err != nil {
		t.Fatal(err)
	}
	root.End()
	rctx, stop := context.WithCancel(context.Background())
	relayed := make(chan error, 1)
	go func() { relayed <- middleware.Relay(rctx, tr.Subscriber(oldB), "old", tr.Publisher(newB), "new") }()
	newH := &harness{t: t, rec: h.rec, tp: h.tp, sub: tr.Subscriber(newB)}
	var got *middleware.Message
	var gotTrace string
	newH.consume("new", 1, func(ctx context.Context, m *middleware.Message) error {
		got, gotTrace = m, traceIDOf(ctx)
		return nil
	})
	stop()
	if err := <-relayed; err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != "migrating" || string(got.Key) != "key-1" || got.Headers["x-app"] != "a" {
		t.Fatalf("relay lost data: %+v", got)
	}
	if gotTrace != root.SpanContext().TraceID().String() {
		t.Fatal("the relayed message left its trace")
	}
	if n := len(h.spans("send new")); n != 1 {
		t.Fatalf("%d relay send spans", n)
	}
	if ready, inFlight := oldB.Len("old"); ready+inFlight != 0 {
		t.Fatal("the source message was not settled after the relay")
	}

	dual := tr.Publisher(middleware.DualPublish(oldB, "a", newB, "b"))
	m2 := middleware.NewMessage([]byte("both"))
	if err := dual.Publish(context.Background(), "ignored", m2); err != nil {
		t.Fatal(err)
	}
	if r1, _ := oldB.Len("a"); r1 != 1 {
		t.Fatal("primary did not get the message")
	}
	if r2, _ := newB.Len("b"); r2 != 1 {
		t.Fatal("secondary did not get the message")
	}
}

func traceIDOf(ctx context.Context) string {
	return spanContextOf(ctx).TraceID().String()
}

func TestLogHandlerAddsTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(middleware.NewLogHandler(slog.NewJSONHandler(&buf, nil)))
	h := newHarness(t)
	ctx, span := h.tp.Tracer("test").Start(context.Background(), "work")
	log.InfoContext(ctx, "inside")
	span.End()
	log.Info("outside")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if !strings.Contains(lines[0], `"trace_id":"`+span.SpanContext().TraceID().String()+`"`) ||
		!strings.Contains(lines[0], `"span_id":"`+span.SpanContext().SpanID().String()+`"`) {
		t.Fatalf("record inside a span: %s", lines[0])
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Fatalf("record outside a span: %s", lines[1])
	}
}

// TestDualPublishPrimaryFails: a publish the primary refuses puts nothing on
// the secondary, so retrying it (a caller's loop, Relay redelivering) does
// not leave a copy there per attempt.
func TestDualPublishPrimaryFails(t *testing.T) {
	primary, secondary := memory.New(), memory.New()
	fails := 2
	flaky := middleware.PublisherFunc(func(ctx context.Context, dest string, msgs ...*middleware.Message) error {
		if fails > 0 {
			fails--
			return errors.New("primary down")
		}
		return primary.Publish(ctx, dest, msgs...)
	})
	dual := middleware.DualPublish(flaky, "a", secondary, "b")
	attempts := 0
	for {
		attempts++
		err := dual.Publish(context.Background(), "", middleware.NewMessage([]byte("order-1")))
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "primary down") || attempts > 5 {
			t.Fatalf("attempt %d: %v", attempts, err)
		}
	}
	if r, _ := primary.Len("a"); r != 1 {
		t.Errorf("primary has %d copies, want 1", r)
	}
	if r, _ := secondary.Len("b"); r != 1 {
		t.Errorf("secondary has %d copies after %d attempts, want 1", r, attempts)
	}
}

// TestSaturatedDeliveryCount: where the broker's count stops growing (or
// the broker gives none), Retry with broker redelivery runs the attempts
// left in place and DeadLetter with WithMaxDeliveries takes the message,
// where waiting for a count that never comes would redeliver it forever.
func TestSaturatedDeliveryCount(t *testing.T) {
	noWait := middleware.WithBackoff(func(int) time.Duration { return 0 })
	for _, tc := range []struct {
		name      string
		count     int
		saturated bool
		wantCalls int // by Retry, attempts 4
		wantDead  bool
	}{
		{"first delivery, counted", 1, false, 1, false},
		{"second delivery, counted", 2, false, 1, false},
		{"second delivery, saturated", 2, true, 3, true},
		{"no count at all", 0, false, 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := middleware.NewMessage(nil)
			msg.DeliveryCount = tc.count
			if tc.saturated {
				msg.SetDeliveryCountSaturated()
			}
			if got := msg.DeliveryCountSaturated(); got != (tc.saturated || tc.count == 0) {
				t.Fatalf("DeliveryCountSaturated() = %v", got)
			}
			var calls int
			var attempts []int
			failing := middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
				calls++
				attempts = append(attempts, m.Attempts())
				return errDeclined
			})
			var published []*middleware.Message
			dlq := middleware.PublisherFunc(func(_ context.Context, _ string, msgs ...*middleware.Message) error {
				published = append(published, msgs...)
				return nil
			})
			h := middleware.ChainHandler(failing, middleware.DeadLetter(dlq, "dlq"),
				middleware.Retry(middleware.WithAttempts(4), middleware.WithBrokerRedelivery(), noWait))
			err := h.Handle(context.Background(), msg)
			if calls != tc.wantCalls {
				t.Errorf("handler ran %d times (attempts %v), want %d", calls, attempts, tc.wantCalls)
			}
			if attempts[len(attempts)-1] != max(tc.count, 1)+tc.wantCalls-1 {
				t.Errorf("attempts %v", attempts)
			}
			if dead := len(published) == 1; dead != tc.wantDead {
				t.Fatalf("dead-lettered: %v (err %v), want %v", dead, err, tc.wantDead)
			}
			if tc.wantDead && (err != nil || published[0].Headers[middleware.HeaderDLQAttempts] != "4") {
				t.Errorf("err %v, dead-letter attempts %q, want nil and 4", err, published[0].Headers[middleware.HeaderDLQAttempts])
			}
			if !tc.wantDead && err == nil {
				t.Error("a failure left for the broker to redeliver returned nil (it would be acked)")
			}

			// DeadLetter alone, waiting for 5 deliveries.
			published = nil
			calls = 0
			err = middleware.DeadLetter(dlq, "dlq", middleware.WithMaxDeliveries(5))(failing).Handle(context.Background(), msg)
			if dead := len(published) == 1; dead != tc.wantDead || (err == nil) != tc.wantDead {
				t.Errorf("WithMaxDeliveries(5): dead-lettered %v, err %v; want dead-lettered %v", dead, err, tc.wantDead)
			}
		})
	}
}

// TestDualPublishOneCreationContext: with a traced Publisher on each side
// (as a migration wires them), both copies carry the creation context the
// primary's send made, even with no span in ctx: the secondary keeps it
// instead of starting a second trace.
func TestDualPublishOneCreationContext(t *testing.T) {
	primary, secondary := memory.New(), memory.New()
	h := newHarnessOn(t, primary)
	tr := middleware.NewTracing(middleware.WithTracerProvider(h.tp))
	dual := middleware.DualPublish(tr.Publisher(primary), "a", tr.Publisher(secondary), "b")
	if err := dual.Publish(context.Background(), "", middleware.NewMessage([]byte("order-1"))); err != nil {
		t.Fatal(err)
	}
	var got [2]string
	for i, b := range []*memory.Broker{primary, secondary} {
		dest := [...]string{"a", "b"}[i]
		side := &harness{t: t, rec: h.rec, tp: h.tp, sub: b}
		side.consume(dest, 1, func(_ context.Context, m *middleware.Message) error {
			got[i] = m.Headers["traceparent"]
			return nil
		})
	}
	if got[0] == "" || got[0] != got[1] {
		t.Fatalf("primary's copy traceparent %q, secondary's %q: want one creation context", got[0], got[1])
	}
}

// TestPublishDropsTraceStateWithoutTraceparent: a tracestate that came
// without a traceparent (or with an X-Ray header alone) belongs to no
// context the message keeps; it must not ride along with the traceparent
// the publish writes, where a consumer would read it as that context's
// vendor state (an "ot=th:" sampling threshold of another trace).
func TestPublishDropsTraceStateWithoutTraceparent(t *testing.T) {
	h := newHarness(t)
	orphan := middleware.NewMessage([]byte("tracestate alone"))
	orphan.Headers["tracestate"] = "ot=th:0,vendor=other"
	xray := middleware.NewMessage([]byte("x-ray and a tracestate"))
	xray.Headers[propagation.XRayKey] = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	xray.Headers["tracestate"] = "vendor=other"
	ctx, span := h.tp.Tracer("t").Start(context.Background(), "producer")
	if err := h.pub.Publish(ctx, "q", orphan, xray); err != nil {
		t.Fatal(err)
	}
	span.End()
	for _, m := range []*middleware.Message{orphan, xray} {
		if m.Headers["traceparent"] == "" {
			t.Errorf("%s: no traceparent written", m.Body)
		}
		if ts, ok := m.Headers["tracestate"]; ok {
			t.Errorf("%s: tracestate %q rides along with traceparent %q", m.Body, ts, m.Headers["traceparent"])
		}
	}
}

// singleHeader is a propagator other than W3C, as B3 or Jaeger are: the
// context in one header of its own, "x-ctx: {trace ID}:{span ID}".
type singleHeader struct{}

func (singleHeader) Inject(ctx context.Context, c otelprop.TextMapCarrier) {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		c.Set("x-ctx", sc.TraceID().String()+":"+sc.SpanID().String())
	}
}

func (singleHeader) Extract(ctx context.Context, c otelprop.TextMapCarrier) context.Context {
	tid, sid, _ := strings.Cut(c.Get("x-ctx"), ":")
	var scc trace.SpanContextConfig
	var err1, err2 error
	scc.TraceID, err1 = trace.TraceIDFromHex(tid)
	scc.SpanID, err2 = trace.SpanIDFromHex(sid)
	if err1 != nil || err2 != nil {
		return ctx
	}
	scc.Remote = true
	return trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(scc))
}

func (singleHeader) Fields() []string { return []string{"x-ctx"} }

// TestRepublishKeepsOtherPropagatorsContext: with a propagator of its own
// (WithPropagator), a message that already carries a creation context in
// that propagator's fields keeps it when published again, as it would in
// a traceparent: the send span links it, it is not overwritten.
func TestRepublishKeepsOtherPropagatorsContext(t *testing.T) {
	h := newHarness(t, middleware.WithPropagator(singleHeader{}))
	const own = "5759e988bd862e3fe1be46a994272793:53995c3f42cd8ad8"
	msg := middleware.NewMessage([]byte("relayed"))
	msg.Headers["x-ctx"] = own
	ctx, span := h.tp.Tracer("t").Start(context.Background(), "relay")
	if err := h.pub.Publish(ctx, "q", msg); err != nil {
		t.Fatal(err)
	}
	span.End()
	if got := msg.Headers["x-ctx"]; got != own {
		t.Errorf("x-ctx = %q, want the message's own %q", got, own)
	}
	if got := msg.CreationContext().SpanID().String(); got != "53995c3f42cd8ad8" {
		t.Errorf("creation context span %s, want the message's own", got)
	}

	// Without one, the message gets the send span's context.
	fresh := middleware.NewMessage([]byte("new"))
	ctx, span = h.tp.Tracer("t").Start(context.Background(), "producer")
	if err := h.pub.Publish(ctx, "q", fresh); err != nil {
		t.Fatal(err)
	}
	span.End()
	if got := fresh.Headers["x-ctx"]; !strings.HasPrefix(got, span.SpanContext().TraceID().String()+":") {
		t.Errorf("x-ctx of a new message = %q, want one in trace %s", got, span.SpanContext().TraceID())
	}
}

// TestRepublishWithXRayInjectKeepsAWSHeader: with X-Ray injection on, a
// relayed message whose creation context came as an AWS X-Ray header keeps
// that header as AWS wrote it (Lineage, Sampled=?), not a rewritten one.
func TestRepublishWithXRayInjectKeepsAWSHeader(t *testing.T) {
	h := newHarness(t)
	tr := middleware.NewTracing(middleware.WithTracerProvider(h.tp), middleware.WithPropagation(propagation.WithXRayInject(true)))
	pub := tr.Publisher(memory.New())
	const aws = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?;Lineage=1:a1b2c3d4:3"
	msg := middleware.NewMessage([]byte("from-aws"))
	msg.Headers[propagation.XRayKey] = aws
	if err := pub.Publish(context.Background(), "q", msg); err != nil {
		t.Fatal(err)
	}
	if got := msg.Headers[propagation.XRayKey]; got != aws {
		t.Errorf("AWSTraceHeader rewritten to %q, want %q", got, aws)
	}
	if got := msg.CreationContext().SpanID().String(); got != "53995c3f42cd8ad8" {
		t.Errorf("creation context span %s, want the X-Ray parent", got)
	}
}

// TestRepublishKeepsXRayAndDropsStaleTraceState: a message whose creation
// context came as X-Ray alone (an AWS producer) keeps it when published
// again (a relay, a dead-letter), written as the traceparent too so the
// W3C reader, which wins, agrees; and a message whose traceparent is
// invalid gets a new one without the old tracestate, which belonged to
// the context replaced.
func TestRepublishKeepsXRayAndDropsStaleTraceState(t *testing.T) {
	h := newHarness(t)
	tr := middleware.NewTracing(middleware.WithTracerProvider(h.tp))
	b := memory.New()
	pub := tr.Publisher(b)

	xray := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x5f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
		SpanID:  trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	fromAWS := middleware.NewMessage([]byte("from-aws"))
	fromAWS.Headers[propagation.XRayKey] = propagation.FormatXRay(xray)
	stale := middleware.NewMessage([]byte("stale"))
	stale.Headers["traceparent"] = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01" // upper case: invalid
	stale.Headers["tracestate"] = "ot=th:fffff,vendor=abc"
	if err := pub.Publish(context.Background(), "q", fromAWS, stale); err != nil {
		t.Fatal(err)
	}

	if got := fromAWS.CreationContext(); got.TraceID() != xray.TraceID() || got.SpanID() != xray.SpanID() {
		t.Errorf("X-Ray message's creation context %v, want the X-Ray one %v", got, xray)
	}
	if tp := fromAWS.Headers["traceparent"]; !strings.Contains(tp, xray.TraceID().String()) || !strings.Contains(tp, xray.SpanID().String()) {
		t.Errorf("X-Ray message's traceparent %q does not carry the X-Ray context", tp)
	}
	if ts, ok := stale.Headers["tracestate"]; ok {
		t.Errorf("the replaced context's tracestate %q rides on the new traceparent %q", ts, stale.Headers["traceparent"])
	}
	if sc := stale.CreationContext(); !sc.IsValid() || strings.Contains(stale.Headers["traceparent"], "4BF92F35") {
		t.Errorf("the invalid traceparent was not replaced: %q", stale.Headers["traceparent"])
	}
}

// TestDualPublishCarriesID: the secondary's copy carries the ID the message
// was published with, as Relay and DeadLetter carry theirs, not the one a
// primary that assigns IDs (SQS, Kafka) wrote back: a destination that
// deduplicates by ID (an SQS FIFO queue) then drops the copy a redelivered
// relay publishes again, and both sides can be correlated by it.
func TestDualPublishCarriesID(t *testing.T) {
	assigned := 0
	primary := middleware.PublisherFunc(func(_ context.Context, _ string, msgs ...*middleware.Message) error {
		for _, m := range msgs {
			assigned++
			m.ID = fmt.Sprintf("orders/0/%d", assigned) // as Kafka's Publisher does
		}
		return nil
	})
	var copies []*middleware.Message
	secondary := middleware.PublisherFunc(func(_ context.Context, _ string, msgs ...*middleware.Message) error {
		copies = append(copies, msgs...)
		return nil
	})
	dual := middleware.DualPublish(primary, "a", secondary, "b")
	stamp := time.Unix(1_700_000_000, 0)
	for range 2 { // a relay's redelivery publishes the same message again
		m := &middleware.Message{ID: "order-42", Key: []byte("k"), Body: []byte("b"), Time: stamp}
		if err := dual.Publish(context.Background(), "", m); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range copies {
		if c.ID != "order-42" || !c.Time.Equal(stamp) || string(c.Key) != "k" || string(c.Body) != "b" {
			t.Errorf("secondary's copy %+v, want ID order-42 and the message's time, key and body", c)
		}
	}
}
