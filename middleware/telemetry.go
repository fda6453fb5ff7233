package middleware

// Telemetry is tracing and metrics together: what most users want.
type Telemetry struct {
	Tracing *Tracing
	Metrics *Metrics
}

// NewTelemetry returns tracing and metrics middleware sharing opts.
func NewTelemetry(opts ...Option) *Telemetry {
	return &Telemetry{Tracing: NewTracing(opts...), Metrics: NewMetrics(opts...)}
}

// Publisher wraps next with tracing outermost, then metrics.
func (t *Telemetry) Publisher(next Publisher) Publisher {
	return t.Tracing.Publisher(t.Metrics.Publisher(next))
}

// Subscriber wraps next with tracing outermost, then metrics.
func (t *Telemetry) Subscriber(next Subscriber) Subscriber {
	return t.Tracing.Subscriber(t.Metrics.Subscriber(next))
}
