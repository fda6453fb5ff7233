package middleware

import (
	"context"
	"time"
)

// Metrics is the metrics middleware: the four semconv messaging metrics and
// otelmq.message.queue_time.
type Metrics struct {
	cfg config
	// TODO(helper): instruments.
}

// NewMetrics returns metrics middleware configured by opts.
func NewMetrics(opts ...Option) *Metrics { return &Metrics{cfg: newConfig(opts)} }

// Publisher wraps next: messaging.client.operation.duration and
// messaging.client.sent.messages per publish.
func (m *Metrics) Publisher(next Publisher) Publisher { return next /* TODO(helper) */ }

// Subscriber wraps next: installs m as an Observer and records
// messaging.process.duration and the queue time per message.
func (m *Metrics) Subscriber(next Subscriber) Subscriber { return next /* TODO(helper) */ }

// Received implements Observer: consumed messages and receive duration.
func (m *Metrics) Received(ctx context.Context, d Destination, start time.Time, msgs []*Message) context.Context {
	return ctx // TODO(helper)
}

// Settled implements Observer: settle operation duration.
func (m *Metrics) Settled(ctx context.Context, d Destination, op string, start time.Time, msgs []*Message, err error) {
	// TODO(helper)
}
