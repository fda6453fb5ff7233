package propagation

import (
	"context"
)

// Inject writes the trace context of ctx into c: the propagator's fields
// (traceparent, tracestate, baggage by default), cut to the W3C limits, and the
// X-Ray header when WithXRayInject is set. What a limit drops is recorded as a
// span event on the span in ctx and on the otelmq.propagation.dropped counter;
// it is never an error.
func (p *Propagator) Inject(ctx context.Context, c TextMapCarrier) {
	// TODO(helper): limits, X-Ray inject.
	p.TextMap().Inject(ctx, c)
}

// Extract returns ctx with the remote span context and baggage found in c.
// Over-limit tracestate and baggage are cut (and recorded) before parsing.
// When c carries no valid W3C context and X-Ray extraction is on, the X-Ray
// header under XRayKey is used instead. Extract never fails and never panics.
func (p *Propagator) Extract(ctx context.Context, c TextMapCarrier) context.Context {
	// TODO(helper): limits, X-Ray fallback.
	return p.TextMap().Extract(ctx, c)
}

// RecordDropped records that n entries of field were dropped for reason
// (for example "limit" or "sqs_attribute_budget"): a span event on the span
// in ctx and the otelmq.propagation.dropped counter. Carriers and transports
// call it; it never fails.
func (p *Propagator) RecordDropped(ctx context.Context, field, reason string, n int) {
	// TODO(helper)
}
