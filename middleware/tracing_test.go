package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/memory"
)

// harness runs a traced publisher and subscriber over the in-memory broker.
type harness struct {
	t      *testing.T
	rec    *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	pub    middleware.Publisher
	sub    middleware.Subscriber
}

func newHarness(t *testing.T, opts ...middleware.Option) *harness {
	return newHarnessOn(t, memory.New(), opts...)
}

// broker is a transport that publishes and subscribes.
type broker interface {
	middleware.Publisher
	middleware.Subscriber
}

// polled is a pull-based transport, as SQS and Kafka are: each poll takes
// up to ten ready messages of a queue and reports them to the observers
// in one Received, with Destination.Push false, so each poll gets a
// receive span. A failed message goes back to the queue. (The memory
// broker pushes each delivery on its own.)
type polled struct {
	mu     sync.Mutex
	queues map[string][]*middleware.Message
	seq    int
}

func newPolled() *polled { return &polled{queues: map[string][]*middleware.Message{}} }

func (p *polled) Describe(name string) middleware.Destination {
	return middleware.Destination{System: propagation.SystemMemory, Name: name}
}

// Publish keeps a copy of each message, with an ID and a time.
func (p *polled) Publish(_ context.Context, name string, msgs ...*middleware.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		p.seq++
		if m.ID == "" {
			m.ID = fmt.Sprintf("polled-%d", p.seq)
		}
		if m.Time.IsZero() {
			m.Time = time.Now()
		}
		p.queues[name] = append(p.queues[name], p.copyOf(m, name, 0))
	}
	return nil
}

func (p *polled) copyOf(m *middleware.Message, name string, deliveries int) *middleware.Message {
	c := &middleware.Message{ID: m.ID, Key: m.Key, Body: m.Body, Headers: maps.Clone(m.Headers), Time: m.Time,
		Destination: name, DeliveryCount: deliveries}
	c.SetAttributes(propagation.MessageID(m.ID))
	return c
}

// Subscribe polls name until ctx ends; the messages of a poll are all
// handled, one at a time, even when ctx ends meanwhile.
func (p *polled) Subscribe(ctx context.Context, name string, h middleware.Handler) error {
	obs := middleware.ObserverFrom(ctx)
	d := p.Describe(name)
	for ctx.Err() == nil {
		start := time.Now()
		p.mu.Lock()
		q := p.queues[name]
		n := min(len(q), 10)
		msgs := make([]*middleware.Message, n)
		for i, m := range q[:n] {
			msgs[i] = p.copyOf(m, name, m.DeliveryCount+1)
		}
		p.queues[name] = q[n:]
		p.mu.Unlock()
		if n == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(time.Millisecond):
			}
			continue
		}
		hctx := context.WithoutCancel(obs.Received(ctx, d, start, msgs))
		for _, m := range msgs {
			op := propagation.OpAck
			if err := middleware.Call(hctx, h, m); err != nil {
				op = propagation.OpNack
				p.mu.Lock()
				p.queues[name] = append(p.queues[name], p.copyOf(m, name, m.DeliveryCount))
				p.mu.Unlock()
			}
			obs.Settled(hctx, d, op, time.Now(), []*middleware.Message{m}, nil)
		}
	}
	return nil
}

func newHarnessOn(t *testing.T, b broker, opts ...middleware.Option) *harness {
	t.Helper()
	h := &harness{t: t, rec: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	h.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.rec))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	tel := middleware.NewTelemetry(append([]middleware.Option{middleware.WithTracerProvider(h.tp), middleware.WithMeterProvider(mp)}, opts...)...)
	h.pub, h.sub = tel.Publisher(b), tel.Subscriber(b)
	return h
}

// consume runs handler until n messages were handled successfully, then
// stops the subscriber and returns once it has returned.
func (h *harness) consume(queue string, n int, handler middleware.HandlerFunc) {
	h.t.Helper()
	h.consumeIn(context.Background(), queue, n, handler)
}

// consumeIn is consume with parent as the Subscribe context.
func (h *harness) consumeIn(parent context.Context, queue string, n int, handler middleware.HandlerFunc) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(parent)
	var (
		mu sync.Mutex
		ok int
	)
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- h.sub.Subscribe(ctx, queue, middleware.HandlerFunc(func(ctx context.Context, m *middleware.Message) error {
			err := handler(ctx, m)
			if err == nil {
				mu.Lock()
				ok++
				if ok == n {
					close(done)
				}
				mu.Unlock()
			}
			return err
		}))
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		h.t.Fatalf("only %d of %d messages handled", ok, n)
	}
	cancel()
	if err := <-errc; err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) spans(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range h.rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func (h *harness) one(name string) sdktrace.ReadOnlySpan {
	h.t.Helper()
	s := h.spans(name)
	if len(s) != 1 {
		h.t.Fatalf("%d %q spans, want 1; have %v", len(s), name, h.names())
	}
	return s[0]
}

func (h *harness) names() []string {
	var n []string
	for _, s := range h.rec.Ended() {
		n = append(n, s.Name())
	}
	return n
}

func attr(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, a := range s.Attributes() {
		if string(a.Key) == key {
			return a.Value, true
		}
	}
	return attribute.Value{}, false
}

func hasLink(s sdktrace.ReadOnlySpan, sc trace.SpanContext) bool {
	for _, l := range s.Links() {
		if l.SpanContext.SpanID() == sc.SpanID() && l.SpanContext.TraceID() == sc.TraceID() {
			return true
		}
	}
	return false
}

// TestOneMessageIsOneConnectedTrace: on a pull-based transport a message
// has a send, a receive, a process and an ack span; on a push-based one
// (the memory broker, RabbitMQ) there is no receive span.
func TestOneMessageIsOneConnectedTrace(t *testing.T) {
	for _, pull := range []bool{false, true} {
		var b broker = memory.New()
		if pull {
			b = newPolled()
		}
		h := newHarnessOn(t, b)
		ctx, root := h.tp.Tracer("test").Start(context.Background(), "POST /orders")
		msg := middleware.NewMessage([]byte("secret body"))
		if err := h.pub.Publish(ctx, "orders", msg); err != nil {
			t.Fatal(err)
		}
		root.End()
		var handlerSpan trace.SpanContext
		h.consume("orders", 1, func(ctx context.Context, m *middleware.Message) error {
			handlerSpan = trace.SpanContextFromContext(ctx)
			return nil
		})

		send, process, ack := h.one("send orders"), h.one("process orders"), h.one("ack orders")
		if send.SpanKind() != trace.SpanKindProducer || process.SpanKind() != trace.SpanKindConsumer ||
			ack.SpanKind() != trace.SpanKindClient {
			t.Fatal("wrong span kinds")
		}
		if send.Parent().SpanID() != root.SpanContext().SpanID() {
			t.Fatal("send span is not a child of the caller's span")
		}
		if process.Parent().SpanID() != send.SpanContext().SpanID() || process.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Fatal("process span is not a child of the send span in the producer's trace")
		}
		if handlerSpan.SpanID() != process.SpanContext().SpanID() {
			t.Fatal("the handler's context does not carry the process span")
		}
		if pull {
			receive := h.one("receive orders")
			if receive.SpanKind() != trace.SpanKindClient {
				t.Fatal("the receive span is not CLIENT")
			}
			if !hasLink(receive, send.SpanContext()) {
				t.Fatal("the receive span does not link the message's creation context")
			}
			// ParentMessage, the default, does not also link the receive
			// span: ParentMessageLinkReceive does (TestProcessParentModes).
			if len(process.Links()) != 0 {
				t.Fatalf("the default process span links %v, want nothing", process.Links())
			}
			if v, _ := attr(receive, "messaging.batch.message_count"); v.AsInt64() != 1 {
				t.Errorf("receive batch count = %v", v)
			}
		} else {
			if n := len(h.spans("receive orders")); n != 0 {
				t.Fatalf("%d receive spans for a push delivery, want none", n)
			}
			if len(process.Links()) != 0 {
				t.Fatalf("the process span of a push delivery links %v", process.Links())
			}
		}
		if ack.Parent().SpanID() != process.SpanContext().SpanID() {
			t.Fatal("the ack of one message is not a child of its process span")
		}
		for _, kv := range []struct{ key, want string }{
			{"messaging.system", propagation.SystemMemory},
			{"messaging.operation.type", "process"},
			{"messaging.operation.name", "process"},
			{"messaging.destination.name", "orders"},
			{"messaging.message.id", msg.ID},
		} {
			if v, _ := attr(process, kv.key); v.AsString() != kv.want {
				t.Errorf("process %s = %q, want %q", kv.key, v.AsString(), kv.want)
			}
		}
		for _, s := range h.rec.Ended() {
			for _, a := range s.Attributes() {
				if a.Value.Emit() == "secret body" {
					t.Fatalf("the body was recorded on %s as %s", s.Name(), a.Key)
				}
			}
		}
	}
}

func TestBatchPublishCreatesOneSpanPerMessage(t *testing.T) {
	h := newHarness(t)
	msgs := []*middleware.Message{middleware.NewMessage([]byte("a")), middleware.NewMessage([]byte("b")), middleware.NewMessage([]byte("c"))}
	if err := h.pub.Publish(context.Background(), "q", msgs...); err != nil {
		t.Fatal(err)
	}
	send := h.one("send q")
	if v, _ := attr(send, "messaging.batch.message_count"); v.AsInt64() != 3 {
		t.Fatalf("send batch count = %v", v)
	}
	creates := h.spans("create q")
	if len(creates) != 3 {
		t.Fatalf("%d create spans, want 3", len(creates))
	}
	for _, c := range creates {
		if c.SpanKind() != trace.SpanKindProducer || c.Parent().SpanID() != send.SpanContext().SpanID() {
			t.Fatalf("create span of kind %v with parent %v, want PRODUCER under the send span", c.SpanKind(), c.Parent().SpanID())
		}
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		seen[m.Headers["traceparent"]] = true
	}
	if len(seen) != 3 {
		t.Fatal("messages of a batch must carry their own create span's context")
	}
	h.consume("q", 3, func(context.Context, *middleware.Message) error { return nil })
	parents := map[trace.SpanID]bool{}
	for _, c := range creates {
		parents[c.SpanContext().SpanID()] = true
	}
	for _, p := range h.spans("process q") {
		if !parents[p.Parent().SpanID()] {
			t.Fatal("a process span is not a child of its message's create span")
		}
	}

	off := newHarness(t, middleware.WithCreateSpans(false))
	_ = off.pub.Publish(context.Background(), "q", middleware.NewMessage(nil), middleware.NewMessage(nil))
	if n := len(off.spans("create q")); n != 0 {
		t.Fatalf("WithCreateSpans(false) made %d create spans", n)
	}
}

// TestBatchFromTenTraces: one poll returns ten messages from ten traces; each
// gets its own process span in its own producer's trace.
func TestBatchFromTenTraces(t *testing.T) {
	h := newHarnessOn(t, newPolled())
	var roots []trace.TraceID
	for range 10 {
		ctx, root := h.tp.Tracer("test").Start(context.Background(), "producer")
		if err := h.pub.Publish(ctx, "q", middleware.NewMessage(nil)); err != nil {
			t.Fatal(err)
		}
		root.End()
		roots = append(roots, root.SpanContext().TraceID())
	}
	h.consume("q", 10, func(context.Context, *middleware.Message) error { return nil })
	receive := h.one("receive q")
	if len(receive.Links()) != 10 {
		t.Fatalf("receive links %d messages, want 10", len(receive.Links()))
	}
	if v, _ := attr(receive, "messaging.batch.message_count"); v.AsInt64() != 10 {
		t.Fatalf("batch count = %v", v)
	}
	got := map[trace.TraceID]bool{}
	for _, p := range h.spans("process q") {
		got[p.SpanContext().TraceID()] = true
	}
	for _, id := range roots {
		if !got[id] {
			t.Fatalf("no process span in producer trace %s", id)
		}
	}
}

// throughOne publishes a message to "q" and consumes it with the process
// parent mode, from the memory broker pushing it or, with pull, polled,
// under an "app" span in the Subscribe context: a span there is never the
// process span's receive span. It returns the send and process spans.
func throughOne(t *testing.T, pull bool, mode middleware.ProcessParent) (h *harness, send, process sdktrace.ReadOnlySpan) {
	t.Helper()
	var b broker = memory.New()
	if pull {
		b = newPolled()
	}
	h = newHarnessOn(t, b, middleware.WithProcessParent(mode))
	if err := h.pub.Publish(context.Background(), "q", middleware.NewMessage(nil)); err != nil {
		t.Fatal(err)
	}
	sctx, app := h.tp.Tracer("test").Start(context.Background(), "app")
	h.consumeIn(sctx, "q", 1, func(context.Context, *middleware.Message) error { return nil })
	app.End()
	return h, h.one("send q"), h.one("process q")
}

// TestParentMessageLinkReceive: the process span is the message's, as
// under ParentMessage, and links the receive span alone; a push delivery
// has no receive span to link.
func TestParentMessageLinkReceive(t *testing.T) {
	for _, pull := range []bool{true, false} {
		h, send, process := throughOne(t, pull, middleware.ParentMessageLinkReceive)
		if process.Parent().SpanID() != send.SpanContext().SpanID() || process.SpanContext().TraceID() != send.SpanContext().TraceID() {
			t.Errorf("pull %v: process span parent %v, want the send span", pull, process.Parent())
		}
		if !pull {
			if len(process.Links()) != 0 {
				t.Errorf("push: process span links %v, want nothing (no receive span)", process.Links())
			}
			continue
		}
		receive := h.one("receive q")
		if len(process.Links()) != 1 || !hasLink(process, receive.SpanContext()) {
			t.Errorf("pull: process span links %v, want the receive span %v alone", process.Links(), receive.SpanContext().SpanID())
		}
	}
}

func TestProcessParentModes(t *testing.T) {
	for _, pull := range []bool{true, false} {
		for _, mode := range []middleware.ProcessParent{middleware.ParentReceive, middleware.ParentNone} {
			h, send, process := throughOne(t, pull, mode)
			if !hasLink(process, send.SpanContext()) {
				t.Errorf("mode %d, pull %v: process span does not link the message", mode, pull)
			}
			if !pull {
				// Push: no receive span, so in both modes a new root.
				if n := len(h.spans("receive q")); n != 0 {
					t.Errorf("mode %d: %d receive spans for a push delivery", mode, n)
				}
				if process.Parent().IsValid() || len(process.Links()) != 1 {
					t.Errorf("mode %d, push: process span has parent %v and links %v, want a root linking the message",
						mode, process.Parent(), process.Links())
				}
				continue
			}
			receive := h.one("receive q")
			switch mode {
			case middleware.ParentReceive:
				if process.Parent().SpanID() != receive.SpanContext().SpanID() {
					t.Error("ParentReceive: process span is not a child of the receive span")
				}
			case middleware.ParentNone:
				if process.Parent().IsValid() {
					t.Error("ParentNone: process span has a parent")
				}
				if !hasLink(process, receive.SpanContext()) {
					t.Error("ParentNone: process span does not link the receive span")
				}
			}
		}
	}
}

func TestExistingCreationContextIsKept(t *testing.T) {
	h := newHarness(t)
	const original = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	msg := middleware.NewMessage(nil)
	msg.Headers["traceparent"] = original
	if err := h.pub.Publish(context.Background(), "q", msg); err != nil {
		t.Fatal(err)
	}
	if msg.Headers["traceparent"] != original {
		t.Fatalf("publish overwrote the creation context: %s", msg.Headers["traceparent"])
	}
	send := h.one("send q")
	if len(send.Links()) != 1 || send.Links()[0].SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatal("send span does not link the message's own creation context")
	}
}

func TestHandlerErrorAndPanicAreRecordedAndRedelivered(t *testing.T) {
	h := newHarness(t)
	if err := h.pub.Publish(context.Background(), "q", middleware.NewMessage(nil)); err != nil {
		t.Fatal(err)
	}
	attempt := 0
	h.consume("q", 1, func(_ context.Context, m *middleware.Message) error {
		attempt++
		if m.DeliveryCount != attempt {
			t.Errorf("delivery count %d on attempt %d", m.DeliveryCount, attempt)
		}
		switch attempt {
		case 1:
			return errors.New("payment declined")
		case 2:
			panic("boom")
		}
		return nil
	})
	procs := h.spans("process q")
	if len(procs) != 3 {
		t.Fatalf("%d process spans, want 3", len(procs))
	}
	wantType := []string{"_OTHER", "panic", ""}
	for i, p := range procs {
		v, _ := attr(p, "error.type")
		if v.AsString() != wantType[i] {
			t.Errorf("attempt %d error.type = %q, want %q", i+1, v.AsString(), wantType[i])
		}
		if (wantType[i] != "") != (p.Status().Code == 1) {
			t.Errorf("attempt %d status %v", i+1, p.Status())
		}
		if dc, _ := attr(p, string(middleware.DeliveryCountKey)); dc.AsInt64() != int64(i+1) {
			t.Errorf("attempt %d delivery count attribute %v", i+1, dc)
		}
		if p.SpanContext().TraceID() != procs[0].SpanContext().TraceID() {
			t.Error("retries left the message's trace")
		}
	}
	if n := len(h.spans("nack q")); n != 2 {
		t.Fatalf("%d nack spans, want 2", n)
	}
}

func TestHeaderAllowListRedactorAndInboundBaggage(t *testing.T) {
	h := newHarness(t,
		middleware.WithHeaderAllowList("tenant", "token"),
		middleware.WithRedactor(func(kv attribute.KeyValue) attribute.KeyValue {
			if kv.Key == "messaging.header.token" {
				return attribute.String(string(kv.Key), "REDACTED")
			}
			return kv
		}),
		middleware.WithInboundBaggage("region"))
	m1, _ := baggage.NewMember("region", "eu")
	m2, _ := baggage.NewMember("user", "alice")
	bg, _ := baggage.New(m1, m2)
	msg := middleware.NewMessage(nil)
	msg.Headers["tenant"], msg.Headers["token"], msg.Headers["password"] = "acme", "s3cr3t", "hunter2"
	if err := h.pub.Publish(baggage.ContextWithBaggage(context.Background(), bg), "q", msg); err != nil {
		t.Fatal(err)
	}
	var got baggage.Baggage
	h.consume("q", 1, func(ctx context.Context, _ *middleware.Message) error {
		got = baggage.FromContext(ctx)
		return nil
	})
	p := h.one("process q")
	if v, _ := attr(p, "messaging.header.tenant"); v.AsString() != "acme" {
		t.Error("allow-listed header not recorded")
	}
	if v, _ := attr(p, "messaging.header.token"); v.AsString() != "REDACTED" {
		t.Errorf("redactor not applied: %q", v.AsString())
	}
	if _, ok := attr(p, "messaging.header.password"); ok {
		t.Error("a header outside the allow-list was recorded")
	}
	if got.Member("region").Value() != "eu" || got.Member("user").Value() != "" {
		t.Errorf("inbound baggage filter: got %s", got)
	}
}

func TestInvalidTraceparentStartsNewTraceWithEvent(t *testing.T) {
	b := memory.New()
	h := newHarnessOn(t, b)
	msg := middleware.NewMessage(nil)
	msg.Headers["traceparent"] = "00-not-a-trace-01"
	// Published by a foreign producer, without otelmq.
	if err := b.Publish(context.Background(), "q", msg); err != nil {
		t.Fatal(err)
	}
	h.consume("q", 1, func(context.Context, *middleware.Message) error { return nil })
	p := h.one("process q")
	if p.Parent().IsRemote() {
		t.Fatal("an invalid traceparent produced a remote parent")
	}
	found := false
	for _, e := range p.Events() {
		if e.Name == propagation.DroppedEventName {
			found = true
		}
	}
	if !found {
		t.Fatal("no event says why the trace is new")
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t)
	future := middleware.NewMessage(nil)
	future.Time = time.Now().Add(time.Hour) // producer clock ahead of ours
	if err := h.pub.Publish(context.Background(), "q", middleware.NewMessage(nil), future); err != nil {
		t.Fatal(err)
	}
	h.consume("q", 2, func(context.Context, *middleware.Message) error { return nil })
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = m.Data
		}
	}
	sum := func(name string) int64 {
		var n int64
		for _, dp := range got[name].(metricdata.Sum[int64]).DataPoints {
			n += dp.Value
		}
		return n
	}
	if sum(middleware.MetricSentMessages) != 2 || sum(middleware.MetricConsumedMessages) != 2 {
		t.Fatalf("sent %d consumed %d, want 2 and 2", sum(middleware.MetricSentMessages), sum(middleware.MetricConsumedMessages))
	}
	if n := got[middleware.MetricProcessDuration].(metricdata.Histogram[float64]).DataPoints[0].Count; n != 2 {
		t.Fatalf("process duration count %d", n)
	}
	ops := map[string]uint64{}
	for _, dp := range got[middleware.MetricOperationDuration].(metricdata.Histogram[float64]).DataPoints {
		v, _ := dp.Attributes.Value("messaging.operation.name")
		ops[v.AsString()] += dp.Count
	}
	// The memory broker pushes: its deliveries are no receive operation.
	if ops["send"] != 1 || ops["ack"] != 2 || ops["receive"] != 0 {
		t.Fatalf("operation durations by name: %v", ops)
	}
	qt := got[middleware.MetricQueueTime].(metricdata.Histogram[float64]).DataPoints[0]
	lo, _ := qt.Min.Value()
	hi, _ := qt.Max.Value()
	if qt.Count != 2 || lo != 0 || hi > 60 {
		t.Fatalf("queue time: count %d min %v max %v (a future timestamp must clamp to 0)", qt.Count, lo, hi)
	}
}

func spanContextOf(ctx context.Context) trace.SpanContext { return trace.SpanContextFromContext(ctx) }

// TestNoopProviderStillPropagates: with the no-op provider otelmq records
// nothing but must still carry the caller's context to the handler.
func TestNoopProviderStillPropagates(t *testing.T) {
	b := memory.New()
	tr := middleware.NewTracing(middleware.WithTracerProvider(noop.NewTracerProvider()))
	pub, sub := tr.Publisher(b), tr.Subscriber(b)
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{7}, SpanID: trace.SpanID{8}, TraceFlags: trace.FlagsSampled})
	m, _ := baggage.NewMember("tenant", "acme")
	bg, _ := baggage.New(m)
	ctx := baggage.ContextWithBaggage(trace.ContextWithSpanContext(context.Background(), parent), bg)
	if err := pub.Publish(ctx, "q", middleware.NewMessage(nil)); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, sub: sub}
	var got trace.SpanContext
	var gotBag baggage.Baggage
	h.consume("q", 1, func(ctx context.Context, _ *middleware.Message) error {
		got, gotBag = trace.SpanContextFromContext(ctx), baggage.FromContext(ctx)
		return nil
	})
	if got.TraceID() != parent.TraceID() || got.SpanID() != parent.SpanID() || !got.IsRemote() {
		t.Fatalf("handler context %v, want the producer's %v", got, parent)
	}
	if gotBag.Member("tenant").Value() != "acme" {
		t.Fatalf("baggage %q", gotBag)
	}
}

func TestXRayInjectThroughMiddleware(t *testing.T) {
	h := newHarness(t, middleware.WithPropagation(propagation.WithXRayInject(true)))
	ctx, root := h.tp.Tracer("test").Start(context.Background(), "root")
	msg := middleware.NewMessage(nil)
	if err := h.pub.Publish(ctx, "q", msg); err != nil {
		t.Fatal(err)
	}
	root.End()
	sc, ok := propagation.ParseXRay(msg.Headers[propagation.XRayKey])
	if !ok || sc.TraceID() != root.SpanContext().TraceID() {
		t.Fatalf("X-Ray header %q does not carry the trace", msg.Headers[propagation.XRayKey])
	}
}

// TestSpanShapesFollowDestination: span names and leading attributes are
// cached per destination and operation; a destination of the same name with
// other attributes (another server) gets its own.
func TestSpanShapesFollowDestination(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp))
	hosts := []string{"a", "b", "a", "b"}
	for _, host := range hosts {
		d := middleware.Destination{System: "x", Name: "q", Attributes: []attribute.KeyValue{propagation.ServerAddress(host)}}
		_, s := tr.StartSend(context.Background(), d, 1)
		s.End()
		_, s = tr.StartProcess(context.Background(), d, propagation.MapCarrier{})
		s.End()
		_, s = tr.StartSettle(context.Background(), d, propagation.OpAck, nil)
		s.End()
	}
	ended := rec.Ended()
	if len(ended) != 3*len(hosts) {
		t.Fatalf("%d spans, want %d", len(ended), 3*len(hosts))
	}
	for i, s := range ended {
		want := hosts[i/3]
		if v, _ := attr(s, "server.address"); v.AsString() != want {
			t.Errorf("span %d %q: server.address %q, want %q", i, s.Name(), v.AsString(), want)
		}
		if v, _ := attr(s, "messaging.destination.name"); v.AsString() != "q" || !strings.HasSuffix(s.Name(), " q") {
			t.Errorf("span %d %q: destination %q", i, s.Name(), v.AsString())
		}
	}
}

type declinedError struct{ code string }

func (e *declinedError) Error() string     { return "declined: " + e.code }
func (e *declinedError) ErrorType() string { return "payment_declined" }

type brokerError struct{}

func (brokerError) Error() string { return "connection reset" }

// apiError and operationError are shaped as the AWS SDK's: every failed
// call is an operation error wrapping an API error that has a code.
type apiError struct{ code string }

func (e *apiError) Error() string     { return "api error " + e.code }
func (e *apiError) ErrorCode() string { return e.code }

type operationError struct{ err error }

func (e *operationError) Error() string { return "operation error: " + e.err.Error() }
func (e *operationError) Unwrap() error { return e.err }

// TestErrorTypeOfWrappedErrors: a typed error keeps its error.type when it
// is wrapped with context or joined with others, as every transport does
// ("rabbitmq: publish to q: 1 message(s) failed: ..."); only errors whose
// whole tree is plain text are "_OTHER".
func TestErrorTypeOfWrappedErrors(t *testing.T) {
	declined := &declinedError{code: "51"}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{declined, "payment_declined"},
		{fmt.Errorf("order 42: %w", declined), "payment_declined"},
		{fmt.Errorf("publish: %w", errors.Join(errors.New("first"), fmt.Errorf("second: %w", brokerError{}))), "middleware_test.brokerError"},
		{fmt.Errorf("a: %w, b: %w", errors.New("x"), declined), "payment_declined"},
		{fmt.Errorf("wrapped: %w", errors.New("plain")), "_OTHER"},
		{errors.Join(errors.New("a"), errors.New("b")), "_OTHER"},
		{fmt.Errorf("late: %w", context.DeadlineExceeded), "timeout"},
		{fmt.Errorf("handler: %w", &middleware.PanicError{Value: "boom"}), "panic"},
		// A code deeper in the tree names the error better than the Go
		// type around it, which every AWS failure shares.
		{fmt.Errorf("receive: %w", &operationError{&apiError{"ThrottlingException"}}), "ThrottlingException"},
		{&operationError{errors.New("no code")}, "*middleware_test.operationError"},
		// A typed nil pointer in the tree names nothing and must not be
		// called (its methods would dereference it).
		{fmt.Errorf("x: %w", (*apiError)(nil)), "_OTHER"},
		{errors.Join(errors.New("a"), (*apiError)(nil), brokerError{}), "middleware_test.brokerError"},
		// The Permanent mark says nothing about what failed: a marked
		// error names what it would name unmarked, and a marked plain
		// one does not hide a typed error beside it (a batch publish
		// with a nil message, a permanent failure whose dead-lettering
		// failed).
		{middleware.Permanent(errors.New("nil message")), "_OTHER"},
		{middleware.Permanent(brokerError{}), "middleware_test.brokerError"},
		{middleware.Permanent(&operationError{errors.New("no code")}), "*middleware_test.operationError"},
		{errors.Join(fmt.Errorf("message 0: %w", middleware.Permanent(errors.New("nil message"))),
			fmt.Errorf("message 1: %w", &apiError{"ThrottlingException"})), "ThrottlingException"},
		{errors.Join(middleware.Permanent(errors.New("malformed")), brokerError{}), "middleware_test.brokerError"},
		{errors.Join(middleware.Permanent(&operationError{errors.New("no code")}), &apiError{"ThrottlingException"}), "ThrottlingException"},
	} {
		if got := middleware.ErrorType(tc.err); got != tc.want {
			t.Errorf("ErrorType(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
