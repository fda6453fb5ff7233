package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// Env is one transport connected to a fresh, empty destination.
type Env struct {
	// Publisher and Subscriber are the raw transport, without middleware.
	Publisher  middleware.Publisher
	Subscriber middleware.Subscriber
	// Destination is what Publish takes and Source what Subscribe takes
	// (a routing key and its queue, a queue URL twice, a topic twice).
	Destination, Source string
	// NewSubscriber, when set, returns another Subscriber on the same
	// source, for tests that stop one consumer and start the next (Kafka
	// needs a new client in the same group).
	NewSubscriber func(t *testing.T) middleware.Subscriber
}

// Harness describes a transport to the suite.
type Harness struct {
	// System is the expected messaging.system.
	System string
	// Setup returns a fresh Env; it registers its own cleanup with t.
	Setup func(t *testing.T) Env
	// KeepsKey: Message.Key survives the round trip.
	KeepsKey bool
	// CountsDeliveries: DeliveryCount grows on redelivery.
	CountsDeliveries bool
	// AtLeastOnce: the broker may deliver a message more than once even
	// without a failure (the SQS emulator can, when the SDK retries), so
	// counts are checked as "at least".
	AtLeastOnce bool
	// OrderedByKey: messages with the same key are handled in publish order.
	OrderedByKey bool
	// MaxHeaderBytes caps the hostile header sizes sent (0: no cap).
	MaxHeaderBytes int
	// Timeout bounds how long the suite waits for deliveries (default 20s).
	Timeout time.Duration
}

// RunConformance runs the suite against h. Every transport runs the same
// tests: what passes on one broker passes on all.
func RunConformance(t *testing.T, h Harness) {
	h.Timeout = h.timeout()
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"RoundTrip", testRoundTrip},
		{"BareMessage", testBareMessage},
		{"ConnectedTrace", testConnectedTrace},
		{"BatchPublish", testBatchPublish},
		{"TenTraces", testTenTraces},
		{"ErrorRedelivers", testErrorRedelivers},
		{"PanicRedelivers", testPanicRedelivers},
		{"ForeignW3CProducer", testForeignProducer},
		{"HostileHeaders", testHostileHeaders},
		{"GracefulShutdown", testGracefulShutdown},
		{"Metrics", testMetrics},
		{"KeyOrder", testKeyOrder},
		{"SampledOutTrace", testSampledOutTrace},
		{"NoSettleSpans", testNoSettleSpans},
		{"NoMessageDataRecorded", testNoMessageDataRecorded},
		{"RedactorSeesEveryAttribute", testRedactorSeesEveryAttribute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

func (h Harness) timeout() time.Duration {
	if h.Timeout == 0 {
		return 20 * time.Second
	}
	return h.Timeout
}

// rig is an Env with tracing middleware over an in-memory span recorder.
type rig struct {
	Env
	t      *testing.T
	h      Harness
	rec    *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	tel    *middleware.Telemetry
	pub    middleware.Publisher
	sub    middleware.Subscriber
}

func newRig(t *testing.T, h Harness, opts ...middleware.Option) *rig {
	t.Helper()
	env := h.Setup(t)
	r := &rig{Env: env, t: t, h: h, rec: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	r.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(r.rec))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.reader))
	r.tel = middleware.NewTelemetry(append([]middleware.Option{middleware.WithTracerProvider(r.tp), middleware.WithMeterProvider(mp)}, opts...)...)
	r.pub, r.sub = r.tel.Publisher(env.Publisher), r.tel.Subscriber(env.Subscriber)
	return r
}

// delivery is what a handler saw.
type delivery struct {
	msg  *middleware.Message
	span trace.SpanContext
}

// consumer runs a subscriber in the background and records deliveries.
type consumer struct {
	t       *testing.T
	cancel  context.CancelFunc
	errc    chan error
	mu      sync.Mutex
	seen    []delivery
	ok      map[string]int // successful handlings by body
	changed chan struct{}
}

// consume starts sub with handler (nil: always succeed).
func (r *rig) consume(sub middleware.Subscriber, handler func(context.Context, *middleware.Message) error) *consumer {
	c := &consumer{t: r.t, errc: make(chan error, 1), ok: map[string]int{}, changed: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() {
		c.errc <- sub.Subscribe(ctx, r.Source, middleware.HandlerFunc(func(ctx context.Context, m *middleware.Message) error {
			var err error
			if handler != nil {
				err = handler(ctx, m)
			}
			c.mu.Lock()
			c.seen = append(c.seen, delivery{msg: m, span: trace.SpanContextFromContext(ctx)})
			if err == nil {
				c.ok[string(m.Body)]++
			}
			c.mu.Unlock()
			select {
			case c.changed <- struct{}{}:
			default:
			}
			return err
		}))
	}()
	r.t.Cleanup(c.stopQuietly)
	return c
}

// waitFor waits until every body in bodies was handled successfully.
func (c *consumer) waitFor(timeout time.Duration, bodies ...string) {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		missing := 0
		for _, b := range bodies {
			if c.ok[b] == 0 {
				missing++
			}
		}
		c.mu.Unlock()
		if missing == 0 {
			return
		}
		select {
		case <-c.changed:
		case err := <-c.errc:
			c.errc <- err
			c.t.Fatalf("subscriber returned early: %v", err)
		case <-deadline:
			c.t.Fatalf("%d of %d messages not handled within %s", missing, len(bodies), timeout)
		}
	}
}

// stop cancels the subscriber and requires it to return nil promptly.
func (c *consumer) stop() {
	c.t.Helper()
	c.cancel()
	select {
	case err := <-c.errc:
		if err != nil {
			c.t.Fatalf("Subscribe returned %v after cancel, want nil", err)
		}
		c.errc <- nil
	case <-time.After(30 * time.Second):
		c.t.Fatal("Subscribe did not return within 30s of cancel")
	}
}

func (c *consumer) stopQuietly() {
	c.cancel()
	select {
	case err := <-c.errc:
		c.errc <- err
	case <-time.After(30 * time.Second):
	}
}

func (c *consumer) deliveries() []delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.seen)
}

func (c *consumer) byBody(body string) []delivery {
	var out []delivery
	for _, d := range c.deliveries() {
		if string(d.msg.Body) == body {
			out = append(out, d)
		}
	}
	return out
}

func (r *rig) spans(prefix string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range r.rec.Ended() {
		if strings.HasPrefix(s.Name(), prefix) {
			out = append(out, s)
		}
	}
	return out
}

func (r *rig) span(id trace.SpanID) sdktrace.ReadOnlySpan {
	for _, s := range r.rec.Ended() {
		if s.SpanContext().SpanID() == id {
			return s
		}
	}
	return nil
}

// waitSpans waits until at least n spans named with prefix have ended: a
// settle span ends after the handler returned.
func (r *rig) waitSpans(prefix string, n int) []sdktrace.ReadOnlySpan {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := r.spans(prefix)
		if len(s) >= n || time.Now().After(deadline) {
			if len(s) < n {
				r.t.Fatalf("%d %q spans ended, want %d", len(s), prefix, n)
			}
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitSettled waits until a settle span without an error has ended: the
// settle span of a successful delivery ends after its handler returned.
func (r *rig) waitSettled() {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.ContainsFunc(r.rec.Ended(), func(s sdktrace.ReadOnlySpan) bool {
		v, _ := attrOf(s, "messaging.operation.type")
		return v.AsString() == "settle" && s.Status().Code != 1
	}) {
		if time.Now().After(deadline) {
			r.t.Fatal("no settle span ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eachMetricAttributes collects the metrics and calls f with each data
// point's attributes, named "metric <name>".
func (r *rig) eachMetricAttributes(f func(where string, kvs []attribute.KeyValue)) {
	r.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		r.t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					f("metric "+m.Name, dp.Attributes.ToSlice())
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					f("metric "+m.Name, dp.Attributes.ToSlice())
				}
			}
		}
	}
}

func attrOf(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, a := range s.Attributes() {
		if string(a.Key) == key {
			return a.Value, true
		}
	}
	return attribute.Value{}, false
}

func unique(t *testing.T, prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
}

// testBareMessage: a message published without otelmq and without headers
// arrives with nil Headers (the documented contract: no map is made for a
// message that carries none) and starts a trace of its own.
func testBareMessage(t *testing.T, h Harness) {
	r := newRig(t, h)
	if err := r.Publisher.Publish(context.Background(), r.Destination, &middleware.Message{Body: []byte("bare")}); err != nil {
		t.Fatal(err)
	}
	c := r.consume(r.sub, nil)
	c.waitFor(h.Timeout, "bare")
	c.stop()
	got := c.byBody("bare")[0]
	if got.msg.Headers != nil {
		t.Errorf("Headers = %#v, want nil for a message that carries none", got.msg.Headers)
	}
	if !got.span.IsValid() {
		t.Fatal("the handler ran without a process span")
	}
	if s := r.span(got.span.SpanID()); s == nil {
		t.Error("the process span did not end")
	} else if s.Parent().IsRemote() {
		t.Errorf("the process span has a remote parent %v; the message carried no context", s.Parent())
	}
}

func testRoundTrip(t *testing.T, h Harness) {
	r := newRig(t, h)
	msg := middleware.NewMessage([]byte("round-trip"))
	msg.Key = []byte("customer-7")
	msg.Headers["x-app"] = "orders"
	before := time.Now().Add(-2 * time.Second) // broker clocks round to seconds
	if err := r.pub.Publish(context.Background(), r.Destination, msg); err != nil {
		t.Fatal(err)
	}
	c := r.consume(r.sub, nil)
	c.waitFor(h.Timeout, "round-trip")
	c.stop()
	got := c.byBody("round-trip")[0].msg
	if got.Headers["x-app"] != "orders" {
		t.Errorf("header x-app = %q", got.Headers["x-app"])
	}
	if got.Headers["traceparent"] == "" {
		t.Error("no traceparent on the consumed message")
	}
	if h.KeepsKey && string(got.Key) != "customer-7" {
		t.Errorf("key = %q", got.Key)
	}
	if got.ID == "" {
		t.Error("consumed message has no ID")
	}
	if got.Time.Before(before) || got.Time.After(time.Now().Add(2*time.Second)) {
		t.Errorf("message time %v is not the publish time", got.Time)
	}
	if got.DeliveryCount < 1 {
		t.Errorf("delivery count %d", got.DeliveryCount)
	}
	if got.Destination == "" {
		t.Error("no destination on the consumed message")
	}
}

// tracedRoundTrip publishes a message with body under a new SERVER root
// span, consumes until it was handled and stops; it returns the first
// delivery and the root.
func (r *rig) tracedRoundTrip(body string) (delivery, trace.Span) {
	r.t.Helper()
	ctx, root := r.tp.Tracer("test").Start(context.Background(), "POST /orders", trace.WithSpanKind(trace.SpanKindServer))
	if err := r.pub.Publish(ctx, r.Destination, middleware.NewMessage([]byte(body))); err != nil {
		r.t.Fatal(err)
	}
	root.End()
	c := r.consume(r.sub, nil)
	c.waitFor(r.h.Timeout, body)
	c.stop()
	return c.byBody(body)[0], root
}

func testConnectedTrace(t *testing.T, h Harness) {
	r := newRig(t, h)
	d, root := r.tracedRoundTrip("connected")
	if d.span.TraceID() != root.SpanContext().TraceID() {
		t.Fatal("the handler did not run in the producer's trace")
	}
	sends := r.spans("send ")
	if len(sends) != 1 || sends[0].Parent().SpanID() != root.SpanContext().SpanID() || sends[0].SpanKind() != trace.SpanKindProducer {
		t.Fatalf("want one PRODUCER send span under the caller, got %d", len(sends))
	}
	process := r.span(d.span.SpanID())
	if process == nil || process.SpanKind() != trace.SpanKindConsumer || !strings.HasPrefix(process.Name(), "process ") {
		t.Fatal("the handler's span is not a CONSUMER process span")
	}
	if process.Parent().SpanID() != sends[0].SpanContext().SpanID() {
		t.Fatal("the process span is not a child of the send span")
	}
	for _, s := range []sdktrace.ReadOnlySpan{sends[0], process} {
		if v, _ := attrOf(s, "messaging.system"); v.AsString() != h.System {
			t.Errorf("%s: messaging.system = %q, want %q", s.Name(), v.AsString(), h.System)
		}
		if v, _ := attrOf(s, "messaging.destination.name"); v.AsString() == "" {
			t.Errorf("%s: no messaging.destination.name", s.Name())
		}
	}
	if middleware.Describe(r.Subscriber, r.Source).Push {
		// A push delivery has no receive span (semconv: receive is a pull);
		// the process span is the consumer's first span.
		if receives := r.spans("receive "); len(receives) != 0 {
			t.Errorf("%d receive spans on a push-based transport, want none", len(receives))
		}
	} else {
		receives := r.waitSpans("receive ", 1)
		linked := false
		for _, rs := range receives {
			for _, l := range rs.Links() {
				linked = linked || l.SpanContext.SpanID() == sends[0].SpanContext().SpanID()
			}
		}
		if !linked {
			t.Error("no receive span links the message")
		}
	}
	settles := r.waitSpans("", 0)
	found := false
	for _, s := range settles {
		if v, _ := attrOf(s, "messaging.operation.type"); v.AsString() == "settle" {
			found = true
		}
	}
	if !found {
		// A settle span ends after the handler; give it a moment.
		time.Sleep(200 * time.Millisecond)
		for _, s := range r.rec.Ended() {
			if v, _ := attrOf(s, "messaging.operation.type"); v.AsString() == "settle" {
				found = true
			}
		}
		if !found {
			t.Error("no settle span")
		}
	}
}

func testBatchPublish(t *testing.T, h Harness) {
	r := newRig(t, h)
	var msgs []*middleware.Message
	var bodies []string
	for i := range 12 {
		b := fmt.Sprintf("batch-%d", i)
		bodies = append(bodies, b)
		msgs = append(msgs, middleware.NewMessage([]byte(b)))
	}
	if err := r.pub.Publish(context.Background(), r.Destination, msgs...); err != nil {
		t.Fatal(err)
	}
	c := r.consume(r.sub, nil)
	c.waitFor(h.Timeout, bodies...)
	c.stop()
	creates := map[trace.SpanID]bool{}
	for _, s := range r.spans("create ") {
		creates[s.SpanContext().SpanID()] = true
	}
	if len(creates) != 12 {
		t.Fatalf("%d create spans, want 12", len(creates))
	}
	// The create spans are the messages' creation contexts (PRODUCER), so
	// the send spans, however the transport splits the batch, are CLIENTs.
	for _, s := range r.spans("create ") {
		if s.SpanKind() != trace.SpanKindProducer {
			t.Fatalf("create span of kind %v, want producer", s.SpanKind())
		}
	}
	sends := r.spans("send ")
	if len(sends) == 0 {
		t.Fatal("no send span")
	}
	for _, s := range sends {
		if s.SpanKind() != trace.SpanKindClient {
			t.Fatalf("send span of a batch with create spans of kind %v, want client", s.SpanKind())
		}
	}
	for _, b := range bodies {
		ds := c.byBody(b)
		p := r.span(ds[0].span.SpanID())
		if p == nil || !creates[p.Parent().SpanID()] {
			t.Fatalf("message %s: process span is not a child of its create span", b)
		}
	}
}

func testTenTraces(t *testing.T, h Harness) {
	r := newRig(t, h)
	traces := map[string]trace.TraceID{}
	var bodies []string
	for i := range 10 {
		b := fmt.Sprintf("trace-%d", i)
		ctx, root := r.tp.Tracer("test").Start(context.Background(), "producer")
		if err := r.pub.Publish(ctx, r.Destination, middleware.NewMessage([]byte(b))); err != nil {
			t.Fatal(err)
		}
		root.End()
		traces[b] = root.SpanContext().TraceID()
		bodies = append(bodies, b)
	}
	c := r.consume(r.sub, nil)
	c.waitFor(h.Timeout, bodies...)
	c.stop()
	for b, id := range traces {
		for _, d := range c.byBody(b) {
			if d.span.TraceID() != id {
				t.Fatalf("message %s processed in trace %s, want its producer's %s", b, d.span.TraceID(), id)
			}
		}
	}
}

func testErrorRedelivers(t *testing.T, h Harness) {
	r := newRig(t, h)
	if err := r.pub.Publish(context.Background(), r.Destination, middleware.NewMessage([]byte("flaky"))); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	attempts := 0
	c := r.consume(r.sub, func(_ context.Context, m *middleware.Message) error {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if attempts == 1 {
			return fmt.Errorf("payment service unavailable")
		}
		return nil
	})
	c.waitFor(h.Timeout, "flaky")
	c.stop()
	ds := c.byBody("flaky")
	if len(ds) < 2 {
		t.Fatalf("%d deliveries, want a redelivery after the error", len(ds))
	}
	if ds[0].span.TraceID() != ds[1].span.TraceID() {
		t.Fatal("the redelivery left the message's trace")
	}
	if h.CountsDeliveries && ds[1].msg.DeliveryCount <= ds[0].msg.DeliveryCount {
		t.Errorf("delivery count %d then %d", ds[0].msg.DeliveryCount, ds[1].msg.DeliveryCount)
	}
	first := r.span(ds[0].span.SpanID())
	if v, _ := attrOf(first, "error.type"); first.Status().Code != 1 || v.AsString() == "" {
		t.Errorf("failed attempt: status %v, error.type %q", first.Status(), v.AsString())
	}
}

func testPanicRedelivers(t *testing.T, h Harness) {
	r := newRig(t, h)
	if err := r.pub.Publish(context.Background(), r.Destination, middleware.NewMessage([]byte("panicky"))); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	attempts := 0
	c := r.consume(r.sub, func(_ context.Context, m *middleware.Message) error {
		mu.Lock()
		attempts++
		n := attempts
		mu.Unlock()
		if n == 1 {
			panic("nil map in handler")
		}
		return nil
	})
	c.waitFor(h.Timeout, "panicky")
	c.stop()
	var panicked bool
	for _, s := range r.spans("process ") {
		if v, _ := attrOf(s, "error.type"); v.AsString() == "panic" {
			panicked = true
		}
	}
	if !panicked {
		t.Fatal("the panic is not recorded on a process span")
	}
}

// testForeignProducer: a client that is not otelmq writes a W3C traceparent
// by hand, as other languages' instrumentations do.
func testForeignProducer(t *testing.T, h Harness) {
	r := newRig(t, h)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	msg := middleware.NewMessage([]byte("foreign"))
	msg.Headers["traceparent"] = tp
	msg.Headers["tracestate"] = "vendor=abc"
	if err := r.Publisher.Publish(context.Background(), r.Destination, msg); err != nil { // raw, untraced
		t.Fatal(err)
	}
	c := r.consume(r.sub, nil)
	c.waitFor(h.Timeout, "foreign")
	c.stop()
	d := c.byBody("foreign")[0]
	if d.span.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("processed in trace %s, want the foreign producer's", d.span.TraceID())
	}
	p := r.span(d.span.SpanID())
	if p.Parent().SpanID().String() != "00f067aa0ba902b7" || p.SpanContext().TraceState().Get("vendor") != "abc" {
		t.Fatal("the process span is not a child of the foreign span with its tracestate")
	}
}

// testHostileHeaders: malformed or huge trace headers never cost a message
// or panic; the process span starts a new trace and says why.
func testHostileHeaders(t *testing.T, h Harness) {
	r := newRig(t, h)
	limit := func(n int) int {
		if h.MaxHeaderBytes > 0 && n > h.MaxHeaderBytes {
			return h.MaxHeaderBytes
		}
		return n
	}
	cases := map[string]map[string]string{
		"hostile-invalid-traceparent": {"traceparent": "00-xyz-not-hex-99"},
		"hostile-huge-tracestate": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			"tracestate": strings.Repeat("k=v,", limit(10<<10)/4)},
		"hostile-huge-baggage": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			"baggage": strings.Repeat("k=v,", limit(100<<10)/4)},
		"hostile-garbage-baggage": {"baggage": "=;=;,,;;%%%\x00\xff"},
	}
	var bodies []string
	for body, headers := range cases {
		msg := middleware.NewMessage([]byte(body))
		for k, v := range headers {
			msg.Headers[k] = v
		}
		if err := r.Publisher.Publish(context.Background(), r.Destination, msg); err != nil {
			t.Fatalf("%s: publish: %v", body, err)
		}
		bodies = append(bodies, body)
	}
	c := r.consume(r.sub, nil)
	c.waitFor(h.Timeout, bodies...)
	c.stop()
	for _, b := range bodies {
		if n := len(c.byBody(b)); n != 1 && !h.AtLeastOnce {
			t.Errorf("%s handled %d times, want once", b, n)
		}
	}
	p := r.span(c.byBody("hostile-invalid-traceparent")[0].span.SpanID())
	if p.Parent().IsRemote() {
		t.Error("an invalid traceparent became a remote parent")
	}
	var why bool
	for _, e := range p.Events() {
		why = why || e.Name == propagation.DroppedEventName
	}
	if !why {
		t.Error("no event says why the invalid traceparent started a new trace")
	}
	ts := r.span(c.byBody("hostile-huge-tracestate")[0].span.SpanID())
	if ts.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Error("a huge tracestate cost the trace context")
	}
	if n := ts.SpanContext().TraceState().Len(); n > propagation.MaxTraceStateMembers {
		t.Errorf("tracestate kept %d members", n)
	}
}

// testGracefulShutdown: cancelling Subscribe lets the running handler finish
// and settle; nothing is lost, and a new subscriber gets the rest.
func testGracefulShutdown(t *testing.T, h Harness) {
	r := newRig(t, h)
	var bodies []string
	for i := range 5 {
		bodies = append(bodies, fmt.Sprintf("drain-%d", i))
	}
	for _, b := range bodies {
		if err := r.pub.Publish(context.Background(), r.Destination, middleware.NewMessage([]byte(b))); err != nil {
			t.Fatal(err)
		}
	}
	started := make(chan string, 10)
	release := make(chan struct{})
	var mu sync.Mutex
	finished := map[string]bool{}
	first := r.consume(r.sub, func(ctx context.Context, m *middleware.Message) error {
		started <- string(m.Body)
		<-release
		if ctx.Err() != nil {
			return ctx.Err() // the handler's context must outlive the shutdown
		}
		mu.Lock()
		finished[string(m.Body)] = true
		mu.Unlock()
		return nil
	})
	var inFlight string
	select {
	case inFlight = <-started:
	case <-time.After(h.Timeout):
		t.Fatal("no message reached the handler")
	}
	stopped := make(chan struct{})
	go func() { first.stop(); close(stopped) }()
	time.Sleep(100 * time.Millisecond)
	select {
	case <-stopped:
		t.Fatal("Subscribe returned while a handler was still running")
	default:
	}
	close(release)
	<-stopped
	if !finished[inFlight] {
		t.Fatal("the in-flight handler did not finish successfully")
	}

	next := r.sub
	if r.NewSubscriber != nil {
		next = r.tel.Subscriber(r.NewSubscriber(t))
	}
	mu.Lock()
	var rest []string
	for _, b := range bodies {
		if !finished[b] {
			rest = append(rest, b)
		}
	}
	mu.Unlock()
	second := r.consume(next, nil)
	second.waitFor(h.Timeout, rest...)
	second.stop()
	if !h.AtLeastOnce && len(second.byBody(inFlight)) > 0 {
		t.Errorf("%s was settled before shutdown but delivered again", inFlight)
	}
}

func testMetrics(t *testing.T, h Harness) {
	r := newRig(t, h)
	if err := r.pub.Publish(context.Background(), r.Destination, middleware.NewMessage([]byte("metered"))); err != nil {
		t.Fatal(err)
	}
	c := r.consume(r.sub, nil)
	c.waitFor(h.Timeout, "metered")
	c.stop()
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	ops := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					counts[m.Name] += dp.Value
					if v, _ := dp.Attributes.Value("messaging.system"); v.AsString() != h.System {
						t.Errorf("%s: messaging.system %q", m.Name, v.AsString())
					}
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					counts[m.Name] += int64(dp.Count)
					if op, ok := dp.Attributes.Value("messaging.operation.type"); ok && m.Name == middleware.MetricOperationDuration {
						ops[op.AsString()] = true
					}
				}
			}
		}
	}
	for _, name := range []string{middleware.MetricSentMessages, middleware.MetricConsumedMessages,
		middleware.MetricProcessDuration, middleware.MetricQueueTime} {
		if counts[name] < 1 {
			t.Errorf("metric %s not recorded", name)
		}
	}
	// A push delivery is no receive operation: no duration, as no span.
	push := middleware.Describe(r.Subscriber, r.Source).Push
	for _, op := range []string{"send", "receive", "settle"} {
		if want := op != "receive" || !push; ops[op] != want {
			t.Errorf("%s in %s: %v, want %v (push delivery: %v)", op, middleware.MetricOperationDuration, ops[op], want, push)
		}
	}
}

func testKeyOrder(t *testing.T, h Harness) {
	if !h.OrderedByKey {
		t.Skip("this transport does not promise order by key")
	}
	r := newRig(t, h)
	var bodies []string
	for i := range 40 {
		b := fmt.Sprintf("ordered-%02d", i)
		bodies = append(bodies, b)
		msg := middleware.NewMessage([]byte(b))
		msg.Key = []byte("customer-1")
		if err := r.pub.Publish(context.Background(), r.Destination, msg); err != nil {
			t.Fatal(err)
		}
	}
	c := r.consume(r.sub, nil)
	c.waitFor(h.Timeout, bodies...)
	c.stop()
	var got []string
	for _, d := range c.deliveries() {
		got = append(got, string(d.msg.Body))
	}
	if !slices.IsSorted(got) {
		t.Fatalf("messages with one key handled out of order: %v", got)
	}
}

// testSampledOutTrace: with WithParentBasedSampling, a message published
// under an unsampled parent crosses the broker with that parent's trace ID
// and not-sampled flag, its handler runs in that trace unsampled, and no
// span is recorded in it (the SDK's default sampler, ParentBased, would
// drop every one; the middleware starts none); a sampled message beside it
// keeps its send and process spans.
func testSampledOutTrace(t *testing.T, h Harness) {
	r := newRig(t, h, middleware.WithParentBasedSampling(true))
	unsampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0x5a, 1}, SpanID: trace.SpanID{0x5a, 2}})
	if err := r.pub.Publish(trace.ContextWithSpanContext(context.Background(), unsampled), r.Destination, middleware.NewMessage([]byte("sampled-out"))); err != nil {
		t.Fatal(err)
	}
	ctx, root := r.tp.Tracer("test").Start(context.Background(), "POST /orders")
	if err := r.pub.Publish(ctx, r.Destination, middleware.NewMessage([]byte("sampled-in"))); err != nil {
		t.Fatal(err)
	}
	root.End()
	c := r.consume(r.sub, nil)
	c.waitFor(h.Timeout, "sampled-out", "sampled-in")
	c.stop()

	wantParent := "00-" + unsampled.TraceID().String() + "-" + unsampled.SpanID().String() + "-00"
	for _, d := range c.byBody("sampled-out") {
		// The publisher's parent itself, not a span the SDK started and
		// dropped (that would have a span ID of its own): no process span
		// was started.
		if d.span.TraceID() != unsampled.TraceID() || d.span.SpanID() != unsampled.SpanID() || d.span.IsSampled() {
			t.Errorf("sampled-out message: handler context %v, want the publisher's parent %v", d.span, unsampled)
		}
		if got := d.msg.Headers["traceparent"]; got != wantParent {
			t.Errorf("sampled-out message: traceparent %q, want the publisher's parent %q", got, wantParent)
		}
	}
	for _, s := range r.rec.Ended() {
		if s.SpanContext().TraceID() == unsampled.TraceID() {
			t.Errorf("span %q recorded in the sampled-out trace", s.Name())
		}
	}
	in := c.byBody("sampled-in")[0]
	if in.span.TraceID() != root.SpanContext().TraceID() || !in.span.IsSampled() {
		t.Fatalf("sampled-in message: handler context %v, want the sampled producer trace", in.span)
	}
	if p := r.span(in.span.SpanID()); p == nil || !strings.HasPrefix(p.Name(), "process ") {
		t.Error("the sampled message has no process span")
	}
	if sends := r.spans("send "); len(sends) != 1 || sends[0].SpanContext().TraceID() != root.SpanContext().TraceID() {
		t.Errorf("%d send spans, want the sampled message's alone", len(sends))
	}
}

// testNoSettleSpans: with WithSettleSpans(false) the broker still gets its
// acknowledgement (the message is not redelivered to a second consumer)
// and no settle span is recorded, while the process span is.
func testNoSettleSpans(t *testing.T, h Harness) {
	r := newRig(t, h, middleware.WithSettleSpans(false))
	d, _ := r.tracedRoundTrip("settled quietly")
	if p := r.span(d.span.SpanID()); p == nil || !strings.HasPrefix(p.Name(), "process ") {
		t.Error("no process span")
	}
	time.Sleep(200 * time.Millisecond) // a settle span ends after the handler
	for _, s := range r.rec.Ended() {
		if v, _ := attrOf(s, "messaging.operation.type"); v.AsString() == "settle" {
			t.Errorf("settle span %q recorded", s.Name())
		}
	}
	// Settled on the broker all the same: a second consumer gets nothing
	// (where the broker delivers once; an at-least-once one may send a
	// duplicate it was given twice).
	next := r.sub
	if r.NewSubscriber != nil {
		next = r.tel.Subscriber(r.NewSubscriber(t))
	}
	again := r.consume(next, nil)
	time.Sleep(time.Second)
	again.stop()
	if n := len(again.byBody("settled quietly")); n != 0 && !h.AtLeastOnce {
		t.Errorf("the message was delivered %d more times: not settled", n)
	}
}

// testNoMessageDataRecorded: no span (name, attribute, event, link, status)
// and no metric holds a message's body or the value of a header outside
// WithHeaderAllowList, on any kind of span, including a failed attempt's
// and its settle spans; an allow-listed header is recorded on the process
// span as messaging.header.<name>, and the body size only when asked for.
func testNoMessageDataRecorded(t *testing.T, h Harness) {
	r := newRig(t, h, middleware.WithHeaderAllowList("x-shown"))
	const body, hidden, shown = "body-6a1f-secret", "hidden-93c2-secret", "shown-value"
	msg := middleware.NewMessage([]byte(body))
	msg.Headers["x-hidden"] = hidden
	msg.Headers["x-shown"] = shown
	ctx, root := r.tp.Tracer("test").Start(context.Background(), "POST /orders")
	if err := r.pub.Publish(ctx, r.Destination, msg); err != nil {
		t.Fatal(err)
	}
	root.End()
	var mu sync.Mutex
	attempts := 0
	c := r.consume(r.sub, func(context.Context, *middleware.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if attempts++; attempts == 1 {
			return fmt.Errorf("declined") // a failed attempt records its error too
		}
		return nil
	})
	c.waitFor(h.Timeout, body)
	c.stop()
	ds := c.byBody(body)
	if ds[len(ds)-1].msg.Headers["x-hidden"] != hidden {
		t.Fatal("the header did not cross the broker: nothing to check")
	}
	r.waitSettled()

	leaks := func(where, v string) {
		for _, secret := range []string{body, hidden} {
			if strings.Contains(v, secret) {
				t.Errorf("%s records %q", where, v)
			}
		}
	}
	leaksIn := func(where string, kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			leaks(where+" attribute "+string(kv.Key), kv.Value.Emit())
			if strings.Contains(string(kv.Key), "x-hidden") || kv.Key == "messaging.message.body.size" {
				t.Errorf("%s has attribute %s", where, kv.Key)
			}
		}
	}
	var recordedShown bool
	for _, s := range r.rec.Ended() {
		where := "span " + s.Name()
		leaks(where+" name", s.Name())
		leaks(where+" status", s.Status().Description)
		leaksIn(where, s.Attributes())
		for _, e := range s.Events() {
			leaks(where+" event", e.Name)
			leaksIn(where+" event "+e.Name, e.Attributes)
		}
		for _, l := range s.Links() {
			leaksIn(where+" link", l.Attributes)
		}
		if v, ok := attrOf(s, middleware.HeaderAttributePrefix+"x-shown"); ok && strings.HasPrefix(s.Name(), "process ") {
			recordedShown = v.AsString() == shown
		}
	}
	if !recordedShown {
		t.Errorf("the allow-listed header is not recorded as %sx-shown on the process span", middleware.HeaderAttributePrefix)
	}
	r.eachMetricAttributes(leaksIn)
}

// testRedactorSeesEveryAttribute: WithRedactor rewrites every attribute
// drawn from a message or its destination (the name, the transport's own:
// queue URL, routing key, the Kafka key, message IDs) before it is
// recorded, on every kind of span and on every metric: with a redactor
// that masks every string, no recorded attribute holds the destination's
// name, the message's key or its ID. Span names are not attributes and
// keep the destination.
func testRedactorSeesEveryAttribute(t *testing.T, h Harness) {
	const masked = "REDACTED"
	r := newRig(t, h, middleware.WithRedactor(func(kv attribute.KeyValue) attribute.KeyValue {
		switch kv.Key {
		case "messaging.system", "messaging.operation.type", "messaging.operation.name", "error.type":
			return kv // fixed vocabularies, not message data
		}
		if kv.Value.Type() == attribute.STRING {
			return attribute.String(string(kv.Key), masked)
		}
		return kv
	}))
	msg := middleware.NewMessage([]byte("redact me"))
	msg.Key = []byte("customer-3f9a")
	ctx, root := r.tp.Tracer("test").Start(context.Background(), "POST /orders")
	if err := r.pub.Publish(ctx, r.Destination, msg, middleware.NewMessage([]byte("redact me too"))); err != nil {
		t.Fatal(err)
	}
	root.End()
	var mu sync.Mutex
	failed := false
	c := r.consume(r.sub, func(context.Context, *middleware.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if !failed {
			failed = true
			return fmt.Errorf("declined") // a nack, where the broker has one
		}
		return nil
	})
	c.waitFor(h.Timeout, "redact me", "redact me too")
	c.stop()
	var ids []string
	for _, d := range c.deliveries() {
		ids = append(ids, d.msg.ID)
	}
	r.waitSettled()

	secrets := append([]string{r.Destination, r.Source, string(msg.Key)}, ids...)
	check := func(where string, kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			v := kv.Value.Emit()
			for _, s := range secrets {
				if s != "" && strings.Contains(v, s) {
					t.Errorf("%s: %s = %q, not redacted", where, kv.Key, v)
				}
			}
		}
	}
	kinds := map[string]bool{}
	for _, s := range r.rec.Ended() {
		if s.Name() == "POST /orders" {
			continue
		}
		op, _ := attrOf(s, "messaging.operation.type")
		kinds[op.AsString()] = true
		check("span "+s.Name(), s.Attributes())
		for _, l := range s.Links() {
			check("span "+s.Name()+" link", l.Attributes)
		}
		for _, e := range s.Events() {
			check("span "+s.Name()+" event "+e.Name, e.Attributes)
		}
	}
	for _, k := range []string{"send", "create", "process", "settle"} {
		if !kinds[k] {
			t.Errorf("no %s span to check", k)
		}
	}
	r.eachMetricAttributes(check)
}
