package middleware

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/propagation"
)

// Tracing is the tracing middleware. One Tracing serves any number of
// publishers and subscribers on any broker.
type Tracing struct {
	cfg config
	// TODO(helper): tracer, propagator.
}

// NewTracing returns tracing middleware configured by opts.
func NewTracing(opts ...Option) *Tracing {
	return &Tracing{cfg: newConfig(opts)}
}

// Publisher wraps next: a send span per Publish call, a create span per
// message of a batch, and the creation context injected into each message's
// Headers unless the message already carries a valid one.
func (t *Tracing) Publisher(next Publisher) Publisher { return next /* TODO(helper) */ }

// Subscriber wraps next: it installs t as an Observer (receive and settle
// spans) and wraps the handler with a process span per message.
func (t *Tracing) Subscriber(next Subscriber) Subscriber { return next /* TODO(helper) */ }

// Received implements Observer: a receive span per poll, linking each message.
func (t *Tracing) Received(ctx context.Context, d Destination, start time.Time, msgs []*Message) context.Context {
	return ctx // TODO(helper)
}

// Settled implements Observer: a settle span (ack, nack, delete, commit).
func (t *Tracing) Settled(ctx context.Context, d Destination, op string, start time.Time, msgs []*Message, err error) {
	// TODO(helper)
}

// The methods below are the building blocks the unified middleware uses and
// that native-client instrumentation (kgo hooks, the SQS smithy middleware,
// the amqp091 channel wrapper) and manual users call directly.

// StartSend starts the send span (PRODUCER) of a publish of n messages to d.
func (t *Tracing) StartSend(ctx context.Context, d Destination, n int, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return ctx, trace.SpanFromContext(ctx) // TODO(helper)
}

// InjectCreate writes the creation context of one message into c, unless c
// already holds a valid one, which is kept and returned. When batch is true
// (and create spans are on) a create span is started and ended for the message
// and its context is the one injected; otherwise the span in ctx is.
func (t *Tracing) InjectCreate(ctx context.Context, d Destination, c propagation.TextMapCarrier, batch bool, attrs ...attribute.KeyValue) trace.SpanContext {
	return trace.SpanContext{} // TODO(helper)
}

// Extract returns ctx with the remote span context and baggage in c.
func (t *Tracing) Extract(ctx context.Context, c propagation.TextMapCarrier) context.Context {
	return ctx // TODO(helper)
}

// StartReceive records a receive span (CLIENT) for a poll of d that began at
// start and returned messages created in creations; the span is ended at once
// and the returned ctx carries it.
func (t *Tracing) StartReceive(ctx context.Context, d Destination, start time.Time, creations []trace.SpanContext, attrs ...attribute.KeyValue) context.Context {
	return ctx // TODO(helper)
}

// StartProcess starts the process span (CONSUMER) of one message whose
// headers are c, parented per WithProcessParent. ctx may carry a receive span.
func (t *Tracing) StartProcess(ctx context.Context, d Destination, c propagation.TextMapCarrier, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return ctx, trace.SpanFromContext(ctx) // TODO(helper)
}

// StartSettle starts a settle span (CLIENT) named op for messages created in
// creations.
func (t *Tracing) StartSettle(ctx context.Context, d Destination, op string, creations []trace.SpanContext, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return ctx, trace.SpanFromContext(ctx) // TODO(helper)
}

// End ends span, recording err (error status and error.type) when not nil.
func End(span trace.Span, err error) {
	// TODO(helper)
	span.End()
}
