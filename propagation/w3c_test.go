package propagation

import (
	"context"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	otelprop "go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// sameBaggage reports whether a and b hold the same members (their String
// order follows a map's).
func sameBaggage(a, b baggage.Baggage) bool {
	if a.Len() != b.Len() {
		return false
	}
	for _, m := range a.Members() {
		if b.Member(m.Key()).String() != m.String() {
			return false
		}
	}
	return true
}

var otelW3C = otelprop.NewCompositeTextMapPropagator(otelprop.TraceContext{}, otelprop.Baggage{})

// noLimits is a config under which a limit carrier cuts nothing.
var noLimits = config{maxTraceState: 1 << 30, maxBaggageB: 1 << 30, maxBaggageN: 1 << 30}

// FuzzExtractW3C holds the hand-written W3C extraction equal to the otel
// propagators it stands in for, on any headers, and ExtractDropped and
// ExtractSpanContext (which use it with the default propagator) equal to
// ExtractDropped through the otel propagators: span context, baggage,
// X-Ray fallback and dropped entries, from a context with a span and
// baggage of its own.
func FuzzExtractW3C(f *testing.F) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	f.Add(tp, "vendor=abc,other=1", "tenant=acme;p=1,region=eu", "")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-future", "", "", "")
	f.Add("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "a=1", "k=v", "") // upper case
	f.Add("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "", "", "")       // zero trace ID
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "", "", "")       // zero span ID
	f.Add("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", "", "")       // version ff
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", "", "", "") // extra field in 00
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-04", "", "", "")       // reserved flag
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", "", "", "")       // bad hex
	f.Add("garbage", "", "bad baggage,,k=v", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
	f.Add(tp, strings.Repeat("k=v,", 40), strings.Repeat("b=1,", 200), "")
	f.Add(tp, "\xff\xfe=\x00", "k=\xff", "")
	f.Fuzz(func(t *testing.T, traceparent, tracestate, bag, xray string) {
		c := MapCarrier{TraceParentKey: traceparent, TraceStateKey: tracestate, BaggageKey: bag, XRayKey: xray}

		sc, bg := extractW3C(&limitCarrier{TextMapCarrier: c, cfg: &noLimits})
		want := otelW3C.Extract(context.Background(), c)
		if wsc := trace.SpanContextFromContext(want); !sc.Equal(wsc) {
			t.Fatalf("span context %v, otel %v", sc, wsc)
		}
		if wbg := baggage.FromContext(want); !sameBaggage(bg, wbg) {
			t.Fatalf("baggage %q, otel %q", bg, wbg)
		}

		// The fast paths (the default W3C fallback) against the same
		// extraction through the otel propagators and the pooled limit
		// wrapper, from a context that already holds a span and baggage.
		local := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{9}})
		m, _ := baggage.NewMember("local", "1")
		lbg, _ := baggage.New(m)
		base := baggage.ContextWithBaggage(trace.ContextWithSpanContext(context.Background(), local), lbg)
		for _, xrayOn := range []bool{false, true} {
			p := New(WithXRayExtract(xrayOn))
			if p.TextMap() != fallback {
				t.Fatal("the default propagator is not the W3C fallback: the fast path is not under test")
			}
			q := New(WithXRayExtract(xrayOn), WithTextMapPropagator(otelW3C))
			want, wdropped := q.ExtractDropped(base, c)
			got, dropped := p.ExtractDropped(base, c)
			if gsc, wsc := trace.SpanContextFromContext(got), trace.SpanContextFromContext(want); !gsc.Equal(wsc) {
				t.Fatalf("xray=%v: ExtractDropped %v, through otel %v", xrayOn, gsc, wsc)
			}
			if gbg, wbg := baggage.FromContext(got), baggage.FromContext(want); !sameBaggage(gbg, wbg) {
				t.Fatalf("xray=%v: ExtractDropped baggage %q, through otel %q", xrayOn, gbg, wbg)
			}
			if !slices.Equal(dropped, wdropped) {
				t.Fatalf("xray=%v: ExtractDropped dropped %v, through otel %v", xrayOn, dropped, wdropped)
			}
			wout, wd := q.ExtractDropped(context.Background(), c)
			fsc, fbg, fdropped := p.ExtractSpanContext(c)
			if wsc := trace.SpanContextFromContext(wout); !fsc.Equal(wsc) {
				t.Fatalf("xray=%v: ExtractSpanContext %v, through otel %v", xrayOn, fsc, wsc)
			}
			if wbg := baggage.FromContext(wout); !sameBaggage(fbg, wbg) {
				t.Fatalf("xray=%v: ExtractSpanContext baggage %q, through otel %q", xrayOn, fbg, wbg)
			}
			if !slices.Equal(fdropped, wd) {
				t.Fatalf("xray=%v: ExtractSpanContext dropped %v, through otel %v", xrayOn, fdropped, wd)
			}
		}
	})
}

// FuzzInjectW3C holds the hand-written W3C injection equal to the otel
// propagators on any span context, tracestate and baggage: the same headers
// through the same limits, and the same entries dropped.
func FuzzInjectW3C(f *testing.F) {
	f.Add([]byte{0x4b, 0xf9, 1}, []byte{0, 0xf0, 0x67}, byte(1), "vendor=abc,other=1", "tenant=acme;p=1,region=eu")
	f.Add([]byte{}, []byte{}, byte(0), "", "")
	f.Add([]byte{1}, []byte{1}, byte(0xff), strings.Repeat("k=v,", 40), strings.Repeat("b=1,", 200))
	f.Add([]byte{1}, []byte{2}, byte(2), "", "k="+strings.Repeat("v", 9000))
	f.Fuzz(func(t *testing.T, tid, sid []byte, flags byte, tracestate, bag string) {
		var scc trace.SpanContextConfig
		copy(scc.TraceID[:], tid)
		copy(scc.SpanID[:], sid)
		scc.TraceFlags = trace.TraceFlags(flags)
		scc.TraceState, _ = trace.ParseTraceState(tracestate)
		ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(scc))
		if b, err := baggage.Parse(bag); err == nil {
			ctx = baggage.ContextWithBaggage(ctx, b)
		}
		fast := New()
		if fast.TextMap() != fallback {
			t.Fatal("the default propagator is not the W3C fallback: the fast path is not under test")
		}
		viaOtel := New(WithTextMapPropagator(otelW3C))
		got, want := MapCarrier{}, MapCarrier{}
		fast.Inject(ctx, got)
		viaOtel.Inject(ctx, want)
		if len(got) != len(want) {
			t.Fatalf("injected %v, otel %v", got, want)
		}
		for k, v := range want {
			if k == BaggageKey {
				continue
			}
			if got[k] != v {
				t.Fatalf("%s = %q, otel %q", k, got[k], v)
			}
		}
		// Baggage members come out in map order, different on every call:
		// compare them as sets when nothing was cut; when the limits cut
		// (which members survive then depends on that order), both sides
		// must hold a within-limit subset of the context's members.
		whole := baggage.FromContext(ctx)
		gb, _ := baggage.Parse(got[BaggageKey])
		wb, _ := baggage.Parse(want[BaggageKey])
		if s := whole.String(); len(s) <= MaxBaggageBytes && whole.Len() <= MaxBaggageMembers {
			if !sameBaggage(gb, wb) {
				t.Fatalf("baggage %q, otel %q", got[BaggageKey], want[BaggageKey])
			}
		} else {
			for _, m := range gb.Members() {
				if whole.Member(m.Key()).String() != m.String() {
					t.Fatalf("injected baggage member %q is not the context's", m)
				}
			}
			if len(got[BaggageKey]) > MaxBaggageBytes || gb.Len() > MaxBaggageMembers {
				t.Fatalf("injected baggage over the limits: %d bytes, %d members", len(got[BaggageKey]), gb.Len())
			}
		}
	})
}

// TestInjectAllocations: the W3C fast path allocates no limit wrapper:
// injecting a sampled context into a map costs the traceparent string alone.
func TestInjectAllocations(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	c := MapCarrier{}
	p := New()
	fast := testing.AllocsPerRun(100, func() { p.Inject(ctx, c) })
	viaOtel := New(WithTextMapPropagator(otelW3C))
	full := testing.AllocsPerRun(100, func() { viaOtel.Inject(ctx, c) })
	if fast > full {
		t.Errorf("Inject %.0f allocations on the fast path, %.0f through the otel propagator", fast, full)
	}
	if fast > 1 {
		t.Errorf("Inject %.0f allocations, want 1 (the traceparent string)", fast)
	}
}

// TestExtractSpanContextAllocations: the fast path builds no context, so it
// costs fewer allocations than ExtractDropped on the same headers.
func TestExtractSpanContextAllocations(t *testing.T) {
	c := MapCarrier{TraceParentKey: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceStateKey: "vendor=abc"}
	p := New()
	fast := testing.AllocsPerRun(100, func() { p.ExtractSpanContext(c) })
	full := testing.AllocsPerRun(100, func() { p.ExtractDropped(context.Background(), c) })
	if fast+2 > full {
		t.Errorf("ExtractSpanContext %.0f allocations, ExtractDropped %.0f: want at least 2 fewer", fast, full)
	}
}
