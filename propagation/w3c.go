package propagation

import (
	"context"
	"encoding/hex"
	"strings"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"
)

// The W3C fallback propagator (TraceContext, then Baggage) is done here by
// hand, through a limit carrier on the caller's stack: the otel propagators
// take the carrier as an interface, which puts the limit wrapper on the heap
// (it was pooled: two sync.Pool round trips per message), and their Extract
// builds two contexts only to return a span context and a baggage.
// FuzzExtractW3C and FuzzInjectW3C hold both directions equal to the otel
// propagators on any input.

// injectW3C writes what W3C TraceContext and Baggage, composed in that
// order, would write for ctx, in the same order, through lc.
func injectW3C(ctx context.Context, lc *limitCarrier) {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		if ts := sc.TraceState().String(); ts != "" {
			lc.Set(TraceStateKey, ts)
		}
		var tp [55]byte // 00-{trace ID}-{span ID}-{flags}
		tp[0], tp[1], tp[2], tp[35], tp[52] = '0', '0', '-', '-', '-'
		tid, sid := sc.TraceID(), sc.SpanID()
		hex.Encode(tp[3:35], tid[:])
		hex.Encode(tp[36:52], sid[:])
		hex.Encode(tp[53:55], []byte{byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))})
		lc.Set(TraceParentKey, string(tp[:]))
	}
	if b := baggage.FromContext(ctx).String(); b != "" {
		lc.Set(BaggageKey, b)
	}
}

// extractW3C reads from lc what W3C TraceContext and Baggage, composed in
// that order, would extract, without the contexts they build to return it:
// the span context (remote) and the baggage. It reads as they do
// (traceparent; tracestate only after a well-formed traceparent; baggage),
// so the limits cut and count the same.
func extractW3C(c *limitCarrier) (trace.SpanContext, baggage.Baggage) {
	sc := extractTraceParent(c)
	var bg baggage.Baggage
	if s := c.Get(BaggageKey); s != "" {
		// Parse keeps the members it could read when others are malformed,
		// as the otel propagator does.
		bg, _ = baggage.Parse(s)
	}
	return sc, bg
}

// extractTraceParent is W3C TraceContext's extract: version 00 exactly, or
// a later version with its first four fields read and the rest ignored.
func extractTraceParent(c *limitCarrier) trace.SpanContext {
	scc, ok := parseTraceParent(c.Get(TraceParentKey))
	if !ok {
		return trace.SpanContext{}
	}
	// A malformed tracestate must not cost the traceparent (W3C). It is
	// read before the IDs are checked, as otel reads it, so that the
	// limits cut and count the same.
	scc.TraceState, _ = trace.ParseTraceState(c.Get(TraceStateKey))
	scc.Remote = true
	sc := trace.NewSpanContext(scc)
	if !sc.IsValid() {
		return trace.SpanContext{}
	}
	return sc
}

// validTraceParent reports whether h is a traceparent that parses and
// names a trace and a parent (neither ID all zeros).
func validTraceParent(h string) bool {
	scc, ok := parseTraceParent(h)
	return ok && scc.TraceID.IsValid() && scc.SpanID.IsValid()
}

// parseTraceParent reads the fields of a traceparent value; ok is false
// when it does not parse. The IDs are not checked.
func parseTraceParent(h string) (scc trace.SpanContextConfig, ok bool) {
	if h == "" {
		return scc, false
	}
	var version [1]byte
	if !hexField(version[:], &h, 2) || version[0] == 0xff {
		return scc, false
	}
	if !hexField(scc.TraceID[:], &h, 32) || !hexField(scc.SpanID[:], &h, 16) {
		return scc, false
	}
	var flags [1]byte
	if !hexField(flags[:], &h, 2) {
		return scc, false
	}
	if version[0] == 0 && (h != "" || flags[0] > 3) {
		return scc, false // no extra fields or reserved flags in 00
	}
	scc.TraceFlags = trace.TraceFlags(flags[0]) & (trace.FlagsSampled | trace.FlagsRandom)
	return scc, true
}

// hexField decodes the next '-'-separated field of *h, which must be n
// lower-case hex digits, into dst, and advances *h past it.
func hexField(dst []byte, h *string, n int) bool {
	field, rest, _ := strings.Cut(*h, "-")
	*h = rest
	if len(field) != n {
		return false
	}
	// Every invalid byte maps to 0xff: OR-ing all the values lets one test
	// at the end catch any, as no valid value has the high bits set.
	var invalid byte
	for i := 0; i < n; i += 2 {
		hi, lo := hexValue[field[i]], hexValue[field[i+1]]
		dst[i/2] = hi<<4 | lo
		invalid |= hi | lo
	}
	return invalid&0xf0 == 0
}

// hexValue maps the lower-case hex digits to their values and every other
// byte to 0xff; W3C disallows upper case.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	return t
}()
