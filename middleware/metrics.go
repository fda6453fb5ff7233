package middleware

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/otelmq/otelmq/propagation"
)

// Metric names: the four semantic-convention messaging metrics and the
// library's own queue time.
const (
	MetricOperationDuration = "messaging.client.operation.duration"
	MetricSentMessages      = "messaging.client.sent.messages"
	MetricConsumedMessages  = "messaging.client.consumed.messages"
	MetricProcessDuration   = "messaging.process.duration"
	// MetricQueueTime is the time from the producer's or broker's timestamp
	// to the start of processing, clamped at zero because producer and
	// consumer clocks can disagree.
	MetricQueueTime = "otelmq.message.queue_time"
)

// durationBuckets are the semantic conventions' advice for messaging
// durations, in seconds.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// Metrics is the metrics middleware: the four semconv messaging metrics and
// otelmq.message.queue_time. It is safe for concurrent use.
type Metrics struct {
	cfg       config
	opDur     metric.Float64Histogram
	sent      metric.Int64Counter
	consumed  metric.Int64Counter
	procDur   metric.Float64Histogram
	queueTime metric.Float64Histogram
}

// NewMetrics returns metrics middleware configured by opts.
func NewMetrics(opts ...Option) *Metrics {
	cfg := newConfig(opts)
	mp := cfg.meterProvider
	if mp == nil {
		mp = otel.GetMeterProvider() // delegates to a provider installed later
	}
	meter := mp.Meter(propagation.ScopeName, metric.WithSchemaURL(propagation.SchemaURL))
	m := &Metrics{cfg: cfg}
	// Instrument errors only come from invalid names, which are constants;
	// the API returns usable no-op instruments alongside any error.
	m.opDur, _ = meter.Float64Histogram(MetricOperationDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of a messaging operation initiated by a producer or consumer client."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	m.sent, _ = meter.Int64Counter(MetricSentMessages, metric.WithUnit("{message}"),
		metric.WithDescription("Number of messages producer attempted to send to the broker."))
	m.consumed, _ = meter.Int64Counter(MetricConsumedMessages, metric.WithUnit("{message}"),
		metric.WithDescription("Number of messages that were delivered to the application."))
	m.procDur, _ = meter.Float64Histogram(MetricProcessDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of processing operation."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	m.queueTime, _ = meter.Float64Histogram(MetricQueueTime, metric.WithUnit("s"),
		metric.WithDescription("Time from the message's producer or broker timestamp to the start of processing, clamped at zero."),
		metric.WithExplicitBucketBoundaries(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600))
	return m
}

// Publisher wraps next: messaging.client.operation.duration and
// messaging.client.sent.messages per publish.
func (m *Metrics) Publisher(next Publisher) Publisher { return &meteredPublisher{next: next, m: m} }

type meteredPublisher struct {
	next Publisher
	m    *Metrics
}

func (p *meteredPublisher) Describe(dest string) Destination { return Describe(p.next, dest) }

func (p *meteredPublisher) Publish(ctx context.Context, dest string, msgs ...*Message) error {
	start := time.Now()
	err := p.next.Publish(ctx, dest, msgs...)
	set := metric.WithAttributeSet(metricAttributes(Describe(p.next, dest), propagation.Send, "send", err))
	p.m.opDur.Record(ctx, time.Since(start).Seconds(), set)
	p.m.sent.Add(ctx, int64(len(msgs)), set)
	return err
}

// Subscriber wraps next: installs m as an Observer and records
// messaging.process.duration and the queue time per message.
func (m *Metrics) Subscriber(next Subscriber) Subscriber { return &meteredSubscriber{next: next, m: m} }

type meteredSubscriber struct {
	next Subscriber
	m    *Metrics
}

func (s *meteredSubscriber) Describe(src string) Destination { return Describe(s.next, src) }

func (s *meteredSubscriber) Subscribe(ctx context.Context, src string, h Handler) error {
	d := Describe(s.next, src)
	ok := metric.WithAttributeSet(metricAttributes(d, propagation.Process, "process", nil))
	return s.next.Subscribe(WithObserver(ctx, s.m), src, HandlerFunc(func(ctx context.Context, msg *Message) error {
		start := time.Now()
		if !msg.Time.IsZero() {
			s.m.queueTime.Record(ctx, max(start.Sub(msg.Time), 0).Seconds(), ok)
		}
		err := Call(ctx, h, msg)
		set := ok
		if err != nil {
			set = metric.WithAttributeSet(metricAttributes(d, propagation.Process, "process", err))
		}
		s.m.procDur.Record(ctx, time.Since(start).Seconds(), set)
		return err
	}))
}

// Received implements Observer: consumed messages and receive duration.
func (m *Metrics) Received(ctx context.Context, d Destination, start time.Time, msgs []*Message) context.Context {
	set := metric.WithAttributeSet(metricAttributes(d, propagation.Receive, "receive", nil))
	m.opDur.Record(ctx, time.Since(start).Seconds(), set)
	m.consumed.Add(ctx, int64(len(msgs)), set)
	return ctx
}

// Settled implements Observer: settle operation duration.
func (m *Metrics) Settled(ctx context.Context, d Destination, op string, start time.Time, msgs []*Message, err error) {
	m.opDur.Record(ctx, time.Since(start).Seconds(),
		metric.WithAttributeSet(metricAttributes(d, propagation.Settle, op, err)))
}

// metricAttributes keeps the destination attributes whose cardinality is
// bounded (server, consumer group), never per-message ones.
func metricAttributes(d Destination, typ propagation.OperationType, op string, err error) attribute.Set {
	attrs := propagation.OperationAttributes(d.System, typ, op, d.Name)
	for _, a := range d.Attributes {
		switch a.Key {
		case propagation.ServerAddressKey, propagation.ServerPortKey, propagation.ConsumerGroupKey:
			attrs = append(attrs, a)
		}
	}
	if err != nil {
		attrs = append(attrs, propagation.ErrorTypeKey.String(ErrorType(err)))
	}
	return attribute.NewSet(attrs...)
}
