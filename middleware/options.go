package middleware

import (
	"go.opentelemetry.io/otel/metric"
	otelprop "go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ProcessParent chooses the parent of a process span.
type ProcessParent int

const (
	// ParentMessage (the default) parents the process span on the message's
	// creation context, so producer and consumer are one trace, and links the
	// receive span.
	ParentMessage ProcessParent = iota
	// ParentReceive parents the process span on the receive span (the poll)
	// and links the message's creation context: batch-poll-as-parent.
	ParentReceive
	// ParentNone starts each process span as a new root that links the
	// message's creation context.
	ParentNone
)

type config struct {
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	propagator     otelprop.TextMapPropagator
	processParent  ProcessParent
	headerAllow    map[string]struct{}
	createSpans    bool
}

func newConfig(opts []Option) config {
	c := config{createSpans: true}
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
