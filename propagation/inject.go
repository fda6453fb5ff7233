package propagation

import (
	"context"
	"slices"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	otelprop "go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Carrier keys of the W3C propagators, the ones the limits apply to.
const (
	TraceParentKey = "traceparent"
	TraceStateKey  = "tracestate"
	BaggageKey     = "baggage"
)

// Reasons a propagation field was dropped or ignored, recorded as the
// otelmq.propagation.reason attribute.
const (
	// ReasonLimit: tracestate or baggage was over a W3C limit and was cut.
	ReasonLimit = "limit"
	// ReasonInvalid: the carrier held a traceparent that did not parse, so the
	// message starts a new trace.
	ReasonInvalid = "invalid"
	// ReasonBudget: the broker had no room for the field (SQS allows 10
	// message attributes).
	ReasonBudget = "sqs_attribute_budget"
)

// DroppedEventName is the span event that records dropped propagation data.
const DroppedEventName = "otelmq.propagation.dropped"

// Attribute keys of the dropped event and counter.
const (
	FieldKey  = attribute.Key("otelmq.propagation.field")
	ReasonKey = attribute.Key("otelmq.propagation.reason")
	CountKey  = attribute.Key("otelmq.propagation.count")
)

// Dropped describes propagation data that was cut or ignored.
type Dropped struct {
	Field  string // carrier key: tracestate, baggage, traceparent, ...
	Reason string // ReasonLimit, ReasonInvalid, ReasonBudget
	Count  int    // members (tracestate, baggage) or fields dropped
}

// Injects reports whether Inject(ctx, c) may write anything. It is false
// only when it surely writes nothing: the propagator is the default W3C
// TraceContext and Baggage, X-Ray injection is off, and ctx holds neither a
// valid span context nor baggage, as with tracing off. A caller injecting
// into many messages under one ctx asks once.
func (p *Propagator) Injects(ctx context.Context) bool { return p.injects(ctx, p.TextMap()) }

// injects is Injects for the propagator tm that p.TextMap returned.
func (p *Propagator) injects(ctx context.Context, tm otelprop.TextMapPropagator) bool {
	return tm != fallback || p.cfg.xrayInject || !nothingToInject(ctx)
}

// Inject writes the trace context of ctx into c: the propagator's fields
// (traceparent, tracestate, baggage by default), cut to the W3C limits, and the
// X-Ray header when WithXRayInject is set. What a limit drops is recorded as a
// span event on the span in ctx and on the otelmq.propagation.dropped counter;
// it is never an error.
func (p *Propagator) Inject(ctx context.Context, c TextMapCarrier) {
	if c == nil {
		return
	}
	tm := p.TextMap()
	if tm == fallback {
		if !p.injects(ctx, tm) {
			// W3C writes nothing without a valid span context or baggage:
			// with tracing off (a no-op provider, no parent) this is every
			// message.
			return
		}
		lc := limitCarrier{TextMapCarrier: c, cfg: &p.cfg}
		injectW3C(ctx, &lc)
		p.injected(ctx, c, lc.dropped)
		return
	}
	// The limits are applied as the propagator writes, through a pooled
	// wrapper: reading the fields back afterwards would cost a Get per field,
	// which is an allocation on carriers that store bytes (Kafka).
	lc := getLimitCarrier(c, &p.cfg)
	tm.Inject(ctx, lc)
	p.injected(ctx, c, lc.dropped)
	lc.release()
}

// injected finishes an Inject: the X-Ray header when that is on, and what
// the limits cut recorded on the span in ctx and counted.
func (p *Propagator) injected(ctx context.Context, c TextMapCarrier, dropped []Dropped) {
	if p.cfg.xrayInject {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && !carriesXRay(c, sc) {
			c.Set(XRayKey, FormatXRay(sc))
		}
	}
	if len(dropped) > 0 {
		span := trace.SpanFromContext(ctx)
		for _, d := range dropped {
			p.record(ctx, span, d)
		}
	}
}

// carriesXRay reports whether c already holds an X-Ray header naming sc's
// trace and span: the creation context an AWS producer put on the message,
// which is re-injected (a relay, a dead-letter) from what was read out of
// that header. It is kept as it was written, with what FormatXRay does not
// write: Lineage (Lambda's recursive-loop detection counts on it), Self,
// custom fields, and a Sampled=? that leaves the decision downstream.
func carriesXRay(c TextMapCarrier, sc trace.SpanContext) bool {
	x, ok := ParseXRay(c.Get(XRayKey))
	return ok && x.TraceID() == sc.TraceID() && x.SpanID() == sc.SpanID()
}

// nothingToInject reports whether ctx holds neither a valid span context
// nor baggage, so that W3C TraceContext and Baggage would write nothing.
func nothingToInject(ctx context.Context) bool {
	return !trace.SpanContextFromContext(ctx).IsValid() && baggage.FromContext(ctx).Len() == 0
}

// overLimit reports, without allocating, whether v (the value of key) may be
// over the limits that apply to it; limit then decides exactly.
func (c *config) overLimit(key, v string) bool {
	switch {
	case len(v) == 0:
		return false
	case len(key) == len(TraceStateKey) && strings.EqualFold(key, TraceStateKey):
		return strings.Count(v, ",") >= c.maxTraceState
	case len(key) == len(BaggageKey) && strings.EqualFold(key, BaggageKey):
		return len(v) > c.maxBaggageB || strings.Count(v, ",") >= c.maxBaggageN
	}
	return false
}

// Extract returns ctx with the remote span context and baggage found in c.
// Over-limit tracestate and baggage are cut before parsing, keeping their
// first members. When c carries no valid W3C context and X-Ray extraction is
// on, the X-Ray header under XRayKey is used instead. Extract never fails and
// never panics; what it cut or ignored is recorded as an event on the span in
// ctx (if it is recording) and on the counter. Use ExtractDropped to record
// the events on a span started afterwards, such as a process span.
func (p *Propagator) Extract(ctx context.Context, c TextMapCarrier) context.Context {
	out, dropped := p.ExtractDropped(ctx, c)
	AddDroppedEvents(trace.SpanFromContext(ctx), dropped)
	return out
}

// ExtractDropped is Extract that returns what was cut or ignored instead of
// recording it on a span; it still counts it. Callers add the events to the
// span they start with AddDroppedEvents.
func (p *Propagator) ExtractDropped(ctx context.Context, c TextMapCarrier) (context.Context, []Dropped) {
	if c == nil {
		return ctx, nil
	}
	if p.TextMap() == fallback {
		// What the otel propagators would build, from what the W3C parse
		// found: the span context replaces one in ctx, the baggage one
		// only when the message carries some.
		sc, bg, dropped := p.extractFallback(ctx, c)
		out := ctx
		if sc.IsValid() {
			out = trace.ContextWithRemoteSpanContext(out, sc)
		}
		if bg.Len() > 0 {
			out = baggage.ContextWithBaggage(out, bg)
		}
		return out, dropped
	}
	// A span context already in ctx is the local parent, not the message's:
	// extraction must find the message's own or none.
	base := ctx
	if trace.SpanContextFromContext(ctx).IsValid() {
		base = trace.ContextWithSpanContext(ctx, trace.SpanContext{})
	}
	lc := getLimitCarrier(c, &p.cfg)
	out := p.TextMap().Extract(base, lc)
	var dropped []Dropped
	if len(lc.dropped) > 0 {
		dropped = slices.Clone(lc.dropped) // lc goes back to the pool
	}
	lc.release()
	if found := trace.SpanContextFromContext(out); !found.IsValid() {
		var sc trace.SpanContext
		if sc, dropped = p.fallBack(found, c, dropped); sc.IsValid() {
			out = trace.ContextWithRemoteSpanContext(out, sc)
		}
	}
	if base != ctx && !trace.SpanContextFromContext(out).IsValid() {
		// Nothing in the message: keep the caller's span as it was.
		out = trace.ContextWithSpan(out, trace.SpanFromContext(ctx))
	}
	for _, d := range dropped {
		p.count(ctx, d)
	}
	return out, dropped
}

// ExtractSpanContext is ExtractDropped for a caller that keeps what was
// found rather than a context, such as a process span's start: the
// message's span context (invalid when there is none) and baggage, and what
// was cut or ignored (counted, as ExtractDropped does). With the default
// W3C propagator it parses the headers itself instead of building the two
// contexts the otel propagators return, two allocations per message; any
// other propagator is called as usual.
func (p *Propagator) ExtractSpanContext(c TextMapCarrier) (trace.SpanContext, baggage.Baggage, []Dropped) {
	if c == nil {
		return trace.SpanContext{}, baggage.Baggage{}, nil
	}
	if p.TextMap() != fallback {
		out, dropped := p.ExtractDropped(context.Background(), c)
		return trace.SpanContextFromContext(out), baggage.FromContext(out), dropped
	}
	return p.extractFallback(context.Background(), c)
}

// extractFallback is extraction with the W3C fallback propagator, through
// a limit carrier on the stack; what was dropped is counted under ctx.
func (p *Propagator) extractFallback(ctx context.Context, c TextMapCarrier) (trace.SpanContext, baggage.Baggage, []Dropped) {
	lc := limitCarrier{TextMapCarrier: c, cfg: &p.cfg}
	sc, bg := extractW3C(&lc)
	sc, dropped := p.fallBack(sc, c, lc.dropped)
	for _, d := range dropped {
		p.count(ctx, d)
	}
	return sc, bg, dropped
}

// fallBack is what extraction does after the W3C propagators when they
// found no valid span context: the X-Ray header when that is on, and a
// traceparent that was present but invalid is recorded as dropped. One
// that parses is not: the propagator does not read W3C (B3, Jaeger).
func (p *Propagator) fallBack(sc trace.SpanContext, c TextMapCarrier, dropped []Dropped) (trace.SpanContext, []Dropped) {
	if sc.IsValid() {
		return sc, dropped
	}
	if p.cfg.xrayExtract {
		if x, ok := ParseXRay(c.Get(XRayKey)); ok {
			sc = x
		}
	}
	if tp := c.Get(TraceParentKey); tp != "" && !sc.IsValid() {
		if !validTraceParent(tp) {
			dropped = append(dropped, Dropped{Field: TraceParentKey, Reason: ReasonInvalid, Count: 1})
		}
	}
	return sc, dropped
}

// RecordDropped records that n entries of field were dropped for reason
// (ReasonLimit, ReasonBudget, ...): a span event on the span in ctx and the
// otelmq.propagation.dropped counter. Carriers and transports call it; it
// never fails.
func (p *Propagator) RecordDropped(ctx context.Context, field, reason string, n int) {
	p.record(ctx, trace.SpanFromContext(ctx), Dropped{Field: field, Reason: reason, Count: n})
}

// AddDroppedEvents adds one DroppedEventName event per entry to span.
func AddDroppedEvents(span trace.Span, dropped []Dropped) {
	if !span.IsRecording() {
		return
	}
	for _, d := range dropped {
		span.AddEvent(DroppedEventName, trace.WithAttributes(
			FieldKey.String(d.Field), ReasonKey.String(d.Reason), CountKey.Int(d.Count)))
	}
}

func (p *Propagator) record(ctx context.Context, span trace.Span, d Dropped) {
	AddDroppedEvents(span, []Dropped{d})
	p.count(ctx, d)
}

func (p *Propagator) count(ctx context.Context, d Dropped) {
	p.counter().Add(ctx, int64(d.Count), metric.WithAttributes(FieldKey.String(d.Field), ReasonKey.String(d.Reason)))
}

// counter is created on first use so that a Propagator made before the
// application installs its MeterProvider still reports to it.
func (p *Propagator) counter() metric.Int64Counter {
	p.counterOnce.Do(func() {
		c, err := p.cfg.meter().Int64Counter("otelmq.propagation.dropped",
			metric.WithDescription("Trace-context entries dropped or ignored on inject or extract."),
			metric.WithUnit("{entry}"))
		if err != nil {
			p.dropped = noopCounter
			return
		}
		p.dropped = c
	})
	return p.dropped
}

// limitCarrier applies the W3C limits to tracestate and baggage as the
// propagator writes them (Inject) and reads them (Extract), and collects what
// it cut. It is pooled: a wrapper per message would be an allocation on
// every inject and extract for a case that is rare.
type limitCarrier struct {
	TextMapCarrier
	cfg     *config
	dropped []Dropped
}

var limitCarriers = sync.Pool{New: func() any { return new(limitCarrier) }}

func getLimitCarrier(c TextMapCarrier, cfg *config) *limitCarrier {
	lc := limitCarriers.Get().(*limitCarrier)
	lc.TextMapCarrier, lc.cfg = c, cfg
	return lc
}

// release returns lc to the pool; lc and its dropped slice must not be used
// afterwards.
func (l *limitCarrier) release() {
	l.TextMapCarrier, l.cfg = nil, nil
	l.dropped = l.dropped[:0]
	limitCarriers.Put(l)
}

func (l *limitCarrier) Get(key string) string {
	var v string
	if vg, ok := l.TextMapCarrier.(otelprop.ValuesGetter); ok && isListKey(key) {
		// tracestate and baggage may come as several header fields, which
		// W3C combines into one list (RFC 9110 field order); Get would
		// return the first alone. The limits then apply to the whole list.
		v = joinValues(vg.Values(key))
	} else {
		v = l.TextMapCarrier.Get(key)
	}
	if !l.cfg.overLimit(key, v) {
		return v
	}
	return l.limit(key, v)
}

// isListKey reports whether key is tracestate or baggage, the W3C list
// headers that can arrive split over several fields.
func isListKey(key string) bool {
	return (len(key) == len(TraceStateKey) && strings.EqualFold(key, TraceStateKey)) ||
		(len(key) == len(BaggageKey) && strings.EqualFold(key, BaggageKey))
}

// joinValues combines the fields of one list header, as an HTTP
// intermediary would; it allocates only when there are several.
func joinValues(vs []string) string {
	switch len(vs) {
	case 0:
		return ""
	case 1:
		return vs[0]
	}
	return strings.Join(vs, ",")
}

// Set writes value cut to the limits. A value cut to nothing is not written,
// unless the carrier already holds one under key, which must not survive.
func (l *limitCarrier) Set(key, value string) {
	if l.cfg.overLimit(key, value) {
		if value = l.limit(key, value); value == "" && l.TextMapCarrier.Get(key) == "" {
			return
		}
	}
	l.TextMapCarrier.Set(key, value)
}

func (l *limitCarrier) limit(key, v string) string {
	if v == "" {
		return v
	}
	var (
		out string
		cut int
	)
	switch {
	case strings.EqualFold(key, TraceStateKey):
		out, cut = limitList(v, l.cfg.maxTraceState, 0)
	case strings.EqualFold(key, BaggageKey):
		out, cut = limitList(v, l.cfg.maxBaggageN, l.cfg.maxBaggageB)
	default:
		return v
	}
	if cut > 0 {
		l.dropped = append(l.dropped, Dropped{Field: key, Reason: ReasonLimit, Count: cut})
	}
	return out
}

// limitList keeps the first members of a comma-separated W3C list so that
// at most maxMembers remain and, when maxBytes > 0, the result is at most
// maxBytes long. Empty members (",,") are not counted, as the W3C specs
// allow them. It returns the kept list and how many members were cut.
func limitList(v string, maxMembers, maxBytes int) (string, int) {
	if maxBytes <= 0 || len(v) <= maxBytes {
		// Fast path: count members without allocating.
		n := 0
		for m := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(m) != "" {
				n++
			}
		}
		if n <= maxMembers {
			return v, 0
		}
	}
	var (
		b    strings.Builder
		kept int
		cut  int
	)
	for m := range strings.SplitSeq(v, ",") {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		extra := len(m)
		if kept > 0 {
			extra++
		}
		if kept >= maxMembers || (maxBytes > 0 && b.Len()+extra > maxBytes) {
			cut++
			continue
		}
		if kept > 0 {
			b.WriteByte(',')
		}
		b.WriteString(m)
		kept++
	}
	return b.String(), cut
}

var noopCounter metric.Int64Counter = noop.Int64Counter{}
