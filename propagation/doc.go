// Package propagation is otelmq's shared core: it injects the W3C trace
// context (traceparent, tracestate, baggage) into message headers and
// extracts it, for every broker, through any propagation.TextMapCarrier.
// It imports no broker client; each transport brings a carrier of a few lines.
//
// # Which propagator
//
// A Propagator uses, in this order: the propagator given with
// WithTextMapPropagator; else the global one (otel.SetTextMapPropagator);
// else, when the application never set a global propagator (it then has no
// fields), W3C TraceContext + Baggage. So a service that forgot to set a
// propagator still produces connected traces.
//
// With that last default, Inject and Extract format and parse the W3C
// headers themselves (w3c.go), through the limits below, instead of calling
// the otel propagators, which need the limit wrapper on the heap and build
// contexts to return what they found; fuzz tests hold the two equal on any
// input. ExtractSpanContext returns what a message carries without building
// a context at all, for callers that start a span from it.
//
// # Limits
//
// tracestate is cut to 32 members and baggage to 64 members and 8192 bytes
// (the W3C limits), on inject and on extract, keeping the first members. What
// is cut is never an error: it is an otelmq.propagation.dropped event on the
// current span and a count on the otelmq.propagation.dropped counter. A
// traceparent that does not parse is recorded the same way (reason
// "invalid") and the message starts a new trace. A carrier that holds a
// header more than once (an otel ValuesGetter, such as HeaderCarrier)
// has its tracestate and baggage fields combined into one list, as W3C
// requires, before the limits apply.
//
// # X-Ray
//
// When a message carries no valid W3C context, Extract falls back to the
// AWS X-Ray header under XRayKey (the SQS AWSTraceHeader system attribute,
// which AWS services and Lambda set). W3C wins when both are present.
// WithXRayInject also writes the X-Ray header on inject. Only Sampled=1
// reads as sampled; ParseXRay says what that means for Sampled=? and a
// header without a Sampled field.
//
// # Semantic conventions
//
// semconv.go holds the messaging attribute builders every transport uses,
// from one semconv package version (SemconvVersion).
package propagation
