package middleware_test

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

// eventObserver records every call it gets, as text; it implements
// PollFailedObserver and SettledEachObserver.
type eventObserver struct {
	mu     sync.Mutex
	events []string
}

func (o *eventObserver) add(e string) {
	o.mu.Lock()
	o.events = append(o.events, e)
	o.mu.Unlock()
}

func (o *eventObserver) snapshot() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.events)
}

func (o *eventObserver) Received(ctx context.Context, _ middleware.Destination, _ time.Time, msgs []*middleware.Message) context.Context {
	o.add("received " + bodies(msgs))
	return ctx
}

func (o *eventObserver) Settled(_ context.Context, _ middleware.Destination, op string, _ time.Time, msgs []*middleware.Message, err error) {
	o.add(op + " " + bodies(msgs) + " " + errText(err))
}

func (o *eventObserver) PollFailed(_ context.Context, _ middleware.Destination, _ time.Time, err error) {
	o.add("poll failed " + errText(err))
}

func (o *eventObserver) SettledEach(_ context.Context, _ middleware.Destination, op string, _ time.Time, msgs []*middleware.Message, errs []error) {
	var outcomes []string
	for i, m := range msgs {
		outcomes = append(outcomes, string(m.Body)+"="+errText(errs[i]))
	}
	o.add(op + " each " + strings.Join(outcomes, ","))
}

// settleObserver records what an Observer that predates the optional
// interfaces is told; plain hides its optional methods.
type settleObserver struct{ eventObserver }

func bodies(msgs []*middleware.Message) string {
	var b []string
	for _, m := range msgs {
		b = append(b, string(m.Body))
	}
	return "[" + strings.Join(b, " ") + "]"
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func plain(o *settleObserver) middleware.Observer {
	// Only the methods of Observer: the embedded eventObserver's optional
	// ones must not show through.
	return struct{ middleware.Observer }{o}
}

// TestObserversForwardPollFailed: a failed poll reaches every installed
// observer that implements PollFailedObserver, alone or beside one that
// does not, and nothing is reported for a nil error, an ended context or
// no observer.
func TestObserversForwardPollFailed(t *testing.T) {
	boom := errors.New("throttled")
	d := middleware.Destination{System: "test", Name: "q"}
	bg := context.Background()

	aware, unaware := &eventObserver{}, &settleObserver{}
	ctx := middleware.WithObserver(middleware.WithObserver(bg, plain(unaware)), aware)
	obs := middleware.ObserverFrom(ctx)
	middleware.ReportPollFailed(ctx, obs, d, time.Now(), boom)
	middleware.ReportPollFailed(ctx, obs, d, time.Now(), nil)
	if got := aware.snapshot(); !slices.Equal(got, []string{"poll failed throttled"}) {
		t.Errorf("the PollFailedObserver of two got %q, want one failed poll", got)
	}
	if got := unaware.snapshot(); len(got) != 0 {
		t.Errorf("the plain Observer got %q", got)
	}

	alone := &eventObserver{}
	ctx = middleware.WithObserver(bg, alone)
	middleware.ReportPollFailed(ctx, middleware.ObserverFrom(ctx), d, time.Now(), boom)
	if got := alone.snapshot(); len(got) != 1 {
		t.Errorf("a single PollFailedObserver got %q, want one failed poll", got)
	}

	// The subscriber shutting down interrupts a poll; that is no failure.
	ended, cancel := context.WithCancel(ctx)
	cancel()
	middleware.ReportPollFailed(ended, middleware.ObserverFrom(ended), d, time.Now(), context.Canceled)
	if got := alone.snapshot(); len(got) != 1 {
		t.Errorf("a poll failing as the context ended was reported: %q", got)
	}

	// No observer: the no-op one takes it.
	middleware.ReportPollFailed(bg, middleware.ObserverFrom(bg), d, time.Now(), boom)
	if _, ok := middleware.ObserverFrom(bg).(middleware.PollFailedObserver); !ok {
		t.Error("the no-op observer does not implement PollFailedObserver")
	}
}

// TestObserversForwardSettledEach: a partly failed settle request reaches
// a SettledEachObserver in one call; an Observer without SettledEach gets
// the settled messages in one Settled call and each failed one in its own;
// a request without failure is one Settled call for both.
func TestObserversForwardSettledEach(t *testing.T) {
	d := middleware.Destination{System: "test", Name: "q"}
	msgs := []*middleware.Message{middleware.NewMessage([]byte("a")), middleware.NewMessage([]byte("b")), middleware.NewMessage([]byte("c"))}
	refused, missing := errors.New("refused"), errors.New("missing")

	aware, unaware := &eventObserver{}, &settleObserver{}
	ctx := middleware.WithObserver(middleware.WithObserver(context.Background(), aware), plain(unaware))
	obs := middleware.ObserverFrom(ctx)
	middleware.ReportSettledEach(ctx, obs, d, propagation.OpDelete, time.Now(), msgs, []error{nil, refused, missing})
	middleware.ReportSettledEach(ctx, obs, d, propagation.OpDelete, time.Now(), msgs[:2], []error{nil, nil})
	middleware.ReportSettledEach(ctx, obs, d, propagation.OpDelete, time.Now(), msgs[1:], []error{refused, missing})

	if got, want := aware.snapshot(), []string{
		"delete each a=ok,b=refused,c=missing",
		"delete [a b] ok",
		"delete each b=refused,c=missing",
	}; !slices.Equal(got, want) {
		t.Errorf("SettledEachObserver got\n%q\nwant\n%q", got, want)
	}
	if got, want := unaware.snapshot(), []string{
		"delete [a] ok", "delete [b] refused", "delete [c] missing",
		"delete [a b] ok",
		"delete [b] refused", "delete [c] missing",
	}; !slices.Equal(got, want) {
		t.Errorf("plain Observer got\n%q\nwant\n%q", got, want)
	}
}

// metricsAndSpans returns Telemetry over SDK providers, the tracer's with
// sampler (the SDK's default when nil), and what they record.
func metricsAndSpans(t *testing.T, sampler sdktrace.Sampler, opts ...middleware.Option) (*middleware.Telemetry, *sdkmetric.ManualReader, *tracetest.SpanRecorder) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	rec := tracetest.NewSpanRecorder()
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithSpanProcessor(rec)}
	if sampler != nil {
		tpOpts = append(tpOpts, sdktrace.WithSampler(sampler))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()); _ = tp.Shutdown(context.Background()) })
	opts = append([]middleware.Option{middleware.WithMeterProvider(mp), middleware.WithTracerProvider(tp)}, opts...)
	return middleware.NewTelemetry(opts...), reader, rec
}

// histogramCounts maps the attribute sets of name's histogram points,
// rendered as sorted key=value lists, to their counts.
func histogramCounts(t *testing.T, reader *sdkmetric.ManualReader, name string) map[string]uint64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == name {
				for _, dp := range h.DataPoints {
					out[renderSet(dp.Attributes)] += dp.Count
				}
			}
		}
	}
	return out
}

func renderSet(s attribute.Set) string {
	var kv []string
	for _, a := range s.ToSlice() {
		kv = append(kv, string(a.Key)+"="+a.Value.Emit())
	}
	sort.Strings(kv)
	return strings.Join(kv, " ")
}

type typedError struct{}

func (typedError) Error() string { return "throttled by the test" }

// TestTelemetryPollFailed: through the observers the Telemetry middleware
// installs, a failed poll is one receive measurement with error.type and
// no consumed count, and one receive span (CLIENT, from the poll's start)
// ended with the error and without messaging.batch.message_count; a push
// destination records neither.
func TestTelemetryPollFailed(t *testing.T) {
	tel, reader, rec := metricsAndSpans(t, nil)
	d := middleware.Destination{System: "aws_sqs", Name: "orders", Attributes: []attribute.KeyValue{propagation.ServerAddress("sqs.test")}}
	var obs middleware.Observer
	transport := middleware.SubscriberFunc(func(ctx context.Context, _ string, _ middleware.Handler) error {
		obs = middleware.ObserverFrom(ctx)
		start := time.Now().Add(-time.Second)
		middleware.ReportPollFailed(ctx, obs, d, start, typedError{})
		push := d
		push.Push = true
		middleware.ReportPollFailed(ctx, obs, push, start, typedError{})
		return nil
	})
	h := middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })
	if err := tel.Subscriber(transport).Subscribe(context.Background(), "orders", h); err != nil {
		t.Fatal(err)
	}

	counts := histogramCounts(t, reader, middleware.MetricOperationDuration)
	want := "error.type=middleware_test.typedError messaging.destination.name=orders messaging.operation.name=receive messaging.operation.type=receive messaging.system=aws_sqs server.address=sqs.test"
	if len(counts) != 1 || counts[want] != 1 {
		t.Errorf("operation.duration points %v, want one: %s", counts, want)
	}
	if c := histogramCounts(t, reader, middleware.MetricConsumedMessages); len(c) != 0 {
		t.Errorf("consumed messages recorded for a failed poll: %v", c)
	}

	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want one receive span", len(spans))
	}
	s := spans[0]
	attrs := map[attribute.Key]attribute.Value{}
	for _, a := range s.Attributes() {
		attrs[a.Key] = a.Value
	}
	if s.Name() != "receive orders" || s.SpanKind() != trace.SpanKindClient || s.Status().Code != codes.Error ||
		attrs["error.type"].AsString() != "middleware_test.typedError" || attrs["messaging.operation.type"].AsString() != "receive" ||
		attrs["server.address"].AsString() != "sqs.test" {
		t.Errorf("span %q kind %v status %v attributes %v, want a CLIENT receive span with the error", s.Name(), s.SpanKind(), s.Status(), attrs)
	}
	if _, ok := attrs["messaging.batch.message_count"]; ok {
		t.Error("a failed poll's span has messaging.batch.message_count")
	}
	if d := s.EndTime().Sub(s.StartTime()); d < time.Second {
		t.Errorf("span lasted %s, want it to start when the poll did", d)
	}
}

// TestPollFailedParentBasedSampling: under an unsampled parent, with
// WithParentBasedSampling, a failed poll starts no span, as a receive
// would not, even with a sampler that would record it; the metric is
// still recorded.
func TestPollFailedParentBasedSampling(t *testing.T) {
	tel, reader, rec := metricsAndSpans(t, sdktrace.AlwaysSample(), middleware.WithParentBasedSampling(true))
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}})
	ctx := trace.ContextWithSpanContext(context.Background(), parent)
	ctx = middleware.WithObserver(middleware.WithObserver(ctx, tel.Tracing), tel.Metrics)
	d := middleware.Destination{System: "kafka", Name: "t"}
	middleware.ReportPollFailed(ctx, middleware.ObserverFrom(ctx), d, time.Now(), typedError{})
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans under an unsampled parent", n)
	}
	if c := histogramCounts(t, reader, middleware.MetricOperationDuration); len(c) != 1 {
		t.Errorf("operation.duration points %v, want one", c)
	}
}

// TestTelemetrySettledEach: one partly failed settle request is one
// operation.duration measurement with the error.type of its first typed
// error, and the settle spans of the settled messages and of each failed
// one, with its error.
func TestTelemetrySettledEach(t *testing.T) {
	tel, reader, rec := metricsAndSpans(t, nil)
	d := middleware.Destination{System: "aws_sqs", Name: "orders"}
	msgs := []*middleware.Message{middleware.NewMessage([]byte("a")), middleware.NewMessage([]byte("b")), middleware.NewMessage([]byte("c"))}
	transport := middleware.SubscriberFunc(func(ctx context.Context, _ string, _ middleware.Handler) error {
		obs := middleware.ObserverFrom(ctx)
		hctx := obs.Received(ctx, d, time.Now(), msgs)
		middleware.ReportSettledEach(hctx, obs, d, propagation.OpDelete, time.Now(), msgs, []error{nil, errors.New("plain"), typedError{}})
		return nil
	})
	h := middleware.HandlerFunc(func(context.Context, *middleware.Message) error { return nil })
	if err := tel.Subscriber(transport).Subscribe(context.Background(), "orders", h); err != nil {
		t.Fatal(err)
	}

	var deletes uint64
	for set, n := range histogramCounts(t, reader, middleware.MetricOperationDuration) {
		if strings.Contains(set, "messaging.operation.name=delete") {
			deletes += n
			if !strings.Contains(set, "error.type=middleware_test.typedError") {
				t.Errorf("delete measured with %s, want the typed error's error.type", set)
			}
		}
	}
	if deletes != 1 {
		t.Errorf("%d delete measurements for one request, want 1", deletes)
	}

	var failed, ok int
	for _, s := range rec.Ended() {
		if s.Name() != "delete orders" {
			continue
		}
		if s.Status().Code == codes.Error {
			failed++
		} else {
			ok++
		}
	}
	if failed != 2 || ok != 1 {
		t.Errorf("delete spans: %d failed, %d ok; want one per failed message and one for the deleted", failed, ok)
	}
}
