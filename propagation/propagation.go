package propagation

import (
	"context"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	otelprop "go.opentelemetry.io/otel/propagation"
)

// TextMapCarrier is the carrier every transport adapts its native headers to.
// It is OpenTelemetry's own interface, re-exported so callers need one import.
type TextMapCarrier = otelprop.TextMapCarrier

// MapCarrier is the baseline carrier over a map[string]string.
type MapCarrier = otelprop.MapCarrier

// XRayKey is the SQS system attribute (and carrier key) that holds an AWS
// X-Ray trace header: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1.
const XRayKey = "AWSTraceHeader"

// fallback is used when the application never set a global propagator. It
// is a pointer so that Inject can recognize it with ==: the composite
// propagator itself is a slice, and comparing two of those panics.
var fallback otelprop.TextMapPropagator = &w3c{otelprop.NewCompositeTextMapPropagator(otelprop.TraceContext{}, otelprop.Baggage{})}

// w3c is W3C TraceContext + Baggage.
type w3c struct{ otelprop.TextMapPropagator }

// Propagator injects and extracts trace context into message headers. It
// applies the W3C size limits on both sides and, on extract, falls back to
// the X-Ray header when no W3C context is present.
//
// The zero value is not usable; call New. A Propagator is safe for
// concurrent use.
type Propagator struct {
	cfg config

	counterOnce sync.Once
	dropped     metric.Int64Counter
}

// New returns a Propagator configured by opts.
func New(opts ...Option) *Propagator {
	return &Propagator{cfg: newConfig(opts)}
}

var defaultPropagator = New()

// unsetGlobal is the global propagator as it is before the application sets
// one (nil if one with fields was already set): comparing with it is cheaper
// than Fields, which takes a lock and builds a map and a slice.
var unsetGlobal = func() otelprop.TextMapPropagator {
	if g := otel.GetTextMapPropagator(); len(g.Fields()) == 0 {
		return g
	}
	return nil
}()

// globalSet is true once the global propagator was seen with fields.
var globalSet atomic.Bool

// Default returns the Propagator used by the package-level Inject and Extract:
// the global propagator (or W3C TraceContext+Baggage when none was set),
// the default limits, X-Ray extraction on and X-Ray injection off.
func Default() *Propagator { return defaultPropagator }

// Inject writes the trace context of ctx into c with the Default Propagator.
func Inject(ctx context.Context, c TextMapCarrier) { defaultPropagator.Inject(ctx, c) }

// Extract reads trace context from c with the Default Propagator. It never
// fails: when c holds no valid context, ctx is returned without a remote parent.
func Extract(ctx context.Context, c TextMapCarrier) context.Context {
	return defaultPropagator.Extract(ctx, c)
}

// TextMap returns the OpenTelemetry propagator in effect for this call: the one
// set with WithTextMapPropagator, else the global one, else (when the global
// propagator has no fields, i.e. the application never set one) W3C
// TraceContext + Baggage.
func (p *Propagator) TextMap() otelprop.TextMapPropagator {
	if p.cfg.propagator != nil {
		return p.cfg.propagator
	}
	g := otel.GetTextMapPropagator()
	if g == unsetGlobal {
		return fallback // cheap: no Fields (mutex, map, slice) per message
	}
	if globalSet.Load() {
		return g
	}
	// Fields of an unset global propagator is nil and costs nothing; once
	// the application set one, remember it rather than build Fields (a new
	// slice) on every message.
	if len(g.Fields()) == 0 {
		return fallback
	}
	globalSet.Store(true)
	return g
}

// Fields returns the carrier keys this Propagator may write.
func (p *Propagator) Fields() []string {
	f := p.TextMap().Fields()
	if p.cfg.xrayInject {
		f = append(f[:len(f):len(f)], XRayKey)
	}
	return f
}

// meter returns the meter the dropped-field counter is recorded with.
func (c *config) meter() metric.Meter {
	mp := c.meterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	return mp.Meter(ScopeName)
}

// ScopeName is the instrumentation scope of everything otelmq records.
const ScopeName = "github.com/otelmq/otelmq"
