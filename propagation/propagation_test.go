package propagation_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	otelprop "go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/propagation"
)

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func members(prefix string, n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("%s%d=v%d", prefix, i, i)
	}
	return strings.Join(parts, ",")
}

func spanContext(t *testing.T) trace.SpanContext {
	t.Helper()
	ctx := otelprop.TraceContext{}.Extract(context.Background(), otelprop.MapCarrier{"traceparent": traceparent})
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		t.Fatal("test traceparent does not parse")
	}
	return sc
}

func TestDefaultFallsBackToW3CWhenNoGlobalPropagator(t *testing.T) {
	// The global propagator of a program that never set one has no fields.
	if n := len(otel.GetTextMapPropagator().Fields()); n != 0 {
		t.Fatalf("test assumes no global propagator, found %d fields", n)
	}
	fields := propagation.New().Fields()
	for _, want := range []string{"traceparent", "tracestate", "baggage"} {
		if !contains(fields, want) {
			t.Errorf("Fields() = %v, missing %q", fields, want)
		}
	}
	c := propagation.MapCarrier{}
	ctx := trace.ContextWithSpanContext(context.Background(), spanContext(t))
	propagation.Inject(ctx, c)
	if c["traceparent"] != traceparent {
		t.Fatalf("traceparent = %q, want %q", c["traceparent"], traceparent)
	}
}

func TestExplicitPropagatorWins(t *testing.T) {
	p := propagation.New(propagation.WithTextMapPropagator(otelprop.Baggage{}))
	c := propagation.MapCarrier{}
	ctx := trace.ContextWithSpanContext(context.Background(), spanContext(t))
	p.Inject(ctx, c)
	if _, ok := c["traceparent"]; ok {
		t.Fatal("baggage-only propagator wrote traceparent")
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestRoundTrip(t *testing.T) {
	sc := spanContext(t)
	m, _ := baggage.NewMember("tenant", "acme")
	bg, _ := baggage.New(m)
	ctx := baggage.ContextWithBaggage(trace.ContextWithSpanContext(context.Background(), sc), bg)
	c := propagation.MapCarrier{}
	propagation.Inject(ctx, c)
	out := propagation.Extract(context.Background(), c)
	got := trace.SpanContextFromContext(out)
	if got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() || !got.IsRemote() {
		t.Fatalf("extracted %v, want %v (remote)", got, sc)
	}
	if v := baggage.FromContext(out).Member("tenant").Value(); v != "acme" {
		t.Fatalf("baggage tenant = %q", v)
	}
}

// recorders returns a Propagator reporting to a manual metric reader and a
// context holding a recording span.
func recorders(t *testing.T, opts ...propagation.Option) (*propagation.Propagator, context.Context, *tracetest.SpanRecorder, *sdkmetric.ManualReader, trace.Span) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, span := tp.Tracer("t").Start(context.Background(), "parent")
	p := propagation.New(append([]propagation.Option{propagation.WithMeterProvider(mp)}, opts...)...)
	return p, ctx, rec, reader, span
}

func droppedTotal(t *testing.T, r *sdkmetric.ManualReader, field, reason string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "otelmq.propagation.dropped" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				f, _ := dp.Attributes.Value(propagation.FieldKey)
				re, _ := dp.Attributes.Value(propagation.ReasonKey)
				if f.AsString() == field && re.AsString() == reason {
					total += dp.Value
				}
			}
		}
	}
	return total
}

func TestExtractCutsTraceStateToW3CLimit(t *testing.T) {
	p, ctx, rec, reader, span := recorders(t)
	c := propagation.MapCarrier{"traceparent": traceparent, "tracestate": members("k", 40)}
	out := p.Extract(ctx, c)
	span.End()
	sc := trace.SpanContextFromContext(out)
	if !sc.IsValid() {
		t.Fatal("a long tracestate must not cost the trace context")
	}
	if n := sc.TraceState().Len(); n != propagation.MaxTraceStateMembers {
		t.Fatalf("tracestate has %d members, want %d (the first ones)", n, propagation.MaxTraceStateMembers)
	}
	if sc.TraceState().Get("k0") != "v0" || sc.TraceState().Get("k31") != "v31" {
		t.Fatalf("the first members must be kept: %s", sc.TraceState())
	}
	if got := droppedTotal(t, reader, "tracestate", propagation.ReasonLimit); got != 8 {
		t.Fatalf("dropped counter = %d, want 8", got)
	}
	if !hasDroppedEvent(rec.Ended()[0], "tracestate") {
		t.Fatal("no dropped event on the span in ctx")
	}
}

func hasDroppedEvent(s sdktrace.ReadOnlySpan, field string) bool {
	for _, e := range s.Events() {
		if e.Name != propagation.DroppedEventName {
			continue
		}
		for _, a := range e.Attributes {
			if a.Key == propagation.FieldKey && a.Value.AsString() == field {
				return true
			}
		}
	}
	return false
}

func TestExtractCutsBaggage(t *testing.T) {
	for name, tc := range map[string]struct {
		header     string
		maxMembers int
	}{
		"too many members": {members("m", 200), propagation.MaxBaggageMembers},
		"too many bytes":   {members("x"+strings.Repeat("y", 100), 120), -1},
		"100 KB":           {"big=" + strings.Repeat("z", 100<<10) + "," + members("s", 3), -1},
	} {
		t.Run(name, func(t *testing.T) {
			p, ctx, _, reader, _ := recorders(t)
			c := propagation.MapCarrier{"traceparent": traceparent, "baggage": tc.header}
			out := p.Extract(ctx, c)
			bg := baggage.FromContext(out)
			if bg.Len() == 0 {
				t.Fatal("over-limit baggage must be cut, not thrown away")
			}
			if len(bg.String()) > propagation.MaxBaggageBytes {
				t.Fatalf("baggage is %d bytes", len(bg.String()))
			}
			if tc.maxMembers > 0 && bg.Len() != tc.maxMembers {
				t.Fatalf("baggage has %d members, want %d", bg.Len(), tc.maxMembers)
			}
			if droppedTotal(t, reader, "baggage", propagation.ReasonLimit) == 0 {
				t.Fatal("nothing counted as dropped")
			}
			if !trace.SpanContextFromContext(out).IsValid() {
				t.Fatal("baggage limits must not cost the trace context")
			}
		})
	}
}

// rawPropagator writes fixed header values, as a custom or foreign
// propagator might, to show that the limits also hold on inject.
type rawPropagator map[string]string

func (r rawPropagator) Inject(_ context.Context, c otelprop.TextMapCarrier) {
	for k, v := range r {
		c.Set(k, v)
	}
}
func (r rawPropagator) Extract(ctx context.Context, _ otelprop.TextMapCarrier) context.Context {
	return ctx
}
func (r rawPropagator) Fields() []string { return []string{"tracestate", "baggage"} }

func TestInjectCutsToLimits(t *testing.T) {
	raw := rawPropagator{"tracestate": members("k", 40), "baggage": members("b", 70)}
	p, ctx, rec, reader, span := recorders(t, propagation.WithTextMapPropagator(raw))
	c := propagation.MapCarrier{}
	p.Inject(ctx, c)
	span.End()
	if n := strings.Count(c["tracestate"], ",") + 1; n != propagation.MaxTraceStateMembers {
		t.Fatalf("injected tracestate has %d members", n)
	}
	if n := strings.Count(c["baggage"], ",") + 1; n != propagation.MaxBaggageMembers {
		t.Fatalf("injected baggage has %d members", n)
	}
	if got := droppedTotal(t, reader, "tracestate", propagation.ReasonLimit); got != 8 {
		t.Fatalf("tracestate dropped counter = %d, want 8", got)
	}
	if got := droppedTotal(t, reader, "baggage", propagation.ReasonLimit); got != 6 {
		t.Fatalf("baggage dropped counter = %d, want 6", got)
	}
	if !hasDroppedEvent(rec.Ended()[0], "baggage") || !hasDroppedEvent(rec.Ended()[0], "tracestate") {
		t.Fatal("no dropped events on the producer span")
	}
}

func TestExtractInvalidTraceparentIsRecorded(t *testing.T) {
	p, ctx, _, reader, _ := recorders(t)
	out, dropped := p.ExtractDropped(ctx, propagation.MapCarrier{"traceparent": "00-zzzz-01"})
	if sc := trace.SpanContextFromContext(out); sc.IsRemote() {
		t.Fatalf("invalid traceparent produced %v", sc)
	}
	if len(dropped) != 1 || dropped[0].Reason != propagation.ReasonInvalid {
		t.Fatalf("dropped = %+v", dropped)
	}
	if droppedTotal(t, reader, "traceparent", propagation.ReasonInvalid) != 1 {
		t.Fatal("invalid traceparent not counted")
	}
	// The caller's own span stays in the context.
	if trace.SpanFromContext(out) != trace.SpanFromContext(ctx) {
		t.Fatal("Extract lost the caller's span")
	}
}

func TestXRayFallbackAndW3CWins(t *testing.T) {
	xray := "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	out := propagation.Extract(context.Background(), propagation.MapCarrier{propagation.XRayKey: xray})
	sc := trace.SpanContextFromContext(out)
	if sc.TraceID().String() != "5759e988bd862e3fe1be46a994272793" || sc.SpanID().String() != "53995c3f42cd8ad8" || !sc.IsSampled() {
		t.Fatalf("X-Ray fallback gave %v", sc)
	}
	both := propagation.MapCarrier{propagation.XRayKey: xray, "traceparent": traceparent}
	sc = trace.SpanContextFromContext(propagation.Extract(context.Background(), both))
	if sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("W3C must win over X-Ray, got %v", sc)
	}
	off := propagation.New(propagation.WithXRayExtract(false))
	if trace.SpanContextFromContext(off.Extract(context.Background(), propagation.MapCarrier{propagation.XRayKey: xray})).IsValid() {
		t.Fatal("WithXRayExtract(false) still used the X-Ray header")
	}
}

func TestXRayInject(t *testing.T) {
	p := propagation.New(propagation.WithXRayInject(true))
	c := propagation.MapCarrier{}
	p.Inject(trace.ContextWithSpanContext(context.Background(), spanContext(t)), c)
	want := "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1"
	if c[propagation.XRayKey] != want {
		t.Fatalf("X-Ray header = %q, want %q", c[propagation.XRayKey], want)
	}
	if !contains(p.Fields(), propagation.XRayKey) {
		t.Fatal("Fields() misses the X-Ray key")
	}
}

func TestParseXRay(t *testing.T) {
	for _, tc := range []struct {
		in      string
		ok      bool
		sampled bool
	}{
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1", true, true},
		{"Root=1-5759e988-bd862e3fe1be46a994272793; Parent=53995c3f42cd8ad8; Sampled=0; Lineage=a:1", true, false},
		{"Parent=53995c3f42cd8ad8;Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?", true, false},
		{"Root=1-5759e988-bd862e3fe1be46a994272793", false, false},
		{"Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8", false, false},
		{"Root=1-5759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8", false, false},
		{"Root=1-5759e988xbd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8", false, false},
		{"Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8", false, false},
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000", false, false},
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=xyz", false, false},
		{"", false, false},
		{strings.Repeat("Root=;", 1000), false, false},
	} {
		sc, ok := propagation.ParseXRay(tc.in)
		if ok != tc.ok || (ok && sc.IsSampled() != tc.sampled) {
			t.Errorf("ParseXRay(%q) = %v, %v; want ok=%v sampled=%v", tc.in, sc, ok, tc.ok, tc.sampled)
		}
		if ok && !sc.IsRemote() {
			t.Errorf("ParseXRay(%q) is not remote", tc.in)
		}
	}
}

// TestParseXRayFieldsAndSpacing pins what ParseXRay reads beyond the
// canonical "Root=...;Parent=...;Sampled=1". As the AWS X-Ray SDKs do, it
// trims spaces around each field (some writers put "; " between fields),
// ignores Self, Lineage, custom fields, empty fields and a field without
// "=" in any order, and matches the keys Root, Parent and Sampled exactly,
// with the "=" right after. Hex digits may be upper case (AWS writes lower
// case; the format says hexadecimal): they are the same IDs.
func TestParseXRayFieldsAndSpacing(t *testing.T) {
	const (
		tid = "5759e988bd862e3fe1be46a994272793"
		sid = "53995c3f42cd8ad8"
	)
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"Self=1-67891233-12456789abcdef012345678;Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;CalledFrom=app", true},
		{"Root=1-5759e988-bd862e3fe1be46a994272793; Parent=53995c3f42cd8ad8; Sampled=1", true},
		{" Root=1-5759e988-bd862e3fe1be46a994272793 ;\tParent=53995c3f42cd8ad8\t; Sampled=1 ", true},
		{"Root=1-5759e988-bd862e3fe1be46a994272793;;Parent=53995c3f42cd8ad8;Sampled=1;", true},
		{"Root=1-5759E988-BD862E3FE1BE46A994272793;Parent=53995C3F42CD8AD8;Sampled=1", true},
		{"Lineage=1:a1b2c3d4:3;Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=not-v2;k=v=w;junk", true},
		{"Root = 1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1", false},
		{"Root= 1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1", false},
		{"root=1-5759e988-bd862e3fe1be46a994272793;parent=53995c3f42cd8ad8;Sampled=1", false},
		{"Root=1-5759e988-bd862e3fe1be46a994272793,Parent=53995c3f42cd8ad8,Sampled=1", false},
	} {
		sc, ok := propagation.ParseXRay(tc.in)
		if ok != tc.ok {
			t.Errorf("ParseXRay(%q) ok = %v, want %v", tc.in, ok, tc.ok)
			continue
		}
		if ok && (sc.TraceID().String() != tid || sc.SpanID().String() != sid || !sc.IsSampled()) {
			t.Errorf("ParseXRay(%q) = %v", tc.in, sc)
		}
	}
}

// TestParseXRaySampled pins how the Sampled field maps to the sampled
// flag: only a last Sampled field of exactly 1 sets it. Sampled=? and no
// Sampled field still give a valid context, not sampled (see ParseXRay).
func TestParseXRaySampled(t *testing.T) {
	const ids = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8"
	for _, tc := range []struct {
		fields  string
		sampled bool
	}{
		{";Sampled=1", true},
		{"; Sampled=1 ", true},
		{";Sampled=0", false},
		{";Sampled=?", false},
		{"", false},
		{";Sampled=", false},
		{";Sampled=true", false},
		{";Sampled=11", false},
		{";Sampled=01", false},
		{";sampled=1", false},
		{";Sampled=1;Sampled=0", false},
		{";Sampled=0;Sampled=1", true},
		{";Sampled=1;Sampled=?", false},
	} {
		sc, ok := propagation.ParseXRay(ids + tc.fields)
		if !ok || !sc.IsRemote() || sc.IsSampled() != tc.sampled {
			t.Errorf("ParseXRay(%q) = %v, %v; want a remote context, sampled=%v", ids+tc.fields, sc, ok, tc.sampled)
		}
	}
}

// TestXRayUndecidedUnderParentBased shows what the ParseXRay doc says a
// deferred decision (Sampled=? or no Sampled field) leads to: under the
// SDK's default ParentBased sampler the message's span keeps the X-Ray
// trace ID and is not sampled, even with AlwaysSample as the root sampler;
// a sampler with WithRemoteParentNotSampled decides for it.
func TestXRayUndecidedUnderParentBased(t *testing.T) {
	const ids = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8"
	byDefault := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	deciding := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample(),
		sdktrace.WithRemoteParentNotSampled(sdktrace.AlwaysSample()))))
	for _, tc := range []struct {
		header  string
		sampled bool
	}{
		{ids + ";Sampled=?", false},
		{ids + ";Sampled=?;Lineage=1:a1b2c3d4:3", false},
		{ids, false},
		{ids + ";Sampled=1", true},
	} {
		ctx := propagation.Extract(context.Background(), propagation.MapCarrier{propagation.XRayKey: tc.header})
		_, span := byDefault.Tracer("t").Start(ctx, "process")
		sc := span.SpanContext()
		span.End()
		if sc.TraceID().String() != "5759e988bd862e3fe1be46a994272793" || sc.IsSampled() != tc.sampled {
			t.Errorf("%q under ParentBased: span %v, want the X-Ray trace, sampled=%v", tc.header, sc, tc.sampled)
		}
		_, span = deciding.Tracer("t").Start(ctx, "process")
		if sc := span.SpanContext(); !sc.IsSampled() || sc.TraceID().String() != "5759e988bd862e3fe1be46a994272793" {
			t.Errorf("%q with WithRemoteParentNotSampled: span %v, want sampled in the X-Ray trace", tc.header, sc)
		}
		span.End()
	}
}

// padXRay returns header with a custom field appended that makes it n
// bytes long.
func padXRay(t *testing.T, header string, n int) string {
	t.Helper()
	const field = ";Pad="
	if n < len(header)+len(field) {
		t.Fatalf("cannot pad %q to %d bytes", header, n)
	}
	return header + field + strings.Repeat("x", n-len(header)-len(field))
}

// TestParseXRayLongHeaders: a header with Self, Lineage and custom fields
// is read up to XRayMaxLen bytes (a 256-byte cap refused such headers,
// which an ALB forwards and AWS APIs carry up to 8192 bytes), and one byte
// more is refused.
func TestParseXRayLongHeaders(t *testing.T) {
	const alb = "Self=1-67891233-12456789abcdef012345678;Root=1-5759e988-bd862e3fe1be46a994272793;" +
		"Parent=53995c3f42cd8ad8;Sampled=1;Lineage=1:a1b2c3d4:3;CalledFrom=app"
	for _, n := range []int{257, 1024, propagation.XRayMaxLen} {
		h := padXRay(t, alb, n)
		sc, ok := propagation.ParseXRay(h)
		if !ok || sc.TraceID().String() != "5759e988bd862e3fe1be46a994272793" || sc.SpanID().String() != "53995c3f42cd8ad8" || !sc.IsSampled() {
			t.Errorf("ParseXRay of a %d-byte header = %v, %v", n, sc, ok)
		}
	}
	if sc, ok := propagation.ParseXRay(padXRay(t, alb, propagation.XRayMaxLen+1)); ok {
		t.Errorf("ParseXRay read a header over XRayMaxLen: %v", sc)
	}
}

// FuzzParseXRay holds ParseXRay to what its tests pin, on any input: no
// header over XRayMaxLen is read; spaces around fields change nothing;
// neither does a Lineage or custom field added before or after; what is
// read survives FormatXRay; and a message relayed under the context read
// from its header keeps that header as written.
func FuzzParseXRay(f *testing.F) {
	f.Add("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
	f.Add("Root=1-;Parent=;Sampled=")
	f.Add("Self=1-67891233-12456789abcdef012345678; Root=1-5759E988-BD862E3FE1BE46A994272793; Parent=53995c3f42cd8ad8; Sampled=?; Lineage=1:a1b2c3d4:3; k=v")
	f.Add("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Sampled=0;;junk;")
	// Past the old 256-byte cap. A seed of XRayMaxLen bytes kept the fuzzer
	// from making progress here; TestParseXRayLongHeaders covers the bound.
	f.Add("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Pad=" + strings.Repeat("x", 220))
	p := propagation.New(propagation.WithXRayInject(true))
	f.Fuzz(func(t *testing.T, s string) {
		sc, ok := propagation.ParseXRay(s)
		if ok && len(s) > propagation.XRayMaxLen {
			t.Fatalf("read a %d-byte header", len(s))
		}
		same := func(variant string) {
			t.Helper()
			if len(variant) > propagation.XRayMaxLen {
				return
			}
			if vsc, vok := propagation.ParseXRay(variant); vok != ok || !vsc.Equal(sc) {
				t.Fatalf("ParseXRay(%q) = %v, %v; ParseXRay(%q) = %v, %v", variant, vsc, vok, s, sc, ok)
			}
		}
		same(strings.ReplaceAll(s, ";", " ;\t"))
		same("Lineage=1:a1b2c3d4:3;" + s)
		same(s + ";CalledFrom=app")
		if !ok {
			return
		}
		if !sc.IsValid() || !sc.IsRemote() {
			t.Fatalf("ok with span context %v for %q", sc, s)
		}
		back, ok := propagation.ParseXRay(propagation.FormatXRay(sc))
		if !ok || back.TraceID() != sc.TraceID() || back.SpanID() != sc.SpanID() || back.IsSampled() != sc.IsSampled() {
			t.Fatalf("format/parse round trip of %q lost data", s)
		}
		c := propagation.MapCarrier{propagation.XRayKey: s}
		p.Inject(trace.ContextWithRemoteSpanContext(context.Background(), sc), c)
		if c[propagation.XRayKey] != s {
			t.Fatalf("relaying %q rewrote it to %q", s, c[propagation.XRayKey])
		}
	})
}

// FuzzExtract feeds hostile header values to the full extract path: it must
// never panic, and what it returns must respect the W3C limits.
func FuzzExtract(f *testing.F) {
	f.Add(traceparent, members("k", 40), members("b", 200), "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8")
	f.Add("00-", ",,,,", "=;=;", "Root=")
	p := propagation.New()
	f.Fuzz(func(t *testing.T, tp, ts, bg, xray string) {
		c := propagation.MapCarrier{"traceparent": tp, "tracestate": ts, "baggage": bg, propagation.XRayKey: xray}
		out := p.Extract(context.Background(), c)
		if n := trace.SpanContextFromContext(out).TraceState().Len(); n > propagation.MaxTraceStateMembers {
			t.Fatalf("tracestate with %d members", n)
		}
		b := baggage.FromContext(out)
		if b.Len() > propagation.MaxBaggageMembers {
			t.Fatalf("baggage with %d members", b.Len())
		}
		// Re-injecting what was extracted must also stay within limits.
		c2 := propagation.MapCarrier{}
		p.Inject(out, c2)
		if len(c2["baggage"]) > propagation.MaxBaggageBytes {
			t.Fatalf("re-injected baggage is %d bytes", len(c2["baggage"]))
		}
		// The same lists split over several fields read as one.
		split := splitFields{c}
		sc, sbg, sd := p.ExtractSpanContext(split)
		wsc, wbg, wd := p.ExtractSpanContext(c)
		same := sc.Equal(wsc) && sbg.Len() == wbg.Len() && slices.Equal(sd, wd)
		for _, m := range wbg.Members() {
			same = same && sbg.Member(m.Key()).String() == m.String()
		}
		if !same {
			t.Fatalf("split fields: %v %q %v, one field: %v %q %v", sc, sbg, sd, wsc, wbg, wd)
		}
	})
}

// splitFields is a carrier that holds each list header (tracestate,
// baggage) as several fields, split at every comma, as an HTTP
// intermediary may pass them on.
type splitFields struct{ propagation.MapCarrier }

func (s splitFields) Values(key string) []string {
	v := s.MapCarrier.Get(key)
	if v == "" {
		return nil
	}
	if key == "tracestate" || key == "baggage" {
		return strings.Split(v, ",")
	}
	return []string{v}
}

// Get returns the first field, as http.Header does.
func (s splitFields) Get(key string) string {
	if vs := s.Values(key); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// countingCarrier counts the reads of each key.
type countingCarrier struct {
	propagation.MapCarrier
	gets map[string]int
}

func (c *countingCarrier) Get(key string) string {
	c.gets[key]++
	return c.MapCarrier.Get(key)
}

// TestLimitsCostNoExtraReads: the limits are applied as the fields are
// written and read, so Inject reads nothing back and Extract reads each field
// once. Carriers that store bytes (Kafka) allocate on every Get.
func TestLimitsCostNoExtraReads(t *testing.T) {
	sc := spanContext(t)
	ts, _ := trace.ParseTraceState("vendor=abc")
	m, _ := baggage.NewMember("tenant", "acme")
	bg, _ := baggage.New(m)
	ctx := baggage.ContextWithBaggage(trace.ContextWithSpanContext(context.Background(), sc.WithTraceState(ts)), bg)
	p := propagation.New(propagation.WithXRayExtract(false))
	c := &countingCarrier{MapCarrier: propagation.MapCarrier{}, gets: map[string]int{}}
	p.Inject(ctx, c)
	if len(c.gets) != 0 {
		t.Fatalf("Inject read %v back from the carrier", c.gets)
	}
	if trace.SpanContextFromContext(p.Extract(context.Background(), c)).TraceID() != sc.TraceID() {
		t.Fatal("lost the trace")
	}
	for _, k := range []string{"traceparent", "tracestate", "baggage"} {
		if c.gets[k] != 1 {
			t.Errorf("Extract read %s %d times, want 1", k, c.gets[k])
		}
	}
}

// TestInjectCutToNothingReplacesOldValue: a baggage whose first member alone
// is over the byte limit is cut to nothing; a baggage already in the carrier
// must not survive as if it were this message's.
func TestInjectCutToNothingReplacesOldValue(t *testing.T) {
	huge := "k=" + strings.Repeat("v", propagation.MaxBaggageBytes)
	p := propagation.New(propagation.WithTextMapPropagator(rawPropagator{"baggage": huge}))
	c := propagation.MapCarrier{"baggage": "stale=1"}
	p.Inject(context.Background(), c)
	if v := c["baggage"]; v != "" {
		t.Fatalf("baggage = %q, want the stale value replaced by nothing", v)
	}
	fresh := propagation.MapCarrier{}
	p.Inject(context.Background(), fresh)
	if _, ok := fresh["baggage"]; ok {
		t.Fatal("an empty baggage header was written into a carrier that had none")
	}
}

// TestInjectWritesWhatTheContextHolds: Inject skips the W3C propagators when
// the context holds neither a span context nor baggage; the skip must not
// lose baggage alone or a span context alone, nor skip a propagator that
// writes something else.
func TestInjectWritesWhatTheContextHolds(t *testing.T) {
	m, _ := baggage.NewMember("tenant", "acme")
	bg, _ := baggage.New(m)
	cases := []struct {
		name    string
		p       *propagation.Propagator
		ctx     context.Context
		want    []string
		injects bool // what Injects answers: false only when surely nothing is written
	}{
		{"nothing", propagation.New(), context.Background(), nil, false},
		{"baggage alone", propagation.New(), baggage.ContextWithBaggage(context.Background(), bg), []string{"baggage"}, true},
		{"span context alone", propagation.New(), trace.ContextWithSpanContext(context.Background(), spanContext(t)), []string{"traceparent"}, true},
		{"a propagator of its own", propagation.New(propagation.WithTextMapPropagator(rawPropagator{"x-tenant": "acme"})), context.Background(), []string{"x-tenant"}, true},
		{"X-Ray on, nothing to write", propagation.New(propagation.WithXRayInject(true)), context.Background(), nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := propagation.MapCarrier{}
			tc.p.Inject(tc.ctx, c)
			if got := c.Keys(); len(got) != len(tc.want) || (len(got) == 1 && got[0] != tc.want[0]) {
				t.Errorf("Inject wrote %v, want %v", c, tc.want)
			}
			if got := tc.p.Injects(tc.ctx); got != tc.injects {
				t.Errorf("Injects = %v, want %v", got, tc.injects)
			}
		})
	}
}

// BenchmarkInjectNothing is Inject with tracing off (no span context, no
// baggage), what every publish pays under a no-op provider.
func BenchmarkInjectNothing(b *testing.B) {
	p := propagation.New()
	c := propagation.MapCarrier{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p.Inject(ctx, c)
	}
	if len(c) != 0 {
		b.Fatal("wrote into the carrier")
	}
}

// TestExtractCombinesListHeaderFields: tracestate and baggage may arrive as
// several fields of one header (W3C: combined in order, as RFC 9110 joins
// them). A carrier that can return them all (a ValuesGetter, such as
// otel's HeaderCarrier or a nats.Header) must not lose all but the first,
// and the limits apply to the combined list.
func TestExtractCombinesListHeaderFields(t *testing.T) {
	h := http.Header{}
	h.Set("traceparent", traceparent)
	h.Add("tracestate", "x=1")
	h.Add("tracestate", "y=2")
	h.Add("baggage", "a=1")
	h.Add("baggage", "b=2")
	c := otelprop.HeaderCarrier(h)
	viaOtel := otelprop.NewCompositeTextMapPropagator(otelprop.TraceContext{}, otelprop.Baggage{})
	for name, p := range map[string]*propagation.Propagator{
		"default W3C":      propagation.New(),
		"otel W3C wrapped": propagation.New(propagation.WithTextMapPropagator(viaOtel)),
	} {
		t.Run(name, func(t *testing.T) {
			out := p.Extract(context.Background(), c)
			sc := trace.SpanContextFromContext(out)
			if got := sc.TraceState().String(); got != "x=1,y=2" {
				t.Errorf("Extract tracestate = %q, want x=1,y=2", got)
			}
			bg := baggage.FromContext(out)
			if bg.Member("a").Value() != "1" || bg.Member("b").Value() != "2" {
				t.Errorf("Extract baggage = %q, want a=1 and b=2", bg)
			}
			sc, bg, _ = p.ExtractSpanContext(c)
			if got := sc.TraceState().String(); got != "x=1,y=2" || bg.Len() != 2 {
				t.Errorf("ExtractSpanContext tracestate %q, baggage %q", got, bg)
			}
		})
	}

	// 20 + 20 tracestate members: the combined list is cut to 32.
	h = http.Header{}
	h.Set("traceparent", traceparent)
	h.Add("tracestate", members("a", 20))
	h.Add("tracestate", members("b", 20))
	p, ctx, _, reader, _ := recorders(t)
	sc := trace.SpanContextFromContext(p.Extract(ctx, otelprop.HeaderCarrier(h)))
	if n := sc.TraceState().Len(); n != propagation.MaxTraceStateMembers {
		t.Fatalf("combined tracestate has %d members, want %d", n, propagation.MaxTraceStateMembers)
	}
	if got := droppedTotal(t, reader, "tracestate", propagation.ReasonLimit); got != 8 {
		t.Fatalf("dropped counter = %d, want 8", got)
	}
}

// BenchmarkExtract is what a consumed message pays for its headers: the
// default W3C fast path and the same through the otel propagators.
func BenchmarkExtract(b *testing.B) {
	c := propagation.MapCarrier{"traceparent": traceparent, "tracestate": "vendor=abc", "baggage": "tenant=acme"}
	viaOtel := otelprop.NewCompositeTextMapPropagator(otelprop.TraceContext{}, otelprop.Baggage{})
	for name, p := range map[string]*propagation.Propagator{
		"default":  propagation.New(),
		"via-otel": propagation.New(propagation.WithTextMapPropagator(viaOtel)),
	} {
		b.Run(name+"/SpanContext", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.ExtractSpanContext(c)
			}
		})
		b.Run(name+"/Context", func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				p.Extract(ctx, c)
			}
		})
	}
}

// TestXRayInjectKeepsTheMessagesOwnHeader: a message that came with an X-Ray
// header (an AWS producer's AWSTraceHeader) and is published again under the
// context read from it keeps that header as written: its Lineage (which
// Lambda's recursive-loop detection counts on) and its Sampled=? (decide
// downstream) must not be rewritten into a bare header saying Sampled=0.
// A header naming another span is replaced.
func TestXRayInjectKeepsTheMessagesOwnHeader(t *testing.T) {
	const aws = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?;Lineage=1:a1b2c3d4:3"
	p := propagation.New(propagation.WithXRayInject(true))
	c := propagation.MapCarrier{propagation.XRayKey: aws}
	sc, _, _ := p.ExtractSpanContext(c)
	if !sc.IsValid() {
		t.Fatal("the X-Ray header does not parse")
	}
	p.Inject(trace.ContextWithRemoteSpanContext(context.Background(), sc), c)
	if got := c[propagation.XRayKey]; got != aws {
		t.Errorf("X-Ray header rewritten to %q, want the message's own %q", got, aws)
	}
	if !strings.Contains(c["traceparent"], "5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8") {
		t.Errorf("traceparent %q does not carry the X-Ray context", c["traceparent"])
	}

	// A long one too: custom fields past 256 bytes are the message's own.
	long := padXRay(t, aws, 1024)
	c = propagation.MapCarrier{propagation.XRayKey: long}
	p.Inject(trace.ContextWithRemoteSpanContext(context.Background(), sc), c)
	if got := c[propagation.XRayKey]; got != long {
		t.Errorf("a %d-byte X-Ray header was rewritten to %q", len(long), got)
	}

	// And as it was spelled: an ALB's Self first, spaces, upper-case hex,
	// custom fields.
	const spelled = "Self=1-67891233-12456789abcdef012345678; Root=1-5759E988-BD862E3FE1BE46A994272793; " +
		"Parent=53995C3F42CD8AD8; Sampled=1; CalledFrom=app"
	c = propagation.MapCarrier{propagation.XRayKey: spelled}
	if sc, _, _ = p.ExtractSpanContext(c); sc.SpanID().String() != "53995c3f42cd8ad8" {
		t.Fatalf("%q gave %v", spelled, sc)
	}
	p.Inject(trace.ContextWithRemoteSpanContext(context.Background(), sc), c)
	if got := c[propagation.XRayKey]; got != spelled {
		t.Errorf("X-Ray header rewritten to %q, want the message's own %q", got, spelled)
	}

	other := propagation.MapCarrier{propagation.XRayKey: aws}
	p.Inject(trace.ContextWithSpanContext(context.Background(), spanContext(t)), other)
	if want := "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1"; other[propagation.XRayKey] != want {
		t.Errorf("X-Ray header of another span = %q, want %q", other[propagation.XRayKey], want)
	}
}

// TestValidTraceparentAnotherPropagatorIgnoresIsNotInvalid: with a
// propagator that does not read W3C (B3, Jaeger), a message from a W3C
// producer carries a traceparent that parses; that it gave no context is
// not a traceparent "that did not parse", and is not counted as one.
func TestValidTraceparentAnotherPropagatorIgnoresIsNotInvalid(t *testing.T) {
	p, ctx, _, reader, _ := recorders(t, propagation.WithTextMapPropagator(rawPropagator{}))
	_, dropped := p.ExtractDropped(ctx, propagation.MapCarrier{"traceparent": traceparent})
	if len(dropped) != 0 {
		t.Errorf("dropped = %+v for a valid traceparent", dropped)
	}
	if n := droppedTotal(t, reader, "traceparent", propagation.ReasonInvalid); n != 0 {
		t.Errorf("counted %d invalid traceparents", n)
	}
	// One that does not parse still is.
	_, dropped = p.ExtractDropped(ctx, propagation.MapCarrier{"traceparent": "00-zzzz-01"})
	if len(dropped) != 1 || dropped[0].Reason != propagation.ReasonInvalid {
		t.Errorf("dropped = %+v for an invalid traceparent", dropped)
	}
}
