package middleware_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/middleware"
	"github.com/otelmq/otelmq/propagation"
)

func recordHeadersTracer(t *testing.T, opts ...middleware.Option) (*tracetest.SpanRecorder, *middleware.Tracing) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return rec, middleware.NewTracing(append([]middleware.Option{middleware.WithTracerProvider(tp)}, opts...)...)
}

func headerAttrs(s sdktrace.ReadOnlySpan) map[attribute.Key]string {
	out := map[attribute.Key]string{}
	for _, kv := range s.Attributes() {
		if len(kv.Key) > len(middleware.HeaderAttributePrefix) && string(kv.Key[:len(middleware.HeaderAttributePrefix)]) == middleware.HeaderAttributePrefix {
			out[kv.Key] = kv.Value.AsString()
		}
	}
	return out
}

// TestStartProcessRecordsHeaders: the process spans of StartProcess (native
// instrumentation: it has no Message) and of StartProcessFrom followed by
// RecordHeaders carry the allow-listed headers, as the Subscriber's do:
// valid UTF-8, through the redactor, and none off the list.
func TestStartProcessRecordsHeaders(t *testing.T) {
	redact := func(kv attribute.KeyValue) attribute.KeyValue {
		if kv.Key == middleware.HeaderAttributePrefix+"tenant" {
			return kv.Key.String("redacted")
		}
		return kv
	}
	rec, tr := recordHeadersTracer(t, middleware.WithHeaderAllowList("order-id", "tenant", "bad", "absent"), middleware.WithRedactor(redact))
	c := propagation.MapCarrier{"order-id": "42", "tenant": "acme", "bad": "a\xffb", "secret": "s"}
	want := map[attribute.Key]string{
		"messaging.header.order-id": "42",
		"messaging.header.tenant":   "redacted",
		"messaging.header.bad":      "a\uFFFDb",
	}
	d := middleware.Destination{System: propagation.SystemKafka, Name: "q"}

	_, span := tr.StartProcess(context.Background(), d, c)
	tr.End(span, nil)
	_, span = tr.StartProcessFrom(context.Background(), d, trace.SpanContext{}, baggage.Baggage{})
	tr.RecordHeaders(span, c)
	tr.End(span, nil)

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	for i, s := range spans {
		got := headerAttrs(s)
		if len(got) != len(want) {
			t.Errorf("span %d: header attributes %v, want %v", i, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("span %d: %s = %q, want %q", i, k, got[k], v)
			}
		}
	}
}

// TestRecordHeadersNotRecording: a span that does not record gets nothing
// and RecordHeaders does not read the carrier.
func TestRecordHeadersNotRecording(t *testing.T) {
	_, tr := recordHeadersTracer(t, middleware.WithHeaderAllowList("order-id"))
	span := trace.SpanFromContext(context.Background())
	tr.RecordHeaders(span, panicCarrier{})
	tr.RecordHeaders(span, nil)
}

type panicCarrier struct{}

func (panicCarrier) Get(string) string  { panic("carrier read") }
func (panicCarrier) Set(string, string) { panic("carrier written") }
func (panicCarrier) Keys() []string     { panic("carrier listed") }

// TestRecordHeadersNoAllocation: without an allow-list, or with one whose
// headers are absent, RecordHeaders costs no allocation on a span that
// records.
func TestRecordHeadersNoAllocation(t *testing.T) {
	c := propagation.MapCarrier{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "other": "x"}
	for name, opts := range map[string][]middleware.Option{
		"no allow-list":  nil,
		"absent headers": {middleware.WithHeaderAllowList("order-id")},
	} {
		t.Run(name, func(t *testing.T) {
			_, tr := recordHeadersTracer(t, opts...)
			_, span := tr.StartProcess(context.Background(), middleware.Destination{System: propagation.SystemKafka, Name: "q"}, propagation.MapCarrier{})
			defer span.End()
			if !span.IsRecording() {
				t.Fatal("span does not record")
			}
			if n := testing.AllocsPerRun(100, func() { tr.RecordHeaders(span, c) }); n != 0 {
				t.Errorf("RecordHeaders: %v allocations, want 0", n)
			}
		})
	}
}
