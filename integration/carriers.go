package integration

import (
	"context"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/propagation"
)

// NewCarrier returns an empty carrier over a fresh native header container
// (a record's headers, an AMQP table, an SQS attribute map, a map).
type NewCarrier func() propagation.TextMapCarrier

// RunCarrierConformance checks a transport's carrier against what every
// carrier must do: carry traceparent, tracestate and baggage through inject
// and extract, keep user headers, overwrite on Set, read "" for a missing
// key, and list its keys.
func RunCarrierConformance(t *testing.T, newCarrier NewCarrier) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	ts, _ := trace.ParseTraceState("vendor=abc,other=xyz")
	sc = sc.WithTraceState(ts)
	member, _ := baggage.NewMember("tenant", "acme")
	bg, _ := baggage.New(member)

	t.Run("RoundTrip", func(t *testing.T) {
		c := newCarrier()
		c.Set("x-user", "kept")
		ctx := baggage.ContextWithBaggage(trace.ContextWithSpanContext(context.Background(), sc), bg)
		propagation.Inject(ctx, c)
		out := propagation.Extract(context.Background(), c)
		got := trace.SpanContextFromContext(out)
		if got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() {
			t.Fatalf("extracted %v, want %v", got, sc)
		}
		if !got.IsRemote() || !got.IsSampled() {
			t.Fatalf("extracted context remote=%v sampled=%v, want both", got.IsRemote(), got.IsSampled())
		}
		if got.TraceState().String() != ts.String() {
			t.Fatalf("tracestate %q, want %q", got.TraceState(), ts)
		}
		if v := baggage.FromContext(out).Member("tenant").Value(); v != "acme" {
			t.Fatalf("baggage tenant = %q", v)
		}
		if c.Get("x-user") != "kept" {
			t.Fatal("a user header was lost")
		}
	})
	t.Run("UnsampledKept", func(t *testing.T) {
		c := newCarrier()
		unsampled := sc.WithTraceFlags(0)
		propagation.Inject(trace.ContextWithSpanContext(context.Background(), unsampled), c)
		got := trace.SpanContextFromContext(propagation.Extract(context.Background(), c))
		if !got.IsValid() || got.IsSampled() {
			t.Fatalf("extracted %v, want valid and not sampled", got)
		}
	})
	t.Run("SetOverwrites", func(t *testing.T) {
		c := newCarrier()
		c.Set("traceparent", "first")
		c.Set("traceparent", "second")
		if got := c.Get("traceparent"); got != "second" {
			t.Fatalf("Get after two Sets = %q", got)
		}
		n := 0
		for _, k := range c.Keys() {
			if k == "traceparent" {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("Keys lists traceparent %d times", n)
		}
	})
	t.Run("MissingKey", func(t *testing.T) {
		c := newCarrier()
		if got := c.Get("traceparent"); got != "" {
			t.Fatalf("Get on an empty carrier = %q", got)
		}
		if sc := trace.SpanContextFromContext(propagation.Extract(context.Background(), c)); sc.IsValid() {
			t.Fatal("an empty carrier produced a span context")
		}
	})
	t.Run("Keys", func(t *testing.T) {
		c := newCarrier()
		c.Set("a", "1")
		c.Set("b", "2")
		keys := c.Keys()
		slices.Sort(keys)
		if !slices.Equal(keys, []string{"a", "b"}) {
			t.Fatalf("Keys = %v", keys)
		}
	})
}

// BenchmarkCarrier measures inject then extract of a sampled span context,
// tracestate and one baggage member through a fresh carrier from newCarrier
// per operation: the cost of a message whose header container exists only
// for the trace context.
func BenchmarkCarrier(b *testing.B, newCarrier NewCarrier) {
	benchCarrier(b, newCarrier, nil)
}

// BenchmarkCarrierReused measures the same through one carrier, emptied by
// reset between operations with its storage kept: the carrier's own cost per
// message, since a real message has a header container whether or not it is
// traced.
func BenchmarkCarrierReused(b *testing.B, c propagation.TextMapCarrier, reset func()) {
	benchCarrier(b, func() propagation.TextMapCarrier { return c }, reset)
}

func benchCarrier(b *testing.B, newCarrier NewCarrier, reset func()) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled,
	})
	ts, _ := trace.ParseTraceState("vendor=abc")
	member, _ := baggage.NewMember("tenant", "acme")
	bg, _ := baggage.New(member)
	ctx := baggage.ContextWithBaggage(trace.ContextWithSpanContext(context.Background(), sc.WithTraceState(ts)), bg)
	p := propagation.Default()
	b.ReportAllocs()
	for b.Loop() {
		if reset != nil {
			reset()
		}
		c := newCarrier()
		p.Inject(ctx, c)
		if !trace.SpanContextFromContext(p.Extract(context.Background(), c)).IsValid() {
			b.Fatal("lost the context")
		}
	}
}
