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

// FuzzExtractW3C holds the hand-written W3C extraction equal to the otel
// propagators it stands in for, on any headers, and ExtractSpanContext
// (which uses it) equal to ExtractDropped (which calls the propagators),
// limits, X-Ray fallback and what was dropped included.
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

		sc, bg := extractW3C(c)
		want := otelW3C.Extract(context.Background(), c)
		if wsc := trace.SpanContextFromContext(want); !sc.Equal(wsc) {
			t.Fatalf("span context %v, otel %v", sc, wsc)
		}
		if wbg := baggage.FromContext(want); !sameBaggage(bg, wbg) {
			t.Fatalf("baggage %q, otel %q", bg, wbg)
		}

		for _, xrayOn := range []bool{false, true} {
			p := New(WithXRayExtract(xrayOn))
			if p.TextMap() != fallback {
				t.Fatal("the default propagator is not the W3C fallback: the fast path is not under test")
			}
			fsc, fbg, fdropped := p.ExtractSpanContext(c)
			out, dropped := p.ExtractDropped(context.Background(), c)
			if osc := trace.SpanContextFromContext(out); !fsc.Equal(osc) {
				t.Fatalf("xray=%v: ExtractSpanContext %v, ExtractDropped %v", xrayOn, fsc, osc)
			}
			if obg := baggage.FromContext(out); !sameBaggage(fbg, obg) {
				t.Fatalf("xray=%v: ExtractSpanContext baggage %q, ExtractDropped %q", xrayOn, fbg, obg)
			}
			if !slices.Equal(fdropped, dropped) {
				t.Fatalf("xray=%v: ExtractSpanContext dropped %v, ExtractDropped %v", xrayOn, fdropped, dropped)
			}
		}
	})
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
