package middleware

import (
	"context"
	"time"
)

// Observer receives the events only a transport can see: a poll that
// returned messages and the settlement of messages. Tracing and metrics
// middleware install observers in the Subscribe context; transports call
// ObserverFrom(ctx) once and report to it.
type Observer interface {
	// Received is called once per poll that returned at least one message
	// or, on a push-based destination (d.Push), once per delivery or group
	// of deliveries taken together, before any handler runs; start is when
	// the poll began or the delivery was taken. The returned context is the
	// one the transport passes to the handlers of msgs.
	Received(ctx context.Context, d Destination, start time.Time, msgs []*Message) context.Context
	// Settled is called after the transport settled msgs with operation op
	// (propagation.OpAck, OpNack, OpDelete, OpCommit); start is when the
	// settle call began and err its outcome. ctx is the context the handler got.
	Settled(ctx context.Context, d Destination, op string, start time.Time, msgs []*Message, err error)
}

type observerKey struct{}

// WithObserver returns ctx with o added to the observers transports report to.
func WithObserver(ctx context.Context, o Observer) context.Context {
	if o == nil {
		return ctx
	}
	prev, _ := ctx.Value(observerKey{}).(observers)
	next := make(observers, 0, len(prev)+1)
	next = append(append(next, prev...), o)
	return context.WithValue(ctx, observerKey{}, next)
}

// ObserverFrom returns the observers installed in ctx as one Observer; it is
// never nil and costs nothing when none were installed.
func ObserverFrom(ctx context.Context) Observer {
	obs, _ := ctx.Value(observerKey{}).(observers)
	switch len(obs) {
	case 0:
		return nopObserver{}
	case 1:
		return obs[0]
	}
	return obs
}

// Observed reports whether any Observer is installed in ctx: whether a
// transport has anyone to report a poll or a settlement to. Without one it
// can skip the work that only an Observer needs, such as reading the clock
// for the start of each poll and settlement.
func Observed(ctx context.Context) bool {
	obs, _ := ctx.Value(observerKey{}).(observers)
	return len(obs) > 0
}

type observers []Observer

func (os observers) Received(ctx context.Context, d Destination, start time.Time, msgs []*Message) context.Context {
	for _, o := range os {
		ctx = o.Received(ctx, d, start, msgs)
	}
	return ctx
}

func (os observers) Settled(ctx context.Context, d Destination, op string, start time.Time, msgs []*Message, err error) {
	for _, o := range os {
		o.Settled(ctx, d, op, start, msgs, err)
	}
}

type nopObserver struct{}

func (nopObserver) Received(ctx context.Context, _ Destination, _ time.Time, _ []*Message) context.Context {
	return ctx
}
func (nopObserver) Settled(context.Context, Destination, string, time.Time, []*Message, error) {}
