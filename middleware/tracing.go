package middleware

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelmq/otelmq/internal/remoteparent"
	"github.com/otelmq/otelmq/propagation"
)

// Tracing is the tracing middleware. One Tracing serves any number of
// publishers and subscribers on any broker. It is safe for concurrent use.
type Tracing struct {
	cfg    config
	tracer trace.Tracer
	prop   *propagation.Propagator
	// noop is set when the provider given is OpenTelemetry's no-op one:
	// no span can ever record, so only propagation is done.
	noop bool
	// shapes caches span names and leading attributes per destination.
	shapes shapes
	// headers are the WithHeaderAllowList names with their attribute keys,
	// built once rather than concatenated per span.
	headers []headerAttribute
}

type headerAttribute struct {
	name string
	key  attribute.Key
}

// attribute records the header's value v. Header values are bytes on some
// brokers: a value that is not UTF-8 would make the OTLP exporter refuse
// the whole batch of spans. (No copy when it is valid.)
func (h headerAttribute) attribute(v string) attribute.KeyValue {
	return h.key.String(strings.ToValidUTF8(v, "\uFFFD"))
}

// NewTracing returns tracing middleware configured by opts.
func NewTracing(opts ...Option) *Tracing {
	cfg := newConfig(opts)
	tp := cfg.tracerProvider
	if tp == nil {
		// The global provider delegates to whatever the application installs
		// later, so capturing it now is safe.
		tp = otel.GetTracerProvider()
	}
	t := &Tracing{
		cfg:    cfg,
		tracer: tp.Tracer(propagation.ScopeName, trace.WithSchemaURL(propagation.SchemaURL)),
		prop:   cfg.newPropagator(),
		noop:   isNoop(cfg.tracerProvider),
	}
	t.shapes.template = cfg.template
	for name := range cfg.headerAllow {
		t.headers = append(t.headers, headerAttribute{name: name, key: attribute.Key(HeaderAttributePrefix + name)})
	}
	slices.SortFunc(t.headers, func(a, b headerAttribute) int { return strings.Compare(a.name, b.name) })
	return t
}

// isNoop recognizes the no-op providers by type. The global provider is
// never treated as no-op: it may delegate to an SDK installed later.
func isNoop(tp trace.TracerProvider) bool {
	switch tp.(type) {
	case noop.TracerProvider, *noop.TracerProvider:
		return true
	}
	return tp != nil && fmt.Sprintf("%T", tp) == noopProviderType
}

// noopProviderType is the type of the deprecated trace.NewNoopTracerProvider.
var noopProviderType = fmt.Sprintf("%T", trace.NewNoopTracerProvider()) //nolint:staticcheck // recognized, not used

// Propagator returns the propagator this Tracing injects and extracts with.
func (t *Tracing) Propagator() *propagation.Propagator { return t.prop }

// Publisher wraps next: a send span per Publish call, a create span per
// message of a batch, and the creation context injected into each message's
// Headers unless the message already carries a valid one.
func (t *Tracing) Publisher(next Publisher) Publisher {
	return &tracedPublisher{next: next, t: t}
}

type tracedPublisher struct {
	next Publisher
	t    *Tracing
}

func (p *tracedPublisher) Describe(dest string) Destination { return Describe(p.next, dest) }

func (p *tracedPublisher) Publish(ctx context.Context, dest string, msgs ...*Message) error {
	if p.t.noop {
		// Propagate the caller's context and baggage; no span of ours.
		if !p.t.prop.Injects(ctx) {
			return p.next.Publish(ctx, dest, msgs...)
		}
		for _, msg := range msgs {
			if msg == nil {
				continue
			}
			if _, kept := p.t.keep(ctx, (*headerCarrier)(msg)); !kept {
				p.t.prop.Inject(ctx, (*headerCarrier)(msg))
			}
		}
		return p.next.Publish(ctx, dest, msgs...)
	}
	d := Describe(p.next, dest)
	batch := len(msgs) > 1
	// The send span is a PRODUCER only when its context becomes some
	// message's creation context; it is a CLIENT when create spans take
	// that role, or every message keeps the one it came with (a relay, a
	// retry, a dead-letter publish). Which ones keep theirs is known
	// before the span starts, since a span's kind is fixed at its start.
	var kept []trace.SpanContext // by index in msgs; nil when none is kept
	injects := false
	for i, msg := range msgs {
		if msg == nil {
			continue // the transport reports it
		}
		if sc, ok := p.t.keep(ctx, (*headerCarrier)(msg)); ok {
			if kept == nil {
				kept = make([]trace.SpanContext, len(msgs))
			}
			kept[i] = sc
		} else {
			injects = true
		}
	}
	ctx, span := p.t.startSend(ctx, d, len(msgs), injects && !(batch && p.t.cfg.createSpans), nil)
	for i, msg := range msgs {
		if msg == nil {
			continue
		}
		if kept != nil && kept[i].IsValid() {
			span.AddLink(trace.Link{SpanContext: kept[i]})
			msg.setCreation(kept[i])
			continue
		}
		var attrs []attribute.KeyValue
		if batch && p.t.cfg.createSpans {
			attrs = publishedAttributes(d, msg, false)
		}
		msg.setCreation(p.t.injectNew(ctx, d, (*headerCarrier)(msg), batch, attrs))
	}
	published := false
	defer func() {
		if !published {
			// The Publisher below panicked (a user PublisherFunc, a
			// wrapper): the span still ends, and the panic goes on.
			r := recover()
			p.t.End(span, &publishPanic{value: r})
			if r != nil {
				panic(r)
			}
		}
	}()
	err := p.next.Publish(ctx, dest, msgs...)
	published = true
	if !batch && len(msgs) == 1 && msgs[0] != nil && span.IsRecording() {
		// Brokers assign IDs (and Kafka partitions and offsets) on send:
		// recorded once known.
		if attrs := publishedAttributes(d, msgs[0], err == nil); len(attrs) > 0 {
			p.t.RecordAttributes(span, attrs...)
		}
	}
	p.t.End(span, err)
	return err
}

// publishedAttributes describes msg, published to d (sent) or about to be:
// d.MessageAttributes, and its ID when it has one.
func publishedAttributes(d Destination, msg *Message, sent bool) []attribute.KeyValue {
	var attrs []attribute.KeyValue
	if d.MessageAttributes != nil {
		attrs = d.MessageAttributes(msg, sent)
	}
	if msg.ID != "" {
		attrs = append(attrs, propagation.MessageID(msg.ID))
	}
	return attrs
}

// publishPanic is the error a send span ends with when the Publisher it
// wraps panics; its error.type is "panic", as a handler's.
type publishPanic struct{ value any }

func (e *publishPanic) Error() string {
	if e.value == nil { // runtime.Goexit, which is no panic
		return "otelmq: publish did not return (runtime.Goexit)"
	}
	return fmt.Sprintf("otelmq: publish panicked: %v", e.value)
}
func (e *publishPanic) ErrorType() string { return "panic" }

// Subscriber wraps next: it installs t as an Observer (receive and settle
// spans) and wraps the handler with a process span per message.
func (t *Tracing) Subscriber(next Subscriber) Subscriber {
	return &tracedSubscriber{next: next, t: t}
}

type tracedSubscriber struct {
	next Subscriber
	t    *Tracing
}

func (s *tracedSubscriber) Describe(src string) Destination { return Describe(s.next, src) }

func (s *tracedSubscriber) Subscribe(ctx context.Context, src string, h Handler) error {
	if s.t.noop {
		// Handlers still run in the producer's trace and see its baggage.
		return s.next.Subscribe(ctx, src, HandlerFunc(func(ctx context.Context, msg *Message) error {
			if len(msg.Headers) > 0 {
				ctx = s.t.noopContext(ctx, msg)
			}
			return Call(ctx, h, msg)
		}))
	}
	d := Describe(s.next, src)
	sh := newShape(templated(s.t.cfg.template, d), propagation.Process, "process")
	return s.next.Subscribe(WithObserver(ctx, s.t), src, HandlerFunc(func(ctx context.Context, msg *Message) error {
		ctx, span := s.t.startProcess(ctx, d, sh, msg)
		err := Call(ctx, h, msg)
		s.t.End(span, err)
		return err
	}))
}

// Received implements Observer: a receive span per poll, linking each
// message's creation context. A push delivery (d.Push) gets no receive span:
// the messages are extracted and ctx is returned with nothing added but,
// with WithRedactor, the redactor, for RecordExtensionFailed.
func (t *Tracing) Received(ctx context.Context, d Destination, start time.Time, msgs []*Message) context.Context {
	if t.cfg.redact != nil {
		// For what a transport records in this context before the
		// handlers' own (RecordExtensionFailed).
		ctx = context.WithValue(ctx, redactorKey{}, t.cfg.redact)
	}
	if d.Push {
		for _, msg := range msgs {
			t.extract(msg)
		}
		return ctx
	}
	args := new(startArgs)
	for _, msg := range msgs {
		t.extract(msg)
	}
	return t.startReceive(ctx, d, start, len(msgs), args, t.creationLinks(args.links[:0], msgs), nil)
}

// Settled implements Observer: a settle span (ack, nack, delete, commit).
// A settle of one message is a child of its process span; a settle of many
// is a child of ctx (the receive span) and links each message. A push
// destination has no receive span, and the span in ctx is the caller's
// (see startProcessSpan): a settle of several push deliveries (RabbitMQ's
// multiple ack) is a child of one of their process spans, a sampled one
// if any is, so that it goes in a trace of its messages and is sampled
// out with them, and links each message.
func (t *Tracing) Settled(ctx context.Context, d Destination, op string, start time.Time, msgs []*Message, err error) {
	if !t.cfg.settleSpans {
		return
	}
	var attrs []attribute.KeyValue
	switch {
	case len(msgs) == 1:
		if p := msgs[0].processSpan(); p != nil && p.SpanContext().IsValid() {
			if t.skips(p.SpanContext()) {
				return // startSettle would start no span under it
			}
			ctx = trace.ContextWithSpan(ctx, p)
		}
		attrs = msgs[0].Attributes()
	case d.Push:
		ctx = pushSettleParent(ctx, msgs)
	}
	var links []trace.Link
	if len(msgs) > 1 || !trace.SpanContextFromContext(ctx).IsValid() {
		links = t.creationLinks(nil, msgs)
	}
	_, span := t.startSettle(ctx, d, op, start, len(msgs), links, attrs)
	t.End(span, err)
}

// pushSettleParent is the context a settle span of several push deliveries
// msgs starts in: ctx with the first sampled process span among theirs,
// else the first valid one (unsampled: the sampler, or
// WithParentBasedSampling, drops the settle span with them), else no span
// at all (a new root), never the caller's span in ctx.
func pushSettleParent(ctx context.Context, msgs []*Message) context.Context {
	var unsampled trace.Span
	for _, msg := range msgs {
		p := msg.processSpan()
		if p == nil {
			continue
		}
		switch sc := p.SpanContext(); {
		case sc.IsSampled():
			return trace.ContextWithSpan(ctx, p)
		case sc.IsValid() && unsampled == nil:
			unsampled = p
		}
	}
	if unsampled != nil {
		return trace.ContextWithSpan(ctx, unsampled)
	}
	return trace.ContextWithSpan(ctx, noSpan)
}

// PollFailed implements PollFailedObserver: a receive span (CLIENT) from
// start to now for a poll that failed, named and started as the receive
// spans of polls that returned messages are, without
// messaging.batch.message_count (nothing was received) and ended with err.
// With WithParentBasedSampling, none under an unsampled parent. A push
// destination gets none, as it gets no receive span.
func (t *Tracing) PollFailed(ctx context.Context, d Destination, start time.Time, err error) {
	if d.Push || t.sampledOut(ctx) {
		return
	}
	sh := t.shapes.get(d, propagation.Receive, "receive")
	attrOpt, _, _ := t.start(sh, false, 0, nil)
	_, span := t.tracer.Start(ctx, sh.name, sh.kind, trace.WithTimestamp(start), attrOpt)
	t.End(span, err)
}

// SettledEach implements SettledEachObserver with the spans of the
// request reported message by message: a settle span of the messages that
// were settled and one per message that was not, with its error, a child of
// that message's process span, so each failure shows in its message's own
// trace.
func (t *Tracing) SettledEach(ctx context.Context, d Destination, op string, start time.Time, msgs []*Message, errs []error) {
	if !t.cfg.settleSpans {
		return
	}
	settledOneByOne(ctx, t, d, op, start, msgs, errs)
}

// The methods below are the building blocks the unified middleware uses and
// that native-client instrumentation (the amqp091 channel wrapper, kgo hooks)
// and manual users call directly.
//
// A span starts with the attributes the semantic conventions list as
// important for sampling decisions: the operation, the destination and its
// Attributes (server, consumer group), messaging.batch.message_count where
// it is required, and a messaging.destination.partition.id among attrs.
// The rest of attrs is set after the start, and only on a span that
// records, so a span the sampler drops does not pay for it; an attribute
// that repeats one of the destination's is not set twice.
//
// With WithParentBasedSampling, a span whose parent span context is valid
// and not sampled is not started: StartSend, StartReceive, StartProcess,
// StartProcessFrom and StartSettle then return a context carrying that
// parent's span context and a span that does not record (the parent's own
// span when it records nothing itself: ending a span that does not record
// does nothing), and InjectCreate starts no create span.

// StartSend starts the send span of a publish of n messages to d: a
// PRODUCER, whose context InjectCreate writes into the messages, or, when
// create spans do that for a batch (n > 1, WithCreateSpans on), a CLIENT.
func (t *Tracing) StartSend(ctx context.Context, d Destination, n int, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return t.startSend(ctx, d, n, !(n > 1 && t.cfg.createSpans), attrs)
}

// StartSendOne starts the send span of a publish of the one message c
// carries, and gives the message its creation context, as a Publisher
// wrapped by Tracing does for a single message: a valid one c already
// carries is kept and the send span, a CLIENT, links it; else the send
// span, a PRODUCER, is injected into c. It is StartSend and InjectCreate
// for one message, with the span's kind, fixed at its start, right.
func (t *Tracing) StartSendOne(ctx context.Context, d Destination, c propagation.TextMapCarrier, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	sc, kept := t.keep(ctx, c)
	ctx, span := t.startSend(ctx, d, 1, !kept, attrs)
	if kept {
		span.AddLink(trace.Link{SpanContext: sc})
	} else {
		t.prop.Inject(ctx, c)
	}
	return ctx, span
}

// startSend is StartSend with the kind decided by the caller: PRODUCER when
// producer is true, which only a span whose context some message takes as
// its creation context is, else CLIENT.
func (t *Tracing) startSend(ctx context.Context, d Destination, n int, producer bool, attrs []attribute.KeyValue) (context.Context, trace.Span) {
	if pctx, span, ok := t.unsampledParent(ctx); ok {
		return pctx, span
	}
	sh := t.shapes.get(d, propagation.Send, "send")
	if producer && n <= 1 && len(attrs) == 0 && t.cfg.redact == nil {
		return t.tracer.Start(ctx, sh.name, sh.opts...)
	}
	attrOpt, opts, skip := t.start(sh, n > 1, n, attrs)
	if !producer {
		opts = []trace.SpanStartOption{kindClient, attrOpt}
	} else if opts == nil {
		opts = []trace.SpanStartOption{sh.kind, attrOpt}
	}
	ctx, span := t.tracer.Start(ctx, sh.name, opts...)
	t.recordRest(span, sh, attrs, skip, nil)
	return ctx, span
}

// InjectCreate writes the creation context of one message into c, unless c
// already holds a valid one, which is kept and returned. When batch is true
// (and create spans are on, and WithParentBasedSampling does not skip it) a
// create span is started and ended for the message and its context is the
// one injected; otherwise the span in ctx is.
func (t *Tracing) InjectCreate(ctx context.Context, d Destination, c propagation.TextMapCarrier, batch bool, attrs ...attribute.KeyValue) trace.SpanContext {
	if sc, ok := t.keep(ctx, c); ok {
		// A creation context already on the message (a relay, a retry, a
		// dead-letter publish) is the message's identity: keep it and link it.
		trace.SpanFromContext(ctx).AddLink(trace.Link{SpanContext: sc})
		return sc
	}
	return t.injectNew(ctx, d, c, batch, attrs)
}

// injectNew is InjectCreate for a message that keeps no creation context.
func (t *Tracing) injectNew(ctx context.Context, d Destination, c propagation.TextMapCarrier, batch bool, attrs []attribute.KeyValue) trace.SpanContext {
	if batch && t.cfg.createSpans && !t.sampledOut(ctx) {
		sh := t.shapes.get(d, propagation.Create, "create")
		attrOpt, opts, skip := t.start(sh, false, 0, attrs)
		if opts == nil {
			opts = []trace.SpanStartOption{sh.kind, attrOpt}
		}
		cctx, span := t.tracer.Start(ctx, sh.name, opts...)
		t.recordRest(span, sh, attrs, skip, nil)
		t.prop.Inject(cctx, c)
		span.End()
		return span.SpanContext()
	}
	t.prop.Inject(ctx, c)
	return trace.SpanContextFromContext(ctx)
}

// keep reports the creation context c already carries, if it is valid:
// what the propagator reads (W3C by default; B3, Jaeger or another one set
// with WithPropagator), or X-Ray (an AWS producer's AWSTraceHeader, when
// the X-Ray fallback is on). A context carried as X-Ray alone, or beside an
// invalid traceparent, or in another propagator's fields, is also written
// with the propagator, so that W3C readers, which win, find the same one.
// When c carries no valid traceparent (none, or an invalid one about to be
// replaced), its tracestate is emptied: it belongs to no context that is
// kept and must not ride along with the traceparent written now. A valid
// traceparent that the propagator does not read (B3, Jaeger) is left as it
// came, with its tracestate.
func (t *Tracing) keep(ctx context.Context, c propagation.TextMapCarrier) (trace.SpanContext, bool) {
	if hc, ok := c.(*headerCarrier); ok && len(hc.Headers) == 0 {
		// A message without headers (NewMessage, the common publish)
		// carries no creation context in any propagator's fields, nor a
		// tracestate to empty: no propagator need be asked, which with a
		// propagator other than the default (the W3C composite an
		// application sets globally) was an extraction per message.
		return trace.SpanContext{}, false
	}
	tp := c.Get(propagation.TraceParentKey)
	var sc trace.SpanContext
	// The default W3C propagator (Injects is false for a context with
	// nothing in it only then) reads a creation context from the
	// traceparent alone: without one, nor an X-Ray header, there is none.
	// Any other propagator may keep it in fields of its own, which only its
	// Extract knows; finding nothing costs it no allocation.
	var dropped []propagation.Dropped
	if tp != "" || c.Get(propagation.XRayKey) != "" || t.prop.Injects(context.Background()) {
		sc, _, dropped = t.prop.ExtractSpanContext(c)
	}
	fromW3C := tp != "" && sc.IsValid() && strings.Contains(tp, sc.TraceID().String()) && strings.Contains(tp, sc.SpanID().String())
	// A valid traceparent that a propagator not reading W3C (B3, Jaeger)
	// found nothing in (extraction reports only an invalid one) stays on
	// the message as it came, and so does the tracestate that goes with it.
	ignored := tp != "" && !sc.IsValid() && !invalidTraceParent(dropped)
	if !fromW3C && !ignored && c.Get(propagation.TraceStateKey) != "" {
		c.Set(propagation.TraceStateKey, "")
	}
	if !sc.IsValid() {
		return sc, false
	}
	if !fromW3C {
		// Without ctx's baggage: the message's own stays as it is.
		t.prop.Inject(trace.ContextWithRemoteSpanContext(baggage.ContextWithoutBaggage(ctx), sc), c)
	}
	return sc, true
}

// invalidTraceParent reports whether extraction reported the traceparent
// invalid (present, but it does not parse or names a zero ID).
func invalidTraceParent(dropped []propagation.Dropped) bool {
	for _, d := range dropped {
		if d.Field == propagation.TraceParentKey && d.Reason == propagation.ReasonInvalid {
			return true
		}
	}
	return false
}

// Extract returns ctx with the remote span context and baggage in c, the
// baggage filtered by WithInboundBaggage as on every consumed message: when
// the filter leaves none, ctx's own baggage stays.
func (t *Tracing) Extract(ctx context.Context, c propagation.TextMapCarrier) context.Context {
	if !t.cfg.baggageFiltered {
		return t.prop.Extract(ctx, c)
	}
	// Extracted over a ctx without baggage, what is found is c's alone.
	out := t.prop.Extract(baggage.ContextWithoutBaggage(ctx), c)
	bg := t.cfg.filterBaggage(baggage.FromContext(out))
	if bg.Len() == 0 {
		bg = baggage.FromContext(ctx)
	}
	return baggage.ContextWithBaggage(out, bg)
}

// extract reads msg's headers once and keeps what they carry on msg, for
// the spans that cover it and for Message.CreationContext.
func (t *Tracing) extract(msg *Message) {
	if len(msg.Headers) == 0 || msg.creation.extracted {
		return
	}
	sc, bg, dropped := t.carried(msg)
	msg.setCreation(sc)
	msg.creation.extracted = true
	if bg.Len() > 0 || len(dropped) > 0 || msg.rare != nil {
		r := msg.rareState()
		r.baggage, r.dropped = bg, dropped
	}
}

// carried returns what msg's headers carry: its creation context (invalid
// when none), its baggage as WithInboundBaggage lets in, and what the
// limits cut. They are read from the headers unless extract kept them.
func (t *Tracing) carried(msg *Message) (trace.SpanContext, baggage.Baggage, []propagation.Dropped) {
	if msg.creation.extracted {
		var bg baggage.Baggage
		var dropped []propagation.Dropped
		if r := msg.rare; r != nil {
			bg, dropped = r.baggage, r.dropped
		}
		return msg.CreationContext(), bg, dropped
	}
	if len(msg.Headers) == 0 {
		return trace.SpanContext{}, baggage.Baggage{}, nil
	}
	// What was found, not a context: a process span builds its own parent.
	sc, bg, dropped := t.prop.ExtractSpanContext(propagation.MapCarrier(msg.Headers))
	if !sc.IsRemote() {
		sc = trace.SpanContext{}
	}
	return sc, t.cfg.filterBaggage(bg), dropped
}

// noopContext is the handler context of msg when no span can record: ctx
// in the producer's trace, with the message's baggage. It keeps nothing on
// msg, which no span will read: a Message costs no allocation here.
func (t *Tracing) noopContext(ctx context.Context, msg *Message) context.Context {
	sc, bg, _ := t.carried(msg)
	if sc.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	if bg.Len() > 0 {
		ctx = baggage.ContextWithBaggage(ctx, bg)
	}
	return ctx
}

// StartReceive records a receive span (CLIENT) for a poll of d that began at
// start and returned messages created in creations; the span is ended at once
// and the returned ctx carries it.
func (t *Tracing) StartReceive(ctx context.Context, d Destination, start time.Time, creations []trace.SpanContext, attrs ...attribute.KeyValue) context.Context {
	return t.startReceive(ctx, d, start, len(creations), new(startArgs), t.links(creations), attrs)
}

// startReceive is StartReceive for n messages whose creation contexts are
// links; args holds the span's options.
func (t *Tracing) startReceive(ctx context.Context, d Destination, start time.Time, n int, args *startArgs, links []trace.Link, attrs []attribute.KeyValue) context.Context {
	if pctx, _, ok := t.unsampledParent(ctx); ok {
		return pctx
	}
	sh := t.shapes.get(d, propagation.Receive, "receive")
	attrOpt, _, skip := t.start(sh, true, n, attrs)
	opts := append(args.opts[:0], sh.kind, trace.WithTimestamp(start), attrOpt)
	if len(links) > 0 {
		opts = append(opts, trace.WithLinks(links...))
	}
	ctx, span := t.tracer.Start(ctx, sh.name, opts...)
	t.recordRest(span, sh, attrs, skip, nil)
	span.End()
	if sc := span.SpanContext(); n >= 2 && sc.IsValid() && t.cfg.processParent == ParentMessageLinkReceive {
		// Every process span of this poll links to the receive span: build
		// that link option once for all of them rather than per message.
		ctx = context.WithValue(ctx, receiveLinksKey{}, &receiveLinks{receive: sc, link: trace.WithLinks(trace.Link{SpanContext: sc})})
	}
	return ctx
}

// receiveLinks is what the process spans of one poll share under
// ParentMessageLinkReceive: the link to its receive span as a start option, and the
// start options of each shape (and partition) with that link appended.
type receiveLinks struct {
	receive trace.SpanContext
	link    trace.SpanStartOption
	mu      sync.Mutex
	with    []linkedOpts
}

type linkedOpts struct {
	base *trace.SpanStartOption // &opts[0] of a shape's cached options
	opts []trace.SpanStartOption
}

type receiveLinksKey struct{}

// maxLinkedOpts bounds receiveLinks.with: a poll spans few partitions.
const maxLinkedOpts = 16

// optsWith returns base (a shape's cached start options, never modified)
// with the receive link appended, built once per poll and shape.
func (r *receiveLinks) optsWith(base []trace.SpanStartOption) []trace.SpanStartOption {
	key := &base[0]
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.with {
		if w.base == key {
			return w.opts
		}
	}
	opts := append(base[:len(base):len(base)], r.link)
	if len(r.with) < maxLinkedOpts {
		r.with = append(r.with, linkedOpts{base: key, opts: opts})
	}
	return opts
}

// StartProcess starts the process span (CONSUMER) of one message whose
// headers are c, parented per WithProcessParent. ctx may carry a receive span.
func (t *Tracing) StartProcess(ctx context.Context, d Destination, c propagation.TextMapCarrier, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	sc, bg, dropped := t.prop.ExtractSpanContext(c)
	var creation trace.SpanContext
	if sc.IsRemote() {
		creation = sc
	}
	sh := t.shapes.get(d, propagation.Process, "process")
	ctx, span := t.process(ctx, d, sh, creation, t.cfg.filterBaggage(bg), dropped, attrs, nil)
	t.RecordHeaders(span, c)
	return ctx, span
}

// StartProcessFrom is StartProcess for a message whose headers the caller
// has already extracted, such as a fetch hook that read them when the
// message arrived: creation is the message's creation context (invalid when
// it has none) and bg its baggage as extracted, which WithInboundBaggage
// filters here. What the propagation limits cut is the caller's to record
// on the returned span, with propagation.AddDroppedEvents.
func (t *Tracing) StartProcessFrom(ctx context.Context, d Destination, creation trace.SpanContext, bg baggage.Baggage, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	sh := t.shapes.get(d, propagation.Process, "process")
	return t.process(ctx, d, sh, creation, t.cfg.filterBaggage(bg), nil, attrs, nil)
}

// startProcess starts the process span of msg; sh is the shape of process
// spans on d.
func (t *Tracing) startProcess(ctx context.Context, d Destination, sh *shape, msg *Message) (context.Context, trace.Span) {
	t.extract(msg)
	creation, bg, dropped := t.carried(msg)
	ctx, span := t.process(ctx, d, sh, creation, bg, dropped, nil, msg)
	// Kept with or without settle spans: RecordExtensionFailed records on
	// it too.
	msg.setProcess(span)
	return ctx, span
}

// process starts a process span: of msg, whose attributes it asks for only
// when it starts the span, or, when msg is nil, of a message described by
// attrs. With a redactor, the context it returns carries it for the spans
// handler middleware ends there (Retry's attempts, endIn), whichever way
// the process span was started.
func (t *Tracing) process(ctx context.Context, d Destination, sh *shape, creation trace.SpanContext, bg baggage.Baggage, dropped []propagation.Dropped, attrs []attribute.KeyValue, msg *Message) (context.Context, trace.Span) {
	ctx, span := t.startProcessSpan(ctx, d, sh, creation, bg, dropped, attrs, msg)
	if t.cfg.redact != nil {
		ctx = context.WithValue(ctx, redactorKey{}, t.cfg.redact)
	}
	return ctx, span
}

func (t *Tracing) startProcessSpan(ctx context.Context, d Destination, sh *shape, creation trace.SpanContext, bg baggage.Baggage, dropped []propagation.Dropped, attrs []attribute.KeyValue, msg *Message) (context.Context, trace.Span) {
	if bg.Len() > 0 {
		ctx = baggage.ContextWithBaggage(ctx, bg)
	}
	// A push delivery has no receive span: a span in ctx is the caller's
	// (the Subscribe context's), not one to link or parent on, so the
	// process span is then a root unless the message's creation context
	// is its parent.
	var receive trace.SpanContext
	if !d.Push {
		receive = trace.SpanContextFromContext(ctx)
	}
	var link1, link2 trace.SpanContext
	parent := ctx
	newRoot := d.Push || t.cfg.processParent == ParentNone
	switch {
	case t.cfg.processParent == ParentNone:
		link1, link2 = creation, receive
	case t.cfg.processParent == ParentReceive:
		link1 = creation
	case creation.IsValid(): // ParentMessage, ParentMessageLinkReceive
		if t.skips(creation) {
			// No span will hide the parent: the handler's ctx carries it,
			// as the trace package's own span, which user code may expect.
			parent = trace.ContextWithRemoteSpanContext(ctx, creation)
		} else {
			// Only the tracer sees this one: the span it starts hides it
			// from everything the handler's ctx reaches.
			parent = remoteparent.Context(ctx, creation)
		}
		if t.cfg.processParent == ParentMessageLinkReceive {
			link1 = receive
		}
		newRoot = false
	}
	if !newRoot {
		if pctx, span, ok := t.unsampledParent(parent); ok {
			return pctx, span
		}
	}
	if msg != nil {
		// Only now: a message whose span is not started builds none.
		attrs = msg.Attributes()
	}
	// The one link is to the receive span: the poll may have built it.
	linksReceive := t.cfg.processParent == ParentMessageLinkReceive && link1.IsValid() && !newRoot
	// The span starts with what a sampler may decide on (the shape's
	// attributes and the partition); the rest is built and set only when
	// the span records. A redactor sees every attribute recorded, those
	// of the start included.
	attrOpt, opts, skip := t.start(sh, false, 0, attrs)
	switch {
	case opts != nil && linksReceive:
		if rl, _ := ctx.Value(receiveLinksKey{}).(*receiveLinks); rl != nil && rl.receive.Equal(receive) {
			opts = rl.optsWith(opts)
			break
		}
		fallthrough
	case link1.IsValid() || link2.IsValid():
		args := new(startArgs)
		opts = append(args.opts[:0], sh.kind, attrOpt,
			trace.WithLinks(appendLink(appendLink(args.links[:0], link1), link2)...))
		if newRoot {
			opts = append(opts, withNewRoot)
		}
	case newRoot:
		opts = []trace.SpanStartOption{sh.kind, attrOpt, withNewRoot}
	case opts == nil:
		opts = []trace.SpanStartOption{sh.kind, attrOpt}
	}
	ctx, span := t.tracer.Start(parent, sh.name, opts...)
	t.recordRest(span, sh, attrs, skip, msg)
	propagation.AddDroppedEvents(span, dropped)
	return ctx, span
}

// start is shape.start through the redactor when one is set: the
// attributes a span starts with (the destination's, the batch count, the
// partition) are then built per span and redacted, on every kind of span.
func (t *Tracing) start(sh *shape, batch bool, n int, attrs []attribute.KeyValue) (attr trace.SpanStartOption, opts []trace.SpanStartOption, skip int) {
	if t.cfg.redact == nil {
		return sh.start(batch, n, attrs)
	}
	skip = partitionIndex(attrs)
	all := sh.with(2)
	if batch {
		all = append(all, propagation.BatchMessageCount(n))
	}
	if skip >= 0 && !sh.has(attrs[skip]) {
		all = append(all, attrs[skip])
	}
	for i := range all {
		all[i] = t.cfg.redact(all[i])
	}
	return trace.WithAttributes(all...), nil, skip
}

// partitionIndex is the index in attrs of the first
// messaging.destination.partition.id, -1 when there is none.
func partitionIndex(attrs []attribute.KeyValue) int {
	for i := range attrs {
		if attrs[i].Key == partitionIDKey {
			return i
		}
	}
	return -1
}

var partitionIDKey = propagation.PartitionID("").Key

// recordRest sets on span, when it records, the attributes its start left
// out: those of attrs but the one at index skip (set at start) and those
// the shape holds already, then, when msg is not nil, msg's own (see
// messageAttributes). A span the sampler dropped costs nothing here.
func (t *Tracing) recordRest(span trace.Span, sh *shape, attrs []attribute.KeyValue, skip int, msg *Message) {
	n := len(attrs)
	if msg != nil {
		n += 2 + len(t.headers)
	}
	if n == 0 || !span.IsRecording() {
		return
	}
	if t.cfg.redact == nil && (msg == nil || t.addsOnlyDeliveryCount(msg)) {
		if lo, hi, ok := keptRun(sh, attrs, skip); ok {
			// The common case builds no slice: what is kept of attrs
			// (a transport's, which it never changes, or a caller's) is
			// one run of them, and a first delivery's count is a
			// constant. Both are read-only to a span, as for every
			// caller that passes constant attributes: the SDK copies
			// them.
			if lo < hi {
				span.SetAttributes(attrs[lo:hi:hi]...)
			}
			if msg != nil && msg.DeliveryCount == 1 {
				span.SetAttributes(deliveredOnce...)
			}
			return
		}
	}
	rest := make([]attribute.KeyValue, 0, n)
	for i, kv := range attrs {
		if i != skip && !sh.has(kv) {
			rest = append(rest, kv)
		}
	}
	if msg != nil {
		rest = t.messageAttributes(rest, msg) // redacts all of rest
	} else if t.cfg.redact != nil {
		// StartProcess and StartProcessFrom (native instrumentation) have
		// no Message, only the attributes they were given.
		for i := range rest {
			rest[i] = t.cfg.redact(rest[i])
		}
	}
	if len(rest) > 0 {
		span.SetAttributes(rest...)
	}
}

// deliveredOnce is the delivery count attribute of a first delivery.
var deliveredOnce = []attribute.KeyValue{DeliveryCountKey.Int(1)}

// addsOnlyDeliveryCount reports whether messageAttributes would add nothing
// to msg's attributes but a delivery count of 1 (or none) and change none
// of them: no redactor, no body size, no allow-listed header present.
func (t *Tracing) addsOnlyDeliveryCount(msg *Message) bool {
	if t.cfg.redact != nil || t.cfg.bodySize || msg.DeliveryCount > 1 {
		return false
	}
	for _, h := range t.headers {
		if _, ok := msg.Headers[h.name]; ok {
			return false
		}
	}
	return true
}

// keptRun returns the bounds of what recordRest keeps of attrs (all but
// the one at skip and those the shape holds) when that is one run,
// attrs[lo:hi]; ok is false when it is not.
func keptRun(sh *shape, attrs []attribute.KeyValue, skip int) (lo, hi int, ok bool) {
	for i, kv := range attrs {
		if i == skip || sh.has(kv) {
			continue
		}
		if hi > lo && i != hi {
			return 0, 0, false // a gap: two runs
		}
		if hi == lo {
			lo = i
		}
		hi = i + 1
	}
	return lo, hi, true
}

// messageAttributes adds what a Message says about itself: body size (never
// the body) when WithBodySize is on, delivery count, and allow-listed header
// values, then applies the redactor to all of all.
func (t *Tracing) messageAttributes(all []attribute.KeyValue, msg *Message) []attribute.KeyValue {
	if t.cfg.bodySize {
		all = append(all, propagation.BodySize(len(msg.Body)))
	}
	if msg.DeliveryCount > 0 {
		all = append(all, DeliveryCountKey.Int(msg.DeliveryCount))
	}
	for _, h := range t.headers {
		if v, ok := msg.Headers[h.name]; ok {
			all = append(all, h.attribute(v))
		}
	}
	if t.cfg.redact != nil {
		for i := range all {
			all[i] = t.cfg.redact(all[i])
		}
	}
	return all
}

// RecordAttributes sets attrs on span when it records, each through the
// redactor (WithRedactor) when there is one: for instrumentation that
// learns a message's attributes only after its span started, such as a
// record's key, partition and offset once produced or the ID a broker
// assigned. It may rewrite attrs in place.
func (t *Tracing) RecordAttributes(span trace.Span, attrs ...attribute.KeyValue) {
	if len(attrs) == 0 || !span.IsRecording() {
		return
	}
	if t.cfg.redact != nil {
		for i := range attrs {
			attrs[i] = t.cfg.redact(attrs[i])
		}
	}
	span.SetAttributes(attrs...)
}

// RecordHeaders sets on span, when it records, the WithHeaderAllowList
// headers present in c as messaging.header.<name>, as the Subscriber's
// process spans have them: made valid UTF-8 and put through the redactor
// (WithRedactor) when there is one. A header is present when c.Get returns
// a value that is not empty. StartProcess calls it; instrumentation that
// starts a process span with StartProcessFrom calls it with the message's
// headers. Without an allow-list it does nothing and costs nothing.
func (t *Tracing) RecordHeaders(span trace.Span, c propagation.TextMapCarrier) {
	if len(t.headers) == 0 || c == nil || !span.IsRecording() {
		return
	}
	var attrs []attribute.KeyValue
	for _, h := range t.headers {
		v := c.Get(h.name)
		if v == "" {
			continue
		}
		if attrs == nil {
			attrs = make([]attribute.KeyValue, 0, len(t.headers))
		}
		kv := h.attribute(v)
		if t.cfg.redact != nil {
			kv = t.cfg.redact(kv)
		}
		attrs = append(attrs, kv)
	}
	if len(attrs) > 0 {
		span.SetAttributes(attrs...)
	}
}

// RecordsBodySize reports whether WithBodySize is on, for instrumentation
// that builds a message's attributes itself (the kgo hooks, the SQS
// Instrumentation).
func (t *Tracing) RecordsBodySize() bool { return t.cfg.bodySize }

// DeliveryCountKey records Message.DeliveryCount on process spans.
const DeliveryCountKey = attribute.Key("otelmq.message.delivery_count")

// HeaderAttributePrefix prefixes allow-listed header values recorded as
// span attributes: messaging.header.<name>.
const HeaderAttributePrefix = "messaging.header."

// StartSettle starts a settle span (CLIENT) named op for messages created in
// creations. With WithSettleSpans(false) it returns ctx and a span that
// records nothing.
func (t *Tracing) StartSettle(ctx context.Context, d Destination, op string, creations []trace.SpanContext, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !t.cfg.settleSpans {
		return ctx, noSpan
	}
	var ls []trace.Link
	if len(creations) > 1 || !trace.SpanContextFromContext(ctx).IsValid() {
		ls = t.links(creations)
	}
	return t.startSettle(ctx, d, op, time.Time{}, len(creations), ls, attrs)
}

// startSettle starts the settle span of n messages, linking links.
// Its callers return before it when settle spans are off.
func (t *Tracing) startSettle(ctx context.Context, d Destination, op string, start time.Time, n int, links []trace.Link, attrs []attribute.KeyValue) (context.Context, trace.Span) {
	if pctx, span, ok := t.unsampledParent(ctx); ok {
		return pctx, span
	}
	sh := t.shapes.get(d, propagation.Settle, op)
	if n <= 1 && len(attrs) == 0 && len(links) == 0 && start.IsZero() && t.cfg.redact == nil {
		return t.tracer.Start(ctx, sh.name, sh.opts...)
	}
	attrOpt, opts, skip := t.start(sh, n > 1, n, attrs)
	if opts == nil || len(links) > 0 || !start.IsZero() {
		opts = make([]trace.SpanStartOption, 2, 4)
		opts[0], opts[1] = sh.kind, attrOpt
		if len(links) > 0 {
			opts = append(opts, trace.WithLinks(links...))
		}
		if !start.IsZero() {
			opts = append(opts, trace.WithTimestamp(start))
		}
	}
	ctx, span := t.tracer.Start(ctx, sh.name, opts...)
	t.recordRest(span, sh, attrs, skip, nil)
	return ctx, span
}

// noSpan is the span that records nothing and carries no span context.
var noSpan = trace.SpanFromContext(context.Background())

// sampledOut reports whether WithParentBasedSampling lets a span that
// parent would be the parent of go unstarted: parent's span context is
// valid and not sampled, so the sampler would drop the span.
func (t *Tracing) sampledOut(parent context.Context) bool {
	return t.skips(trace.SpanContextFromContext(parent))
}

// skips reports whether WithParentBasedSampling skips a span whose parent
// span context is sc.
func (t *Tracing) skips(sc trace.SpanContext) bool {
	return t.cfg.parentBased && sc.IsValid() && !sc.IsSampled()
}

// unsampledParent is sampledOut(parent), and when so, what stands for the
// span not started: ctx, and span, which carries the parent's span context
// and does not record, so ending it or setting attributes on it does nothing.
// When the parent's span does not record either, the stand-in is that span
// itself (no allocation): the SDK's, the API's and the no-op spans do
// nothing on End when they do not record.
func (t *Tracing) unsampledParent(parent context.Context) (ctx context.Context, span trace.Span, ok bool) {
	if !t.sampledOut(parent) {
		return nil, nil, false
	}
	span = trace.SpanFromContext(parent)
	if span.IsRecording() {
		// A span the sampler records but does not sample (RecordOnly) is
		// the caller's: the stand-in must not be it, or ending ours would
		// end theirs.
		parent = trace.ContextWithSpanContext(parent, span.SpanContext())
		span = trace.SpanFromContext(parent)
	}
	return parent, span, true
}

// links are the links to the valid span contexts of scs, at most
// WithLinkLimit of them.
func (t *Tracing) links(scs []trace.SpanContext) []trace.Link {
	var ls []trace.Link
	for _, sc := range scs {
		if !t.roomForLink(len(ls)) {
			break
		}
		ls = appendLink(ls, sc)
	}
	return ls
}

// creationLinks appends to ls the links to the valid creation contexts of
// msgs, up to WithLinkLimit links in ls; a nil ls is allocated, for all of
// msgs, when the first link is added.
func (t *Tracing) creationLinks(ls []trace.Link, msgs []*Message) []trace.Link {
	for _, msg := range msgs {
		if !t.roomForLink(len(ls)) {
			break
		}
		sc := msg.CreationContext()
		if ls == nil && sc.IsValid() {
			ls = make([]trace.Link, 0, len(msgs))
		}
		ls = appendLink(ls, sc)
	}
	return ls
}

// roomForLink reports whether a span with n links may take one more.
func (t *Tracing) roomForLink(n int) bool { return t.cfg.linkLimit < 0 || n < t.cfg.linkLimit }

func appendLink(ls []trace.Link, sc trace.SpanContext) []trace.Link {
	if !sc.IsValid() {
		return ls
	}
	return append(ls, trace.Link{SpanContext: sc})
}

// startArgs holds a span's start options and its first links, so that
// building them is one allocation. It is never reused: a TracerProvider may
// keep what it is given.
type startArgs struct {
	opts  [4]trace.SpanStartOption
	links [2]trace.Link
}

// Span kinds as start options, made once: trace.WithSpanKind boxes its
// argument into an interface on every call.
var (
	kindProducer = trace.WithSpanKind(trace.SpanKindProducer)
	kindConsumer = trace.WithSpanKind(trace.SpanKindConsumer)
	kindClient   = trace.WithSpanKind(trace.SpanKindClient)
	withNewRoot  = trace.WithNewRoot()
)

// End ends span, recording err when not nil: the error status with the
// error's text as its description, and error.type. The text is recorded
// there only (README: "What we never record"), not again as an exception
// event. Spans of a Tracing with WithRedactor are better ended with
// Tracing.End, which puts the description through the redactor.
func End(span trace.Span, err error) { endWith(span, err, nil) }

// StatusDescriptionKey is how Tracing.End shows WithRedactor a span's
// status description, the text of the error the span ended with (error
// texts can hold message data: "invalid address alice@example.com"). The
// redactor's value becomes the description; dropping it leaves the
// description empty, the status still an error. The name is the one
// OpenTelemetry's non-OTLP exporters give the description.
const StatusDescriptionKey = attribute.Key("otel.status_description")

// End is the package's End for spans of t: the status description and
// error.type go through t's redactor (see StatusDescriptionKey). The
// middleware ends its own spans with it; native instrumentation should too.
func (t *Tracing) End(span trace.Span, err error) { endWith(span, err, t.cfg.redact) }

// endWith is End with redact (nil: none).
func endWith(span trace.Span, err error, redact func(attribute.KeyValue) attribute.KeyValue) {
	if t, ok := span.(*timedSpan); ok && err != nil {
		// A copy: storing &err would move err to the heap on entry, an
		// allocation for every span ended, timed or not.
		e := err
		t.err.Store(&e) // for the process duration's error.type
	}
	if err != nil && span.IsRecording() {
		description := err.Error()
		errorType := propagation.ErrorTypeKey.String(ErrorType(err))
		if redact != nil {
			description = ""
			if kv := redact(StatusDescriptionKey.String(err.Error())); kv.Key != "" {
				description = kv.Value.Emit()
			}
			errorType = redact(errorType)
		}
		span.SetStatus(codes.Error, description)
		if errorType.Key != "" {
			span.SetAttributes(errorType)
		}
	}
	span.End()
}

// redactorKey carries a Tracing's redactor in the contexts its process
// spans give handlers, for the spans handler middleware ends (endIn).
type redactorKey struct{}

// endIn ends span as the Tracing whose handler context ctx is would.
func endIn(ctx context.Context, span trace.Span, err error) {
	endWith(span, err, redactorIn(ctx))
}

// redactorIn is the redactor of the Tracing whose handler context ctx is,
// or nil.
func redactorIn(ctx context.Context) func(attribute.KeyValue) attribute.KeyValue {
	redact, _ := ctx.Value(redactorKey{}).(func(attribute.KeyValue) attribute.KeyValue)
	return redact
}

// ErrorType is the low-cardinality error.type of err: "panic" for a
// recovered handler panic, "timeout" and "canceled" for context errors,
// else what the first error in err's tree (depth first, as errors.As looks)
// that names itself says: its ErrorType() method, or its ErrorCode() (AWS
// API errors: "ThrottlingException", "AWS.SimpleQueueService.NonExistentQueue",
// where every one has the Go type *smithy.OperationError); failing that the
// Go type of the first one that is not a plain errors.New/fmt.Errorf/
// errors.Join value, whose type says nothing; "_OTHER" when nothing in the
// tree does. So a transport error wrapped with context ("publish to q: %w")
// keeps its type.
func ErrorType(err error) string {
	var (
		pe    *PanicError
		retry *retryableError
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &retry):
		return ErrorType(retry.err)
	case errors.As(err, &pe):
		return "panic"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	if t := typeInTree(err, 0, namedType); t != "" {
		return t
	}
	if t := typeInTree(err, 0, goType); t != "" {
		return t
	}
	return "_OTHER"
}

// isNilPointer reports whether err is a nil pointer of some type.
func isNilPointer(err error) bool {
	v := reflect.ValueOf(err)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// namedType is the type err names itself by, if it does.
func namedType(err error) string {
	switch e := err.(type) {
	case interface{ ErrorType() string }:
		return e.ErrorType()
	case interface{ ErrorCode() string }:
		return e.ErrorCode()
	}
	return ""
}

// goType is err's Go type, unless it is one that says nothing. The
// Permanent mark is one: it says nothing about what failed, so ErrorType
// looks through it as through fmt.Errorf's wrapping, and a marked plain
// error does not hide a typed one beside it in a joined error.
func goType(err error) string {
	if _, ok := err.(*permanentError); ok {
		return ""
	}
	switch s := fmt.Sprintf("%T", err); s {
	case "*errors.errorString", "*fmt.wrapError", "*fmt.wrapErrors", "*errors.joinError":
		return ""
	default:
		return s
	}
}

// typeInTree is the first non-empty typeOf of an error in err's tree; ""
// when there is none. depth bounds it: error trees are shallow, but
// nothing stops a cycle.
func typeInTree(err error, depth int, typeOf func(error) string) string {
	if err == nil || depth > 32 || isNilPointer(err) {
		// A typed nil pointer (a (*T)(nil) wrapped or joined) names
		// nothing, and calling its methods would dereference it.
		return ""
	}
	if t := typeOf(err); t != "" {
		return t
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return typeInTree(u.Unwrap(), depth+1, typeOf)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if t := typeInTree(e, depth+1, typeOf); t != "" {
				return t
			}
		}
	}
	return ""
}

// headerCarrier is a Message's Headers as a carrier that makes the map on
// the first Set: a message with nothing to inject (no span in ctx, as with
// the no-op provider) gets no header map, which is an allocation saved per
// message.
type headerCarrier Message

func (c *headerCarrier) Get(key string) string { return c.Headers[key] }

func (c *headerCarrier) Set(key, value string) {
	if value == "" {
		// Emptying a field (a stale tracestate) removes it: no broker
		// needs an empty header, and SQS refuses an empty attribute.
		delete(c.Headers, key)
		return
	}
	if c.Headers == nil {
		c.Headers = make(map[string]string, 3)
	}
	c.Headers[key] = value
}

func (c *headerCarrier) Keys() []string { return propagation.MapCarrier(c.Headers).Keys() }
