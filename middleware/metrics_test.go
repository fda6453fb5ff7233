package middleware_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
)

// errorTypes returns, per metric, how many measurements (a histogram's
// count, a counter's sum) each error.type got ("" for none).
func errorTypes(t *testing.T, reader *sdkmetric.ManualReader) map[string]map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = map[string]int64{}
			switch data := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					v, _ := dp.Attributes.Value("error.type")
					got[m.Name][v.AsString()] += int64(dp.Count)
				}
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					v, _ := dp.Attributes.Value("error.type")
					got[m.Name][v.AsString()] += dp.Value
				}
			}
		}
	}
	return got
}

// TestMetricsPublisherPanic: a Publisher that panics ends its send span with
// error.type "panic" (the panic goes on to the caller); the send operation
// is measured as well, with the same error.type, as the span and the
// metric of one operation agree.
func TestMetricsPublisherPanic(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	tel := middleware.NewTelemetry(middleware.WithTracerProvider(tp), middleware.WithMeterProvider(mp))
	pub := tel.Publisher(middleware.PublisherFunc(func(context.Context, string, ...*middleware.Message) error {
		panic("broken client")
	}))

	func() {
		defer func() {
			if r := recover(); r != "broken client" {
				t.Errorf("recovered %v, want the Publisher's panic", r)
			}
		}()
		_ = pub.Publish(context.Background(), "q", middleware.NewMessage(nil), middleware.NewMessage(nil))
	}()

	spanType := "(no send span)"
	for _, s := range rec.Ended() {
		if s.Name() != "send q" {
			continue
		}
		spanType = ""
		for _, kv := range s.Attributes() {
			if kv.Key == "error.type" {
				spanType = kv.Value.AsString()
			}
		}
	}
	if spanType != "panic" {
		t.Fatalf("send span error.type %q, want panic", spanType)
	}
	got := errorTypes(t, reader)
	if n := got[middleware.MetricOperationDuration]["panic"]; n != 1 || len(got[middleware.MetricOperationDuration]) != 1 {
		t.Errorf("send durations by error.type %v, want one with panic, as the span", got[middleware.MetricOperationDuration])
	}
	if n := got[middleware.MetricSentMessages]["panic"]; n != 2 || len(got[middleware.MetricSentMessages]) != 1 {
		t.Errorf("sent messages by error.type %v, want 2 with panic", got[middleware.MetricSentMessages])
	}
}

// TestTimeProcess: a process span TimeProcess wraps records one process
// duration however often it ends, with the error End was given; its queue
// time is recorded at the start; ending the span in ctx (which stand-ins
// for spans under it may be) records nothing; a no-op meter leaves the
// span as is.
func TestTimeProcess(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	m := middleware.NewMetrics(middleware.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	tp := sdktrace.NewTracerProvider()
	d := middleware.Destination{System: "kafka", Name: "orders"}

	ctx, span := tp.Tracer("t").Start(context.Background(), "process orders")
	span = m.TimeProcess(ctx, span, d, time.Now().Add(-time.Second))
	trace.SpanFromContext(ctx).End()
	middleware.End(span, errors.New("failed"))
	span.End()

	ctx, span = tp.Tracer("t").Start(context.Background(), "process orders")
	m.TimeProcess(ctx, span, d, time.Time{}).End()

	got := errorTypes(t, reader)
	if p := got[middleware.MetricProcessDuration]; p["_OTHER"] != 1 || p[""] != 1 {
		t.Errorf("process durations by error.type %v, want one _OTHER and one without", p)
	}
	if q := got[middleware.MetricQueueTime]; q[""] != 1 {
		t.Errorf("queue times %v, want one (the other message has no timestamp)", q)
	}

	noop := middleware.NewMetrics(middleware.WithMeterProvider(noopmetric.NewMeterProvider()))
	if s := noop.TimeProcess(ctx, span, d, time.Time{}); s != span {
		t.Error("a no-op meter wrapped the span")
	}
}

// TestTimeProcessEndAlone: a process span ended with its own End method
// after a handler marked it failed records a failed process duration:
// error.type is the attribute the handler set, else _OTHER; an Ok status
// is final, as in the SDK, and an Unset one changes nothing.
func TestTimeProcessEndAlone(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	m := middleware.NewMetrics(middleware.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	tp := sdktrace.NewTracerProvider()
	d := middleware.Destination{System: "kafka", Name: "orders"}
	process := func(mark func(trace.Span)) {
		ctx, span := tp.Tracer("t").Start(context.Background(), "process orders")
		span = m.TimeProcess(ctx, span, d, time.Time{})
		mark(span)
		span.End()
	}

	process(func(s trace.Span) { s.SetStatus(codes.Error, "invalid order") })
	process(func(s trace.Span) {
		s.SetAttributes(attribute.String("error.type", "InvalidOrder"))
		s.SetStatus(codes.Error, "invalid order")
	})
	process(func(s trace.Span) { s.SetAttributes(attribute.String("error.type", "InvalidOrder")) })
	process(func(s trace.Span) {
		s.SetStatus(codes.Error, "first")
		s.SetStatus(codes.Unset, "")
	})
	process(func(s trace.Span) {
		s.SetStatus(codes.Ok, "")
		s.SetStatus(codes.Error, "too late")
	})
	process(func(trace.Span) {})

	got := errorTypes(t, reader)[middleware.MetricProcessDuration]
	want := map[string]int64{"_OTHER": 2, "InvalidOrder": 2, "": 2}
	if len(got) != len(want) || got["_OTHER"] != 2 || got["InvalidOrder"] != 2 || got[""] != 2 {
		t.Errorf("process durations by error.type %v, want %v", got, want)
	}
}

// TestEndAllocatesNothing: ending a span that is no TimeProcess span costs
// the Publisher's and Subscriber's spans no allocation for the error that
// only a TimeProcess span keeps.
func TestEndAllocatesNothing(t *testing.T) {
	span := trace.SpanFromContext(context.Background())
	tr := middleware.NewTracing()
	if n := testing.AllocsPerRun(100, func() {
		middleware.End(span, nil)
		tr.End(span, nil)
	}); n != 0 {
		t.Errorf("End allocates %v times", n)
	}
}
