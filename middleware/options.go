package middleware

import (
	"os"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/metric"
	otelprop "go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelmq/otelmq/propagation"
)

// ProcessParent chooses the parent of a process span.
type ProcessParent int

const (
	// ParentMessage (the default) parents the process span on the message's
	// creation context, so producer and consumer are one trace. It does not
	// link the receive span, which links the message already: semconv's
	// "parent" choice, and a link less per message for the SDK to copy
	// twice (at start and in the span's snapshot). A message without a
	// creation context gets the receive span as its parent (with
	// StartProcess on a pull destination, whatever span ctx holds); on a
	// push destination (Destination.Push), which has no receive span, it
	// starts a new root: the span in the Subscribe context is the
	// caller's, not the message's.
	ParentMessage ProcessParent = iota
	// ParentReceive parents the process span on the receive span (the poll)
	// and links the message's creation context: batch-poll-as-parent. A push
	// delivery (Destination.Push) has no receive span: its process span is a
	// new root that links the creation context.
	ParentReceive
	// ParentNone starts each process span as a new root that links the
	// message's creation context.
	ParentNone
	// ParentMessageLinkReceive is ParentMessage plus a link to the receive
	// span (the poll), semconv's "both": a process span then leads to the
	// poll that returned its message, at the cost of a link per message. A
	// push delivery has no receive span to link.
	ParentMessageLinkReceive
)

type config struct {
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	propagator     otelprop.TextMapPropagator
	processParent  ProcessParent
	headerAllow    map[string]struct{}
	createSpans    bool
	settleSpans    bool
	bodySize       bool
	parentBased    bool
	linkLimit      int // < 0: none
	redact         func(attribute.KeyValue) attribute.KeyValue
	template       func(Destination) string
	propOpts       []propagation.Option
	// baggageAllow, when baggageFiltered, names the inbound baggage keys kept.
	baggageFiltered bool
	baggageAllow    map[string]struct{}
}

func (c *config) newPropagator() *propagation.Propagator {
	opts := append([]propagation.Option{propagation.WithTextMapPropagator(c.propagator), propagation.WithMeterProvider(c.meterProvider)}, c.propOpts...)
	return propagation.New(opts...)
}

// filterBaggage applies WithInboundBaggage to baggage extracted from a message.
func (c *config) filterBaggage(b baggage.Baggage) baggage.Baggage {
	if !c.baggageFiltered || b.Len() == 0 {
		return b
	}
	var keep []baggage.Member
	for _, m := range b.Members() {
		if _, ok := c.baggageAllow[m.Key()]; ok {
			keep = append(keep, m)
		}
	}
	out, _ := baggage.New(keep...)
	return out
}

func newConfig(opts []Option) config {
	c := config{createSpans: true, settleSpans: true, linkLimit: defaultLinkLimit()}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// Option configures tracing and metrics middleware.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithTracerProvider sets the TracerProvider; nil is ignored and the
// default is the global provider.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) {
		if tp != nil {
			c.tracerProvider = tp
		}
	})
}

// WithMeterProvider sets the MeterProvider; nil is ignored and the default
// is the global provider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) {
		if mp != nil {
			c.meterProvider = mp
		}
	})
}

// WithPropagator sets the propagator; nil is ignored. The default is the
// global propagator, or W3C TraceContext+Baggage when the application set none.
func WithPropagator(p otelprop.TextMapPropagator) Option {
	return optionFunc(func(c *config) {
		if p != nil {
			c.propagator = p
		}
	})
}

// WithProcessParent chooses the parent of process spans; see ProcessParent.
func WithProcessParent(p ProcessParent) Option {
	return optionFunc(func(c *config) { c.processParent = p })
}

// WithHeaderAllowList names the headers whose values may be recorded as span
// attributes (messaging.header.<name>). The default is none: no header value
// and never a body is recorded.
func WithHeaderAllowList(names ...string) Option {
	return optionFunc(func(c *config) {
		if c.headerAllow == nil {
			c.headerAllow = make(map[string]struct{}, len(names))
		}
		for _, n := range names {
			c.headerAllow[n] = struct{}{}
		}
	})
}

// WithCreateSpans turns the per-message create spans of a batch publish on
// (the default) or off.
func WithCreateSpans(on bool) Option {
	return optionFunc(func(c *config) { c.createSpans = on })
}

// WithSettleSpans turns the settle spans (ack, nack, delete, commit) on
// (the default) or off. The semantic conventions define them, as
// experimental; they are a third of the spans of a message on a broker
// that acknowledges each one (RabbitMQ, the in-memory broker), and the
// time an acknowledgement took is in the messaging.client.operation.duration
// metric either way. With them off, StartSettle returns ctx and a span that
// records nothing.
func WithSettleSpans(on bool) Option {
	return optionFunc(func(c *config) { c.settleSpans = on })
}

// WithBodySize turns messaging.message.body.size (the body's length, never
// its bytes) on process spans on or off (the default: the semantic
// conventions make it opt-in, and every attribute is work for the SDK on
// every recorded span).
func WithBodySize(on bool) Option {
	return optionFunc(func(c *config) { c.bodySize = on })
}

// WithParentBasedSampling tells Tracing that the provider's sampler keeps
// the decision of a span's parent, as sdktrace.ParentBased (the SDK's
// default sampler) does with its default options: the child of a span
// context that is not sampled is dropped. Tracing then does not start a
// span whose parent is such a span context (a process span under an
// unsampled message, a send or create span under an unsampled request, a
// receive span under an unsampled Subscribe context, a settle span under
// an unsampled process span): the context it hands on carries
// the parent's span context instead, in a span that does not record, so
// the trace ID, the not-sampled flag and baggage still propagate, and
// spans the handler starts are dropped as before. The spans recorded are
// the same; what is saved is the SDK's cost of each span it would have
// dropped (its IDs, the sampler call, a non-recording span and a context:
// about 1.5 µs and 5 allocations here), on every message a trace sampled
// out. Off by default: with a sampler that records children of unsampled
// parents (AlwaysSample as the root sampler, not wrapped in ParentBased;
// ParentBased with WithRemoteParentNotSampled or
// WithLocalParentNotSampled), the spans it would have recorded are lost.
func WithParentBasedSampling(on bool) Option {
	return optionFunc(func(c *config) { c.parentBased = on })
}

// WithLinkLimit bounds how many creation contexts a receive or settle span
// of a batch links to: the first n messages' (n < 0: all). The default is
// the OpenTelemetry SDK's own link limit, 128 or OTEL_SPAN_LINK_COUNT_LIMIT:
// the SDK drops the links past it anyway, after shifting its whole link
// queue for each one, which for a poll of 500 Kafka records cost 4% of the
// CPU. Raise it with the SDK's limit (sdktrace.WithRawSpanLimits).
func WithLinkLimit(n int) Option {
	return optionFunc(func(c *config) { c.linkLimit = n })
}

// defaultLinkLimit is the SDK's default link count limit, as it reads it.
func defaultLinkLimit() int {
	if n, err := strconv.Atoi(os.Getenv("OTEL_SPAN_LINK_COUNT_LIMIT")); err == nil {
		return n
	}
	return 128
}

// WithRedactor sets a hook that rewrites, before it is recorded, every span
// attribute drawn from a message or its destination: the message attributes
// (header values, IDs, keys) of process, create and settle spans (those
// started with StartProcess, StartProcessFrom, StartSettle and the native
// instrumentation included), what RecordAttributes sets (the ID a broker
// assigns to a single message on its send span, a produced record's key
// and ID in the kgo hooks), and the attributes every span starts with
// (destination, partition, batch count), so a sampler sees them redacted
// too. Return the attribute unchanged, with a masked value, or
// attribute.KeyValue{} to drop it. Metrics' attributes go through it too,
// and so does the text of the error a span ends with, as
// StatusDescriptionKey (Tracing.End).
// Span names are not attributes: WithDestinationTemplate names spans by a
// template instead of the destination. The default records attributes as they are; bodies and
// non-allow-listed headers are never recorded either way.
func WithRedactor(redact func(attribute.KeyValue) attribute.KeyValue) Option {
	return optionFunc(func(c *config) { c.redact = redact })
}

// WithDestinationTemplate names destinations by a low-cardinality template
// (semconv's messaging.destination.template): template gets a destination
// as its transport describes it (a RabbitMQ send destination is
// "{exchange}:{routing key}") and returns its template, or "" for none.
// With a template, spans are named "{operation} {template}" and record the
// template beside messaging.destination.name, and metrics record the
// template instead of the name. Use it when destination names are many
// (per-tenant topics, routing keys with IDs) or hold personal data, which
// span names cannot keep out otherwise: drop messaging.destination.name
// from spans with WithRedactor. template is called once per destination
// and operation (a span or metric set cached, up to 1024 of them; past that,
// per span or measurement) and must be safe for concurrent use. It must
// depend on d.System and d.Name alone: results are cached by them (with
// the few attributes metrics keep), so two destinations of one name that
// differ in other attributes get the first one's template.
func WithDestinationTemplate(template func(Destination) string) Option {
	return optionFunc(func(c *config) { c.template = template })
}

// templated returns d with the Template WithDestinationTemplate gives it,
// unless the transport set one.
func templated(template func(Destination) string, d Destination) Destination {
	if template != nil && d.Template == "" {
		d.Template = template(d)
	}
	return d
}

// WithInboundBaggage limits the baggage taken from consumed messages to the
// named keys; with no keys all inbound baggage is dropped. Use it for
// messages from untrusted producers, whose baggage would otherwise reach
// your code and your outgoing calls. The default keeps all baggage (within
// the W3C limits).
func WithInboundBaggage(keys ...string) Option {
	return optionFunc(func(c *config) {
		c.baggageFiltered = true
		if c.baggageAllow == nil {
			c.baggageAllow = make(map[string]struct{}, len(keys))
		}
		for _, k := range keys {
			c.baggageAllow[k] = struct{}{}
		}
	})
}

// WithPropagation passes options to the propagation core: for example
// propagation.WithXRayInject(true) to also write the AWS X-Ray header (sent
// by the SQS transport as the AWSTraceHeader system attribute), or
// propagation.WithXRayExtract(false).
func WithPropagation(opts ...propagation.Option) Option {
	return optionFunc(func(c *config) { c.propOpts = append(c.propOpts, opts...) })
}
