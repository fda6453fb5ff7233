package middleware_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/slogtest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
	"github.com/otelmq/otelmq/transports/memory"
)

// unended returns the names of spans that were started and never ended.
func unended(rec *tracetest.SpanRecorder) []string {
	ended := map[any]bool{}
	for _, s := range rec.Ended() {
		ended[s.SpanContext().SpanID()] = true
	}
	var out []string
	for _, s := range rec.Started() {
		if !ended[s.SpanContext().SpanID()] {
			out = append(out, s.Name())
		}
	}
	return out
}

// A traced Publisher whose inner Publisher panics (a user PublisherFunc, a
// wrapper, a client bug) never ends its send span.
func TestSendSpanEndsWhenPublisherPanics(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp))
	pub := tr.Publisher(middleware.PublisherFunc(func(context.Context, string, ...*middleware.Message) error {
		panic("client bug")
	}))
	func() {
		defer func() { _ = recover() }()
		_ = pub.Publish(context.Background(), "q", middleware.NewMessage(nil))
	}()
	if u := unended(rec); len(u) != 0 {
		t.Fatalf("spans started and never ended: %v", u)
	}
}

// The same through DeadLetter: the handler's panic is recovered (process
// span fine), but the dead-letter send span leaks.
func TestDeadLetterSendSpanEndsWhenDLQPublisherPanics(t *testing.T) {
	h := newHarness(t)
	if err := h.pub.Publish(context.Background(), "q", middleware.NewMessage([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	dlq := middleware.NewTracing(middleware.WithTracerProvider(h.tp)).Publisher(
		middleware.PublisherFunc(func(context.Context, string, ...*middleware.Message) error { panic("dlq client bug") }))
	var calls atomic.Int32
	h.consume("q", 1, middleware.ChainHandler(middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
		if calls.Add(1) == 1 {
			return errDeclined
		}
		return nil
	}), middleware.Recover, middleware.DeadLetter(dlq, "dlq")).Handle)
	if u := unended(h.rec); len(u) != 0 {
		t.Fatalf("spans started and never ended: %v", u)
	}
}

// README: "an in-place Retry's waits between attempts count toward the
// shutdown: keep attempts and backoff short, or pass your own deadline."
// A deadline passed on the handler context (outermost) expires during the
// retries; DeadLetter then publishes with that expired context, the publish
// fails, the message is nacked, and the next delivery does the same: the
// poison message is never dead-lettered.
func TestDeadLetterAfterHandlerDeadline(t *testing.T) {
	b := memory.New()
	h := newHarnessOn(t, b)
	if err := h.pub.Publish(context.Background(), "q", middleware.NewMessage([]byte("poison"))); err != nil {
		t.Fatal(err)
	}
	dlqBroker := memory.New()
	deadline := func(next middleware.Handler) middleware.Handler {
		return middleware.HandlerFunc(func(ctx context.Context, m *middleware.Message) error {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
			defer cancel()
			return next.Handle(ctx, m)
		})
	}
	handler := middleware.ChainHandler(
		middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return errDeclined }),
		deadline,
		middleware.DeadLetter(dlqBroker, "dlq"),
		middleware.Retry(middleware.WithAttempts(3), middleware.WithBackoff(func(int) time.Duration { return 50 * time.Millisecond })),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var deliveries atomic.Int32
	_ = h.sub.Subscribe(ctx, "q", middleware.HandlerFunc(func(ctx context.Context, m *middleware.Message) error {
		deliveries.Add(1)
		return handler.Handle(ctx, m)
	}))
	ready, _ := dlqBroker.Len("dlq")
	if ready != 1 {
		t.Fatalf("after %d deliveries the poison message was dead-lettered %d times; process status: %q",
			deliveries.Load(), ready, h.spans("process q")[0].Status().Description)
	}
}

// NewLogHandler promises trace_id/span_id on every record logged inside a
// span; under a logger with a group they land inside the group instead.
func TestLogHandlerIDsTopLevelUnderGroup(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(middleware.NewLogHandler(slog.NewJSONHandler(&buf, nil))).WithGroup("req")
	h := newHarness(t)
	ctx, span := h.tp.Tracer("test").Start(context.Background(), "work")
	log.InfoContext(ctx, "inside", "id", 1)
	span.End()
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if _, ok := rec[middleware.LogTraceID]; !ok {
		t.Fatalf("no top-level trace_id: %s", strings.TrimSpace(buf.String()))
	}
}

// Panics at every position, with and without Recover: every span ends,
// the process span says error.type=panic, the message is redelivered.
func TestPanicsAtEveryPositionEndSpans(t *testing.T) {
	noWait := middleware.WithBackoff(func(int) time.Duration { return 0 })
	for name, mws := range map[string][]middleware.HandlerMiddleware{
		"bare":                 nil,
		"recover":              {middleware.Recover},
		"retry":                {middleware.Retry(noWait)},
		"recover,retry":        {middleware.Recover, middleware.Retry(noWait)},
		"retry,recover":        {middleware.Retry(noWait), middleware.Recover},
		"dl,retry":             {middleware.DeadLetter(memory.New(), "dlq"), middleware.Retry(noWait)},
		"retry,dl(broken)":     {middleware.Retry(noWait), middleware.DeadLetter(middleware.PublisherFunc(func(context.Context, string, ...*middleware.Message) error { return errors.New("down") }), "dlq")},
		"recover,dl(panicPub)": {middleware.Recover, middleware.DeadLetter(middleware.PublisherFunc(func(context.Context, string, ...*middleware.Message) error { panic("x") }), "dlq")},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			if err := h.pub.Publish(context.Background(), "q", middleware.NewMessage(nil)); err != nil {
				t.Fatal(err)
			}
			var calls atomic.Int32
			hd := middleware.ChainHandler(middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
				if calls.Add(1) <= 3 {
					panic("boom")
				}
				return nil
			}), mws...)
			h.consume("q", 1, hd.Handle)
			if u := unended(h.rec); len(u) != 0 {
				t.Fatalf("unended: %v", u)
			}
			p := h.spans("process q")[0]
			v, _ := attr(p, "error.type")
			t.Logf("calls=%d processes=%d first error.type=%q dlq-or-nack=%v", calls.Load(), len(h.spans("process q")), v.AsString(), h.names())
		})
	}
}

// publish -> consume -> DLQ publish -> DLQ consume: one trace, baggage kept,
// for a message the producer sent without headers too.
func TestDeadLetterKeepsTraceAndBaggage(t *testing.T) {
	h := newHarness(t)
	bag, err := baggage.Parse("tenant=acme")
	if err != nil {
		t.Fatal(err)
	}
	ctx, root := h.tp.Tracer("test").Start(baggage.ContextWithBaggage(context.Background(), bag), "root")
	if err := h.pub.Publish(ctx, "q", middleware.NewMessage([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	root.End()
	dlqB := memory.New()
	tel := middleware.NewTelemetry(middleware.WithTracerProvider(h.tp))
	hd := middleware.ChainHandler(middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return errDeclined }),
		middleware.DeadLetter(tel.Publisher(dlqB), "dlq"), middleware.Retry(middleware.WithBackoff(func(int) time.Duration { return 0 })))
	h.consume("q", 1, hd.Handle)
	var gotTrace, gotBag string
	dh := &harness{t: t, rec: h.rec, tp: h.tp, sub: tel.Subscriber(dlqB)}
	dh.consume("dlq", 1, func(ctx context.Context, m *middleware.Message) error {
		gotTrace = traceIDOf(ctx)
		gotBag = baggage.FromContext(ctx).Member("tenant").Value()
		return nil
	})
	if gotTrace != root.SpanContext().TraceID().String() || gotBag != "acme" {
		t.Fatalf("trace %s (want %s), baggage %q", gotTrace, root.SpanContext().TraceID(), gotBag)
	}
	if u := unended(h.rec); len(u) != 0 {
		t.Fatalf("unended %v", u)
	}
	// headerless source message
	raw := memory.New()
	_ = raw.Publish(context.Background(), "q", &middleware.Message{Body: []byte("y")})
	h2 := newHarnessOn(t, raw)
	h2.consume("q", 1, middleware.ChainHandler(middleware.HandlerFunc(func(_ context.Context, m *middleware.Message) error {
		if m.Headers != nil {
			t.Errorf("headers %v", m.Headers)
		}
		return errDeclined
	}), middleware.DeadLetter(tel.Publisher(dlqB), "dlq2")).Handle)
	if r, _ := dlqB.Len("dlq2"); r != 1 {
		t.Fatal("headerless message not dead-lettered")
	}
}

// WithRedactor: "so does the text of the error a span ends with". Retry's
// attempt spans under a process span started with StartProcess (native
// instrumentation, README's "Tracing building blocks") keep the raw text.
func TestRetryAttemptSpansRedactedUnderStartProcess(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := middleware.NewTracing(middleware.WithTracerProvider(tp), middleware.WithRedactor(func(kv attribute.KeyValue) attribute.KeyValue {
		if kv.Key == middleware.StatusDescriptionKey {
			return kv.Key.String("[redacted]")
		}
		return kv
	}))
	msg := middleware.NewMessage(nil)
	ctx, span := tr.StartProcess(context.Background(), middleware.Destination{System: "kafka", Name: "orders"}, propagation.MapCarrier(msg.Headers))
	err := middleware.Retry(middleware.WithAttempts(2), middleware.WithBackoff(func(int) time.Duration { return 0 }))(
		middleware.HandlerFunc(func(context.Context, *middleware.Message) error {
			return errors.New("card 4111-1111-1111-1111 declined for alice@example.com")
		})).Handle(ctx, msg)
	tr.End(span, err)
	for _, s := range rec.Ended() {
		if strings.Contains(s.Status().Description, "alice@example.com") {
			t.Errorf("span %q status description not redacted: %q", s.Name(), s.Status().Description)
		}
	}
}

// NewLogHandler passes the standard library's handler conformance tests
// (groups, attributes added after them, empty groups, ...), wrapping a
// JSON handler, and adds the IDs at the top level under any groups.
func TestLogHandlerConformance(t *testing.T) {
	var buf bytes.Buffer
	h := middleware.NewLogHandler(slog.NewJSONHandler(&buf, nil))
	results := func() []map[string]any {
		var ms []map[string]any
		for line := range bytes.SplitSeq(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatal(err)
			}
			ms = append(ms, m)
		}
		return ms
	}
	if err := slogtest.TestHandler(h, results); err != nil {
		t.Error(err)
	}

	buf.Reset()
	hr := newHarness(t)
	ctx, span := hr.tp.Tracer("test").Start(context.Background(), "work")
	slog.New(h).With("p", 0).WithGroup("a").With("x", 1).WithGroup("b").InfoContext(ctx, "hi", "y", 2)
	span.End()
	got := strings.TrimSpace(buf.String())
	for _, want := range []string{`"p":0`, `"a":{"x":1,"b":{"y":2}}`, `"trace_id":"` + span.SpanContext().TraceID().String() + `"`} {
		if !strings.Contains(got, want) {
			t.Errorf("%s lacks %s", got, want)
		}
	}
}

// TestRetryOutsideDeadLetter: ChainHandler's first middleware is the
// outermost, so with Retry first the first failure reaches DeadLetter,
// which dead-letters it and settles: Retry sees a success and never runs
// another attempt (the order the README warns against).
func TestRetryOutsideDeadLetter(t *testing.T) {
	dlq := memory.New()
	calls := 0
	h := middleware.ChainHandler(
		middleware.HandlerFunc(func(context.Context, *middleware.Message) error { calls++; return errDeclined }),
		middleware.Retry(middleware.WithAttempts(3), middleware.WithBackoff(func(int) time.Duration { return 0 })), // outermost
		middleware.DeadLetter(dlq, "dlq"))
	msg := middleware.NewMessage([]byte("x"))
	msg.DeliveryCount = 1
	if err := h.Handle(context.Background(), msg); err != nil {
		t.Fatalf("Handle = %v, want nil: dead-lettered", err)
	}
	if ready, _ := dlq.Len("dlq"); calls != 1 || ready != 1 {
		t.Fatalf("handler called %d times, %d dead-lettered; want the first failure dead-lettered and no retry", calls, ready)
	}
}
