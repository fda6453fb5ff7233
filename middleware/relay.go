package middleware

import (
	"context"
	"fmt"
	"maps"
	"time"
)

// Relay consumes source on src and publishes every message to destination
// on dst (any transport to any other), keeping ID, body, key, headers, time
// and trace context. It settles a message on the source only after dst accepted
// it, so a failure anywhere means a redelivery, never a loss (at least once):
// the Publish's context is marked with RequireConfirm, so that dst returns
// nil only once its broker took the message. A message dst refuses for
// good (a header its broker cannot carry, a body it does not take; the
// transports mark those errors with Permanent) would come back for ever,
// holding up what follows it on an ordered source: compose RelayHandler
// with DeadLetter, which dead-letters such a failure at once, to a
// destination that can take it.
// With traced src and dst, the relay's own process and send spans sit in the
// message's trace. Relay blocks like Subscribe.
//
// Each publish to dst is bounded by WithRelayTimeout (30 s by default): a
// destination that stops answering (a RabbitMQ connection blocked by a
// resource alarm, an unreachable endpoint) fails the message, which the
// source redelivers, rather than holding the handler, and Subscribe's
// shutdown, for as long as it lasts.
func Relay(ctx context.Context, src Subscriber, source string, dst Publisher, destination string, opts ...RelayOption) error {
	return src.Subscribe(ctx, source, RelayHandler(dst, destination, opts...))
}

// DefaultRelayTimeout bounds each relay publish unless WithRelayTimeout says
// otherwise.
const DefaultRelayTimeout = 30 * time.Second

// RelayOption configures Relay and RelayHandler.
type RelayOption func(*relayConfig)

type relayConfig struct{ timeout time.Duration }

// WithRelayTimeout bounds each publish to the destination to d (default
// DefaultRelayTimeout; d <= 0 keeps it), within the handler context's own
// deadline, if any.
func WithRelayTimeout(d time.Duration) RelayOption {
	return func(c *relayConfig) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// RelayHandler is the handler Relay uses, for composing with other handler
// middleware (Retry, DeadLetter).
func RelayHandler(dst Publisher, destination string, opts ...RelayOption) Handler {
	cfg := relayConfig{timeout: DefaultRelayTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	return HandlerFunc(func(ctx context.Context, msg *Message) error {
		// The source's ID goes along: a destination that deduplicates by
		// ID (an SQS FIFO queue, by default) drops the copy a redelivery
		// relays again; brokers that assign IDs replace it.
		out := &Message{ID: msg.ID, Key: msg.Key, Body: msg.Body, Headers: maps.Clone(msg.Headers), Time: msg.Time}
		pctx, cancel := context.WithTimeout(ctx, cfg.timeout)
		defer cancel()
		if err := dst.Publish(RequireConfirm(pctx), destination, out); err != nil {
			// Named as dst describes it: a DualPublish takes no
			// destination here, its own are fixed.
			return fmt.Errorf("otelmq: relaying message %q to %q: %w", msg.ID, Describe(dst, destination).Name, err)
		}
		return nil
	})
}

// DualPublish publishes every message to primary and then to a copy on
// secondary (the ID it came with, key, body, headers and time), for the
// cut-over from one broker to another: consumers on both see every
// message with the same trace context. It returns the primary's error,
// else the secondary's; callers that must not fail on the secondary can
// wrap it. When the primary fails, nothing goes to the secondary: the
// caller (Relay, by redelivering) publishes again, and the secondary would
// get a copy per attempt.
func DualPublish(primary Publisher, primaryDest string, secondary Publisher, secondaryDest string) Publisher {
	return &dualPublisher{primary: primary, secondary: secondary, pd: primaryDest, sd: secondaryDest}
}

type dualPublisher struct {
	primary, secondary Publisher
	pd, sd             string
}

// Describe describes the primary destination.
func (d *dualPublisher) Describe(string) Destination { return Describe(d.primary, d.pd) }

// Publish ignores its destination argument: the destinations were fixed by
// DualPublish, since the two brokers name them differently.
func (d *dualPublisher) Publish(ctx context.Context, _ string, msgs ...*Message) error {
	// The copy carries the ID the message came with, as Relay's does, not
	// the one a primary that assigns IDs (SQS, Kafka) writes back: a
	// secondary that deduplicates by ID then drops the copy a redelivered
	// relay publishes again.
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		if m != nil {
			ids[i] = m.ID
		}
	}
	if err := d.primary.Publish(ctx, d.pd, msgs...); err != nil {
		return err
	}
	// Copied after the primary's publish: a traced primary has written the
	// message's creation context into its headers, which the copy then
	// carries, so a traced secondary keeps it rather than making another
	// (a second trace, when ctx held no span).
	copies := make([]*Message, len(msgs))
	for i, m := range msgs {
		if m != nil {
			copies[i] = &Message{ID: ids[i], Key: m.Key, Body: m.Body, Headers: maps.Clone(m.Headers), Time: m.Time}
		}
	}
	if err := d.secondary.Publish(ctx, d.sd, copies...); err != nil {
		return fmt.Errorf("otelmq: dual publish to %s: %w", d.sd, err)
	}
	return nil
}
