package propagation

import (
	"go.opentelemetry.io/otel/metric"
	otelprop "go.opentelemetry.io/otel/propagation"
)

// W3C limits (https://www.w3.org/TR/trace-context/#tracestate-header-field-values,
// https://www.w3.org/TR/baggage/#limits). The baggage specification lowered
// its member limit from 180 to 64; OpenTelemetry Go parses at most 64, so
// that is the limit here too.
const (
	MaxTraceStateMembers = 32
	MaxBaggageBytes      = 8192
	MaxBaggageMembers    = 64
)

type config struct {
	propagator    otelprop.TextMapPropagator
	meterProvider metric.MeterProvider
	xrayInject    bool
	xrayExtract   bool
	maxTraceState int
	maxBaggageB   int
	maxBaggageN   int
}

func newConfig(opts []Option) config {
	c := config{
		xrayExtract:   true,
		maxTraceState: MaxTraceStateMembers,
		maxBaggageB:   MaxBaggageBytes,
		maxBaggageN:   MaxBaggageMembers,
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// Option configures a Propagator.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithTextMapPropagator sets the OpenTelemetry propagator to use instead of
// the global one. A nil p is ignored.
func WithTextMapPropagator(p otelprop.TextMapPropagator) Option {
	return optionFunc(func(c *config) {
		if p != nil {
			c.propagator = p
		}
	})
}

// WithMeterProvider sets the MeterProvider for the dropped-field counter.
// A nil mp is ignored; the default is the global MeterProvider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) {
		if mp != nil {
			c.meterProvider = mp
		}
	})
}

// WithXRayInject makes Inject also write the X-Ray header under XRayKey.
// An X-Ray header the carrier already holds for the same span (an AWS
// producer's, on a relayed message) is left as it is.
func WithXRayInject(on bool) Option {
	return optionFunc(func(c *config) { c.xrayInject = on })
}

// WithXRayExtract turns the X-Ray fallback on extract on (the default) or off.
func WithXRayExtract(on bool) Option {
	return optionFunc(func(c *config) { c.xrayExtract = on })
}
