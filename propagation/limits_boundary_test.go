package propagation_test

import (
	"strings"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/propagation"
)

// The W3C limits as the specifications give them, written out rather than
// read from the package's constants, so that a changed constant fails here.
const (
	w3cTraceStateMembers = 32   // https://www.w3.org/TR/trace-context/#tracestate-header-field-values
	w3cBaggageBytes      = 8192 // https://www.w3.org/TR/baggage/#limits
)

// TestTraceStateLimitBoundary: a tracestate of exactly 32 members passes
// whole, and one of 33 loses its last member alone, on extract and on
// inject. (otel's parser refuses a tracestate over 32 members outright, so
// a 33rd member left in would cost the message all of them.)
func TestTraceStateLimitBoundary(t *testing.T) {
	for _, n := range []int{w3cTraceStateMembers, w3cTraceStateMembers + 1} {
		wantCut := int64(n - w3cTraceStateMembers)

		p, ctx, _, reader, _ := recorders(t)
		out := p.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent, "tracestate": members("k", n)})
		ts := trace.SpanContextFromContext(out).TraceState()
		if ts.Len() != w3cTraceStateMembers || ts.Get("k0") != "v0" || ts.Get("k31") != "v31" {
			t.Errorf("extract of %d members: tracestate %q, want the first %d", n, ts, w3cTraceStateMembers)
		}
		if got := droppedTotal(t, reader, "tracestate", propagation.ReasonLimit); got != wantCut {
			t.Errorf("extract of %d members: %d counted dropped, want %d", n, got, wantCut)
		}

		p, ctx, _, reader, _ = recorders(t, propagation.WithTextMapPropagator(rawPropagator{"tracestate": members("k", n)}))
		c := propagation.MapCarrier{}
		p.Inject(ctx, c)
		if want := members("k", w3cTraceStateMembers); c["tracestate"] != want {
			t.Errorf("inject of %d members wrote %q, want %q", n, c["tracestate"], want)
		}
		if got := droppedTotal(t, reader, "tracestate", propagation.ReasonLimit); got != wantCut {
			t.Errorf("inject of %d members: %d counted dropped, want %d", n, got, wantCut)
		}
	}
}

// bigMember returns a baggage member "key=xxx..." of n bytes.
func bigMember(t *testing.T, key string, n int) string {
	t.Helper()
	if n < len(key)+2 {
		t.Fatalf("member %q cannot be %d bytes", key, n)
	}
	return key + "=" + strings.Repeat("x", n-len(key)-1)
}

// TestBaggageByteLimitBoundary: a baggage header of exactly 8192 bytes is
// kept whole; one byte more costs its last member; and when members are
// cut for size, the members kept may fill the 8192 bytes exactly.
func TestBaggageByteLimitBoundary(t *testing.T) {
	// Three members (otel reads at most 4096 bytes per member) and two
	// commas: 2730*3 + 2 = 8192 bytes.
	exact := bigMember(t, "a", 2730) + "," + bigMember(t, "b", 2730) + "," + bigMember(t, "c", 2730)
	over := bigMember(t, "a", 2730) + "," + bigMember(t, "b", 2730) + "," + bigMember(t, "c", 2731)
	if len(exact) != w3cBaggageBytes || len(over) != w3cBaggageBytes+1 {
		t.Fatalf("test headers are %d and %d bytes", len(exact), len(over))
	}
	for _, tc := range []struct {
		name   string
		header string
		keep   []string
		cut    int64
	}{
		{"exactly 8192 bytes", exact, []string{"a", "b", "c"}, 0},
		{"8193 bytes", over, []string{"a", "b"}, 1},
		// The first three fill 8192 bytes; the fourth would pass them.
		{"cut to exactly 8192 bytes", exact + ",d=1", []string{"a", "b", "c"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ctx, _, reader, _ := recorders(t)
			bg := baggage.FromContext(p.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent, "baggage": tc.header}))
			if bg.Len() != len(tc.keep) {
				t.Errorf("extracted baggage has %d members, want %v", bg.Len(), tc.keep)
			}
			for _, k := range tc.keep {
				if bg.Member(k).Key() != k {
					t.Errorf("extracted baggage lost member %q", k)
				}
			}
			if got := droppedTotal(t, reader, "baggage", propagation.ReasonLimit); got != tc.cut {
				t.Errorf("%d counted dropped on extract, want %d", got, tc.cut)
			}

			p, ctx, _, reader, _ = recorders(t, propagation.WithTextMapPropagator(rawPropagator{"baggage": tc.header}))
			c := propagation.MapCarrier{}
			p.Inject(ctx, c)
			var want []string
			for i, m := range strings.Split(tc.header, ",") {
				if i < len(tc.keep) {
					want = append(want, m)
				}
			}
			if c["baggage"] != strings.Join(want, ",") {
				t.Errorf("injected baggage of %d bytes, want the first %d members (%d bytes)",
					len(c["baggage"]), len(tc.keep), len(strings.Join(want, ",")))
			}
			if got := droppedTotal(t, reader, "baggage", propagation.ReasonLimit); got != tc.cut {
				t.Errorf("%d counted dropped on inject, want %d", got, tc.cut)
			}
		})
	}
}
