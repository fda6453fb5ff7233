package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

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
	return &Tracing{
		cfg:    cfg,
		tracer: tp.Tracer(propagation.ScopeName, trace.WithSchemaURL(propagation.SchemaURL)),
		prop:   cfg.newPropagator(),
		noop:   isNoop(cfg.tracerProvider),
	}
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
		for _, msg := range msgs {
			if msg == nil {
				continue
			}
			if msg.Headers == nil {
				msg.Headers = make(map[string]string, 3)
			}
			if msg.Headers[propagation.TraceParentKey] == "" {
				p.t.prop.Inject(ctx, propagation.MapCarrier(msg.Headers))
			}
		}
		return p.next.Publish(ctx, dest, msgs...)
	}
	d := Describe(p.next, dest)
	ctx, span := p.t.StartSend(ctx, d, len(msgs))
	batch := len(msgs) > 1
	for _, msg := range msgs {
		if msg == nil {
			continue // the transport reports it
		}
		if msg.Headers == nil {
			msg.Headers = make(map[string]string, 3)
		}
		var attrs []attribute.KeyValue
		if batch && msg.ID != "" {
			attrs = []attribute.KeyValue{propagation.MessageID(msg.ID)}
		}
		msg.creation = p.t.InjectCreate(ctx, d, propagation.MapCarrier(msg.Headers), batch, attrs...)
	}
	err := p.next.Publish(ctx, dest, msgs...)
	if !batch && len(msgs) == 1 && msgs[0] != nil && msgs[0].ID != "" && span.IsRecording() {
		// Brokers assign IDs on send; record it once known.
		span.SetAttributes(propagation.MessageID(msgs[0].ID))
	}
	End(span, err)
	return err
}

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
				s.t.extract(ctx, msg)
				if msg.creation.IsValid() {
					ctx = trace.ContextWithRemoteSpanContext(ctx, msg.creation)
				}
				if msg.baggage.Len() > 0 {
					ctx = baggage.ContextWithBaggage(ctx, msg.baggage)
				}
			}
			return Call(ctx, h, msg)
		}))
	}
	d := Describe(s.next, src)
	return s.next.Subscribe(WithObserver(ctx, s.t), src, HandlerFunc(func(ctx context.Context, msg *Message) error {
		ctx, span := s.t.startProcess(ctx, d, msg)
		err := Call(ctx, h, msg)
		End(span, err)
		return err
	}))
}

// Received implements Observer: a receive span per poll, linking each
// message's creation context.
func (t *Tracing) Received(ctx context.Context, d Destination, start time.Time, msgs []*Message) context.Context {
	creations := make([]trace.SpanContext, 0, len(msgs))
	for _, msg := range msgs {
		t.extract(ctx, msg)
		creations = append(creations, msg.creation)
	}
	return t.StartReceive(ctx, d, start, creations)
}

// Settled implements Observer: a settle span (ack, nack, delete, commit).
// A settle of one message is a child of its process span; a settle of many
// is a child of ctx (the receive span) and links each message.
func (t *Tracing) Settled(ctx context.Context, d Destination, op string, start time.Time, msgs []*Message, err error) {
	creations := make([]trace.SpanContext, 0, len(msgs))
	var attrs []attribute.KeyValue
	for _, msg := range msgs {
		creations = append(creations, msg.creation)
	}
	if len(msgs) == 1 {
		attrs = msgs[0].attrs
		if msgs[0].process.IsValid() {
			ctx = trace.ContextWithSpanContext(ctx, msgs[0].process)
		}
	}
	_, span := t.startSettle(ctx, d, op, start, creations, attrs)
	End(span, err)
}

// The methods below are the building blocks the unified middleware uses and
// that native-client instrumentation (the amqp091 channel wrapper, kgo hooks)
// and manual users call directly.

// StartSend starts the send span (PRODUCER) of a publish of n messages to d.
func (t *Tracing) StartSend(ctx context.Context, d Destination, n int, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	all := spanAttributes(d, propagation.Send, "send", 1+len(attrs))
	if n > 1 {
		all = append(all, propagation.BatchMessageCount(n))
	}
	return t.tracer.Start(ctx, propagation.SpanName("send", d.Name),
		kindProducer, trace.WithAttributes(append(all, attrs...)...))
}

// InjectCreate writes the creation context of one message into c, unless c
// already holds a valid one, which is kept and returned. When batch is true
// (and create spans are on) a create span is started and ended for the message
// and its context is the one injected; otherwise the span in ctx is.
func (t *Tracing) InjectCreate(ctx context.Context, d Destination, c propagation.TextMapCarrier, batch bool, attrs ...attribute.KeyValue) trace.SpanContext {
	if tp := c.Get(propagation.TraceParentKey); tp != "" {
		// A creation context already on the message (a relay, a retry, a
		// dead-letter publish) is the message's identity: keep it and link it.
		if existing, _ := t.prop.ExtractDropped(context.Background(), c); trace.SpanContextFromContext(existing).IsValid() {
			sc := trace.SpanContextFromContext(existing)
			trace.SpanFromContext(ctx).AddLink(trace.Link{SpanContext: sc})
			return sc
		}
	}
	if batch && t.cfg.createSpans {
		all := spanAttributes(d, propagation.Create, "create", len(attrs))
		cctx, span := t.tracer.Start(ctx, propagation.SpanName("create", d.Name),
			kindProducer, trace.WithAttributes(append(all, attrs...)...))
		t.prop.Inject(cctx, c)
		span.End()
		return span.SpanContext()
	}
	t.prop.Inject(ctx, c)
	return trace.SpanContextFromContext(ctx)
}

// Extract returns ctx with the remote span context and baggage in c.
func (t *Tracing) Extract(ctx context.Context, c propagation.TextMapCarrier) context.Context {
	return t.prop.Extract(ctx, c)
}

// extract reads msg's headers once: its creation context, baggage, and what
// the limits cut.
func (t *Tracing) extract(ctx context.Context, msg *Message) {
	if msg.extracted {
		return
	}
	msg.extracted = true
	if len(msg.Headers) == 0 {
		return
	}
	out, dropped := t.prop.ExtractDropped(ctx, propagation.MapCarrier(msg.Headers))
	if sc := trace.SpanContextFromContext(out); sc.IsRemote() {
		msg.creation = sc
	}
	msg.baggage = t.cfg.filterBaggage(baggage.FromContext(out))
	msg.dropped = dropped
}

// StartReceive records a receive span (CLIENT) for a poll of d that began at
// start and returned messages created in creations; the span is ended at once
// and the returned ctx carries it.
func (t *Tracing) StartReceive(ctx context.Context, d Destination, start time.Time, creations []trace.SpanContext, attrs ...attribute.KeyValue) context.Context {
	all := spanAttributes(d, propagation.Receive, "receive", 1+len(attrs))
	all = append(append(all, propagation.BatchMessageCount(len(creations))), attrs...)
	ctx, span := t.tracer.Start(ctx, propagation.SpanName("receive", d.Name),
		kindClient, trace.WithTimestamp(start),
		trace.WithAttributes(all...), trace.WithLinks(links(creations)...))
	span.End()
	return ctx
}

// StartProcess starts the process span (CONSUMER) of one message whose
// headers are c, parented per WithProcessParent. ctx may carry a receive span.
func (t *Tracing) StartProcess(ctx context.Context, d Destination, c propagation.TextMapCarrier, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	out, dropped := t.prop.ExtractDropped(ctx, c)
	var creation trace.SpanContext
	if sc := trace.SpanContextFromContext(out); sc.IsRemote() {
		creation = sc
	}
	return t.process(ctx, d, creation, t.cfg.filterBaggage(baggage.FromContext(out)), dropped, attrs, nil)
}

func (t *Tracing) startProcess(ctx context.Context, d Destination, msg *Message) (context.Context, trace.Span) {
	t.extract(ctx, msg)
	ctx, span := t.process(ctx, d, msg.creation, msg.baggage, msg.dropped, msg.attrs, msg)
	msg.process = span.SpanContext()
	return ctx, span
}

func (t *Tracing) process(ctx context.Context, d Destination, creation trace.SpanContext, bg baggage.Baggage, dropped []propagation.Dropped, attrs []attribute.KeyValue, msg *Message) (context.Context, trace.Span) {
	if bg.Len() > 0 {
		ctx = baggage.ContextWithBaggage(ctx, bg)
	}
	receive := trace.SpanContextFromContext(ctx)
	var links []trace.Link
	parent := ctx
	switch {
	case t.cfg.processParent == ParentNone:
		links = appendLink(appendLink(links, creation), receive)
	case t.cfg.processParent == ParentReceive:
		links = appendLink(links, creation)
	case creation.IsValid(): // ParentMessage
		parent = trace.ContextWithRemoteSpanContext(ctx, creation)
		links = appendLink(links, receive)
	}
	opts := []trace.SpanStartOption{
		kindConsumer, trace.WithLinks(links...),
	}
	if t.cfg.processParent == ParentNone {
		opts = append(opts, trace.WithNewRoot())
	}
	all := spanAttributes(d, propagation.Process, "process", len(attrs)+2+len(t.cfg.headerAllow))
	all = append(all, attrs...)
	if msg != nil {
		all = t.messageAttributes(all, msg)
	}
	opts = append(opts, trace.WithAttributes(all...))
	ctx, span := t.tracer.Start(parent, propagation.SpanName("process", d.Name), opts...)
	propagation.AddDroppedEvents(span, dropped)
	return ctx, span
}

// messageAttributes adds what a Message says about itself: body size (never
// the body), delivery count, and allow-listed header values.
func (t *Tracing) messageAttributes(all []attribute.KeyValue, msg *Message) []attribute.KeyValue {
	all = append(all, propagation.BodySize(len(msg.Body)))
	if msg.DeliveryCount > 0 {
		all = append(all, DeliveryCountKey.Int(msg.DeliveryCount))
	}
	for name := range t.cfg.headerAllow {
		if v, ok := msg.Headers[name]; ok {
			all = append(all, attribute.String(HeaderAttributePrefix+name, v))
		}
	}
	if t.cfg.redact != nil {
		for i := range all {
			all[i] = t.cfg.redact(all[i])
		}
	}
	return all
}

// DeliveryCountKey records Message.DeliveryCount on process spans.
const DeliveryCountKey = attribute.Key("otelmq.message.delivery_count")

// HeaderAttributePrefix prefixes allow-listed header values recorded as
// span attributes: messaging.header.<name>.
const HeaderAttributePrefix = "messaging.header."

// StartSettle starts a settle span (CLIENT) named op for messages created in
// creations.
func (t *Tracing) StartSettle(ctx context.Context, d Destination, op string, creations []trace.SpanContext, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return t.startSettle(ctx, d, op, time.Time{}, creations, attrs)
}

func (t *Tracing) startSettle(ctx context.Context, d Destination, op string, start time.Time, creations []trace.SpanContext, attrs []attribute.KeyValue) (context.Context, trace.Span) {
	all := spanAttributes(d, propagation.Settle, op, 1+len(attrs))
	if len(creations) > 1 {
		all = append(all, propagation.BatchMessageCount(len(creations)))
	}
	all = append(all, attrs...)
	opts := []trace.SpanStartOption{
		kindClient, trace.WithAttributes(all...),
	}
	if len(creations) > 1 || !trace.SpanContextFromContext(ctx).IsValid() {
		opts = append(opts, trace.WithLinks(links(creations)...))
	}
	if !start.IsZero() {
		opts = append(opts, trace.WithTimestamp(start))
	}
	return t.tracer.Start(ctx, propagation.SpanName(op, d.Name), opts...)
}

func links(scs []trace.SpanContext) []trace.Link {
	var ls []trace.Link
	for _, sc := range scs {
		ls = appendLink(ls, sc)
	}
	return ls
}

func appendLink(ls []trace.Link, sc trace.SpanContext) []trace.Link {
	if !sc.IsValid() {
		return ls
	}
	return append(ls, trace.Link{SpanContext: sc})
}

// Span kinds as start options, made once: trace.WithSpanKind boxes its
// argument into an interface on every call.
var (
	kindProducer = trace.WithSpanKind(trace.SpanKindProducer)
	kindConsumer = trace.WithSpanKind(trace.SpanKindConsumer)
	kindClient   = trace.WithSpanKind(trace.SpanKindClient)
)

// spanAttributes starts the attribute slice of a span on d, with room for
// extra more, so building a span's attributes allocates once.
func spanAttributes(d Destination, typ propagation.OperationType, op string, extra int) []attribute.KeyValue {
	all := make([]attribute.KeyValue, 0, 4+len(d.Attributes)+extra)
	all = propagation.AppendOperationAttributes(all, d.System, typ, op, d.Name)
	return append(all, d.Attributes...)
}

// End ends span, recording err (error status, error.type and the error as
// an exception event) when not nil.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(propagation.ErrorTypeKey.String(ErrorType(err)))
		span.RecordError(err)
	}
	span.End()
}

// ErrorType is the low-cardinality error.type of err: "panic" for a
// recovered handler panic, "timeout" and "canceled" for context errors, the
// Go type of a custom error, and "_OTHER" for plain errors.New/fmt.Errorf
// values, whose type says nothing.
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
	if typed, ok := err.(interface{ ErrorType() string }); ok {
		return typed.ErrorType()
	}
	switch s := fmt.Sprintf("%T", err); s {
	case "*errors.errorString", "*fmt.wrapError", "*fmt.wrapErrors", "*errors.joinError":
		return "_OTHER"
	default:
		return s
	}
}
